"""Sideman's OSC address space: request schemas, parsing with validation, reply encoding.

Every request carries an int32 request id as its first argument; every reply echoes it.
Replies use only int32 ('i'), float32 ('f'), string ('s') and blob ('b') arguments, the
types JUCE 7's juce_osc accepts. The full address space is documented in docs/osc.md.

Every field is checked here, at the boundary, before the host stores or queues anything:
its OSC type, and its rule in RULES (range, finite number, id grammar, port range). What
depends on the host's settings (the bundle's steps, the length limit) is checked by the
host right after, still before anything is stored.

    client -> host                                   host -> client
    /sideman/hello         i:req s:instance i:port   /sideman/<id>/welcome i:req s:instance s:status s:version s:bundle i:rate
    /sideman/quit          i:req                     /sideman/bye      i:req
    /sideman/ping          i:req                     /sideman/pong     i:req s:worker i:queued i:restarts i:busy_seconds
    /sideman/<id>/prompt   i:req s:text              /sideman/<id>/ack i:req s:verb
    /sideman/<id>/style    i:req s:path              /sideman/<id>/progress i:req i:step i:total
    /sideman/<id>/seed     i:req i:seed              /sideman/<id>/done i:req s:take s:path f:anchor_ppq
    /sideman/<id>/steps    i:req i:steps             /sideman/<id>/error i:req s:reason
    /sideman/<id>/guidance i:req f:context f:clap    /sideman/<id>/status i:req s:state i:queued s:take i:takes i:ahead
    /sideman/<id>/loop     i:req i:on (0/1)
    /sideman/<id>/clap_mix i:req f:mix (0 prompt .. 1 style reference)
    /sideman/<id>/generate i:req s:context f:seconds f:anchor_ppq f:bpm i:beats_per_bar i:sample_rate
    /sideman/<id>/vary     (generate's arguments) f:strength            of the selected take
    /sideman/<id>/inpaint  (generate's arguments) f:start_bar f:end_bar of the selected take
    /sideman/<id>/cancel   i:req                     /sideman/<id>/take i:req s:take s:path f:anchor_ppq
    /sideman/<id>/take/select i:req s:take
    /sideman/<id>/take/list    i:req i:offset  -> take/item i:req s:take s:name s:prompt i:seed s:created (UTC, ISO 8601) i:starred
                                                  (up to 8), then take/end i:req i:offset i:total
    /sideman/<id>/take/rename  i:req s:take s:name        take/star i:req s:take i:on
    /sideman/<id>/take/delete  i:req s:take (to SESSION/trash)   take/restore i:req s:take
    /sideman/<id>/models       i:req  -> model/item i:req s:name i:current (each), then model/end i:req i:total
    /sideman/<id>/model        i:req s:name (one of models; "default" is the host's own)
    /sideman/<id>/status   i:req                     /sideman/error i:req s:reason (no registered instance)

The plugin's copy of these tables is shim/plugin/Source/OscVerbs.h (tests/test_plugin_osc_verbs.py
keeps the two equal).
"""
from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass

from pythonosc.osc_message_builder import OscMessageBuilder

PREFIX = "/sideman"
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4; python-osc's server default is 8 KB
MAX_INSTANCE = 64
# Instance ids become file names (SESSION/instances/<id>.json): 1-64 of A-Z a-z 0-9 _ . -,
# not starting with '.' or '-' (so never '', '.', '..', a hidden file or an option).
INSTANCE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
INSTANCE_GRAMMAR = "1-64 of A-Z a-z 0-9 _ . -, not starting with '.' or '-'"
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
TAKE_RE = re.compile(r"^take-[A-Za-z0-9]{1,64}$")
MAX_STRING = 4096  # prompts and paths longer than this are refused
MAX_REASON = 300  # error replies are cut to this many characters
INT32 = (-2**31, 2**31 - 1)
MODEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{0,100}\Z")

# Argument schemas per verb: (name, OSC type). 'f' also accepts an int32 (control surfaces).
_GENERATE = (("req", "i"), ("context", "s"), ("seconds", "f"), ("anchor_ppq", "f"),
             ("bpm", "f"), ("beats_per_bar", "i"), ("sample_rate", "i"))
