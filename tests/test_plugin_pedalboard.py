"""The built Sideman VST3 inside pedalboard: parameters, state round trip, audio pass-through,
and the host's id-clash rule seen from two real plugin instances.

pedalboard gives a plugin no play head and no sidechain, so these tests cover what does not need
a transport; tests/test_plugin_dawdreamer.py plays takes in time. The plugin is built by
scripts/build-plugin.sh (CI runs it before pytest); without it these tests are skipped locally
and fail in CI.
"""
from __future__ import annotations

import os
import re
import socket
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from plugin_files import VST3, juce_b64decode, juce_b64encode, xml_from_binary, xml_to_binary

pytestmark = pytest.mark.skipif(
    not VST3.exists() and not os.environ.get("CI"),
    reason=f"the plugin is not built ({VST3}): run scripts/build-plugin.sh")

if os.environ.get("CI"):
    import pedalboard  # noqa: F401  (CI must have it: a missing package is a failure there)
else:
    pedalboard = pytest.importorskip("pedalboard")

def plugin_state(plugin) -> ET.Element:
    """The plugin's own saved state (its getStateInformation XML) out of pedalboard's raw_state."""
    host_xml = xml_from_binary(plugin.raw_state)
    return xml_from_binary(juce_b64decode(host_xml.find("IComponent").text))


def set_plugin_state(plugin, state: ET.Element) -> None:
    host_xml = xml_from_binary(plugin.raw_state)
    host_xml.find("IComponent").text = juce_b64encode(xml_to_binary(state))
    plugin.raw_state = xml_to_binary(host_xml)


def session(state: ET.Element) -> ET.Element:
    node = state.find("Session")
    assert node is not None, ET.tostring(state)
    return node


def load():
    return pedalboard.load_plugin(str(VST3))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _private_link(tmp_path, monkeypatch):
    """New instances aim at a port where nobody listens and a private cache folder, so that a
    Sideman host running on this machine never sees the test instances."""
    monkeypatch.setenv("SIDEMAN_HOST_PORT", str(free_udp_port()))
    monkeypatch.setenv("SIDEMAN_HOST_CACHE", str(tmp_path / "context"))


def test_juce_base64_helpers_round_trip():
    for data in (b"", b"\x00", b"VC2!\x05\x00", bytes(range(256))):
        assert juce_b64decode(juce_b64encode(data)) == data


# ---------------------------------------------------------------------------- parameters

def test_loads_and_lists_its_parameters():
    plugin = load()
    assert plugin.name == "Sideman"
    assert plugin.is_effect and not plugin.is_instrument
    params = plugin.parameters
    for name in ("generate", "take", "steps", "context_guidance", "clap_guidance", "seed", "bars"):
        assert name in params, sorted(params)
    assert params["steps"].range[:2] == (1, 50)
    assert params["seed"].range[:2] == (0, 999999)
    assert params["context_guidance"].range[:2] == (0.0, 10.0)
    assert plugin.steps == 5 and plugin.bars == 4 and plugin.seed == 0
    assert plugin.context_guidance == pytest.approx(1.25) and plugin.clap_guidance == pytest.approx(1.25)
    assert not plugin.generate
    assert params["take"].raw_value == 0 and str(plugin.take) == "none"


def test_sets_parameters():
    plugin = load()
    plugin.seed = 123457
    plugin.steps = 8
    plugin.context_guidance = 2.5
    plugin.clap_guidance = 0.5
    plugin.bars = 8
    assert plugin.seed == 123457  # every integer of the range survives the 0..1 normalisation
    assert plugin.steps == 8 and plugin.bars == 8
    assert plugin.context_guidance == pytest.approx(2.5, abs=0.01)
    assert plugin.clap_guidance == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        plugin.steps = 51


# ---------------------------------------------------------------------------- state

