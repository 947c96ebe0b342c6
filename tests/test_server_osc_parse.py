"""The host's own OSC parser (osc_protocol.parse_datagram) against python-osc's.

The host parses datagrams itself (python-osc scans strings byte by byte in Python, so one
60-KB string held the OSC thread for milliseconds) and refuses oversized bundles before
parsing them. Valid datagrams must read exactly as python-osc reads them; anything else
must be a ProtocolError, never another exception.
"""
from __future__ import annotations

import math
import random

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from sideman.plugin_host import osc_protocol as osc


def random_message(rng: random.Random) -> bytes:
    builder = OscMessageBuilder("/sideman/" + "".join(rng.choice("abc/-_.") for _ in range(rng.randrange(1, 30))))
    for _ in range(rng.randrange(0, 8)):
        kind = rng.choice("ihfdsbTFN")
        value = {"i": lambda: rng.randrange(-2**31, 2**31), "h": lambda: rng.randrange(-2**63, 2**63),
                 "f": lambda: rng.choice([rng.uniform(-1e6, 1e6), math.nan, math.inf, -math.inf, 0.0]),
                 "d": lambda: rng.choice([rng.uniform(-1e300, 1e300), math.nan]),
                 "s": lambda: "".join(rng.choice("xyzé€ /.") for _ in range(rng.randrange(0, 9))),
                 "b": lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))}.get(kind, lambda: None)()
        builder.add_arg(value, kind)
    return builder.build().dgram


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN (floats compared as numbers, never as text)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def python_osc(data: bytes) -> list:
    return [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]


def test_valid_messages_and_bundles_read_as_python_osc_reads_them():
    rng = random.Random(3)
    for _ in range(500):
        data = random_message(rng)
        assert same(osc.parse_datagram(data), python_osc(data)), data
    for _ in range(200):
        builder = OscBundleBuilder(IMMEDIATELY)
        for _ in range(rng.randrange(1, 6)):
            if rng.random() < 0.3:
                inner = OscBundleBuilder(IMMEDIATELY)
                inner.add_content(OscMessage(random_message(rng)))
                builder.add_content(OscBundle(inner.build().dgram))
            else:
                builder.add_content(OscMessage(random_message(rng)))
        data = builder.build().dgram
        assert same(osc.parse_datagram(data), python_osc(data))


def test_anything_else_is_a_protocol_error():
    rng = random.Random(4)
    for _ in range(2000):
        data = random_message(rng)
        roll = rng.random()
        if roll < 0.4:
            data = data[:rng.randrange(len(data))]
        elif roll < 0.8:
            data = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        try:
            messages = osc.parse_datagram(data, 16)
        except osc.ProtocolError:
            continue
        assert all(isinstance(a, str) and isinstance(p, list) for a, p in messages)


def test_exotic_types_are_arguments_no_request_takes():
    builder = OscMessageBuilder("/sideman/x/seed")
    builder.add_arg(1, "i")
    builder.add_arg((0, 0, 0, 0), "m")
    ((address, (req, midi)),) = osc.parse_datagram(builder.build().dgram)
    assert req == 1 and midi == osc.Unsupported("m")
    with pytest.raises(osc.ProtocolError, match="OSC type 'm'"):
        osc.parse_request(address, [req, midi])
    with pytest.raises(osc.ProtocolError, match="type tag 'Q'"):
        osc.parse_datagram(b"/sideman/ping\0\0\0,Q\0\0")


def test_big_bundles_are_refused_whole_and_before_parsing():
    one = osc.encode("/sideman/x/status", 1)
    builder = OscBundleBuilder(IMMEDIATELY)
    for _ in range(1800):
        builder.add_content(OscMessage(one))
    data = builder.build().dgram
    assert len(data) < osc.MAX_DATAGRAM and len(osc.parse_datagram(data)) == 1800
    with pytest.raises(osc.ProtocolError, match="more than 16 messages"):
        osc.parse_datagram(data, 16)
    # a bad message after the limit is never reached: refused for its size, not its bytes
    broken = data[:-3]
    with pytest.raises(osc.ProtocolError, match="more than 16 messages"):
        osc.parse_datagram(broken, 16)