HOST_VERBS = {
    "hello": (("req", "i"), ("instance", "s"), ("reply_port", "i")),
    "quit": (("req", "i"),),
    "ping": (("req", "i"),),
}
INSTANCE_VERBS = {
    "prompt": (("req", "i"), ("text", "s")),
    "style": (("req", "i"), ("path", "s")),
    "seed": (("req", "i"), ("seed", "i")),
    "steps": (("req", "i"), ("steps", "i")),
    "guidance": (("req", "i"), ("context", "f"), ("clap", "f")),
    "loop": (("req", "i"), ("on", "i")),
    "clap_mix": (("req", "i"), ("mix", "f")),
    "generate": _GENERATE,
    "vary": _GENERATE + (("strength", "f"),),
    "inpaint": _GENERATE + (("start_bar", "f"), ("end_bar", "f")),
    "cancel": (("req", "i"),),
    "take/select": (("req", "i"), ("take", "s")),
    "take/list": (("req", "i"), ("offset", "i")),
    "take/rename": (("req", "i"), ("take", "s"), ("name", "s")),
    "take/star": (("req", "i"), ("take", "s"), ("on", "i")),
    "take/delete": (("req", "i"), ("take", "s")),
    "take/restore": (("req", "i"), ("take", "s")),
    "models": (("req", "i"),),
    "model": (("req", "i"), ("name", "s")),
    "status": (("req", "i"),),
    "goodbye": (("req", "i"),),
}
MODEL_LIMIT = 32  # model/item replies per models request at most
TAKE_PAGE = 8  # takes per take/list reply page (one request, at most TAKE_PAGE + 1 replies)
OPTIONAL = {("hello", "reply_port")}  # arguments that may be left off (trailing)

# Reply schemas per verb (host -> client), as the host sends them (reply_address + encode).
HOST_REPLIES = {  # /sideman/<verb>: no registered instance to address
    "bye": (("req", "i"),),
    "pong": (("req", "i"), ("worker", "s"), ("queued", "i"), ("restarts", "i"), ("busy_seconds", "i")),
    "error": (("req", "i"), ("reason", "s")),
}
INSTANCE_REPLIES = {  # /sideman/<id>/<verb>
    "welcome": (("req", "i"), ("instance", "s"), ("status", "s"), ("version", "s"), ("bundle", "s"),
                ("sample_rate", "i")),
    "ack": (("req", "i"), ("verb", "s")),
    "progress": (("req", "i"), ("step", "i"), ("total", "i")),
    "done": (("req", "i"), ("take", "s"), ("path", "s"), ("anchor_ppq", "f")),
    "take": (("req", "i"), ("take", "s"), ("path", "s"), ("anchor_ppq", "f")),
    "status": (("req", "i"), ("state", "s"), ("queued", "i"), ("take", "s"), ("takes", "i"), ("ahead", "i")),
    "take/item": (("req", "i"), ("take", "s"), ("name", "s"), ("prompt", "s"), ("seed", "i"),
                  ("created", "s"), ("starred", "i")),
    "take/end": (("req", "i"), ("offset", "i"), ("total", "i")),
    "model/item": (("req", "i"), ("name", "s"), ("current", "i")),
    "model/end": (("req", "i"), ("total", "i")),
    "error": (("req", "i"), ("reason", "s")),
}




@dataclass(frozen=True)
class Rule:
    """What a field's value must be beyond its OSC type: within [low, high] (None: open),
    above `above` (exclusive), matching `pattern`. Every float must be finite."""

    low: float | None = None
    high: float | None = None
    above: float | None = None
    pattern: re.Pattern | None = None
    grammar: str = ""

    def check(self, value) -> str | None:
        """None if `value` keeps the rule, else why not."""
        if self.pattern is not None:
            if not self.pattern.match(value):
                return f"must be {self.grammar}, got '{value[:80]}'"
            return None
        if self.above is not None and not value > self.above:
            return f"must be greater than {_number(self.above)}, got {value!r}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            low = "" if self.low is None else _number(self.low)
            high = "" if self.high is None else _number(self.high)
            return f"must be within {low}..{high}, got {value!r}"
        return None


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


