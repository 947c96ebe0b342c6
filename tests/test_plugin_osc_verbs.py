"""One OSC verb table: the plugin's (shim/plugin/Source/OscVerbs.h) is the host's schema
(plugin_host/osc_protocol.py), in both directions, and each side keeps to it.

* The header is parsed and compared with osc_protocol's request and reply tables: the same
  verbs at the same level (host or instance), with the same OSC type tags.
* The plugin's sources build and dispatch addresses only through the header's constants (no
  address or verb literals), and use exactly the request verbs the header says they send.
* The host, driven through every request verb on loopback, answers only with replies of the
  table, with the table's type tags, and every reply of the table occurs.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from sideman.plugin_host import osc_protocol as osc

SOURCE = Path(__file__).resolve().parents[1] / "shim" / "plugin" / "Source"
HEADER = SOURCE / "OscVerbs.h"
VERB_RE = re.compile(r'^inline constexpr Verb (k\w+) \{ "([^"]+)", "([^"]*)" \};')
NAMESPACE_RE = re.compile(r"^namespace (\w+) \{")
# A C++ string literal, or a comment (skipped), so that quotes inside comments do not count.
TOKEN_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"|//[^\n]*|/\*.*?\*/', re.S)


def tags(verb: str, schema) -> str:
    """osc_protocol's schema as the header writes it: type tags, optional ones after '|'."""
    required = "".join(kind for name, kind in schema if (verb, name) not in osc.OPTIONAL)
    optional = "".join(kind for name, kind in schema if (verb, name) in osc.OPTIONAL)
    return required + ("|" + optional if optional else "")


def header_tables() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """{namespace: {verb: types}} and {namespace: {constant: verb}} of OscVerbs.h."""
    tables: dict[str, dict[str, str]] = {}
    constants: dict[str, dict[str, str]] = {}
    current = None
    for line in HEADER.read_text().splitlines():
        if m := NAMESPACE_RE.match(line):
            current = m.group(1)
            tables[current], constants[current] = {}, {}
        elif line.startswith("}  // namespace"):
            current = None
        elif line.startswith("inline constexpr Verb"):
            m = VERB_RE.match(line)
            assert m and current, f"unreadable verb line in {HEADER.name}: {line!r}"
            constant, verb, types = m.groups()
            assert verb not in tables[current], f"{verb} twice in {current}"
            tables[current][verb] = types
            constants[current][constant] = verb
    return tables, constants


def literals(path: Path) -> list[str]:
    return [m.group(1) for m in TOKEN_RE.finditer(path.read_text()) if m.group(0).startswith('"')]


def test_the_header_is_the_protocols_table_both_ways():
    tables, _ = header_tables()
    expected = {
        "host_request": {verb: tags(verb, schema) for verb, schema in osc.HOST_VERBS.items()},
        "instance_request": {verb: tags(verb, schema) for verb, schema in osc.INSTANCE_VERBS.items()},
        "host_reply": {verb: tags(verb, schema) for verb, schema in osc.HOST_REPLIES.items()},
        "instance_reply": {verb: tags(verb, schema) for verb, schema in osc.INSTANCE_REPLIES.items()},
    }
    assert tables == expected
    prefix = re.search(r'kPrefix = "([^"]*)"', HEADER.read_text()).group(1)
    assert prefix == osc.PREFIX + "/"


def test_the_plugin_addresses_the_host_only_through_the_table():
    tables, constants = header_tables()
    verbs = {verb for table in tables.values() for verb in table}
    for path in sorted(SOURCE.glob("*.cpp")) + sorted(SOURCE.glob("*.h")):
        if path == HEADER:
            continue
        for text in literals(path):
            assert osc.PREFIX not in text, f"{path.name}: address literal \"{text}\" (use OscVerbs.h)"
            # (Other files name things "prompt" for other reasons, e.g. the saved state's XML.)
            if path.name in ("Controller.cpp", "Controller.h", "Jobs.cpp", "HostLink.cpp", "HostLink.h"):
                assert text not in verbs, f"{path.name}: verb literal \"{text}\" (use OscVerbs.h)"
    # Every request verb the header says the plugin sends is used, and no other.
    controller = (SOURCE / "Controller.cpp").read_text() + (SOURCE / "Jobs.cpp").read_text()
    used = set(re.findall(r"osc::(\w+)::(k\w+)", controller))
    for namespace in ("host_request", "instance_request"):
        unused = {constant for constant in constants[namespace]
                  if re.search(rf"{constant} \{{[^\n]*not sent by the plugin", HEADER.read_text())}
        assert {c for n, c in used if n == namespace} == set(constants[namespace]) - unused, namespace
    assert all(constant in constants[namespace] for namespace, constant in used)


# ---------------------------------------------------------------------------- the host's side