def test_fresh_instances_get_distinct_valid_ids_and_defaults():
    a, b = session(plugin_state(load())), session(plugin_state(load()))
    for s in (a, b):
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", s.get("instanceId"))
        assert s.get("hostPort") == os.environ["SIDEMAN_HOST_PORT"]
        assert s.get("cacheFolder") == os.environ["SIDEMAN_HOST_CACHE"]
    assert a.get("instanceId") != b.get("instanceId")


def test_state_round_trip_keeps_prompt_seed_id_take_and_link_settings(tmp_path):
    a = load()
    a.seed = 4242
    a.steps = 7
    state = plugin_state(a)
    s = session(state)
    s.set("prompt", "warm electric bass, <légato> & \"quoted\"")
    s.set("instanceId", "bass-track_1.a")
    s.set("cacheFolder", str(tmp_path / "ctx"))
    s.set("hostPort", "9123")
    take = tmp_path / "take-0123456789abcdef.wav"
    take.write_bytes(b"not really audio")
    takes = s.find("Takes")
    ET.SubElement(takes, "Take", id="take-0123456789abcdef", path=str(take), sha256="ab" * 32,
                  anchorPpq="8.0", bpm="96.0")
    s.set("selectedTake", "take-0123456789abcdef")

    b = load()
    set_plugin_state(b, state)
    assert b.seed == 4242 and b.steps == 7
    assert str(b.take) == "1"  # the saved selection is the take parameter too
    restored = session(plugin_state(b))
    assert restored.get("prompt") == "warm electric bass, <légato> & \"quoted\""
    assert restored.get("instanceId") == "bass-track_1.a"
    assert restored.get("cacheFolder") == str(tmp_path / "ctx")
    assert restored.get("hostPort") == "9123"
    assert restored.get("selectedTake") == "take-0123456789abcdef"
    (t,) = restored.find("Takes")
    assert (t.get("id"), t.get("path"), t.get("sha256")) == ("take-0123456789abcdef", str(take), "ab" * 32)
    assert float(t.get("anchorPpq")) == 8.0 and float(t.get("bpm")) == 96.0

    # A third instance restored from the second's state ends up the same again.
    c = load()
    set_plugin_state(c, plugin_state(b))
    assert ET.tostring(session(plugin_state(c))) == ET.tostring(restored)


def test_state_round_trip_keeps_the_browser_stars_names_trash_and_selection(tmp_path):
    """What the take browser shows survives a project save and reload: every take's number,
    name, star, kind and metadata, the deleted takes, the selection (the second of three), the
    style file and the model."""
    a = load()
    state = plugin_state(a)
    s = session(state)
    s.set("styleFile", str(tmp_path / "styles" / "ref.wav"))
    s.set("model", "other")
    takes, trash = s.find("Takes"), s.find("Trash")
    for n, (parent, name, starred) in enumerate([(takes, "", "0"), (takes, "bridge idea", "1"),
                                                 (trash, "", "0"), (takes, "", "0")], start=1):
        take = tmp_path / f"take-{n:016x}.wav"
        take.write_bytes(b"not really audio")
        ET.SubElement(parent, "Take", id=take.stem, path=str(take), sha256="ab" * 32, anchorPpq="8.0", bpm="96.0",
                      beatsPerBar="3", beatUnit="8", bars="4", number=str(n), name=name, starred=starred,
                      kind="vary" if n == 2 else "generate", prompt="warm bass", model="default", seed=str(n),
                      steps="5", created="2026-12-05T17:00:00.000Z", contextPath="", exportPath="")
    s.set("selectedTake", f"take-{2:016x}")
    s.set("takesReceived", "4")

    b = load()
    set_plugin_state(b, state)
    assert str(b.take) == "2"
    restored = session(plugin_state(b))
    assert restored.get("selectedTake") == f"take-{2:016x}"
    assert restored.get("styleFile") == str(tmp_path / "styles" / "ref.wav") and restored.get("model") == "other"
    assert [t.get("number") for t in restored.find("Takes")] == ["1", "2", "4"]
    assert [t.get("number") for t in restored.find("Trash")] == ["3"]
    second = restored.find("Takes")[1]
    assert (second.get("name"), second.get("starred"), second.get("kind")) == ("bridge idea", "1", "vary")
    assert (second.get("beatsPerBar"), second.get("beatUnit"), second.get("bars")) == ("3", "8", "4")
    c = load()
    set_plugin_state(c, plugin_state(b))
    assert ET.tostring(session(plugin_state(c))) == ET.tostring(restored)