# Per (verb, field): the rule its value keeps. Fields not named here need only their type
# (and, for strings, at most MAX_STRING characters).
RULES = {
    ("hello", "instance"): Rule(pattern=INSTANCE_RE, grammar=INSTANCE_GRAMMAR),
    ("hello", "reply_port"): Rule(0, 65535),  # 0: reply to the request's source port
    ("seed", "seed"): Rule(0, INT32[1]),
    ("steps", "steps"): Rule(1),  # the bundle's maximum is checked by the host
    ("guidance", "context"): Rule(0.0, 10.0),
    ("guidance", "clap"): Rule(0.0, 10.0),
    **{(verb, name): rule for verb in ("generate", "vary", "inpaint") for name, rule in (
        ("seconds", Rule(0.5)),  # the host's length limit is checked by the host
        ("bpm", Rule(above=0.0)),
        ("beats_per_bar", Rule(1, 64)),
        ("sample_rate", Rule(8000, 384000)))},
    ("loop", "on"): Rule(0, 1),
    ("clap_mix", "mix"): Rule(0.0, 1.0),
    ("vary", "strength"): Rule(0.0, 1.0),
    ("inpaint", "start_bar"): Rule(0.0),
    ("inpaint", "end_bar"): Rule(above=0.0),
    ("take/select", "take"): Rule(pattern=TAKE_RE, grammar="a take id ('take-' and up to 64 of A-Z a-z 0-9)"),
    **{(verb, "take"): Rule(pattern=TAKE_RE, grammar="a take id ('take-' and up to 64 of A-Z a-z 0-9)")
       for verb in ("take/rename", "take/star", "take/delete", "take/restore")},
    ("take/list", "offset"): Rule(0),
    ("model", "name"): Rule(pattern=MODEL_RE, grammar="a model name (1 to 64 of A-Z a-z 0-9 . _ -)"),
    ("take/star", "on"): Rule(0, 1),
    ("take/rename", "name"): Rule(pattern=NAME_RE, grammar="a name of 0 to 100 printable characters"),
}


def instance_id_problem(text) -> str | None:
    """None if `text` may be an instance id (and so a file name), else why not."""
    if not isinstance(text, str) or not INSTANCE_RE.match(text):
        shown = text[:80] if isinstance(text, str) else type(text).__name__
        return f"bad instance id '{shown}' ({INSTANCE_GRAMMAR})"
    if text.split(".")[0].lower() in _WINDOWS_DEVICES:
        return f"bad instance id '{text}' (a device name on Windows)"
    return None


class _DropPythonOscWarnings(logging.Filter):
    """python-osc logs every odd datagram on the root logger; the host answers /error instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


logging.getLogger().addFilter(_DropPythonOscWarnings())


class ProtocolError(ValueError):
    """A request that cannot be served; `req` is its request id when it could be read."""

    def __init__(self, message: str, instance: str | None = None, req: int = -1):
        super().__init__(message)
        self.instance = instance
        self.req = req


@dataclass(frozen=True)
class Request:
    """A parsed, type-checked request. `instance` is None for host-level verbs."""

    verb: str
    instance: str | None
    args: dict

    @property
    def req(self) -> int:
        return self.args["req"]


def is_int32(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT32[0] <= value <= INT32[1]


def _typed(verb: str, name: str, kind: str, value, instance: str | None, req: int):
    if kind == "i" and is_int32(value):
        return value
    if kind == "f" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and not is_int32(value):
            raise ProtocolError(f"{verb}: argument '{name}' must be float32 or int32, got a "
                                f"{value.bit_length()}-bit integer", instance, req)
        if not math.isfinite(value):
            raise ProtocolError(f"{verb}: argument '{name}' must be a finite number, got {value}",
                                instance, req)
        return float(value)
    if kind == "s" and isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ProtocolError(f"{verb}: '{name}' is longer than {MAX_STRING} characters", instance, req)
        return value
    expected = {"i": "int32", "f": "float32", "s": "string"}[kind]
    got = type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool):
        got = f"a {value.bit_length()}-bit integer"
    elif isinstance(value, Unsupported):
        got = f"OSC type '{value.tag}'"
    raise ProtocolError(f"{verb}: argument '{name}' must be {expected}, got {got}", instance, req)


def _check_arg(verb: str, name: str, kind: str, value, instance: str | None, req: int):
    value = _typed(verb, name, kind, value, instance, req)
    if verb == "hello" and name == "instance":
        problem = instance_id_problem(value)
        if problem:
            raise ProtocolError(f"hello: {problem}", instance, req)
    rule = RULES.get((verb, name))
    problem = rule.check(value) if rule else None
    if problem:
        raise ProtocolError(f"{verb}: '{name}' {problem}", instance, req)
    return value


def split_address(address: str) -> tuple[str | None, str]:
    """'/sideman/hello' -> (None, 'hello'); '/sideman/bass-1/take/select' -> ('bass-1', 'take/select')."""
    if not address.startswith(PREFIX + "/"):
        raise ProtocolError(f"unknown address '{address[:80]}' (addresses start with {PREFIX}/)")
    parts = address[len(PREFIX) + 1:].split("/")
    if len(parts) == 1 and parts[0] in HOST_VERBS:
        return None, parts[0]
    if len(parts) >= 2:
        instance, verb = parts[0], "/".join(parts[1:])
        problem = instance_id_problem(instance)
        if problem:
            raise ProtocolError(problem)
        if verb in INSTANCE_VERBS:
            return instance, verb
        raise ProtocolError(f"unknown verb '{verb[:80]}' (known: {', '.join(INSTANCE_VERBS)})", instance)
    raise ProtocolError(f"unknown address '{address[:80]}'")


def address_instance(address) -> str | None:
    """The instance id an address names, or None (never raises)."""
    try:
        return split_address(address)[0] if isinstance(address, str) else None
    except ProtocolError as exc:
        return exc.instance


def request_id(params) -> int:
    """The request id of a message's arguments: its first argument if that is an int32, else -1."""
    return params[0] if params and is_int32(params[0]) else -1


