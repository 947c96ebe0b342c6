"""The Live remote script against a fake Live API, fed real UDP datagrams from python-osc."""
from __future__ import annotations

import importlib.util
import itertools
import socket
import struct
import sys
import types
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.daw import ABLETON_SCRIPT
from sideman.plugin_host.daw.ableton_link import AbletonLink, take_ready_message
from sideman.plugin_host.takes import Take

_names = itertools.count()


class FakeControlSurface:
    """Stands in for _Framework.ControlSurface.ControlSurface (only what the script uses)."""

    def __init__(self, c_instance):
        self._c_instance = c_instance
        self.shown: list[str] = []
        self.logged: list[str] = []
        self.ticks = 0
        self.disconnected = False

    def song(self):
        return self._c_instance.song()

    def show_message(self, message):
        self.shown.append(message)

    def log_message(self, *message):
        self.logged.append(" ".join(str(m) for m in message))

    def update_display(self):
        self.ticks += 1

    def disconnect(self):
        self.disconnected = True


class FakeClip:
    def __init__(self, file_path, position):
        self.file_path, self.position = file_path, position
        self.warping = True  # Live's "Auto-Warp Long Samples" default


class FakeTrack:
    def __init__(self, song, name=""):
        self.song, self.name = song, name
        self.arrangement_clips: list[FakeClip] = []

    def create_audio_clip(self, file_path, position):
        self.song.calls.append(("create_audio_clip", self.name, file_path, position))
        if Path(file_path).read_bytes()[:4] != b"RIFF":  # Live refuses what it cannot read
            raise RuntimeError("Invalid audio file")
        self.arrangement_clips.append(FakeClip(file_path, position))
        return self.arrangement_clips[-1]


class OldFakeTrack:
    """A Track before Live 12.0.5: no create_audio_clip."""

    def __init__(self, song, name=""):
        self.song, self.name = song, name


class FakeSong:
    def __init__(self, track_class=FakeTrack, tracks=1):
        self.track_class = track_class
        self.calls: list[tuple] = []
        self.master_track = track_class(self, "Master")
        self.tracks = [track_class(self, f"{i + 1}-Audio") for i in range(tracks)]

    def create_audio_track(self, index):
        if not 0 <= index <= len(self.tracks):
            raise IndexError(index)
        self.calls.append(("create_audio_track", index))
        self.tracks.insert(index, self.track_class(self))

    def delete_track(self, index):
        self.calls.append(("delete_track", index))
        del self.tracks[index]


class CInstance:
    def __init__(self, song):
        self._song = song

    def song(self):
        return self._song


def load_remote_script(monkeypatch):
    """Import ableton/Sideman as Live would, with a fake _Framework; returns the package."""
    framework = types.ModuleType("_Framework")
    control_surface = types.ModuleType("_Framework.ControlSurface")
    control_surface.ControlSurface = FakeControlSurface
    framework.ControlSurface = control_surface
    monkeypatch.setitem(sys.modules, "_Framework", framework)
    monkeypatch.setitem(sys.modules, "_Framework.ControlSurface", control_surface)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in the folder users copy
    name = f"Sideman_under_test_{next(_names)}"
    spec = importlib.util.spec_from_file_location(name, ABLETON_SCRIPT / "__init__.py",
                                                  submodule_search_locations=[str(ABLETON_SCRIPT)])
    package = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, package)
    spec.loader.exec_module(package)
    return package


def start_surface(monkeypatch, song):
    monkeypatch.setenv("SIDEMAN_ABLETON_PORT", "0")  # a free port; the surface reports it
    surface = load_remote_script(monkeypatch).create_instance(CInstance(song))
    assert surface.port, surface.logged
    return surface


