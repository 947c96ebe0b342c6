"""Benchmark: the onnxruntime engine on a 10-s stereo stem, paper-size models, this machine.

    python bench/engine_pipeline.py [--ae-preset paper] [--bundle DIR] [--threads N] [--int8]
                                    [--decode-mode sequential|parallel] [--decode-steps 1|2]

Prints, for the `paper` DiT (random weights) inside a full bundle (autoencoder, house CLAP
and bridge of the chosen presets), and for an existing bundle given with --bundle (the
embedded default when it exists):
- seconds per generated second (real-time factor) of the whole pipeline and of each part
  (context encoding, CLAP text + bridge, 5 consistency steps, decoding as the bundle says, and
  decoding in parallel with one step);
- the DiT step in PyTorch eager vs onnxruntime (guidance pair = 2 passes, 117 frames), and
  its achieved GFLOP/s next to the machine's measured fp32 matmul throughput;
- the work of each part in GFLOP (counted by torch's FlopCounterMode) and the fastest the
  pipeline could be on this machine at 100% of the fp32 matmul throughput;
- 5-step consistency vs 30-step EDM Heun (59 evaluations) for the DiT;
- the memory each engine takes (the process never imports torch);
- with --int8, the same pipeline with the int8 variants (dynamic quantisation), the fp32 and
  int8 engines timed in turns in one process (this machine's speed drifts by up to 1.6x).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dit_forward import dit_flops, matmul_gflops  # noqa: E402

from sideman.export.bundle import export_bundle  # noqa: E402
from sideman.export.dit_step import GuidedStep  # noqa: E402
from sideman.models.autoencoder import PRESETS as AE, Autoencoder  # noqa: E402
from sideman.models.bridge import PRESETS as BRIDGE, ClapBridge  # noqa: E402
from sideman.models.clap_house import PRESETS as CLAP, HouseClap  # noqa: E402
from sideman.models.consistency import ConsistencyPrecond  # noqa: E402
from sideman.models.dit import PRESETS as DIT, DiT  # noqa: E402

FRAMES = 117  # 10 s of latents
SECONDS = 10.0

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings
    from sideman.numerics.sampler import GuidedConsistency, SamplerSettings, sample_latents
    bundle, threads, precisions = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    def rss_mb(key):
        status = open("/proc/self/status").read()
        return int(status.split(key + ":")[1].split()[0]) / 1024
    rng = np.random.default_rng(0)
    ctx = (0.1 * rng.standard_normal((2, 480000))).astype(np.float32)
    s = GenerationSettings(prompt="warm upright bass", seed=1)
    x, c = rng.standard_normal((2, 1, 64, 117)).astype(np.float32)   # DiT inputs as PyTorch's
    clap_in = rng.standard_normal((1, 512)).astype(np.float32)
    engines, t = {}, {}
    for p in precisions:  # each engine warmed up at the timed shapes; its memory is the growth
        before = rss_mb("VmRSS")
        e = engines[p] = OnnxEngine(bundle, intra_threads=threads, precision=p)
        e.generate(ctx, 10.0, s)
        t[p] = {"memory_mb": rss_mb("VmRSS") - before, "decode_setting": f"{e.decode_mode}, {e.decode_steps} step(s)"}
    def timed(name, make, reps=3):
        # make(precision) -> the call to time; the engines take turns, so a machine whose speed
        # drifts treats them alike
        fns = {p: make(p) for p in engines}
        for p, fn in fns.items():
            fn()
        for _ in range(reps):
            for p, fn in fns.items():
                t0 = time.perf_counter(); fn(); dt = time.perf_counter() - t0
                t[p][name] = min(dt, t[p].get(name, dt))
    def dit_step(p):
        e = engines[p]
        g = GuidedConsistency(e._step, c, clap_in, 1.25, 1.25, x.shape[1:], e.clap_dim)
        return lambda: g(x, 2.0)
    timed("dit_step", dit_step, 5)
    timed("encode", lambda p: lambda: engines[p].codec.encode(ctx[None]))
    timed("clap_bridge", lambda p: lambda: engines[p].clap_condition("warm upright bass", None, 1))
    def five_steps(p):
        e = engines[p]
        lat, clap = e.codec.encode(ctx[None]), e.clap_condition("warm upright bass", None, 1)
        f = GuidedConsistency(e._step, lat, clap, 1.25, 1.25, lat.shape[1:], e.clap_dim)
        return lambda: sample_latents(f, lat.shape, SamplerSettings(steps=5), np.random.default_rng(0))
    timed("dit_5_steps", five_steps, 2)
    z = rng.standard_normal(engines[precisions[0]].codec.encode(ctx[None]).shape).astype(np.float32)
    def decode(p, steps=None, mode=None):
        e = engines[p]
        return lambda: e.codec.decode(z, 480000, steps=steps or e.decode_steps, mode=mode or e.decode_mode)
    timed("decode", decode, 2)
    timed("decode_parallel_1", lambda p: decode(p, 1, "parallel"), 2)
    timed("pipeline", lambda p: lambda: engines[p].generate(ctx, 10.0, s), 3)
    for p in precisions:
        t[p]["peak_rss_mb"] = rss_mb("VmHWM")  # the process's own peak (ru_maxrss counts the parent's)
        t[p]["torch_imported"] = "torch" in sys.modules
    print(json.dumps(t))
""")