def parse_request(address: str, params: list) -> Request:
    """Validate one message against its schema; raises ProtocolError with a reason."""
    instance, verb = split_address(address)
    schema = (HOST_VERBS if instance is None else INSTANCE_VERBS)[verb]
    req = request_id(params)
    required = [n for n, _ in schema if (verb, n) not in OPTIONAL]
    if not len(required) <= len(params) <= len(schema):
        names = " ".join(f"{k}:{n}" for n, k in schema)
        raise ProtocolError(f"{verb}: expected arguments ({names}), got {len(params)}", instance, req)
    args = {name: _check_arg(verb, name, kind, value, instance, req)
            for (name, kind), value in zip(schema, params)}
    return Request(verb, instance, args)


MAX_NESTING = 8  # bundles inside bundles


@dataclass(frozen=True)
class Unsupported:
    """An argument of an OSC type no request takes (time tag, RGBA, MIDI, array)."""

    tag: str


class _Malformed(Exception):
    pass


def _string(data: bytes, at: int) -> tuple[str, int]:
    """An OSC string at `at`: UTF-8 up to a NUL, padded to 4 bytes (found with bytes.index,
    not byte by byte as python-osc does: a 60-KB string costs microseconds, not milliseconds)."""
    end = data.find(b"\0", at)
    if end < 0:
        raise _Malformed("a string without its NUL")
    after = (end + 4) & ~3
    if after > len(data):
        raise _Malformed("a string's padding is cut off")
    try:
        return data[at:end].decode("utf-8"), after
    except UnicodeDecodeError as exc:
        raise _Malformed(f"a string that is not UTF-8 ({exc.reason})") from None


_FIXED = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8)}
_OPAQUE = {"r": 4, "m": 4, "t": 8}
_ATOMS = {"T": True, "F": False, "N": None}


