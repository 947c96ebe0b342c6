"""Checks an Ardour end-to-end export (run by scripts/ardour-e2e.sh): the exported master must
hold the take at the sample its anchor names.

    python scripts/ardour/check_export.py ATTEMPT_DIR

ATTEMPT_DIR holds host/session/takes/*.wav (+ .json with anchor_ppq and bpm) and export/*.wav.
The export is cross-correlated with the take; the peak must sit exactly at the anchor sample.
Exit 0 when it does.
"""
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

d = Path(sys.argv[1])
(take_path,) = sorted((d / "host" / "session" / "takes").glob("*.wav"))
meta = json.loads(take_path.with_suffix(".json").read_text())
exports = sorted((d / "export").rglob("*.wav"))
print("export:", [str(p) for p in exports])
mix, rate = sf.read(exports[0], dtype="float64", always_2d=True)
take, trate = sf.read(take_path, dtype="float64", always_2d=True)
assert rate == trate, (rate, trate)
anchor = int(round(meta["anchor_ppq"] * 60.0 / meta["bpm"] * rate))
print(f"take {take_path.name}: {take.shape[0]} frames @ {trate} Hz, anchor_ppq {meta['anchor_ppq']} "
      f"(bpm {meta['bpm']}) = sample {anchor}; export {mix.shape[0]} frames @ {rate} Hz")
m, t = mix.sum(1), take.sum(1)
n = 1 << int(np.ceil(np.log2(len(m) + len(t))))
xc = np.fft.irfft(np.fft.rfft(m, n) * np.conj(np.fft.rfft(t, n)), n)[:len(m)]
lag = int(np.argmax(np.abs(xc)))
seg = m[lag:lag + len(t)]
corr = float(np.dot(seg, t[:len(seg)]) / (np.linalg.norm(seg) * np.linalg.norm(t[:len(seg)]) + 1e-12))
print(f"cross-correlation peak at lag {lag} (expected {anchor}: {lag - anchor:+d} samples), "
      f"normalised correlation {corr:.3f}")
# The context is in the mix too: the take explains the mix only where it plays.
end = min(len(mix), anchor + len(take))
resid = mix[anchor:end] - take[:end - anchor]
before = f"{np.sqrt((mix[:anchor] ** 2).mean()):.4f}" if anchor > 0 else "(anchor at 0)"
print(f"peak |mix| {np.abs(mix).max():.4f}, peak |take| {np.abs(take).max():.4f}, "
      f"rms mix before anchor {before}, rms(mix - take) in the take {np.sqrt((resid ** 2).mean()):.4f}")
ok = lag == anchor and np.abs(take).max() > 1e-4
print("alignment:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
