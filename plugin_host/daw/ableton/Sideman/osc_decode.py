"""A small OSC 1.0 decoder: Live's embedded Python has no python-osc.

decode_packet(data) returns [(address, [args...]), ...] for a message or a bundle (nested
bundles flattened); anything malformed raises OscError. Supported argument types: i, f, s,
b, h, d, T, F, N (what any OSC sender is likely to use).
"""
import struct

MAX_BUNDLE_DEPTH = 4


class OscError(ValueError):
    """A datagram that is not valid OSC."""


def _string(data, pos):
    end = data.find(b"\0", pos)
    if end < 0:
        raise OscError("unterminated string at byte %d" % pos)
    try:
        text = data[pos:end].decode("utf-8")
    except UnicodeDecodeError:
        raise OscError("string at byte %d is not UTF-8" % pos)
    following = (end + 4) & ~3  # the null, padded to a multiple of 4 bytes
    if following > len(data):
        raise OscError("string padding runs past the end")
    return text, following


def _fixed(data, pos, fmt):
    size = struct.calcsize(fmt)
    if pos + size > len(data):
        raise OscError("argument runs past the end of the datagram")
    return struct.unpack(fmt, data[pos:pos + size])[0], pos + size


def decode_message(data):
    if not data.startswith(b"/"):
        raise OscError("an OSC address starts with '/'")
    address, pos = _string(data, 0)
    if pos == len(data):
        return address, []  # no type tag string (old senders)
    tags, pos = _string(data, pos)
    if not tags.startswith(","):
        raise OscError("type tag string does not start with ','")
    args = []
    for tag in tags[1:]:
        if tag == "i":
            value, pos = _fixed(data, pos, ">i")
        elif tag == "f":
            value, pos = _fixed(data, pos, ">f")
        elif tag == "h":
            value, pos = _fixed(data, pos, ">q")
        elif tag == "d":
            value, pos = _fixed(data, pos, ">d")
        elif tag == "s":
            value, pos = _string(data, pos)
        elif tag == "b":
            size, pos = _fixed(data, pos, ">i")
            if size < 0 or pos + size > len(data):
                raise OscError("blob runs past the end of the datagram")
            value, pos = data[pos:pos + size], pos + ((size + 3) & ~3)
        elif tag in "TFN":
            value = {"T": True, "F": False, "N": None}[tag]
        else:
            raise OscError("unsupported type tag '%s'" % tag)
        args.append(value)
    if pos != len(data):
        raise OscError("%d stray bytes after the arguments" % (len(data) - pos))
    return address, args


def decode_packet(data, depth=0):
    data = bytes(data)
    if not data.startswith(b"#bundle\0"):
        return [decode_message(data)]
    if depth >= MAX_BUNDLE_DEPTH:
        raise OscError("bundles nested too deeply")
    messages, pos = [], 16  # '#bundle\0' and the 8-byte time tag
    if len(data) < pos:
        raise OscError("truncated bundle header")
    while pos < len(data):
        size, pos = _fixed(data, pos, ">i")
        if size <= 0 or pos + size > len(data):
            raise OscError("bundle element runs past the end of the datagram")
        messages += decode_packet(data[pos:pos + size], depth + 1)
        pos += size
    return messages
