"""Benchmark: OSC request-to-acknowledge latency on loopback, the hand-off of a 10-s take,
and how fast the host answers a ping under a hostile stream.

    python bench/osc_latency.py [--requests 2000] [--hostile 2400]

Starts the real host on 127.0.0.1 with a tiny random-weight bundle, sends `prompt`
requests from a python-osc client and times each until its `ack` arrives (p50, p99, max).
The hand-off is timed as the host does it: write the take atomically into the session
(float WAV + sidecar), send `done`, and the client reading the file back. Last, the fuzz
test's stream (tests/test_server_fuzz.py: every verb with wrong types, int64 ids, NaN,
huge strings and bundles, hostile ids, ports and paths, random bytes) goes to a fresh
host in batches of 100, and each batch is followed by a /sideman/ping, timed until its
pong: the backlog of the batch plus the ping.
"""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bundle_fixture import make_tiny_bundle  # noqa: E402

from sideman.plugin_host import osc_protocol as osc  # noqa: E402
from sideman.plugin_host.engine import OnnxEngine  # noqa: E402
from sideman.plugin_host.host import Host, Limits  # noqa: E402
from test_server_fuzz import BATCH, fuzz  # noqa: E402


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--hostile", type=int, default=2400, help="datagrams of the hostile stream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        engine = OnnxEngine(make_tiny_bundle(tmp / "bundle", check=False), intra_threads=1)
        host = Host(engine, tmp / "session", tmp / "cache", port=0).start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(message("/sideman/hello", 0, "bench"), host.address)
        sock.recvfrom(osc.MAX_DATAGRAM)
        latencies = []
        for i in range(args.requests):
            data = message("/sideman/bench/prompt", i, f"warm upright bass {i}")
            t0 = time.perf_counter()
            sock.sendto(data, host.address)
            reply, _ = sock.recvfrom(osc.MAX_DATAGRAM)
            latencies.append(time.perf_counter() - t0)
            assert osc.parse_datagram(reply)[0][1] == [i, "prompt"]
        ms = np.array(latencies) * 1e3
        print(f"OSC request -> ack on loopback, {args.requests} requests: "
              f"p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, max {ms.max():.3f} ms")

        audio = (0.1 * np.random.default_rng(0).standard_normal((2, 10 * 48000))).astype(np.float32)
        times = []
        for i in range(20):
            t0 = time.perf_counter()
            take = host.takes.write("bench", audio + i, 48000, 0.0, {"prompt": "bench"})
            host.reply("bench", sock.getsockname(), "done", i, take.take_id, str(take.path), 0.0)
            _, (req, take_id, path, _) = osc.parse_datagram(sock.recvfrom(osc.MAX_DATAGRAM)[0])[0]
            back, _ = sf.read(path, dtype="float32")
            times.append(time.perf_counter() - t0)
            assert back.shape == (10 * 48000, 2)
        ms = np.array(times) * 1e3
        print(f"10-s stereo take hand-off (atomic write + done + read back), 20 runs: "
              f"p50 {np.percentile(ms, 50):.1f} ms, max {ms.max():.1f} ms "
              f"({audio.nbytes / 1e6:.1f} MB float32)")
        host.stop()

        root = tmp / "hostile"
        root.mkdir()
        host = Host(engine, root / "session", root / "cache", port=0,
                    limits=Limits(max_instances=8, max_take_seconds=4.0, max_input_seconds=10.0)).start()
        stats = fuzz(host, root, args.hostile, check_files=False)
        host.stop()
        ms = np.array(stats.pings) * 1e3
        print(f"ping after each batch of {BATCH} hostile datagrams, {stats.datagrams} in {stats.seconds:.1f} s: "
              f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms")


if __name__ == "__main__":
    main()
