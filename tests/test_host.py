"""The host process on loopback with a real python-osc client and a tiny real bundle."""
import json
import os
import random
import socket
import time

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from bundle_fixture import make_tiny_bundle
from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.engine import OnnxEngine
from sideman.plugin_host.host import Host
from sideman.plugin_host.takes import TakeStore


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return OnnxEngine(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny"), intra_threads=1)


@pytest.fixture
def host(engine, tmp_path):
    h = Host(engine, tmp_path / "session", tmp_path / "cache", port=0).start()
    yield h
    h.stop()


class Client:
    """A python-osc client on its own UDP socket; replies come back to this socket."""

    def __init__(self, host: Host):
        self.target = host.address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args, types: str | None = None) -> None:
        builder = OscMessageBuilder(address)
        for i, value in enumerate(args):
            builder.add_arg(value, types[i] if types else None)
        self.sock.sendto(builder.build().dgram, self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 10.0) -> tuple[str, list]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(osc.MAX_DATAGRAM)
        return osc.parse_datagram(data)[0]

    def until(self, verb: str, req: int, timeout: float = 60.0) -> list[tuple[str, list]]:
        """Every reply up to and including `verb` (or 'error') for request `req`."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            address, params = self.recv(max(0.1, deadline - time.monotonic()))
            seen.append((address, params))
            if params and params[0] == req and address.endswith(("/" + verb, "/error")):
                return seen
        raise TimeoutError(f"no {verb} for request {req}; saw {seen}")

    def hello(self, instance: str) -> str:
        self.send("/sideman/hello", 1, instance, types="is")
        address, params = self.recv()
        assert address.endswith("/welcome"), (address, params)
        return params[1]


def write_context(host: Host, seconds: float = 2.0, name: str = "ctx.wav") -> str:
    audio = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * 48000), 2))
    path = host.cache / name
    sf.write(path, audio.astype(np.float32), 48000)
    return str(path)


def test_generate_progress_done_round_trip(host):
    client = Client(host)
    assert client.hello("bass-1") == "bass-1"
    client.send("/sideman/bass-1/prompt", 2, "warm upright bass", types="is")
    assert client.recv()[1] == [2, "prompt"]
    client.send("/sideman/bass-1/steps", 3, 3, types="ii")
    assert client.recv()[1] == [3, "steps"]
    ctx = write_context(host)
    client.send("/sideman/bass-1/generate", 4, ctx, 2.0, 8.0, 120.0, 4, 44100, types="isfffii")
    replies = client.until("done", 4)
    addresses = [a.rsplit("/", 1)[1] for a, _ in replies]
    assert addresses[0] == "ack" and addresses[-1] == "done"
    assert [p[1:] for a, p in replies if a.endswith("/progress")] == [[1, 3], [2, 3], [3, 3]]
    _, (req, take_id, path, anchor) = replies[-1]
    assert anchor == 8.0 and take_id.startswith("take-")
    info = sf.info(path)
    assert info.samplerate == 44100 and info.channels == 2
    assert info.frames == 88200  # 2 s at 120 bpm in 4/4 is exactly one bar
    sidecar = json.loads(open(path[:-4] + ".json").read())
    assert sidecar["prompt"] == "warm upright bass" and sidecar["steps"] == 3
    assert sidecar["bundle"] == host.engine.bundle_id and len(sidecar["context_sha256"]) == 64
    client.send("/sideman/bass-1/status", 5, types="i")
    assert client.recv()[1] == [5, "idle", 0, take_id, 1, 0]


def test_id_clash_gets_a_new_id_and_settings_stay_apart(host):
    a, b = Client(host), Client(host)
    assert a.hello("keys") == "keys"
    assert b.hello("keys") == "keys-2"
    assert a.hello("keys") == "keys"  # the owner saying hello again keeps its id
    b.send("/sideman/keys-2/seed", 9, 42, types="ii")
    assert b.recv()[1] == [9, "seed"]
    assert host.instances.state("keys-2").seed == 42 and host.instances.state("keys").seed == 0


def test_cancel_stops_a_running_job(host):
    client = Client(host)
    client.hello("gtr")
    ctx = write_context(host, 12.0)
    client.send("/sideman/gtr/steps", 2, 8, types="ii")
    client.recv()
    client.send("/sideman/gtr/generate", 3, ctx, 12.0, 0.0, 120.0, 4, 48000, types="isfffii")
    replies = [client.recv()]
    assert replies[0][1] == [3, "generate"]
    client.send("/sideman/gtr/cancel", 4, types="i")
    replies += client.until("done", 3)
    assert ("/sideman/gtr/error", [3, "cancelled"]) in replies
    assert not any(a.endswith("/done") for a, _ in replies)
    assert not [p for p in (host.session / "takes").iterdir()]


def test_supersede_and_two_instances_take_turns(host):
    a, b = Client(host), Client(host)
    a.hello("drums")
    b.hello("pads")
    long_ctx, short_ctx = write_context(host, 8.0, "long.wav"), write_context(host, 1.0, "short.wav")
    a.send("/sideman/drums/generate", 1, long_ctx, 8.0, 0.0, 120.0, 4, 48000, types="isfffii")
    assert a.recv()[1] == [1, "generate"]
    b.send("/sideman/pads/generate", 10, short_ctx, 2.0, 0.0, 120.0, 4, 48000, types="isfffii")
    b.send("/sideman/pads/generate", 11, short_ctx, 2.0, 0.0, 120.0, 4, 48000, types="isfffii")
    replies_b = b.until("done", 11)
    assert ("/sideman/pads/error", [10, "superseded by request 11"]) in replies_b
    assert a.until("done", 1)[-1][0] == "/sideman/drums/done"


def test_malformed_messages_get_errors_and_the_host_lives_on(host):
    client = Client(host)
    client.hello("lead")
    cases = [
        (lambda: client.send("/sideman/lead/prompt", 1, 5, types="ii"), "must be string"),
        (lambda: client.send("/sideman/lead/generate", 2, types="i"), "expected arguments"),
        (lambda: client.send("/sideman/lead/nonsense", 3, types="i"), "unknown verb"),
        (lambda: client.send("/other/address", 4, types="i"), "unknown address"),
        (lambda: client.send("/sideman/ghost/status", 5, types="i"), "unknown instance"),
        (lambda: client.send("/sideman/lead/prompt", 6, "x" * 60000, types="is"), "longer than"),
        (lambda: client.send_raw(b"\x00garbage\xff" * 10), "malformed"),
        (lambda: client.send("/sideman/lead/steps", 7, 1000, types="ii"), "steps must be"),
        (lambda: client.send("/sideman/lead/seed", 8, True), "must be int32"),
    ]
    for send, fragment in cases:
        send()
        address, params = client.recv()
        assert address.endswith("/error") and fragment in params[1], (fragment, address, params)
    rng = random.Random(0)
    for _ in range(200):
        client.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    client.sock.settimeout(0.5)
    try:
        while True:
            client.sock.recvfrom(osc.MAX_DATAGRAM)
    except socket.timeout:
        pass
    client.send("/sideman/lead/status", 99, types="i")
    assert client.recv()[1][:2] == [99, "idle"]


def test_paths_outside_the_host_folders_are_refused(host, tmp_path):
    client = Client(host)
    client.hello("bass")
    outside = tmp_path / "elsewhere.wav"
    sf.write(outside, np.zeros((4800, 2), np.float32), 48000)
    client.send("/sideman/bass/generate", 1, str(outside), 1.0, 0.0, 120.0, 4, 48000, types="isfffii")
    address, params = client.recv()
    assert address.endswith("/error") and "outside the host's folders" in params[1]
    escape = str(host.cache / ".." / ".." / "elsewhere.wav")
    client.send("/sideman/bass/style", 2, escape, types="is")
    assert "outside the host's folders" in client.recv()[1][1]
    os.symlink(outside, host.cache / "link.wav")
    client.send("/sideman/bass/style", 3, str(host.cache / "link.wav"), types="is")
    assert "outside the host's folders" in client.recv()[1][1]


def test_restart_knows_instances_and_takes_and_cleans_partial_files(engine, tmp_path):
    first = Host(engine, tmp_path / "session", tmp_path / "cache", port=0).start()
    client = Client(first)
    client.hello("bass")
    client.send("/sideman/bass/generate", 1, write_context(first, 1.0), 2.0, 0.0, 120.0, 4, 48000, types="isfffii")
    take_id = client.until("done", 1)[-1][1][1]
    first.stop()
    takes = tmp_path / "session" / "takes"
    (takes / "take-deadbeef.wav").write_bytes(b"partial")          # audio without sidecar
    (takes / ".take-x.wav.123.tmp").write_bytes(b"partial")        # interrupted write
    second = Host(engine, tmp_path / "session", tmp_path / "cache", port=0).start()
    try:
        assert sorted(p.name for p in takes.iterdir()) == [f"{take_id}.json", f"{take_id}.wav"]
        client = Client(second)
        client.hello("bass")
        client.send("/sideman/bass/status", 2, types="i")
        assert client.recv()[1] == [2, "idle", 0, take_id, 1, 0]
        client.send("/sideman/bass/take/select", 3, take_id, types="is")
        assert client.recv()[1][:2] == [3, take_id]
    finally:
        second.stop()


def test_takes_are_never_overwritten(tmp_path):
    store = TakeStore(tmp_path)
    audio = np.zeros((2, 100), np.float32)
    a = store.write("x", audio, 48000, 0.0, {"prompt": "a"})
    b = store.write("x", audio + 0.5, 48000, 0.0, {"prompt": "a"})
    again = store.write("x", audio, 48000, 0.0, {"prompt": "a"})
    assert a.take_id != b.take_id and again.take_id == a.take_id
    assert len(list(store.folder.glob("*.wav"))) == 2


def test_quit_stops_the_host(engine, tmp_path):
    host = Host(engine, tmp_path / "s", tmp_path / "c", port=0).start()
    client = Client(host)
    client.send("/sideman/quit", 7, types="i")
    assert client.recv() == ("/sideman/bye", [7])
    host._thread.join(5)
    assert not host._thread.is_alive()


def test_goodbye_frees_the_id_for_a_project_reopened_at_once(host):
    """A plugin that closes says goodbye: the same id from a new socket is that instance again
    (its takes with it), not a duplicate; a goodbye from another address frees nothing."""
    a, b, c = Client(host), Client(host), Client(host)
    assert a.hello("bass") == "bass"
    host.instances.add_take("bass", "take-00000000000000aa")
    c.send("/sideman/bass/goodbye", 2, types="i")  # not the owner
    assert c.recv() == ("/sideman/bass/ack", [2, "goodbye"])
    assert b.hello("bass") != "bass"  # still owned by a: b is a duplicate
    a.send("/sideman/bass/goodbye", 3, types="i")
    assert a.recv() == ("/sideman/bass/ack", [3, "goodbye"])
    reopened = Client(host)
    assert reopened.hello("bass") == "bass"
    assert host.instances.state("bass").takes == ["take-00000000000000aa"]
