"""Benchmark: the built Sideman plugin's processBlock inside real plugin hosts, per block.

    python bench/plugin_process_block.py [--blocks 4000] [--block-size 512] [--sample-rate 48000]

Needs the plugin (scripts/build-plugin.sh) and the packages pedalboard and dawdreamer.

1. DawDreamer, transport playing, stereo context on the sidechain, a 60-second take loaded and
   playing: every block captures the sidechain and plays the take locked to the transport, the
   plugin's realistic work. DawDreamer renders a whole graph in one call, so the time per block
   is measured by rendering one block per call (DawDreamer restarts its transport at ppq 0 on
   every render and the take starts there, so each call is a playing block) and timing each call
   from Python: an upper bound on processBlock, as it includes DawDreamer's per-render work and
   the two source nodes (the same loop without the plugin is shown for comparison). Long renders
   (60 s, the take playing throughout) give the mean per block without the per-call overhead. The take comes from a stand-in for the Sideman host (a few lines of
   OSC below: hello -> welcome, generate -> done with a noise WAV), since generation is not what
   is measured here.
2. pedalboard: one process() call per block, with no transport (pedalboard has no play head), so
   the stopped case (capture + pass-through); the same loop around pedalboard's native Gain
   plugin is shown as the floor of pedalboard's per-call overhead.

Figures are wall-clock times on a shared machine at normal priority: the max includes
preemption. They are compared with the block's duration (block size / sample rate).
"""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from sideman.plugin_host import osc_protocol as osc

ROOT = Path(__file__).resolve().parents[1]
LONG_SECONDS = 60.0  # length of the take, and of the long renders
VST3 = Path(os.environ.get("SIDEMAN_PLUGIN_VST3",
                           ROOT / "build" / "plugin" / "SidemanPlugin_artefacts" / "Release" / "VST3" / "Sideman.vst3"))


