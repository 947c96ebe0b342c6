"""Issue 17's defects, one regression test each, against a real host on loopback.

A hostile-input probe found that one datagram could silence the server, that a hello could
write files anywhere, that a bad reply port killed the job worker, that the length limit
could be bypassed by bar rounding, that checked paths were read later without a check,
that non-finite numbers reached the sidecar, that a duplicated 64-character id was renamed
out of the grammar, that temporary files were left in the system's temp folder, and that
nothing was bounded. Every test here failed before the fix.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bundle_fixture import make_tiny_bundle
from sideman.plugin_host import osc_protocol as osc
from sideman.plugin_host.engine import OnnxEngine
from sideman.plugin_host.host import Host, Limits
from sideman.plugin_host.instances import InstanceRegistry
from sideman.plugin_host.jobs import Job, JobQueue
from sideman.plugin_host.takes import TakeStore
from test_host import Client, write_context

GENERATE = "isfffii"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return OnnxEngine(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", check=False),
                      intra_threads=1)


@pytest.fixture
def start(engine, tmp_path):
    """start(**limits) -> a running host on loopback in tmp_path; stopped after the test."""
    hosts = []

    def make(**limits) -> Host:
        host = Host(engine, tmp_path / "session", tmp_path / "cache", port=0, limits=Limits(**limits)).start()
        hosts.append(host)
        return host
    yield make
    for host in hosts:
        host.stop()


def message(address: str, *args, types: str | None = None) -> bytes:
    builder = OscMessageBuilder(address)
    for i, value in enumerate(args):
        builder.add_arg(value, types[i] if types else None)
    return builder.build().dgram


def ping(client: Client, req: int = 777_000) -> list:
    """Send /sideman/ping and return the pong's arguments (other replies are skipped)."""
    client.send("/sideman/ping", req, types="i")
    return client.until("pong", req, timeout=10)[-1][1]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def block_worker(host: Host) -> threading.Event:
    """Occupy the job worker until the returned event is set."""
    gate = threading.Event()
    host.jobs.submit(Job("blocker", 0, work=lambda job: [gate.wait(60), None][1],
                         on_dropped=lambda job, why: None))
    deadline = time.monotonic() + 10
    while host.jobs.health().state != "running":
        assert time.monotonic() < deadline, "the blocking job never started"
        time.sleep(0.01)
    return gate


def error_of(replies: list, req: int) -> tuple[str, str]:
    """(address, reason) of the error reply for request `req` among `replies`."""
    for address, params in replies:
        if address.endswith("/error") and params[0] == req:
            return address, params[1]
    raise AssertionError(f"no error for request {req} in {replies}")


# ------------------------------------------------------------------ 1: one datagram silenced the server

def test_an_int64_request_id_with_a_wrong_count_is_answered_and_the_server_lives(start):
    host = start()
    client = Client(host)
    # The probe's datagram: /sideman/hello with only an int64 request id.
    client.send("/sideman/hello", 2**40, types="h")
    address, (req, reason) = client.recv()
    assert address == "/sideman/error" and req == -1 and "expected arguments" in reason
    assert host._thread.is_alive()
    assert ping(client)[1] == "idle"
    # The same with every verb: int64 ids, wrong counts, an int64 in every argument position.
    client.hello("bass")
    verbs = [f"/sideman/{v}" for v in osc.HOST_VERBS if v != "quit"] + \
            [f"/sideman/bass/{v}" for v in osc.INSTANCE_VERBS]
    for address in verbs:
        for args, types in (((2**40,), "h"), ((2**40, 1, 2, 3, 4, 5, 6, 7), "hiiiiiii"),
                            ((-2**63, "x"), "hs"), ((1, 2**62, 2**62), "ihh")):
            client.send(address, *args, types=types)
            reply_address, params = client.recv()
            assert reply_address.endswith("/error") and osc.is_int32(params[0]), (address, params)
    assert ping(client)[1] == "idle"


