"""Sideman's OSC address space: request schemas, parsing with validation, reply encoding.

Every request carries an int32 request id as its first argument; every reply echoes it.
Replies use only int32 ('i'), float32 ('f'), string ('s') and blob ('b') arguments, the
types JUCE 7's juce_osc accepts. The full address space is documented in docs/osc.md.

    client -> host                                   host -> client
    /sideman/hello         i:req s:instance i:port   /sideman/<id>/welcome i:req s:instance s:status s:version s:bundle i:rate
    /sideman/quit          i:req                     /sideman/bye      i:req
    /sideman/<id>/prompt   i:req s:text              /sideman/<id>/ack i:req s:verb
    /sideman/<id>/style    i:req s:path              /sideman/<id>/progress i:req i:step i:total
    /sideman/<id>/seed     i:req i:seed              /sideman/<id>/done i:req s:take s:path f:anchor_ppq
    /sideman/<id>/steps    i:req i:steps             /sideman/<id>/error i:req s:reason
    /sideman/<id>/guidance i:req f:context f:clap    /sideman/<id>/status i:req s:state i:queued s:take i:takes
    /sideman/<id>/generate i:req s:context f:seconds f:anchor_ppq f:bpm i:beats_per_bar i:sample_rate
    /sideman/<id>/cancel   i:req                     /sideman/<id>/take i:req s:take s:path f:anchor_ppq
    /sideman/<id>/take/select i:req s:take
    /sideman/<id>/status   i:req                     /sideman/error i:req s:reason (no registered instance)

The plugin's copy of these tables is shim/plugin/Source/OscVerbs.h (tests/test_plugin_osc_verbs.py
keeps the two equal).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

PREFIX = "/sideman"
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4; python-osc's server default is 8 KB
INSTANCE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_STRING = 4096  # prompts and paths longer than this are refused

# Argument schemas per verb: (name, OSC type). 'f' also accepts an int32 (control surfaces).
HOST_VERBS = {
    "hello": (("req", "i"), ("instance", "s"), ("reply_port", "i")),
    "quit": (("req", "i"),),
}
INSTANCE_VERBS = {
    "prompt": (("req", "i"), ("text", "s")),
    "style": (("req", "i"), ("path", "s")),
    "seed": (("req", "i"), ("seed", "i")),
    "steps": (("req", "i"), ("steps", "i")),
    "guidance": (("req", "i"), ("context", "f"), ("clap", "f")),
    "generate": (("req", "i"), ("context", "s"), ("seconds", "f"), ("anchor_ppq", "f"),
                 ("bpm", "f"), ("beats_per_bar", "i"), ("sample_rate", "i")),
    "cancel": (("req", "i"),),
    "take/select": (("req", "i"), ("take", "s")),
    "status": (("req", "i"),),
}
OPTIONAL = {("hello", "reply_port")}  # arguments that may be left off (trailing)

# Reply schemas per verb (host -> client), as the host sends them (reply_address + encode).
HOST_REPLIES = {  # /sideman/<verb>: no registered instance to address
    "bye": (("req", "i"),),
    "error": (("req", "i"), ("reason", "s")),
}
INSTANCE_REPLIES = {  # /sideman/<id>/<verb>
    "welcome": (("req", "i"), ("instance", "s"), ("status", "s"), ("version", "s"), ("bundle", "s"),
                ("sample_rate", "i")),
    "ack": (("req", "i"), ("verb", "s")),
    "progress": (("req", "i"), ("step", "i"), ("total", "i")),
    "done": (("req", "i"), ("take", "s"), ("path", "s"), ("anchor_ppq", "f")),
    "take": (("req", "i"), ("take", "s"), ("path", "s"), ("anchor_ppq", "f")),
    "status": (("req", "i"), ("state", "s"), ("queued", "i"), ("take", "s"), ("takes", "i")),
    "error": (("req", "i"), ("reason", "s")),
}


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


def _check_arg(verb: str, name: str, kind: str, value, instance: str | None, req: int):
    if kind == "i" and isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31:
        return value
    if kind == "f" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "s" and isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ProtocolError(f"{verb}: '{name}' is longer than {MAX_STRING} characters", instance, req)
        return value
    expected = {"i": "int32", "f": "float32", "s": "string"}[kind]
    raise ProtocolError(f"{verb}: argument '{name}' must be {expected}, got {type(value).__name__}",
                        instance, req)


def split_address(address: str) -> tuple[str | None, str]:
    """'/sideman/hello' -> (None, 'hello'); '/sideman/bass-1/take/select' -> ('bass-1', 'take/select')."""
    if not address.startswith(PREFIX + "/"):
        raise ProtocolError(f"unknown address '{address[:80]}' (addresses start with {PREFIX}/)")
    parts = address[len(PREFIX) + 1:].split("/")
    if len(parts) == 1 and parts[0] in HOST_VERBS:
        return None, parts[0]
    if len(parts) >= 2:
        instance, verb = parts[0], "/".join(parts[1:])
        if not INSTANCE_RE.match(instance):
            raise ProtocolError(f"bad instance id '{instance[:80]}' (1-64 of A-Z a-z 0-9 _ . -)")
        if verb in INSTANCE_VERBS:
            return instance, verb
        raise ProtocolError(f"unknown verb '{verb[:80]}' (known: {', '.join(INSTANCE_VERBS)})", instance)
    raise ProtocolError(f"unknown address '{address[:80]}'")


def parse_request(address: str, params: list) -> Request:
    """Validate one message against its schema; raises ProtocolError with a reason."""
    instance, verb = split_address(address)
    schema = (HOST_VERBS if instance is None else INSTANCE_VERBS)[verb]
    req = params[0] if params and isinstance(params[0], int) and not isinstance(params[0], bool) else -1
    required = [n for n, _ in schema if (verb, n) not in OPTIONAL]
    if not len(required) <= len(params) <= len(schema):
        names = " ".join(f"{k}:{n}" for n, k in schema)
        raise ProtocolError(f"{verb}: expected arguments ({names}), got {len(params)}", instance, req)
    args = {name: _check_arg(verb, name, kind, value, instance, req)
            for (name, kind), value in zip(schema, params)}
    return Request(verb, instance, args)


def parse_datagram(data: bytes) -> list[tuple[str, list]]:
    """The (address, params) of every message in a datagram (bundles flattened)."""
    try:
        packet = OscPacket(data)
        return [(m.message.address, list(m.message.params)) for m in packet.messages]
    except Exception as exc:  # python-osc raises ParseError, UnicodeDecodeError, RecursionError...
        raise ProtocolError(f"malformed OSC datagram ({type(exc).__name__}: {exc})") from exc


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


def reply_address(instance: str | None, verb: str) -> str:
    return f"{PREFIX}/{verb}" if instance is None else f"{PREFIX}/{instance}/{verb}"