def type_tags(datagram: bytes) -> str:
    """The OSC type tag string of one message datagram (without its leading ',')."""
    end = datagram.index(b"\0")
    start = (end + 4) & ~3
    assert datagram[start:start + 1] == b","
    return datagram[start + 1:datagram.index(b"\0", start)].decode()


@pytest.fixture
def host(tmp_path_factory, tmp_path):
    from bundle_fixture import make_tiny_bundle
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.host import Host

    engine = OnnxEngine(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny"), intra_threads=1)
    h = Host(engine, tmp_path / "session", tmp_path / "cache", port=0).start()
    yield h
    h.stop()


def test_the_host_replies_with_the_tables_verbs_and_types(host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30.0)
    seen: list[tuple[str, str, list]] = []  # (address, type tags, params)

    def send(address: str, *args, types: str) -> None:
        builder = OscMessageBuilder(address)
        for value, kind in zip(args, types):
            builder.add_arg(value, kind)
        sock.sendto(builder.build().dgram, host.address)

    def until(verb: str, req: int) -> list:
        while True:
            data, _ = sock.recvfrom(osc.MAX_DATAGRAM)
            ((address, params),) = osc.parse_datagram(data)
            seen.append((address, type_tags(data), params))
            if params and params[0] == req and address.rsplit("/", 1)[1] in (verb, "error"):
                return params

    context = host.cache / "ctx.wav"
    sf.write(context, 0.1 * np.random.default_rng(0).standard_normal((48000, 2)).astype(np.float32), 48000)
    send("/sideman/hello", 1, "verbs", types="is")
    until("welcome", 1)
    send("/sideman/verbs/prompt", 2, "bass", types="is")
    send("/sideman/verbs/style", 3, "", types="is")
    send("/sideman/verbs/seed", 4, 7, types="ii")
    send("/sideman/verbs/steps", 5, 2, types="ii")
    send("/sideman/verbs/guidance", 6, 1.0, 1.0, types="iff")
    until("ack", 6)
    send("/sideman/verbs/generate", 7, str(context), 2.0, 0.0, 120.0, 4, 48000, types="isfffii")
    take = until("done", 7)[1]
    send("/sideman/verbs/take/select", 8, take, types="is")
    send("/sideman/verbs/take/list", 18, 0, types="ii")
    until("end", 18)  # take/end
    send("/sideman/verbs/take/rename", 19, take, "first", types="iss")
    send("/sideman/verbs/take/star", 20, take, 1, types="isi")
    until("ack", 20)
    send("/sideman/verbs/models", 23, types="i")
    until("end", 23)  # model/end
    send("/sideman/verbs/model", 24, "default", types="is")
    until("ack", 24)
    send("/sideman/verbs/loop", 14, 1, types="ii")
    send("/sideman/verbs/clap_mix", 15, 0.5, types="if")
    send("/sideman/verbs/vary", 16, str(context), 2.0, 0.0, 120.0, 4, 48000, 0.5, types="isfffiif")
    until("done", 16)
    send("/sideman/verbs/inpaint", 17, str(context), 2.0, 0.0, 120.0, 4, 48000, 0.0, 0.5, types="isfffiiff")
    until("done", 17)
    send("/sideman/verbs/take/delete", 21, take, types="is")
    send("/sideman/verbs/take/restore", 22, take, types="is")
    until("ack", 22)
    send("/sideman/verbs/status", 9, types="i")
    send("/sideman/verbs/cancel", 10, types="i")
    send("/sideman/verbs/steps", 11, 100000, types="ii")  # refused: an instance-level error
    until("error", 11)
    sock.sendto(b"\0garbage", host.address)             # unreadable: a host-level error
    until("error", -1)
    send("/sideman/ping", 13, types="i")
    until("pong", 13)
    send("/sideman/quit", 12, types="i")
    until("bye", 12)

    replies = {"host_reply": set(), "instance_reply": set()}
    for address, types, params in seen:
        parts = address[len(osc.PREFIX) + 1:].split("/")
        level, verb = ("host_reply", parts[0]) if len(parts) == 1 else ("instance_reply", "/".join(parts[1:]))
        table = osc.HOST_REPLIES if level == "host_reply" else osc.INSTANCE_REPLIES
        assert verb in table, f"{address} is not in osc_protocol's {level} table"
        assert types == tags(verb, table[verb]), (address, types, params)
        replies[level].add(verb)
    assert replies == {"host_reply": set(osc.HOST_REPLIES), "instance_reply": set(osc.INSTANCE_REPLIES)}


def test_type_tags_reads_a_datagram():
    assert type_tags(osc.encode("/sideman/x/done", 1, "t", "/p", 2.0)) == "issf"
    assert type_tags(osc.encode("/sideman/bye", 1)) == "i"