def test_any_exception_while_handling_becomes_an_error_reply(start, monkeypatch):
    """The one place (Host._fail) answers whatever dispatch raises, even an exception whose
    text cannot be made, and the receive loop survives handle_datagram itself raising."""
    host = start()
    client = Client(host)
    client.hello("keys")

    class Nasty(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    for exc in (Nasty(), MemoryError(), OverflowError("port must be 0-65535"), TypeError(2**40)):
        def boom(request, source, exc=exc):
            raise exc
        monkeypatch.setattr(host, "dispatch", boom)
        client.send("/sideman/keys/status", 41, types="i")
        address, params = client.recv()
        assert address.endswith("/error") and params[0] == 41
    monkeypatch.undo()

    calls = []

    def broken(data, source):
        calls.append(data)
        raise RuntimeError("bug")
    monkeypatch.setattr(host, "handle_datagram", broken)
    client.send("/sideman/keys/status", 42, types="i")
    deadline = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    monkeypatch.undo()
    assert host._thread.is_alive()
    assert ping(client)[1] == "idle"


# ------------------------------------------------------------------ 2: a hello wrote files anywhere

HOSTILE_IDS = ["../../x/y", "", ".", "..", "a/b", "x" * 65, ".hidden", "-x", "CON", "nul.txt",
               "a\\b", "a b", "é", "a\nb"]


def test_hello_ids_never_become_paths(start, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd" / "deep" / "er"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)  # relative ids would land here
    host = start()
    client = Client(host)
    before = files_under(tmp_path)
    ids = HOSTILE_IDS + [str(tmp_path / "x" / "victim")]
    for req, instance in enumerate(ids, 1):
        client.send("/sideman/hello", req, instance, types="is")
        address, params = client.recv()
        assert address == "/sideman/error" and params[0] == req, (instance, address, params)
        assert "bad instance id" in params[1] and str(host.session) not in params[1]
    assert files_under(tmp_path) == before
    assert host.instances.ids() == []
    # The registry checks ids itself, whoever calls it.
    registry = InstanceRegistry(tmp_path / "other-session")
    for instance in ids:
        with pytest.raises(ValueError, match="bad instance id"):
            registry.hello(instance, ("127.0.0.1", 1))
    assert not list((tmp_path / "other-session" / "instances").iterdir())


def test_a_take_sidecar_naming_a_hostile_instance_is_not_restored_to_a_path(engine, tmp_path, caplog):
    store = TakeStore(tmp_path / "session")
    store.write("../../escaped", np.zeros((2, 100), np.float32), 48000, 0.0, {"prompt": "x"})
    with caplog.at_level(logging.WARNING, "sideman.host"):
        host = Host(engine, tmp_path / "session", tmp_path / "cache", port=0)
    host.stop()
    assert "bad instance id" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "session"]
    assert not list((tmp_path / "session" / "instances").iterdir())


# ------------------------------------------------------------------ 3: a bad reply port killed the worker

def test_a_bad_reply_port_is_refused_at_hello(start):
    host = start()
    client = Client(host)
    for req, port in enumerate((70000, 65536, -1, 2**31 - 1), 1):
        client.send("/sideman/hello", req, "p", port, types="isi")
        address, params = client.recv()
        assert address == "/sideman/error" and params[0] == req and "reply_port" in params[1]
    assert host.instances.ids() == []


def test_a_reply_that_cannot_be_sent_never_stops_the_worker(start, monkeypatch):
    """The original chain: replies for instance 'p' go to port 70000 (sendto raises
    OverflowError); its job's replies fail, and the next instance's job still runs."""
    host = start()
    a, b = Client(host), Client(host)
    a.hello("p")
    b.hello("q")
    real = host.instances.reply_address
    monkeypatch.setattr(host.instances, "reply_address",
                        lambda instance, source: ("127.0.0.1", 70000) if instance == "p" else real(instance, source))
    ctx = write_context(host, 1.0)
    host.send(("127.0.0.1", 70000), "/sideman/p/ack", 1, "x")  # does not raise
    host.handle_datagram(message("/sideman/p/generate", 2, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE),
                         a.sock.getsockname())
    b.send("/sideman/q/generate", 3, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
    assert b.until("done", 3)[-1][0] == "/sideman/q/done"
    assert host.jobs._worker.is_alive() and host.jobs.restarts == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_worker_outlives_callbacks_that_raise_and_is_restarted_if_it_dies():
    queue = JobQueue()
    done, dropped = threading.Event(), []
    try:
        def bad_after(job):
            return lambda: (_ for _ in ()).throw(OverflowError("port must be 0-65535"))
        queue.submit(Job("a", 1, work=bad_after, on_dropped=lambda job, why: 1 / 0))
        queue.submit(Job("b", 2, work=lambda job: (_ for _ in ()).throw(ValueError("x")),
                         on_dropped=lambda job, why: None))
        # superseding a job whose on_dropped raises
        queue.submit(Job("c", 3, work=lambda job: None, on_dropped=lambda job, why: 1 / 0))
        queue.submit(Job("c", 4, work=lambda job: done.set(), on_dropped=lambda job, why: None))
        assert done.wait(10)
        assert queue.restarts == 0

        # A BaseException kills the worker thread; the supervisor restarts it and answers the job.
        def die(job):
            raise SystemExit("worker killed")
        queue.submit(Job("d", 5, work=die, on_dropped=lambda job, why: dropped.append((job.req, why))))
        again = threading.Event()
        deadline = time.monotonic() + 10
        while queue.restarts < 1:
            assert time.monotonic() < deadline, "the dead worker was not restarted"
            time.sleep(0.01)
        queue.submit(Job("e", 6, work=lambda job: again.set(), on_dropped=lambda job, why: None))
        assert again.wait(10)
        assert dropped and dropped[0][0] == 5 and "worker failed" in dropped[0][1]
        assert queue.health().restarts == 1 and queue.health().state in ("idle", "running")
    finally:
        queue.close()


def test_ping_answers_from_the_osc_thread_with_the_workers_state(start):
    host = start()
    client = Client(host)
    assert ping(client, 5) == [5, "idle", 0, 0, 0]
    gate = block_worker(host)
    try:
        client.hello("g")
        client.send("/sideman/g/generate", 6, write_context(host, 1.0), 1.0, 0.0, 120.0, 4, 48000,
                    types=GENERATE)
        assert client.recv()[1] == [6, "generate"]
        req, state, queued, restarts, busy = ping(client, 7)
        assert (req, state, queued, restarts) == (7, "running", 1, 0) and busy >= 0
    finally:
        gate.set()
    client.until("done", 6)


# ------------------------------------------------------------------ 4: the length limit after rounding

@pytest.mark.parametrize("seconds, bpm, fragment", [
    (600.0, 0.3, "one bar"),                # the probe's case: one bar is 800 s
    (1.0, 0.001, "one bar"),                # one bar is 240,000 s
    (599.0, 1.5, "rounded to whole bars"),  # bars of 160 s: 599 s rounds to 4 bars, 640 s
])
def test_the_take_length_limit_holds_after_rounding_to_bars(start, seconds, bpm, fragment):
    host = start()
    client = Client(host)
    client.hello("bass")
    client.send("/sideman/bass/generate", 1, "", seconds, 0.0, bpm, 4, 48000, types=GENERATE)
    address, (req, reason) = client.recv()
    assert address == "/sideman/bass/error" and req == 1 and fragment in reason, reason
    client.send("/sideman/bass/status", 2, types="i")
    assert client.recv()[1][:3] == [2, "idle", 0]


def test_take_length_rounds_within_the_limit(start):
    host = start(max_take_seconds=8.0)
    assert host.take_length(7.0, 120.0, 4) == pytest.approx(8.0)
    assert host.take_length(7.0, 100.0, 4) == pytest.approx(7.2)
    assert host.take_length(7.9, 90.0, 4) == pytest.approx(8.0)  # 3 bars of 8/3 s: the limit itself
    with pytest.raises(ValueError, match="rounded to whole bars"):
        host.take_length(7.5, 50.0, 4)  # 4.8-s bars: 2 bars, 9.6 s
    with pytest.raises(ValueError, match="seconds must be within"):
        host.take_length(9.0, 120.0, 4)


# ------------------------------------------------------------------ 5: checked paths read later

def _queued_generate(host: Host, client: Client, req: int, context: str) -> None:
    client.send("/sideman/bass/generate", req, context, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
    assert client.recv()[1] == [req, "generate"]


def test_a_folder_swapped_for_a_symlink_while_queued_is_not_read(start, tmp_path):
    """The probe's case: the check at the request passed, the folder was swapped for a
    symbolic link to a folder outside while the job waited; the worker read the outside file."""
    host = start()
    client = Client(host)
    client.hello("bass")
    outside = tmp_path / "outside"
    outside.mkdir()
    sf.write(outside / "ctx.wav", np.full((48000, 2), 0.5, np.float32), 48000)
    (host.cache / "sub").mkdir()
    sf.write(host.cache / "sub" / "ctx.wav", np.zeros((48000, 2), np.float32), 48000)
    (host.cache / "file.wav").write_bytes((host.cache / "sub" / "ctx.wav").read_bytes())
    gate = block_worker(host)
    try:
        _queued_generate(host, client, 1, str(host.cache / "sub" / "ctx.wav"))
        os.rename(host.cache / "sub", host.cache / "sub-old")
        os.symlink(outside, host.cache / "sub")
    finally:
        gate.set()
    address, reason = error_of(client.until("done", 1), 1)
    assert address == "/sideman/bass/error" and "outside the host's folders" in reason
    gate = block_worker(host)
    try:
        _queued_generate(host, client, 2, str(host.cache / "file.wav"))
        os.unlink(host.cache / "file.wav")
        os.symlink(outside / "ctx.wav", host.cache / "file.wav")
    finally:
        gate.set()
    address, reason = error_of(client.until("done", 2), 2)
    assert "outside the host's folders" in reason
    assert not list((host.session / "takes").glob("take-*"))


@pytest.mark.parametrize("swap", ["folder", "file"])
def test_a_swap_between_the_check_and_the_open_is_not_followed(tmp_path, swap):
    """The race inside a read: the path resolves inside, then a folder on it (or the file) is
    swapped for a symbolic link before the open. The open walks from the folder without
    following links, so it refuses instead of reading outside."""
    from sideman.plugin_host.paths import FolderPolicy, PathRefused

    cache, outside = tmp_path / "cache", tmp_path / "outside"
    (cache / "sub").mkdir(parents=True)
    outside.mkdir()
    (cache / "sub" / "ctx.wav").write_bytes(b"inside")
    (outside / "ctx.wav").write_bytes(b"outside")
    policy = FolderPolicy(cache)
    real_check = policy.check

    def check_then_swap(path):
        resolved = real_check(path)
        if swap == "folder":
            os.rename(cache / "sub", cache / "sub-old")
            os.symlink(outside, cache / "sub")
        else:
            os.unlink(cache / "sub" / "ctx.wav")
            os.symlink(outside / "ctx.wav", cache / "sub" / "ctx.wav")
        return resolved
    policy.check = check_then_swap
    with pytest.raises(PathRefused, match="symbolic link"):
        policy.open(cache / "sub" / "ctx.wav")
    policy.check = real_check
    with pytest.raises(PathRefused, match="outside"):
        policy.open(cache / "sub" / "ctx.wav")


def test_the_style_path_is_checked_when_used_not_only_when_set(start, tmp_path):
    host = start()
    client = Client(host)
    client.hello("bass")
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.full((48000, 2), 0.5, np.float32), 48000)
    style = host.cache / "style.wav"
    sf.write(style, np.zeros((48000, 2), np.float32), 48000)
    client.send("/sideman/bass/style", 1, str(style), types="is")
    assert client.recv()[1] == [1, "style"]
    os.unlink(style)
    os.symlink(outside, style)
    client.send("/sideman/bass/generate", 2, "", 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
    address, (req, reason) = client.recv()
    assert address == "/sideman/bass/error" and req == 2 and "outside the host's folders" in reason
    # swapped after the request was queued: refused when read
    os.unlink(style)
    sf.write(style, np.zeros((48000, 2), np.float32), 48000)
    gate = block_worker(host)
    try:
        _queued_generate(host, client, 3, "")
        os.unlink(style)
        os.symlink(outside, style)
    finally:
        gate.set()
    address, reason = error_of(client.until("done", 3), 3)
    assert "outside the host's folders" in reason
    assert not list((host.session / "takes").glob("take-*"))


def test_only_regular_files_are_read(start):
    host = start()
    client = Client(host)
    client.hello("bass")
    os.mkfifo(host.cache / "fifo.wav")
    (host.cache / "folder.wav").mkdir()
    for req, name in enumerate(("fifo.wav", "folder.wav"), 1):
        client.send("/sideman/bass/generate", req, str(host.cache / name), 1.0, 0.0, 120.0, 4, 48000,
                    types=GENERATE)
        address, (r, reason) = client.recv()
        assert address.endswith("/error") and r == req and "not a regular file" in reason
    for req, path in enumerate(("/etc/passwd", "/proc/self/environ", "/dev/zero", str(host.cache)), 3):
        client.send("/sideman/bass/generate", req, path, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        address, (r, reason) = client.recv()
        assert address.endswith("/error") and r == req and ("outside" in reason or "not a file" in reason)


def test_input_files_are_bounded_and_finite(start):
    """A context longer than the input limit, at an absurd sample rate, or holding NaN is
    refused when read, before the engine sees it."""
    host = start(max_input_seconds=2.0)
    client = Client(host)
    client.hello("bass")
    sf.write(host.cache / "long.wav", np.zeros((3 * 48000, 2), np.float32), 48000)
    sf.write(host.cache / "rate.wav", np.zeros((1000, 2), np.float32), 2_000_000)
    bad = np.zeros((48000, 2), np.float32)
    bad[10] = np.nan
    sf.write(host.cache / "nan.wav", bad, 48000, subtype="FLOAT")
    for req, (name, fragment) in enumerate((("long.wav", "longer than the host's limit"),
                                            ("rate.wav", "sample rate 2000000"),
                                            ("nan.wav", "NaN or infinite")), 1):
        client.send("/sideman/bass/generate", req, str(host.cache / name), 1.0, 0.0, 120.0, 4, 48000,
                    types=GENERATE)
        address, reason = error_of(client.until("done", req), req)
        assert address == "/sideman/bass/error" and fragment in reason, reason
    assert not list((host.session / "takes").glob("take-*"))


# ------------------------------------------------------------------ 6: numbers

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("verb, args, types, fragment", [
    ("generate", ("", 1.0, NAN, 120.0, 4, 48000), "sfffii", "'anchor_ppq' must be a finite number"),
    ("generate", ("", 1.0, INF, 120.0, 4, 48000), "sfffii", "'anchor_ppq' must be a finite number"),
    ("generate", ("", 1.0, -INF, 120.0, 4, 48000), "sfffii", "'anchor_ppq' must be a finite number"),
    ("generate", ("", 1.0, 0.0, INF, 4, 48000), "sfffii", "'bpm' must be a finite number"),
    ("generate", ("", 1.0, 0.0, NAN, 4, 48000), "sfffii", "'bpm' must be a finite number"),
    ("generate", ("", 1.0, 0.0, -120.0, 4, 48000), "sfffii", "'bpm' must be greater than 0"),
    ("generate", ("", NAN, 0.0, 120.0, 4, 48000), "sfffii", "'seconds' must be a finite number"),
    ("generate", ("", 1.0, 0.0, 120.0, 0, 48000), "sfffii", "'beats_per_bar' must be within"),
    ("generate", ("", 1.0, 0.0, 120.0, 4, 0), "sfffii", "'sample_rate' must be within"),
    ("seed", (-1,), "i", "'seed' must be within 0..2147483647"),
    ("seed", (-2**31,), "i", "'seed' must be within"),
    ("guidance", (NAN, 1.0), "ff", "'context' must be a finite number"),
    ("guidance", (1.0, INF), "ff", "'clap' must be a finite number"),
    ("steps", (0,), "i", "'steps' must be within"),
    ("take/select", ("../../etc/passwd",), "s", "'take' must be a take id"),
])
def test_numbers_are_checked_at_the_boundary_and_tied_to_the_request(start, verb, args, types, fragment):
    host = start()
    client = Client(host)
    client.hello("bass")
    client.send(f"/sideman/bass/{verb}", 9, *args, types="i" + types)
    address, (req, reason) = client.recv()
    assert address == "/sideman/bass/error" and req == 9 and fragment in reason, reason
    assert host.instances.state("bass").seed == 0
    client.send("/sideman/bass/status", 10, types="i")
    assert client.recv()[1][:3] == [10, "idle", 0]


def test_sidecars_are_strict_json(tmp_path, start):
    store = TakeStore(tmp_path / "s")
    with pytest.raises(ValueError):
        store.write("x", np.zeros((2, 10), np.float32), 48000, NAN, {"prompt": "a"})
    assert not list(store.folder.iterdir())
    host = start()
    client = Client(host)
    client.hello("bass")
    client.send("/sideman/bass/generate", 1, "", 1.0, 1.5, 120.0, 4, 48000, types=GENERATE)
    path = client.until("done", 1)[-1][1][2]

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    sidecar = json.loads(Path(path).with_suffix(".json").read_text(), parse_constant=refuse)
    assert sidecar["anchor_ppq"] == 1.5


# ------------------------------------------------------------------ 7: a duplicated 64-character id

def test_a_duplicated_64_character_id_is_renamed_within_the_grammar(start):
    host = start()
    a, b = Client(host), Client(host)
    long_id = "sideman-" + "f" * 56
    assert a.hello(long_id) == long_id
    renamed = b.hello(long_id)
    assert renamed != long_id and len(renamed) == 64 and renamed.endswith("-2")
    b.send(f"/sideman/{renamed}/status", 3, types="i")
    assert b.recv() == (f"/sideman/{renamed}/status", [3, "idle", 0, "", 0, 0])
    c = Client(host)
    third = c.hello(long_id)
    assert third.endswith("-3") and len(third) == 64 and third != renamed


# ------------------------------------------------------------------ 8: temporary files

def test_start_sweeps_temporary_files_and_says_so(engine, tmp_path, caplog):
    session = tmp_path / "session"
    (session / "tmp" / "sideman-pyo-abc").mkdir(parents=True)
    (session / "tmp" / "sideman-pyo-abc" / "out.wav").write_bytes(b"x" * 1000)
    (session / "takes").mkdir()
    (session / "takes" / ".take-1.wav.a1b2.tmp").write_bytes(b"")  # killed at the temp file's open
    (session / "instances").mkdir()
    (session / "instances" / ".bass.json.c3d4.tmp").write_bytes(b"{")
    with caplog.at_level(logging.INFO, "sideman.host"):
        host = Host(engine, session, tmp_path / "cache", port=0)
    host.stop()
    assert list((session / "tmp").iterdir()) == []
    assert list((session / "takes").iterdir()) == [] and list((session / "instances").iterdir()) == []
    for name in ("sideman-pyo-abc", ".take-1.wav.a1b2.tmp", ".bass.json.c3d4.tmp"):
        assert name in caplog.text


def test_post_processing_keeps_its_temporary_files_in_the_session(start, tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    host = start()
    seen = []
    real = tempfile.TemporaryDirectory

    def spy(*args, **kw):
        seen.append(kw.get("dir"))
        return real(*args, **kw)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    client = Client(host)
    client.hello("bass")
    client.send("/sideman/bass/generate", 1, write_context(host, 1.0), 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
    assert client.until("done", 1)[-1][0].endswith("/done")
    assert seen and all(Path(d) == host.tmp for d in seen)
    assert list(system_tmp.iterdir()) == [] and list(host.tmp.iterdir()) == []


# ------------------------------------------------------------------ 10: limits

def test_instances_are_bounded(start):
    host = start(max_instances=3)
    client = Client(host)
    for i in range(3):
        assert client.hello(f"i{i}") == f"i{i}"
    client.send("/sideman/hello", 9, "i3", types="is")
    address, (req, reason) = client.recv()
    assert address == "/sideman/error" and req == 9 and "at most 3 instances" in reason
    assert client.hello("i0") == "i0"  # a known instance is always welcome
    assert len(list((host.session / "instances").glob("*.json"))) == 3


def test_queued_jobs_are_bounded_in_total_and_per_instance(start):
    host = start(max_queued=2, max_queued_per_instance=2)
    a, b, c = Client(host), Client(host), Client(host)
    for client, name in ((a, "a"), (b, "b"), (c, "c")):
        client.hello(name)
    ctx = write_context(host, 1.0)
    gate = block_worker(host)
    try:
        a.send("/sideman/a/generate", 1, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        assert a.recv()[1] == [1, "generate"]
        b.send("/sideman/b/generate", 2, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        assert b.recv()[1] == [2, "generate"]
        c.send("/sideman/c/generate", 3, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        address, (req, reason) = c.recv()
        assert address == "/sideman/c/error" and req == 3 and "queue is full" in reason
        assert ping(c)[2] == 2
        b.send("/sideman/b/cancel", 4, types="i")
        assert ("/sideman/b/error", [2, "cancelled"]) in b.until("ack", 4)
        # a may hold two: its second waits beside the first, a third supersedes the first
        a.send("/sideman/a/generate", 5, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        assert a.recv()[1] == [5, "generate"]
        a.send("/sideman/a/generate", 6, ctx, 1.0, 0.0, 120.0, 4, 48000, types=GENERATE)
        replies = a.until("ack", 6)
        assert ("/sideman/a/error", [1, "superseded by request 6"]) in replies
        assert ping(a)[2] == 2
        a.send("/sideman/a/cancel", 7, types="i")
        a.until("ack", 7)
    finally:
        gate.set()


def bundle(*datagrams: bytes) -> bytes:
    builder = OscBundleBuilder(IMMEDIATELY)
    for d in datagrams:
        builder.add_content(osc_message_from(d))
    return builder.build().dgram


def osc_message_from(d: bytes):
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_message import OscMessage
    return OscBundle(d) if d.startswith(b"#bundle") else OscMessage(d)


def drain(client: Client, quiet: float = 0.5) -> list:
    out = []
    client.sock.settimeout(quiet)
    try:
        while True:
            out.append(osc.parse_datagram(client.sock.recvfrom(osc.MAX_DATAGRAM)[0])[0])
    except socket.timeout:
        return out


def test_a_bundle_draws_at_most_the_limit_of_replies(start):
    host = start(max_messages=16)
    client = Client(host)
    client.hello("bass")
    status = [message("/sideman/bass/status", i, types="i") for i in range(17)]
    client.send_raw(bundle(*status))
    ((address, (req, reason)),) = drain(client)
    assert address == "/sideman/error" and "more than 16 messages" in reason
    client.send_raw(bundle(*status[:16]))
    assert sorted(p[0] for _, p in drain(client)) == list(range(16))
    nested = message("/sideman/bass/status", 1, types="i")
    for _ in range(10):
        nested = bundle(nested)
    client.send_raw(nested)
    ((address, (req, reason)),) = drain(client)
    assert address == "/sideman/error" and "nested" in reason
    # The probe's 64-KB bundle: one reply.
    big = bundle(*[message("/sideman/bass/status", i, types="i") for i in range(1800)])
    assert len(big) < osc.MAX_DATAGRAM
    client.send_raw(big)
    assert len(drain(client)) == 1
    assert ping(client)[1] == "idle"


def test_a_host_beyond_loopback_warns_that_it_has_no_authentication(engine, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "sideman.host"):
        host = Host(engine, tmp_path / "s", tmp_path / "c", host="0.0.0.0", port=0)
    host.stop()
    assert "no authentication" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "sideman.host"):
        Host(engine, tmp_path / "s", tmp_path / "c", port=0).stop()
    assert "no authentication" not in caplog.text
