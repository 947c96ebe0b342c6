"""Bridge core, realtime safety: the audio-thread calls allocate nothing, lock nothing, block on
nothing, read no clock and do no I/O -- checked by running them, not asserted.

shim/core/tests/rt_check.cpp is compiled here (through shim/core's CMake project, or straight
with the C++ compiler when CMake is missing) with interposers for libc's allocation, lock,
blocking, clock and I/O functions that count calls made while TakePlayer::process or
CaptureBuffer::push runs. It drives them through tempo changes, loops, seeks, stops,
crossfades, take swaps from a concurrent thread and a concurrently read capture ring. Its
self-test proves each kind of forbidden call is caught. The same scenarios then run under
ThreadSanitizer to check the lock-free hand-offs for data races.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the interposing check needs Linux/glibc")

CORE = Path(__file__).resolve().parents[1] / "shim" / "core"
SOURCES = [CORE / "tests" / "rt_check.cpp", *sorted((CORE / "src").glob("*.cpp"))]
CXX = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "c++"


def run(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def rt_check(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("bridge-core-build")
    if shutil.which("cmake"):
        run(["cmake", "-S", CORE, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DSIDEMAN_BRIDGE_RT_CHECK=ON"])
        run(["cmake", "--build", build, "--target", "bridge_rt_check", "-j", "2"])
        exe = build / "bridge_rt_check"
        assert (build / "libsideman_bridge_core.a").exists()  # the library a plugin links
    else:
        exe = build / "bridge_rt_check"
        run([CXX, "-std=c++17", "-O2", f"-I{CORE / 'include'}", *SOURCES, "-o", exe, "-pthread", "-ldl"])
    return exe


def test_audio_path_makes_no_allocation_lock_clock_or_io_call(rt_check):
    proc = run([rt_check, "20000"])
    lines = [line for line in proc.stdout.splitlines() if "audio-thread calls" in line]
    assert len(lines) == 3, proc.stdout  # two player scenarios (hard cuts, crossfade) and the capture
    for line in lines:
        calls = int(re.search(r"(\d+) audio-thread calls", line).group(1))
        counts = dict(re.findall(r"(\w+)=(\d+)", line))
        assert calls == 20000
        assert set(counts) == {"allocations", "frees", "locks", "blocking", "clock", "io"}, line
        assert all(v == "0" for v in counts.values()), line
    adopted = [int(n) for n in re.findall(r"(\d+) takes adopted while playing", proc.stdout)]
    assert len(adopted) == 2 and min(adopted) >= 10, proc.stdout  # take swaps really happened
    assert int(re.search(r"reader checked (\d+) regions", proc.stdout).group(1)) > 0
    assert proc.stdout.rstrip().endswith("rt_check: OK")


def test_check_catches_every_kind_of_forbidden_call(rt_check):
    proc = run([rt_check, "--self-test"])
    counts = dict(re.findall(r"(\w+)=(\d+)", proc.stdout))
    assert set(counts) == {"allocations", "frees", "locks", "blocking", "clock", "io"}, proc.stdout
    assert all(int(v) > 0 for v in counts.values()), proc.stdout


def test_lock_free_hand_offs_are_race_free_under_thread_sanitizer(tmp_path):
    exe = tmp_path / "rt_check_tsan"
    probe = subprocess.run([CXX, "-fsanitize=thread", "-x", "c++", "-", "-o", tmp_path / "probe"],
                           input="int main() { return 0; }", capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{CXX} cannot build with ThreadSanitizer: {probe.stderr.strip()[:200]}")
    run([CXX, "-std=c++17", "-O1", "-g", "-fsanitize=thread", "-Wno-tsan", "-DSIDEMAN_RT_NO_INTERPOSE",
         f"-I{CORE / 'include'}", *SOURCES, "-o", exe, "-pthread"])
    proc = subprocess.run([exe, "4000"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TSAN_OPTIONS": "halt_on_error=1 exitcode=66"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING: ThreadSanitizer" not in proc.stderr
    assert proc.stdout.rstrip().endswith("rt_check: OK")