def _message(data: bytes) -> tuple[str, list]:
    """(address, arguments) of one OSC 1.0 message (the argument types python-osc reads)."""
    address, at = _string(data, 0)
    params: list = []
    if at >= len(data):  # no type tag string: no arguments
        return address, params
    tags, at = _string(data, at)
    if not tags.startswith(","):
        raise _Malformed("the type tag string does not start with ','")
    stack = [params]
    for tag in tags[1:]:
        if tag in _FIXED:
            fmt, size = _FIXED[tag]
            if at + size > len(data):
                raise _Malformed(f"argument '{tag}' is cut off")
            value = struct.unpack_from(fmt, data, at)[0]
            at += size
        elif tag == "s":
            value, at = _string(data, at)
        elif tag == "b":
            if at + 4 > len(data):
                raise _Malformed("a blob's size is cut off")
            (size,) = struct.unpack_from(">i", data, at)
            end = at + 4 + size
            if size < 0 or end > len(data):
                raise _Malformed("a blob is cut off")
            value, at = data[at + 4:end], at + 4 + ((size + 3) & ~3)
        elif tag in _ATOMS:
            value = _ATOMS[tag]
        elif tag in _OPAQUE:
            if at + _OPAQUE[tag] > len(data):
                raise _Malformed(f"argument '{tag}' is cut off")
            value, at = Unsupported(tag), at + _OPAQUE[tag]
        elif tag == "[":
            stack[-1].append([])
            stack.append(stack[-1][-1])
            continue
        elif tag == "]" and len(stack) > 1:
            stack.pop()
            continue
        else:
            raise _Malformed(f"type tag '{tag}' is not one this host reads")
        stack[-1].append(value)
    if len(stack) != 1:
        raise _Malformed("an array is not closed")
    return address, [Unsupported("[") if isinstance(v, list) else v for v in params]


def _elements(data: bytes, out: list, limit: int, depth: int) -> None:
    """Append the messages of a bundle (flattened) to `out`; stops past `limit` messages."""
    if depth >= MAX_NESTING:
        raise ProtocolError(f"bundles nested deeper than {MAX_NESTING}")
    if len(data) < 16:
        raise _Malformed("a bundle without its time tag")
    at = 16  # '#bundle\0' + 8-byte time tag
    while at < len(data) and len(out) <= limit:
        if at + 4 > len(data):
            raise _Malformed("a bundle element's size is cut off")
        (size,) = struct.unpack_from(">i", data, at)
        if size <= 0 or at + 4 + size > len(data):
            raise _Malformed("a bundle element is cut off")
        element = data[at + 4:at + 4 + size]
        if element.startswith(b"#bundle\0"):
            _elements(element, out, limit, depth + 1)
        elif element.startswith(b"/"):
            out.append(_message(element))
        else:
            raise _Malformed("a bundle element is neither a message nor a bundle")
        at += 4 + size


def parse_datagram(data: bytes, max_messages: int | None = None) -> list[tuple[str, list]]:
    """The (address, params) of every message in a datagram (bundles flattened). A datagram
    of more than `max_messages` messages is refused whole (nothing of it is served), as are
    bundles nested deeper than MAX_NESTING; ProtocolError says what is wrong."""
    limit = max_messages if max_messages is not None else len(data)
    try:
        if data.startswith(b"#bundle\0"):
            messages: list = []
            _elements(data, messages, limit, 0)
        elif data.startswith(b"/"):
            messages = [_message(data)]
        else:
            raise _Malformed("neither a message (starting with '/') nor a bundle")
    except _Malformed as exc:
        raise ProtocolError(f"malformed OSC datagram ({exc})") from None
    if len(messages) > limit:
        raise ProtocolError(f"a bundle of more than {max_messages} messages is refused whole "
                            f"(the host's limit on replies per datagram)")
    return messages


def encode(address: str, *args) -> bytes:
    """An OSC message with only int32, float32, string and blob arguments."""
    builder = OscMessageBuilder(address)
    for value in args:
        if isinstance(value, bool):
            raise TypeError("booleans are not sent (JUCE rejects T/F type tags): use int32")
        if isinstance(value, int):
            if not -2**31 <= value < 2**31:
                raise TypeError(f"integer {value} does not fit int32")
            builder.add_arg(value, "i")
        elif isinstance(value, float):
            builder.add_arg(value, "f")
        elif isinstance(value, str):
            builder.add_arg(value, "s")
        elif isinstance(value, (bytes, bytearray)):
            builder.add_arg(bytes(value), "b")
        else:
            raise TypeError(f"cannot send {type(value).__name__} over OSC")
    return builder.build().dgram


def error_args(req, reason) -> tuple[int, str]:
    """(req, reason) that `encode` always takes: req an int32 (else -1), reason a string of at
    most MAX_REASON characters that encodes as UTF-8."""
    req = req if is_int32(req) else -1
    text = reason if isinstance(reason, str) else repr(reason)
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\0", " ")
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON - 3] + "..."
    return req, text


def reply_address(instance: str | None, verb: str) -> str:
    return f"{PREFIX}/{verb}" if instance is None else f"{PREFIX}/{instance}/{verb}"
