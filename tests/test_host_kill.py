"""kill -9 at each stage of writing a take, then a restart: no partial take, no temporary file.

A real host runs in a child process; the test asks it for a take over OSC, and the child
SIGKILLs itself at one stage of the job: while generating, while post-processing (pyo's
temporary folder), at the audio's temporary file (just opened, half written, renamed), at
the sidecar's (just opened, half written, renamed). The restarted host must then hold no
partial take and no temporary file, say in its log what it removed, and keep a take whose
sidecar was complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bundle_fixture import make_tiny_bundle
from sideman.plugin_host import osc_protocol as osc

CHILD = r'''
import os, signal, sys, tempfile, threading
from pathlib import Path

stage, bundle, session, cache = sys.argv[1:5]
import sideman.data.files as files
import sideman.plugin_host.postprocess as postprocess
import sideman.plugin_host.takes as takes
from sideman.plugin_host.engine import OnnxEngine
from sideman.plugin_host.host import Host


def die():
    os.kill(os.getpid(), signal.SIGKILL)


writing = threading.local()  # set while TakeStore.write runs: only its files are hooked
real_write = takes.TakeStore.write


def write(self, *args, **kw):
    writing.on = True
    try:
        return real_write(self, *args, **kw)
    finally:
        writing.on = False


takes.TakeStore.write = write
seen = {"mkstemp": 0, "fdopen": 0, "replace": 0}
which = {"audio": 1, "sidecar": 2}


def hooked(name, real, after):
    def call(*args, **kw):
        if not getattr(writing, "on", False):
            return real(*args, **kw)
        seen[name] += 1
        result = real(*args, **kw)
        after(seen[name], result)
        return result
    return call


part, _, step = stage.partition("-")
if stage == "generate":
    real_generate = OnnxEngine.generate
    def generate(self, context, seconds, settings, progress=None, controls=None):
        def killing(step, total):
            die()
        return real_generate(self, context, seconds, settings, killing)
    OnnxEngine.generate = generate
elif stage == "postprocess":  # pyo has rendered into its temporary folder, not yet read back
    real_read = postprocess.sf.read
    postprocess.sf.read = lambda path, *a, **k: die() if "sideman-pyo-" in str(path) else real_read(path, *a, **k)
elif step == "open":
    files.tempfile.mkstemp = hooked("mkstemp", files.tempfile.mkstemp,
                                    lambda n, r: die() if n == which[part] else None)
elif step == "half":
    class Half:
        def __init__(self, f):
            self.f = f
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            die()
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)
    real_fdopen = files.os.fdopen
    def fdopen(*args, **kw):
        f = real_fdopen(*args, **kw)
        if getattr(writing, "on", False):
            seen["fdopen"] += 1
            if seen["fdopen"] == which[part]:
                return Half(f)
        return f
    files.os.fdopen = fdopen
elif step == "renamed":
    files.os.replace = hooked("replace", files.os.replace, lambda n, r: die() if n == which[part] else None)
else:
    raise SystemExit(f"unknown stage {stage}")

host = Host(OnnxEngine(bundle, intra_threads=1), Path(session), Path(cache), port=0).start()
print(host.address[1], flush=True)
host.wait()
'''

STAGES = ["generate", "postprocess", "audio-open", "audio-half", "audio-renamed",
          "sidecar-open", "sidecar-half", "sidecar-renamed"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", check=False)


@pytest.fixture(scope="module")
def engine(bundle):
    from sideman.plugin_host.engine import OnnxEngine
    return OnnxEngine(bundle, intra_threads=1)


def run_child_until_killed(stage: str, bundle: Path, session: Path, cache: Path) -> None:
    """Start the host in a child, ask it for a take, and wait for it to kill itself."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, stage, str(bundle), str(session), str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), (line, proc.stderr.read() if proc.poll() is not None else "")
        address = ("127.0.0.1", int(line))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(30)
        sock.sendto(osc.encode("/sideman/hello", 1, "bass"), address)
        assert osc.parse_datagram(sock.recvfrom(osc.MAX_DATAGRAM)[0])[0][0] == "/sideman/bass/welcome"
        sf.write(cache / "ctx.wav", 0.1 * np.random.default_rng(0).standard_normal((48000, 2)).astype(np.float32),
                 48000)
        sock.sendto(osc.encode("/sideman/bass/generate", 2, str(cache / "ctx.wav"), 2.0, 4.0, 120.0, 4, 48000),
                    address)
        assert proc.wait(60) == -signal.SIGKILL, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def temporaries(session: Path) -> list[str]:
    return sorted(str(p.relative_to(session)) for p in session.rglob("*")
                  if p.name.endswith(".tmp") or p.parent.name == "tmp")


def visible_takes_are_whole(session: Path) -> list[str]:
    """The ids of the visible takes (sidecar present), each checked against its sidecar."""
    ids = []
    for sidecar in sorted((session / "takes").glob("take-*.json")):
        meta = json.loads(sidecar.read_text())
        audio = sidecar.with_suffix(".wav")
        assert hashlib.sha256(audio.read_bytes()).hexdigest() == meta["audio_sha256"], sidecar.name
        assert sf.info(str(audio)).frames == meta["frames"]
        ids.append(sidecar.stem)
    return ids


@pytest.mark.parametrize("stage", STAGES)
def test_a_kill_at_each_stage_leaves_no_partial_take_after_restart(stage, bundle, engine, tmp_path, caplog):
    from sideman.plugin_host.host import Host

    session, cache = tmp_path / "session", tmp_path / "cache"
    run_child_until_killed(stage, bundle, session, cache)

    left = temporaries(session)
    expected = {"generate": [], "postprocess": ["tmp/sideman-pyo-"], "audio-open": ["takes/.take-"],
                "audio-half": ["takes/.take-"], "audio-renamed": [], "sidecar-open": ["takes/.take-"],
                "sidecar-half": ["takes/.take-"], "sidecar-renamed": []}[stage]
    for prefix in expected:  # the kill left what the stage leaves: the restart has work to do
        assert any(name.startswith(prefix) for name in left), (stage, left)
    complete = stage == "sidecar-renamed"  # killed after the take became visible
    assert len(visible_takes_are_whole(session)) == (1 if complete else 0)

    with caplog.at_level(logging.INFO, "sideman.host"):
        host = Host(engine, session, cache, port=0)
    try:
        assert temporaries(session) == []
        assert list((session / "tmp").iterdir()) == []
        wavs = {p.stem for p in (session / "takes").glob("take-*.wav")}
        sidecars = {p.stem for p in (session / "takes").glob("take-*.json")}
        assert wavs == sidecars  # no audio without its sidecar, no sidecar without audio
        takes = visible_takes_are_whole(session)
        assert len(takes) == (1 if complete else 0)
        assert host.instances.state("bass").takes == takes
        if left or stage in ("audio-renamed", "sidecar-open", "sidecar-half"):
            assert "removed" in caplog.text, caplog.text
        for name in left:
            assert Path(name).parts[1] in caplog.text
    finally:
        host.stop()
