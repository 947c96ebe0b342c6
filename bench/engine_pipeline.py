"""Benchmark: the onnxruntime engine on a 10-s stereo stem, paper-size models, this machine.

    python bench/engine_pipeline.py [--ae-preset paper] [--bundle DIR] [--threads N]

Prints, for the `paper` DiT (random weights) inside a full bundle (autoencoder, house CLAP
and bridge of the chosen presets), and for an existing bundle given with --bundle (the
embedded default when it exists):
- seconds per generated second (real-time factor) of the whole pipeline and of each part
  (context encoding, CLAP text + bridge, 5 consistency steps, decoding);
- the DiT step in PyTorch eager vs onnxruntime (guidance pair = 2 passes, 117 frames), and
  its achieved GFLOP/s next to the machine's measured fp32 matmul throughput;
- 5-step consistency vs 30-step EDM Heun (59 evaluations) for the DiT;
- peak resident memory of the engine process (which never imports torch).
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

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from sideman.plugin_host.engine import OnnxEngine
    from sideman.plugin_host.engine_api import GenerationSettings
    from sideman.plugin_host.sampler import GuidedConsistency, SamplerSettings, sample_latents
    bundle, threads = sys.argv[1], int(sys.argv[2])
    e = OnnxEngine(bundle, intra_threads=threads)
    rng = np.random.default_rng(0)
    ctx = (0.1 * rng.standard_normal((2, 480000))).astype(np.float32)
    s = GenerationSettings(prompt="warm upright bass", seed=1)
    e.generate(ctx[:, :48000], 1.0, s)                      # warm-up (sessions, MiniLM)
    t = {}
    t0 = time.perf_counter(); lat = e.codec.encode(ctx[None]); t["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter(); clap = e.clap_condition("warm upright bass", None, 1)
    t["clap_bridge"] = time.perf_counter() - t0
    f = GuidedConsistency(e._step, lat, clap, 1.25, 1.25, lat.shape[1:], e.clap_dim)
    steps = []
    for _ in range(3):
        t0 = time.perf_counter(); f(lat, 2.0); steps.append(time.perf_counter() - t0)
    t["dit_step"] = min(steps)
    t0 = time.perf_counter()
    z = sample_latents(f, lat.shape, SamplerSettings(steps=5), np.random.default_rng(0))
    t["dit_5_steps"] = time.perf_counter() - t0
    t0 = time.perf_counter(); e.codec.decode(z, 480000); t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter(); e.generate(ctx, 10.0, s); t["pipeline"] = time.perf_counter() - t0
    t["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t["torch_imported"] = "torch" in sys.modules
    print(json.dumps(t))
""")


def engine_figures(bundle: Path, threads: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(threads)],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(name: str, t: dict) -> None:
    print(f"\n{name}: 10-s stereo stem, 5 steps with guidance (real-time factor = seconds per second)")
    for part in ("encode", "clap_bridge", "dit_5_steps", "decode", "pipeline"):
        print(f"  {part:<12} {t[part]:8.3f} s   RTF {t[part] / 10:.3f}")
    print(f"  one DiT step (2 passes) {t['dit_step'] * 1e3:.0f} ms; EDM Heun 30 steps = 59 steps "
          f"~ {59 * t['dit_step']:.1f} s vs 5 consistency steps {t['dit_5_steps']:.2f} s")
    print(f"  peak RSS of the engine process {t['peak_rss_mb']:.0f} MB (torch imported: {t['torch_imported']})")


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
    with tempfile.TemporaryDirectory(prefix="sideman-bench-") as tmp:
        t0 = time.perf_counter()
        bundle = export_bundle(Path(tmp) / "paper", Autoencoder(AE[args.ae_preset]).eval(), dit,
                               HouseClap(CLAP["small"]).eval(), ClapBridge(BRIDGE[args.bridge_preset]).eval(),
                               name="paper-random", check=False)
        print(f"exported the paper-size bundle in {time.perf_counter() - t0:.0f} s "
              f"({sum(p.stat().st_size for p in bundle.iterdir()) / 1e6:.0f} MB)")
        figures = engine_figures(bundle, args.threads)
        onnx_time = figures["dit_step"]  # measured in the torch-free engine process
        print("\nDiT step, paper preset, 117 frames, guidance pair (2 passes), fp32 CPU:")
        print(f"  PyTorch eager {eager * 1e3:.0f} ms ({flops / eager / 1e9:.1f} GFLOP/s), "
              f"onnxruntime {onnx_time * 1e3:.0f} ms ({flops / onnx_time / 1e9:.1f} GFLOP/s, "
              f"{flops / onnx_time / 1e9 / peak:.0%} of the matmul peak); onnxruntime is "
              f"{eager / onnx_time:.2f}x PyTorch")
        print("  (onnxruntime is timed in the engine's own process: in one process with torch the two "
              "thread pools compete)")
        report(f"paper DiT + {args.ae_preset} autoencoder + small CLAP + {args.bridge_preset} bridge", figures)
    default = args.bundle
    if default is None:
        from sideman.defaults import EMBEDDED_BUNDLE
        default = EMBEDDED_BUNDLE if (EMBEDDED_BUNDLE / "manifest.json").is_file() else None
    if default is not None:
        report(f"bundle {default}", engine_figures(default, args.threads))
    else:
        print("\n(no embedded default bundle yet: pass --bundle DIR to time one)")


if __name__ == "__main__":
    main()
