"""Writes sideman/examples/: the README demo's context, a song the corpus renderer makes
with a seed the training corpus never uses (training: seed 0; this: seed 4242).

    python scripts/make-example-context.py [--out sideman/examples]

The context is the mix of the song's drums, keys, guitar and lead; its bass and pads
stems are left out, so the demo has a part to add.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from sideman.data.audio import load_audio
from sideman.data.corpus import render_corpus

SEED, SECONDS, SONG = 4242, 12.0, "song_00000"
CONTEXT_ROLES = ("drums", "keys", "guitar", "lead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sideman" / "examples")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        report = render_corpus(1, SECONDS, SEED, Path(tmp), progress=False)
        if report.failed:
            raise SystemExit(f"rendering failed: {report.failed}")
        song = Path(tmp) / SONG
        meta = json.loads((song / "metadata.json").read_text())
        mix = sum(load_audio(song / meta["stems"][r]["file"]) for r in CONTEXT_ROLES)
    peak = float(np.abs(mix).max())
    if peak > 0.99:
        mix *= 0.99 / peak
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "context.flac", mix.T, 48000, subtype="PCM_16")
    info = {"source": f"corpus renderer, seed {SEED}, {SONG}, {SECONDS:g} s (not a training song)",
            "genre": meta["genre"], "tempo": meta["tempo"], "meter": meta["meter"], "key": meta["key"],
            "context_stems": {r: meta["stems"][r]["instrument"] for r in CONTEXT_ROLES},
            "prompt": "bass line", "seconds": SECONDS}
    (out / "context.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {out / 'context.flac'} and {out / 'context.json'}")


if __name__ == "__main__":
    main()
