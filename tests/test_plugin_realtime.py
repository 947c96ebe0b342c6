"""The realtime contract of the built plugin, checked on the real binary in a real host.

DawDreamer renders a session through the Sideman VST3 under gdb while a take plays and the
sidechain is captured. Breakpoints on SidemanAudioProcessor::processBlock mark the audio thread's
time inside it; breakpoints on the C library's allocation, locking, blocking, clock, I/O and
socket entry points (malloc, free, pthread_mutex_lock, nanosleep, clock_gettime, write, sendto,
...) record every call made on that thread while it is inside processBlock. The test fails if
there is any. A positive control counts TakePlayer::process and CaptureBuffer::push the same
way: they must be seen in every block, which proves the scoping sees the calls it should.

The take comes from a stand-in for the Sideman host (a few lines of OSC in the script: hello ->
welcome, generate -> done with a noise WAV): generation is not what is checked here. Needs gdb.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from plugin_files import ROOT, VST3


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VST3.exists() and not os.environ.get("CI"),
                       reason=f"the plugin is not built ({VST3}): run scripts/build-plugin.sh"),
    pytest.mark.skipif(shutil.which("gdb") is None and not os.environ.get("CI"), reason="gdb is not installed"),
]
if not os.environ.get("CI"):
    pytest.importorskip("dawdreamer")

RENDER = textwrap.dedent('''
    import os, socket, sys, tempfile, threading, time
    from pathlib import Path
    import numpy as np
    import soundfile as sf
    import dawdreamer as daw
    from sideman.plugin_host import osc_protocol as osc

    VST3, RATE, BLOCK = sys.argv[1], 48000, 512
    folder = Path(tempfile.mkdtemp(prefix="sideman-rt-"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    connected = threading.Event()  # the plugin asks for the models once it has its welcome
    asked = threading.Event()      # the plugin's generate request arrived

    def stand_in_host():
        while True:
            try:
                data, source = sock.recvfrom(osc.MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                return
            for address, params in osc.parse_datagram(data):
                instance, verb = osc.split_address(address)
                if verb == "hello":
                    sock.sendto(osc.encode(f"/sideman/{params[1]}/welcome", params[0], params[1], "ok",
                                           "stand-in", "none", RATE), source)
                elif verb == "models":
                    connected.set()
                elif verb == "status":  # the keep-alive: a silent host is dropped after 12 s
                    sock.sendto(osc.encode(f"/sideman/{instance}/status", params[0], "idle", 0, "", 0, 0), source)
                elif verb == "generate":
                    asked.set()
                    path = folder / "take-00000000000000aa.wav"
                    noise = 0.1 * np.random.default_rng(0).standard_normal((10 * RATE, 2))
                    sf.write(path, noise.astype(np.float32), RATE, subtype="FLOAT")
                    sock.sendto(osc.encode(f"/sideman/{instance}/done", params[0], path.stem, str(path),
                                           float(params[3])), source)

    threading.Thread(target=stand_in_host, daemon=True).start()
    os.environ["SIDEMAN_HOST_PORT"] = str(sock.getsockname()[1])
    os.environ["SIDEMAN_HOST_CACHE"] = str(folder / "context")
    engine = daw.RenderEngine(RATE, BLOCK)
    engine.set_bpm(120.0)
    n = RATE * 8
    main = engine.make_playback_processor("main", np.zeros((2, n), np.float32))
    side = engine.make_playback_processor("side", (0.1 * np.random.default_rng(1).standard_normal((2, n))).astype(np.float32))
    plugin = engine.make_plugin_processor("sideman", VST3)
    engine.load_graph([(main, []), (side, []), (plugin, ["main", "side"])])
    if not connected.wait(60):  # the plugin says hello and is welcomed (slow on a busy machine)
        sys.exit("the plugin never connected")
    press = np.zeros(RATE * 2, np.float32)
    press[-4 * BLOCK:] = 1.0
    plugin.set_automation(0, press)
    engine.render(2.0)  # one bar of context, then Generate
    plugin.set_automation(0, np.zeros(2, np.float32))
    # The press reaches the plugin's message thread asynchronously, and the take is anchored at
    # the transport position it then reads: wait for the request before rendering on, or the
    # anchor lands after the end of every render (each starts at 0) and the take never sounds.
    if not asked.wait(60):
        sys.exit("the plugin never asked for a take")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        engine.render(4.0)
        if np.abs(engine.get_audio()).max() > 0.05:
            break
        time.sleep(0.2)
    else:
        sys.exit("the take never played")
    os.getppid()          # marker for the debugger: the checked render starts
    engine.render(6.0)    # capture + the take playing from bar 1 on
    os.getppid()          # marker: the checked render is over
    out = engine.get_audio()
    print("RENDER peak", float(np.abs(out).max()), flush=True)
    sock.close()
''')

GDB = textwrap.dedent('''
    import gdb
    for command in ("set pagination off", "set confirm off", "set breakpoint pending on",
                    "set print thread-events off", "set print inferior-events off",
                    "handle SIGPIPE nostop noprint pass"):
        gdb.execute(command)
    FORBIDDEN = ["malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign",
                 "pthread_mutex_lock", "pthread_mutex_trylock", "pthread_mutex_timedlock",
                 "pthread_cond_wait", "pthread_cond_timedwait", "pthread_cond_signal", "pthread_cond_broadcast",
                 "pthread_rwlock_rdlock", "pthread_rwlock_wrlock", "pthread_spin_lock", "sem_wait", "sem_post",
                 "sem_timedwait", "nanosleep", "clock_nanosleep", "usleep", "sleep", "sched_yield",
                 "clock_gettime", "gettimeofday", "time",
                 "write", "read", "open", "open64", "openat", "close", "fopen", "fwrite", "fread", "fflush",
                 "printf", "fprintf", "puts", "syslog", "sendto", "recvfrom", "send", "recv", "poll", "select"]
    CONTROLS = ["sideman::bridge::TakePlayer::process", "sideman::bridge::CaptureBuffer::push"]
    state = {"depth": 0, "thread": None, "blocks": 0, "armed": False, "hits": {}, "controls": {}}

    class Leave(gdb.FinishBreakpoint):
        def stop(self):
            state["depth"] -= 1
            return False
        def out_of_scope(self):
            state["depth"] = max(0, state["depth"] - 1)

    class Enter(gdb.Breakpoint):
        def stop(self):
            if state["armed"]:
                state["depth"] += 1
                state["thread"] = gdb.selected_thread().global_num
                state["blocks"] += 1
                Leave(gdb.newest_frame(), internal=True)
            return False

    class Watch(gdb.Breakpoint):
        def __init__(self, name, table):
            super().__init__(function=name, qualified=True, internal=True)
            self.name, self.table = name, table
        def stop(self):
            if state["depth"] > 0 and gdb.selected_thread().global_num == state["thread"]:
                entry = self.table.setdefault(self.name, [set(), ""])
                entry[0].add(state["blocks"])  # the blocks in which it was called
                if not entry[1]:
                    entry[1] = gdb.execute("bt 8", to_string=True)
            return False

    class Marker(gdb.Breakpoint):
        def stop(self):
            if not state["armed"]:
                state["armed"] = True
                for name in FORBIDDEN:
                    Watch(name, state["hits"])
                for name in CONTROLS:
                    Watch(name, state["controls"])
            else:
                state["armed"] = False
                print(f"RTCHECK blocks {state['blocks']}")
                for name, (blocks, _) in state["controls"].items():
                    print(f"RTCHECK control {name} {len(blocks)}")
                for name, (blocks, trace) in state["hits"].items():
                    print(f"RTCHECK forbidden {name} in {len(blocks)} blocks")
                    print(trace)
            return False

    Enter("sideman::plugin::SidemanAudioProcessor::processBlock(juce::AudioBuffer<float>&, juce::MidiBuffer&)",
          internal=True)
    Marker(function="getppid", qualified=True, internal=True)
    gdb.execute("run")
''')


def test_process_block_makes_no_forbidden_calls_in_dawdreamer(tmp_path):
    (tmp_path / "render.py").write_text(RENDER)
    (tmp_path / "check.py").write_text(GDB)
    # sys.executable is the interpreter binary (or a virtual environment's link to it, which keeps
    # the environment's packages), never a launcher script that gdb could not run.
    proc = subprocess.run(["gdb", "-q", "-batch", "-x", str(tmp_path / "check.py"), "--args", sys.executable,
                           str(tmp_path / "render.py"), str(VST3)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert "RENDER peak" in out, out[-4000:]
    assert float(re.search(r"RENDER peak (\S+)", out).group(1)) > 0.05  # the take played in the checked render

    blocks = int(re.search(r"RTCHECK blocks (\d+)", out).group(1))
    assert blocks >= 6 * 48000 // 512  # every block of the six-second checked render
    controls = dict(re.findall(r"RTCHECK control (\S+) (\d+)", out))
    assert controls == {"sideman::bridge::TakePlayer::process": str(blocks),
                        "sideman::bridge::CaptureBuffer::push": str(blocks)}, out[-4000:]
    forbidden = re.findall(r"RTCHECK forbidden (\S+) in (\d+) blocks", out)
    assert not forbidden, "calls on the audio thread inside processBlock:\n" + out[out.index("RTCHECK forbidden"):][:4000]
