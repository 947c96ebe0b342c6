"""Where the built plugin is, and JUCE's state-blob formats, for the plugin tests.

AudioProcessor::copyXmlToBinary writes magic "VC2!", a uint32 size (little-endian), the XML
text and a NUL. JUCE's VST3 wrapper keeps the plugin's own state (IComponent) inside such an
XML as a MemoryBlock::toBase64Encoding string: "<bytes>.<6-bit groups, little-endian>" in its
own alphabet.
"""
from __future__ import annotations

import contextlib
import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "build" / "plugin" / "SidemanPlugin_artefacts" / "Release"
VST3 = Path(os.environ.get("SIDEMAN_PLUGIN_VST3", ARTEFACTS / "VST3" / "Sideman.vst3"))
LV2 = Path(os.environ.get("SIDEMAN_PLUGIN_LV2", ARTEFACTS / "LV2" / "Sideman.lv2"))
STANDALONE = Path(os.environ.get("SIDEMAN_PLUGIN_STANDALONE", ARTEFACTS / "Standalone" / "Sideman"))

XML_MAGIC = 0x21324356
JUCE_B64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"


def xml_from_binary(blob: bytes) -> ET.Element:
    magic, size = struct.unpack_from("<II", blob)
    assert magic == XML_MAGIC, f"not a JUCE XML state blob (magic {magic:#x})"
    return ET.fromstring(blob[8:8 + size].decode("utf-8"))


def xml_to_binary(element: ET.Element) -> bytes:
    text = ET.tostring(element, encoding="unicode").encode("utf-8")
    return struct.pack("<II", XML_MAGIC, len(text)) + text + b"\0"


def juce_b64encode(data: bytes) -> str:
    value = int.from_bytes(data, "little")
    chars = (len(data) * 8 + 5) // 6
    return f"{len(data)}." + "".join(JUCE_B64[(value >> (6 * i)) & 63] for i in range(chars))


def juce_b64decode(text: str) -> bytes:
    count, _, chars = text.strip().partition(".")
    value = sum(JUCE_B64.index(c) << (6 * i) for i, c in enumerate(chars))
    return (value & ((1 << (8 * int(count))) - 1)).to_bytes(int(count), "little")


@contextlib.contextmanager
def new_instances_use(host, cache: Path):
    """New plugin instances made inside this block aim at `host` (its port) and write their
    context into `cache`/context: the defaults they read from SIDEMAN_HOST_PORT and
    SIDEMAN_HOST_CACHE, restored afterwards."""
    keys = ("SIDEMAN_HOST_PORT", "SIDEMAN_HOST_CACHE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict(zip(keys, (str(host.address[1]), str(Path(cache) / "context")))))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