class StandInHost:
    """Answers hello and generate like the Sideman host, with a noise take instead of a model."""

    def __init__(self, folder: Path, take_seconds: float):
        self.folder = folder
        self.take_seconds = take_seconds
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.takes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(osc.MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                break
            for address, params in osc.parse_datagram(data):
                instance, verb = osc.split_address(address)
                if verb == "hello":
                    self.sock.sendto(osc.encode(f"/sideman/{params[1]}/welcome", params[0], params[1], "ok",
                                                "stand-in", "none", 48000), source)
                elif verb == "generate":
                    req, _context, _seconds, anchor, _bpm, _beats, rate = params
                    path = self.folder / f"take-{self.takes:016x}.wav"
                    noise = np.random.default_rng(self.takes).standard_normal((int(self.take_seconds * rate), 2))
                    sf.write(path, (0.1 * noise).astype(np.float32), rate, subtype="FLOAT")
                    self.takes += 1
                    self.sock.sendto(osc.encode(f"/sideman/{instance}/done", req, path.stem, str(path),
                                                float(anchor)), source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def stats(times_ns: np.ndarray, budget_us: float) -> str:
    us = times_ns.astype(np.float64) / 1000.0
    parts = [f"{name} {np.percentile(us, q):8.1f} us ({100 * np.percentile(us, q) / budget_us:5.2f} %)"
             for name, q in (("p50", 50), ("p99", 99))]
    parts.append(f"max {us.max():8.1f} us ({100 * us.max() / budget_us:6.2f} %)")
    return "   ".join(parts)


def time_calls(fn, count: int) -> np.ndarray:
    out = np.empty(count, np.int64)
    for i in range(count):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out


def bench_dawdreamer(blocks: int, block: int, rate: float, budget_us: float) -> None:
    import dawdreamer as daw

    with tempfile.TemporaryDirectory(prefix="sideman-bench-") as tmp:
        stand_in = StandInHost(Path(tmp), take_seconds=LONG_SECONDS)
        os.environ["SIDEMAN_HOST_PORT"] = str(stand_in.port)
        os.environ["SIDEMAN_HOST_CACHE"] = str(Path(tmp) / "context")
        try:
            engine = daw.RenderEngine(rate, block)
            engine.set_bpm(120.0)
            n = int(rate * LONG_SECONDS)
            rng = np.random.default_rng(0)
            main = engine.make_playback_processor("main", np.zeros((2, n), np.float32))
            side = engine.make_playback_processor("side", (0.1 * rng.standard_normal((2, n))).astype(np.float32))
            plugin = engine.make_plugin_processor("sideman", str(VST3))
            generate = next(d["index"] for d in plugin.get_parameters_description() if d["name"] == "Generate")

            # Generate once without context (nothing has played): the stand-in answers with a take
            # anchored at ppq 0, which then plays from the first sample of every render.
            engine.load_graph([(main, []), (side, []), (plugin, ["main", "side"])])
            time.sleep(0.5)  # the plugin's worker says hello and is welcomed meanwhile
            press = np.ones(block, np.float32)
            plugin.set_automation(generate, press)
            engine.render(block / rate)
            plugin.set_automation(generate, np.zeros(1, np.float32))
            deadline = time.monotonic() + 20
            while stand_in.takes == 0 and time.monotonic() < deadline:
                engine.render(block / rate)
                time.sleep(0.05)
            if stand_in.takes == 0:
                raise SystemExit("the plugin never asked the stand-in host for a take")
            deadline = time.monotonic() + 20  # the worker reads, checks and hands over the take
            while time.monotonic() < deadline:
                engine.render(block / rate)
                if np.abs(engine.get_audio()).max() > 0:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit("the take never played")

            with_plugin = time_calls(lambda: engine.render(block / rate), blocks)
            long_with = time_calls(lambda: engine.render(LONG_SECONDS), 3)
            assert np.abs(engine.get_audio()[:, -block:]).max() > 0, "the take plays to the end"
            engine.load_graph([(main, []), (side, [])])  # the same sources, no plugin
            without = time_calls(lambda: engine.render(block / rate), blocks)
            long_without = time_calls(lambda: engine.render(LONG_SECONDS), 3)
        finally:
            stand_in.close()
    n_blocks = int(np.ceil((LONG_SECONDS * rate - 1) / block))
    print(f"DawDreamer, playing, sidechain captured, take playing ({blocks} renders of one block each):")
    print(f"  with the plugin:          {stats(with_plugin, budget_us)}")
    print(f"  the sources alone:        {stats(without, budget_us)}")
    print(f"  {LONG_SECONDS:.0f}-second renders ({n_blocks} blocks, best of 3): with the plugin "
          f"{long_with.min() / 1e3 / n_blocks:.2f} us per block for the whole graph "
          f"({100 * long_with.min() / 1e3 / n_blocks / budget_us:.3f} % of the block); the sources alone "
          f"{long_without.min() / 1e3 / n_blocks:.2f} us")
    print("  (each figure is the whole render call, so an upper bound on the plugin's processBlock; the "
          "difference between the two is within DawDreamer's own variation)")


def bench_pedalboard(blocks: int, block: int, rate: float, budget_us: float) -> None:
    import pedalboard

    os.environ["SIDEMAN_HOST_PORT"] = "9"  # discard port: nobody answers, audio passes through
    plugin = pedalboard.load_plugin(str(VST3))
    gain = pedalboard.Gain(0.0)
    audio = (0.1 * np.random.default_rng(1).standard_normal((2, block))).astype(np.float32)
    plugin.process(audio, rate, buffer_size=block, reset=True)
    gain.process(audio, rate, buffer_size=block, reset=True)
    sideman = time_calls(lambda: plugin.process(audio, rate, buffer_size=block, reset=False), blocks)
    native = time_calls(lambda: gain.process(audio, rate, buffer_size=block, reset=False), blocks)
    print(f"pedalboard, no transport (capture + pass-through), {blocks} process() calls of one block:")
    print(f"  Sideman VST3:             {stats(sideman, budget_us)}")
    print(f"  pedalboard Gain (floor):  {stats(native, budget_us)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=4000)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--sample-rate", type=float, default=48000.0)
    args = parser.parse_args()
    if not VST3.exists():
        raise SystemExit(f"no plugin at {VST3}: run scripts/build-plugin.sh")
    budget_us = args.block_size / args.sample_rate * 1e6
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; blocks of {args.block_size} samples at "
          f"{args.sample_rate / 1000:g} kHz: block duration {budget_us / 1000:.2f} ms (percentages are of that)")
    bench_dawdreamer(args.blocks, args.block_size, args.sample_rate, budget_us)
    bench_pedalboard(args.blocks, args.block_size, args.sample_rate, budget_us)


if __name__ == "__main__":
    main()