def send(surface, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", surface.port))


def tick_until(surface, predicate, ticks: int = 50) -> None:
    """Call update_display() as Live would (every ~100 ms; faster here) until predicate()."""
    import time
    for _ in range(ticks):
        surface.update_display()
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing happened; shown={surface.shown} logged={surface.logged}")


def take_ready(path: str, anchor: float, name: str) -> bytes:
    builder = OscMessageBuilder("/sideman/take_ready")
    for value, kind in ((path, "s"), (anchor, "f"), (name, "s")):
        builder.add_arg(value, kind)
    return builder.build().dgram


@pytest.fixture
def take_file(tmp_path):
    path = tmp_path / "take-0123456789abcdef.wav"
    path.write_bytes(b"RIFF")  # the fake Live only checks the magic
    return path


def test_take_ready_creates_a_named_track_with_an_arrangement_clip(monkeypatch, take_file):
    song = FakeSong(tracks=2)
    surface = start_surface(monkeypatch, song)
    send(surface, take_ready(str(take_file), 8.5, "warm upright bass (seed 42)"))
    tick_until(surface, lambda: song.calls)
    assert song.calls == [("create_audio_track", 2),
                          ("create_audio_clip", "warm upright bass (seed 42)", str(take_file), 8.5)]
    assert [t.name for t in song.tracks] == ["1-Audio", "2-Audio", "warm upright bass (seed 42)"]
    [clip] = song.tracks[2].arrangement_clips
    assert (clip.file_path, clip.position, clip.warping) == (str(take_file), 8.5, False)
    assert "placed 'warm upright bass (seed 42)' at beat 8.5" in surface.shown[-1]
    assert surface.ticks >= 1  # the base class's update_display still runs
    surface.disconnect()
    assert surface.disconnected and surface._sock is None


def test_old_live_shows_a_message_and_creates_nothing(monkeypatch, take_file):
    song = FakeSong(track_class=OldFakeTrack)
    surface = start_surface(monkeypatch, song)
    send(surface, take_ready(str(take_file), 0.0, "pads (seed 1)"))
    tick_until(surface, lambda: surface.shown)
    assert song.calls == [] and len(song.tracks) == 1
    assert "drag it from the Sideman plugin" in surface.shown[0] and "pads (seed 1)" in surface.shown[0]
    surface.disconnect()


def test_missing_or_unreadable_files_leave_no_track(monkeypatch, tmp_path, take_file):
    song = FakeSong()
    surface = start_surface(monkeypatch, song)
    send(surface, take_ready(str(tmp_path / "gone.wav"), 0.0, "gone (seed 0)"))
    tick_until(surface, lambda: surface.shown)
    assert song.calls == [] and "missing" in surface.shown[0]

    take_file.write_bytes(b"not audio")  # Live raises on a file it cannot read
    send(surface, take_ready(str(take_file), 4.0, "unreadable (seed 0)"))
    tick_until(surface, lambda: len(surface.shown) > 1)
    assert [c[0] for c in song.calls] == ["create_audio_track", "create_audio_clip", "delete_track"]
    assert len(song.tracks) == 1 and "could not place" in surface.shown[-1]
    surface.disconnect()


def test_malformed_datagrams_are_ignored_and_the_surface_keeps_working(monkeypatch, take_file):
    song = FakeSong()
    surface = start_surface(monkeypatch, song)
    wrong_types = OscMessageBuilder("/sideman/take_ready")
    wrong_types.add_arg(3, "i")
    other = OscMessageBuilder("/sideman/other")
    other.add_arg("x", "s")
    garbage = [
        b"",
        b"\xff\xfe not osc at all",
        b"/sideman/take_ready\0",  # address without its padding
        b"/sideman/take_ready\0\0\0\0,sfs\0\0\0\0",  # arguments missing
        b"/x\0\0,i\0\0\0\0",  # int32 cut short
        b"/x\0\0,b\0\0" + struct.pack(">i", 100) + b"abc\0",  # blob longer than the datagram
        b"/x\0\0,q\0\0",  # unknown type tag
        b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 64) + b"/x\0\0",  # element past the end
        b"/\xc3\x28\0,\0\0\0",  # address not UTF-8
        wrong_types.build().dgram,
        other.build().dgram,
    ]
    for data in garbage:
        send(surface, data)
    for _ in range(5):
        surface.update_display()  # must not raise
    assert song.calls == [] and surface.shown == []
    assert sum("malformed" in line for line in surface.logged) >= 8
    assert any("ignored /sideman/other" in line for line in surface.logged)

    bundle = OscBundleBuilder(IMMEDIATELY)  # a valid message inside a bundle still works
    bundle.add_content(OscMessageBuilder("/sideman/take_ready").build())  # no args: ignored
    message = OscMessageBuilder("/sideman/take_ready")
    for value in (str(take_file), 2.0, "after garbage (seed 5)"):
        message.add_arg(value)
    bundle.add_content(message.build())
    send(surface, bundle.build().dgram)
    tick_until(surface, lambda: song.calls)
    assert song.tracks[-1].name == "after garbage (seed 5)"
    surface.disconnect()


def test_port_in_use_is_reported_not_raised(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        monkeypatch.setenv("SIDEMAN_ABLETON_PORT", str(busy.getsockname()[1]))
        surface = load_remote_script(monkeypatch).create_instance(CInstance(FakeSong()))
        assert surface.port is None and "in use" in surface.shown[0]
        surface.update_display()  # polling without a socket is harmless
        surface.disconnect()


def test_the_script_decodes_what_the_host_encodes(monkeypatch):
    decode = load_remote_script(monkeypatch).osc_decode.decode_packet
    data = osc.encode("/a/b", 7, -1.5, "ünïcode", b"\x01\x02\x03")
    assert decode(data) == [("/a/b", [7, -1.5, "ünïcode", b"\x01\x02\x03"])]
    for length in range(1, 9):  # every string padding case
        text = "x" * length
        assert decode(osc.encode("/s", text, 1)) == [("/s", [text, 1])]


def test_the_link_sends_take_ready_to_live(monkeypatch, take_file):
    song = FakeSong()
    surface = start_surface(monkeypatch, song)
    take = Take("take-0123456789abcdef", "bass-1", take_file, 48000, 16.0,
                {"prompt": "  walking\nbass ", "seed": 7})
    assert osc.parse_datagram(take_ready_message(take)) == [
        ("/sideman/take_ready", [str(take_file.resolve()), 16.0, "walking bass (seed 7)"])]
    AbletonLink(("127.0.0.1", surface.port))("bass-1", take)
    tick_until(surface, lambda: song.calls)
    assert song.calls[-1] == ("create_audio_clip", "walking bass (seed 7)", str(take_file.resolve()), 16.0)
    surface.disconnect()