def engine_figures(bundle: Path, threads: int, precisions: tuple[str, ...] = ("auto",)) -> dict:
    """precision -> figures, timed in one torch-free process where the engines take turns."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(threads), ",".join(precisions)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(name: str, t: dict) -> None:
    print(f"\n{name}: 10-s stereo stem, 5 steps with guidance (real-time factor = seconds per second)")
    for part, label in (("encode", "encode"), ("clap_bridge", "clap_bridge"), ("dit_5_steps", "dit_5_steps"),
                        ("decode", f"decode ({t['decode_setting']})"), ("decode_parallel_1", "decode (parallel, 1 step)"),
                        ("pipeline", "pipeline")):
        print(f"  {label:<34} {t[part]:8.3f} s   RTF {t[part] / SECONDS:.3f}")
    print(f"  one DiT step (2 passes) {t['dit_step'] * 1e3:.0f} ms alone, {t['dit_5_steps'] / 5 * 1e3:.0f} ms "
          f"within 5-step sampling; EDM Heun 30 steps = 59 steps "
          f"~ {59 * t['dit_step']:.1f} s vs 5 consistency steps {t['dit_5_steps']:.2f} s")
    print(f"  memory of the engine {t['memory_mb']:.0f} MB (process peak {t['peak_rss_mb']:.0f} MB; "
          f"torch imported: {t['torch_imported']})")


def counted_gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def codec_gflop(ae: Autoencoder, decode_mode: str, decode_steps: int) -> dict:
    """GFLOP of encoding and decoding 10 s, counted on 4 and 8 chunks and extended linearly
    (the work grows by whole chunks)."""
    cfg = ae.cfg
    target = FRAMES / cfg.chunk_latents

    def linear(fn) -> float:
        a, b = fn(4), fn(8)
        return a + (b - a) / 4 * (target - 4)

    def encode(chunks: int) -> float:
        return counted_gflop(lambda: ae.encode(torch.randn(1, 2, chunks * cfg.chunk_samples)))

    def decode(mode: str, steps: int):
        return lambda chunks: counted_gflop(
            lambda: ae.decode(torch.randn(1, cfg.latent_dim, chunks * cfg.chunk_latents), steps=steps, mode=mode))

    return {"encode": linear(encode), "decode": linear(decode(decode_mode, decode_steps)),
            "decode_parallel_1": linear(decode("parallel", 1))}


def flop_table(work: dict, peak: float, t: dict) -> None:
    print(f"\n  work per part (GFLOP, counted) and the time it needs at the fp32 matmul peak ({peak:.0f} GFLOP/s):")
    for part in ("encode", "dit_5_steps", "decode", "decode_parallel_1"):
        print(f"    {part:<18} {work[part]:8.0f} GFLOP  floor {work[part] / peak:6.2f} s   measured "
              f"{t[part]:6.2f} s ({work[part] / t[part]:.0f} GFLOP/s)")
    for decode in ("decode", "decode_parallel_1"):
        total = work["encode"] + work["dit_5_steps"] + work[decode]
        print(f"    encode + DiT + {decode}: {total:.0f} GFLOP -> real-time factor at least "
              f"{total / peak / SECONDS:.2f} on this machine in fp32")


def best(fn, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae-preset", default="paper", choices=tuple(AE))
    parser.add_argument("--bridge-preset", default="paper", choices=tuple(BRIDGE))
    parser.add_argument("--bundle", type=Path, help="also time this bundle (default: the embedded one)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--decode-mode", default="sequential", choices=("sequential", "parallel"),
                        help="the paper-size bundle's decoding (default: M2L2's sequential loop)")
    parser.add_argument("--decode-steps", type=int, default=2, choices=(1, 2))
    parser.add_argument("--int8", action="store_true", help="also time the int8 variants of the paper-size bundle")
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = matmul_gflops(torch.device("cpu"))
    print(f"fp32 matmul throughput (2048^3, torch): {peak:.1f} GFLOP/s")
    dit = ConsistencyPrecond(DiT(DIT["paper"])).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0, 0.02)
    step = GuidedStep(dit)
    x = torch.randn(1, 64, FRAMES)
    inputs = (x, torch.tensor([2.0]), torch.randn(1, 64, FRAMES), torch.randn(1, 512),
              torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([-0.25, 1.25]))
    with torch.no_grad():
        eager = best(lambda: step(*inputs))
    flops = dit_flops(DIT["paper"], FRAMES, 2)
    ae = Autoencoder(AE[args.ae_preset]).eval()
    work = {**codec_gflop(ae, args.decode_mode, args.decode_steps), "dit_5_steps": 5 * flops / 1e9}
    with tempfile.TemporaryDirectory(prefix="sideman-bench-") as tmp:
        t0 = time.perf_counter()
        bundle = export_bundle(Path(tmp) / "paper", ae, dit, HouseClap(CLAP["small"]).eval(),
                               ClapBridge(BRIDGE[args.bridge_preset]).eval(), name="paper-random",
                               check=False, int8=args.int8, decode_mode=args.decode_mode,
                               decode_steps=args.decode_steps)
        print(f"exported the paper-size bundle in {time.perf_counter() - t0:.0f} s "
              f"({sum(p.stat().st_size for p in bundle.iterdir()) / 1e6:.0f} MB)")
        runs = engine_figures(bundle, args.threads, ("fp32", "int8") if args.int8 else ("fp32",))
        figures = runs["fp32"]
        onnx_time = figures["dit_step"]  # measured in the torch-free engine process
        print("\nDiT step, paper preset, 117 frames, guidance pair (2 passes), fp32 CPU:")
        print(f"  PyTorch eager {eager * 1e3:.0f} ms ({flops / eager / 1e9:.1f} GFLOP/s), "
              f"onnxruntime {onnx_time * 1e3:.0f} ms ({flops / onnx_time / 1e9:.1f} GFLOP/s, "
              f"{flops / onnx_time / 1e9 / peak:.0%} of the matmul peak); onnxruntime is "
              f"{eager / onnx_time:.2f}x PyTorch")
        print("  (onnxruntime is timed in the engine's own process: in one process with torch the two "
              "thread pools compete)")
        name = f"paper DiT + {args.ae_preset} autoencoder + small CLAP + {args.bridge_preset} bridge"
        report(name + ", fp32", figures)
        flop_table(work, peak, figures)
        if args.int8:
            q = runs["int8"]
            report(name + ", int8 variants (timed in turns with fp32)", q)
            print(f"  int8 vs fp32: DiT step {figures['dit_step'] / q['dit_step']:.2f}x (PyTorch eager fp32 "
                  f"{eager / q['dit_step']:.2f}x), encode {figures['encode'] / q['encode']:.2f}x, decode "
                  f"{figures['decode'] / q['decode']:.2f}x, pipeline {figures['pipeline'] / q['pipeline']:.2f}x")
    default = args.bundle
    if default is None:
        from sideman.defaults import EMBEDDED_BUNDLE
        default = EMBEDDED_BUNDLE if (EMBEDDED_BUNDLE / "manifest.json").is_file() else None
    if default is not None:
        report(f"bundle {default}", engine_figures(default, args.threads)["auto"])
    else:
        print("\n(no embedded default bundle yet: pass --bundle DIR to time one)")


if __name__ == "__main__":
    main()
