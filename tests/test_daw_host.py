"""A real host (tiny bundle) with both DAW links: generate -> done -> REAPER and Live react.

REAPER is stood in for by a python-osc server (and the import script run on the fake API);
Live by the Sideman remote script on a fake Live API, receiving over real UDP.
"""
from __future__ import annotations

import argparse
import queue
import threading

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from bundle_fixture import make_tiny_bundle
from sideman.plugin_host.daw import REAPER_SCRIPT, add_arguments, links_from_args
from sideman.plugin_host.daw.reaper_link import request_path
from sideman.plugin_host.engine import OnnxEngine
from sideman.plugin_host.host import Host
from test_daw_ableton import FakeSong, start_surface, tick_until
from test_daw_reaper import LUA, run_script
from test_host import Client, write_context


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return OnnxEngine(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny"), intra_threads=1)


@pytest.fixture
def reaper_stub():
    """A python-osc server standing in for REAPER's OSC control surface."""
    received: queue.Queue = queue.Queue()
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: received.put((address, list(args))))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address, received
    server.shutdown()
    server.server_close()


def test_a_finished_take_reaches_reaper_and_live(engine, tmp_path, monkeypatch, reaper_stub):
    reaper_address, reaper_received = reaper_stub
    song = FakeSong(tracks=1)
    surface = start_surface(monkeypatch, song)

    session = tmp_path / "session"
    links = links_from_args(argparse.Namespace(reaper=reaper_address, reaper_action="_RSfeedface",
                                      ableton=("127.0.0.1", surface.port)), session)
    host = Host(engine, session, tmp_path / "cache", port=0)
    host.take_listeners += links
    host.start()
    try:
        client = Client(host)
        client.hello("bass-1")
        client.send("/sideman/bass-1/prompt", 2, "warm upright bass", types="is")
        client.send("/sideman/bass-1/seed", 3, 42, types="ii")
        client.send("/sideman/bass-1/steps", 4, 2, types="ii")
        ctx = write_context(host)
        client.send("/sideman/bass-1/generate", 5, ctx, 2.0, 12.0, 120.0, 4, 48000, types="isfffii")
        _, (_, take_id, take_path, anchor) = client.until("done", 5)[-1]

        assert reaper_received.get(timeout=10) == ("/action/str", ["_RSfeedface"])
        fields = dict(line.split("=", 1) for line in request_path(session).read_text().splitlines()
                      if not line.startswith("#"))
        assert fields == {"path": take_path, "anchor_ppq": "12.0", "name": "warm upright bass (seed 42)",
                          "instance": "bass-1", "take_id": take_id, "seed": "42", "prompt": "warm upright bass"}

        tick_until(surface, lambda: song.calls)
        assert song.calls == [("create_audio_track", 1),
                              ("create_audio_clip", "warm upright bass (seed 42)", take_path, 12.0)]
    finally:
        host.stop()
        surface.disconnect()

    # REAPER runs the action: the take lands on a new track at QN 12 of the tempo map
    if LUA is None:
        pytest.skip("lua5.4 is not installed: the import script was not run")
    result = run_script(REAPER_SCRIPT, "tempo=0:120,8:60", env={"SIDEMAN_SESSION": str(session)})
    assert result["tracks"] == [("warm upright bass (seed 42)", [(8.0, take_path)])]


def test_serve_options_build_the_links(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--reaper", "8000", "--reaper-action", "40001", "--ableton", "10.0.0.2:9061"])
    reaper, live = links_from_args(args, tmp_path)
    assert reaper.reaper == ("127.0.0.1", 8000) and live.live == ("10.0.0.2", 9061)
    assert links_from_args(parser.parse_args([]), tmp_path) == []
    reaper, live = links_from_args(parser.parse_args(["--reaper", "--reaper-action", "_RSx", "--ableton"]), tmp_path)
    assert reaper.reaper == ("127.0.0.1", 8000) and live.live == ("127.0.0.1", 9061)
    for argv in (["--reaper", "8000"], ["--reaper-action", "_RSx"]):
        with pytest.raises(SystemExit):
            links_from_args(parser.parse_args(argv), tmp_path)
    with pytest.raises(SystemExit):
        parser.parse_args(["--ableton", "host:notaport"])
