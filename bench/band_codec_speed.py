"""Band codec speed (numerics.band_codec, numpy only: what the engine runs): encode plus
decode of a stereo stem, each stage timed. The codec issue's target is encode + decode of
10 s at most 0.5 s on this CPU.

    python bench/band_codec_speed.py [--seconds 10] [--pool 4] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from sideman.numerics.band_codec import BandCodec, BandCodecConfig
from sideman.numerics.phase import integrate_phase, peak_deviation
from sideman.numerics.spectral import istft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pool", type=int, default=4, help="STFT frames per latent frame")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    codec = BandCodec(BandCodecConfig(pool=args.pool))
    cfg = codec.cfg
    n = int(args.seconds * cfg.sample_rate)
    t = np.arange(n) / cfg.sample_rate
    rng = np.random.default_rng(0)
    audio = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal((2, n)))[None].astype(np.float32)
    stages: dict[str, list[float]] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        stages.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(args.repeats + 1):  # the first round warms caches up
        z = timed("encode", lambda: codec.encode(audio))
        mag = timed("decode: magnitudes", lambda: codec.decode_magnitude(z)[0])
        dev = timed("decode: peak deviations", lambda: peak_deviation(mag))
        phase = timed("decode: phase integration", lambda: integrate_phase(dev, cfg.n_fft, cfg.hop))
        rec = timed("decode: inverse STFT", lambda: istft(mag * np.exp(1j * phase), cfg.n_fft, cfg.hop,
                                                          cfg.padded_length(n)))
        for _ in range(cfg.level_passes):
            rec = timed("decode: level pass", lambda: codec._match_levels(rec, mag))
    print(f"band codec, hop {cfg.latent_hop}, {codec.latent_dim} channels; {args.seconds:g} s stereo; "
          f"median of {args.repeats} runs after one warm-up")
    total = 0.0
    for name, times in stages.items():
        median = float(np.median(times[1:]))
        total += median
        print(f"  {name:28s} {median * 1000:8.1f} ms")
    print(f"  {'encode + decode':28s} {total * 1000:8.1f} ms  (target <= 500 ms)")
    start = time.perf_counter()
    codec.decode(codec.encode(audio), length=n)
    print(f"  {'(one call of each, end to end)':28s} {(time.perf_counter() - start) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