def test_invalid_instance_id_in_a_state_is_replaced():
    a = load()
    state = plugin_state(a)
    session(state).set("instanceId", "has/slash and spaces")
    set_plugin_state(a, state)
    new_id = session(plugin_state(a)).get("instanceId")
    assert new_id != "has/slash and spaces"
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", new_id)


# ---------------------------------------------------------------------------- audio

def test_passes_audio_through_without_a_host_or_a_take():
    plugin = load()
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((2, 48000))).astype(np.float32)
    out = plugin.process(audio, 48000.0, buffer_size=512)
    np.testing.assert_array_equal(out, audio)
    mono = audio[:1]
    np.testing.assert_array_equal(plugin.process(mono, 44100.0, buffer_size=1024), mono)


# ---------------------------------------------------------------------------- a real host

class _NoEngine:
    """The host's engine interface without a model: these tests never generate."""

    sample_rate = 48000
    bundle_id = "no-model-for-this-test"
    max_steps = 8

    def generate(self, *args, **kwargs):
        raise AssertionError("not used")


@pytest.fixture
def host(tmp_path, monkeypatch):
    from sideman.plugin_host.host import Host

    h = Host(_NoEngine(), session=tmp_path / "session", cache=tmp_path / "cache", port=0).start()
    monkeypatch.setenv("SIDEMAN_HOST_PORT", str(h.address[1]))
    monkeypatch.setenv("SIDEMAN_HOST_CACHE", str(tmp_path / "cache" / "context"))
    yield h
    h.stop()


def _activate(plugin, seconds: float = 0.2) -> None:
    """Processing audio prepares the plugin, which then says hello to the host."""
    plugin.process(np.zeros((2, int(48000 * seconds)), np.float32), 48000.0, buffer_size=512, reset=False)


def _wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_registers_with_the_host_and_a_duplicate_is_renamed(host):
    a = load()
    a_id = session(plugin_state(a)).get("instanceId")
    _activate(a)
    _wait(lambda: a_id in host.instances.ids())

    # A duplicated track: a second instance restored from the first one's state.
    b = load()
    set_plugin_state(b, plugin_state(a))
    assert session(plugin_state(b)).get("instanceId") == a_id
    _activate(b)
    renamed = _wait(lambda: (lambda i: i if i != a_id else None)(session(plugin_state(b)).get("instanceId")))
    assert renamed == f"{a_id}-2"
    assert renamed in host.instances.ids()
    assert session(plugin_state(a)).get("instanceId") == a_id  # the original keeps its id

    # The renamed instance stays registered: its keep-alive reaches the host under the new id.
    owner = host.instances._owners[renamed]  # noqa: SLF001 (the registry's own record of the client)
    seen = owner.last_seen
    _wait(lambda: host.instances._owners[renamed].last_seen > seen, timeout=15.0)


def test_reconnects_when_the_host_starts_later(tmp_path, monkeypatch):
    from sideman.plugin_host.host import Host

    port = free_udp_port()  # nobody listens there yet
    monkeypatch.setenv("SIDEMAN_HOST_PORT", str(port))
    plugin = load()
    plugin_id = session(plugin_state(plugin)).get("instanceId")
    _activate(plugin)
    time.sleep(2.5)  # a few hellos go unanswered; audio still passes through
    audio = np.full((2, 4096), 0.25, np.float32)
    np.testing.assert_array_equal(plugin.process(audio, 48000.0, buffer_size=512, reset=False), audio)

    late = Host(_NoEngine(), session=tmp_path / "session", cache=tmp_path / "cache", port=port).start()
    try:
        _wait(lambda: plugin_id in late.instances.ids(), timeout=10.0)
    finally:
        late.stop()

