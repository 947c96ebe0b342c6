"""The plugin's window, used as a musician would: the Standalone build (JUCE's own host wrapper,
the plugin's editor and processBlock) under Xvfb, clicked and typed into with xdotool, talking to
the real Sideman server (a tiny bundle) over loopback.

It generates takes (one while another job holds the server's queue: the progress bar shows the
queue position), stars and renames one, drags one onto another window (an XDND drop target: it
is handed the take's DAW copy), deletes one into SESSION/trash and restores it from the Trash menu, provokes an error, then quits and starts again: the restored window shows the same
takes, star, name and selection. Screenshots of each state go to $SIDEMAN_SCREENSHOTS (the
script scripts/plugin-screenshots.sh) or the test's temporary folder.

Audio: the Standalone plays into ALSA's null device (a private ~/.asoundrc), so processBlock
runs without a sound card. Needs Xvfb and xdotool (scripts/install.sh installs them with the
plugin's packages) and the Standalone from scripts/build-plugin.sh.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from plugin_files import STANDALONE, juce_b64decode, xml_from_binary
from xdnd_target import DropTarget

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("CI") and not (STANDALONE.exists() and shutil.which("Xvfb")
                                                          and shutil.which("xdotool")),
                       reason="needs the Standalone build, Xvfb and xdotool"),
]

EDITOR = (720, 620)  # the editor's default size (PluginEditor.cpp)
# Centres of the controls in editor coordinates, from SidemanEditor::resized at the default size.
GENERATE, PROMPT = (660, 23), (336, 23)
STAR, RENAME, DELETE, TRASH = (80, 382), (220, 382), (360, 382), (500, 382)
INPAINT, INPAINT_FROM_BOX = (65, 442), (387, 442)


def take_row(i: int) -> tuple[int, int]:
    return 200, 92 + 22 * i + 11


class Display:
    """A private X server."""

    def __init__(self):
        read, write = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24",
                                      "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as f:
            self.name = ":" + f.readline().strip()

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


class Window:
    """The Standalone's window on `display`; clicks and keys in the editor's coordinates."""

    def __init__(self, display: Display, env: dict, log: Path):
        self.display, self.env = display.name, env
        self.proc = subprocess.Popen([str(STANDALONE)], env=env, cwd=env["HOME"],
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.id = wait_for(lambda: self.xdotool("search", "--name", "^Sideman$").split()[:1] or None,
                           30, "the window")[0]
        time.sleep(1.0)  # its first layout and paint
        geometry = dict(line.split("=") for line in self.xdotool("getwindowgeometry", "--shell", self.id).split())
        x, y, w, h = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        self.bounds = (x, y, x + w, y + h)
        border = 4  # the editor fills the window's content area up to its bottom-right corner
        self.origin = (x + w - border - EDITOR[0], y + h - border - EDITOR[1])

    def xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": self.display},
                              capture_output=True, text=True, timeout=20).stdout

    def click(self, at: tuple[int, int], pause: float = 0.4) -> None:
        self.xdotool("mousemove", str(self.origin[0] + at[0]), str(self.origin[1] + at[1]), "click", "1")
        time.sleep(pause)

    def drag(self, start: tuple[int, int], to_screen: tuple[int, int]) -> None:
        """Press at `start` (editor coordinates), move in steps to `to_screen`, release."""
        x0, y0 = self.origin[0] + start[0], self.origin[1] + start[1]
        self.xdotool("mousemove", str(x0), str(y0), "mousedown", "1")
        for k in range(1, 21):
            t = k / 20
            self.xdotool("mousemove", str(round(x0 + t * (to_screen[0] - x0))), str(round(y0 + t * (to_screen[1] - y0))))
            time.sleep(0.05)
        for dx in (5, 10, 15, 20):  # the external drag starts once the pointer has left: move on a little
            self.xdotool("mousemove", str(to_screen[0] + dx), str(to_screen[1]))
            time.sleep(0.1)
        self.xdotool("mouseup", "1")
        time.sleep(0.5)

    def keys(self, *keys: str) -> None:
        self.xdotool("key", "--delay", "50", *keys)
        time.sleep(0.3)

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "30", text)
        time.sleep(0.3)

    def screenshot(self, path: Path) -> Path:
        from PIL import ImageGrab

        time.sleep(0.5)  # a repaint or two (the editor's timer runs at 10 Hz)
        ImageGrab.grab(xdisplay=self.display).crop(self.bounds).save(path)
        return path

    def quit(self) -> None:
        """The window's close button: the Standalone saves the plugin's state and exits."""
        x0, y0, x1, _ = self.bounds
        self.xdotool("mousemove", str(x1 - 20), str(y0 + 16), "click", "1")
        try:
            self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def saved_session(home: Path) -> ET.Element:
    """The plugin state the Standalone saved on quitting (its settings file, key filterState)."""
    (settings,) = [p for p in home.rglob("*.settings")]
    values = {v.get("name"): v.get("val") for v in ET.parse(settings).getroot().iter("VALUE")}
    return xml_from_binary(juce_b64decode(values["filterState"])).find("Session")


@pytest.fixture
def server(tmp_path):
    from bundle_fixture import make_tiny_bundle

    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.host import Host

    engine = OnnxEngine(make_tiny_bundle(tmp_path / "bundle"), intra_threads=1)
    host = Host(engine, session=tmp_path / "session", cache=tmp_path / "cache", port=0).start()
    yield host
    host.stop()


def test_the_window_generates_browses_deletes_restores_and_reopens(server, tmp_path):
    from sideman.plugin_host.jobs import Job

    shots = Path(os.environ.get("SIDEMAN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\n")  # audio without a sound card
    env = {**os.environ, "HOME": str(home), "SIDEMAN_HOST_PORT": str(server.address[1]),
           "SIDEMAN_HOST_CACHE": str(tmp_path / "cache" / "context")}
    takes_dir, trash_dir = server.session / "takes", server.session / "trash"
    takes = lambda: sorted(takes_dir.glob("take-*.wav"))  # noqa: E731
    display = Display()
    env["DISPLAY"] = display.name
    try:
        window = Window(display, env, tmp_path / "standalone.log")
        wait_for(lambda: server.instances.ids(), 20, "the plugin to say hello")
        window.screenshot(shots / "1-idle.png")

        window.click(PROMPT)
        window.type("warm upright bass")
        # Another client's job holds the server: ours waits behind it, the bar says so.
        started, release = threading.Event(), threading.Event()
        server.jobs.submit(Job("someone-else", 1, work=lambda job: (started.set(), release.wait(30)) and None,
                               on_dropped=lambda job, why: None))
        assert started.wait(10)
        window.click(GENERATE, pause=1.5)
        window.screenshot(shots / "2-generating.png")
        release.set()
        wait_for(lambda: len(takes()) == 1, 60, "the first take")
        for n in (2, 3):
            window.click(GENERATE)
            wait_for(lambda: len(takes()) == n, 60, f"take {n}")
        time.sleep(0.5)

        window.click(take_row(1))
        window.click(STAR)
        window.click(take_row(2))
        window.click(RENAME, pause=0.8)
        window.type("bridge idea")
        window.keys("Return")
        window.click(take_row(1))
        window.screenshot(shots / "3-takes.png")

        # Drag take 3 out of the window onto another application's window (an XDND drop target):
        # it is handed the take's DAW copy in SESSION/exports.
        target = DropTarget(display.name, window.bounds[2] + 20, window.bounds[1] + 100)
        try:
            window.drag(take_row(2), (window.bounds[2] + 120, window.bounds[1] + 200))
            assert target.dropped.wait(10), "nothing was dropped"
        finally:
            target.close()
        (dropped,) = target.files
        assert "text/uri-list" in target.types
        assert Path(dropped).parent == server.session / "exports" and Path(dropped).is_file()
        assert Path(dropped).name.startswith("bridge idea - take 3 - 120 bpm - ")

        # Delete take 1 into the session's trash, then bring it back from the Trash menu.
        window.click(take_row(0))
        before = set(p.name for p in takes())
        window.click(DELETE)
        deleted = wait_for(lambda: [p for p in trash_dir.glob("take-*.wav")], 20, "the take in the trash")
        assert len(takes()) == 2 and deleted[0].name in before
        window.click(TRASH, pause=0.8)
        window.keys("Down", "Return")
        wait_for(lambda: len(takes()) == 3 and not list(trash_dir.glob("take-*.wav")), 20, "the restored take")
        assert deleted[0].name in {p.name for p in takes()}

        # An error: inpaint bars 3..1 (From after To).
        window.click(INPAINT_FROM_BOX)
        window.keys("ctrl+a")
        window.type("3")
        window.keys("Return")
        window.click(INPAINT, pause=1.0)
        window.screenshot(shots / "4-error.png")

        # Select the starred take, quit (the Standalone saves the state), start again.
        window.click(take_row(1))
        window.quit()
        session = saved_session(home)
        records = list(session.find("Takes"))
        assert len(records) == 3 and not list(session.find("Trash"))
        assert [r.get("starred") for r in records] == ["0", "1", "0"]
        assert [r.get("name") for r in records] == ["", "", "bridge idea"]
        assert session.get("selectedTake") == records[1].get("id")
        assert all(r.get("prompt") == "warm upright bass" for r in records)

        window = Window(display, env, tmp_path / "standalone.log")
        window.screenshot(shots / "5-reopened.png")
        window.quit()
        again = saved_session(home)
        # The first window said goodbye on closing: the reopened one is the same instance (not a
        # duplicate of it), so the server's takes are still its own.
        assert again.get("instanceId") == session.get("instanceId")
        assert server.instances.ids() == [session.get("instanceId")]
        assert again.get("selectedTake") == records[1].get("id")
        assert [r.get("starred") for r in again.find("Takes")] == ["0", "1", "0"]
    finally:
        subprocess.run(["pkill", "-f", str(STANDALONE)], check=False)
        display.close()
