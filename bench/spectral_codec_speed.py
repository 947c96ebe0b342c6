"""Spectral codec speed through the ONNX engine's path (numpy + onnxruntime, no torch at run
time): encode plus decode of a 10-s stereo stem, each stage timed. The codec issue's target
is encode + decode at most 0.5 s on this CPU.

    python bench/spectral_codec_speed.py                       # random-init 'small'
    python bench/spectral_codec_speed.py --checkpoint runs/codec/v5p-small/checkpoint.pt --threads 2
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="spectral codec training checkpoint (default: random 'small')")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--int8", action="store_true", help="time the int8 variants")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from sideman.export.spectral_codec_parts import export_codec
    from sideman.models.spectral_codec import CODEC_PRESETS, SpectralCodec
    from sideman.numerics import spectral_codec as rt
    from sideman.numerics.phase import integrate_phase, peak_deviation
    from sideman.numerics.spectral import istft
    from sideman.training.codec_training import load_codec

    model = load_codec(args.checkpoint) if args.checkpoint else SpectralCodec(CODEC_PRESETS["small"]).eval()
    c = model.config
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    suffix = "_int8" if args.int8 else ""
    with tempfile.TemporaryDirectory() as tmp:
        export_codec(model, tmp, int8=args.int8)
        sessions = {n: ort.InferenceSession(str(Path(tmp) / f"{n}{suffix}.onnx"), options,
                                            providers=["CPUExecutionProvider"]) for n in ("encoder", "decoder")}
    run = {n: (lambda feeds, s=s: s.run(None, feeds)[0]) for n, s in sessions.items()}
    cfg = rt.SpectralCodecConfig(c.latent_channels, c.latent_hop, c.n_fft, c.hop, c.analysis_ffts)
    rng = np.random.default_rng(0)
    n = int(args.seconds * 48_000)
    t = np.arange(n) / 48_000
    audio = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal((2, n)))[None].astype(np.float32)
    padded = np.zeros((1, 2, cfg.padded_length(n)), np.float32)
    padded[..., :n] = audio
    stages = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        stages.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(args.repeats + 1):  # the first round warms the sessions up
        feats = timed("features (numpy STFTs)", lambda: rt.features(padded, cfg.analysis_ffts, cfg.hop))
        z = timed("encoder (onnxruntime)", lambda: run["encoder"]({"features": feats}))
        log_mag = timed("decoder (onnxruntime)", lambda: run["decoder"]({"latents": z}))
        mag = np.exp(np.minimum(log_mag[0].astype(np.float64), rt.MAX_LOG_MAGNITUDE))
        dev = timed("phase: peak deviations", lambda: peak_deviation(mag))
        phase = timed("phase: integration", lambda: integrate_phase(dev, cfg.n_fft, cfg.hop))
        timed("inverse STFT", lambda: istft(mag * np.exp(1j * phase), cfg.n_fft, cfg.hop, n))
    print(f"spectral codec {'(checkpoint ' + str(args.checkpoint) + ')' if args.checkpoint else '(random small)'}, "
          f"{args.seconds:g} s stereo, {args.threads} threads{', int8' if args.int8 else ''}; "
          f"median of {args.repeats} runs after one warm-up")
    total = 0.0
    for name, times in stages.items():
        median = float(np.median(times[1:]))
        total += median
        print(f"  {name:28s} {median * 1000:8.1f} ms")
    print(f"  {'encode + decode':28s} {total * 1000:8.1f} ms  (target <= 500 ms)")
    del torch


if __name__ == "__main__":
    main()
