"""Sizing the evaluation protocol: APA of the real and random-pairing bounds in the house
CLAP and musicnn spaces, for several PCA sizes and batch sizes, from one set of embeddings
(no generation). Prints one line per (space, PCA axes, batch size): mean ± std over batches.

    python bench/eval_protocol.py --data runs/demo/corpus --bundle sideman/default_bundle --out runs/protocol
"""
import argparse
import json
from pathlib import Path

import numpy as np

from sideman.data.layouts import read_multitrack
from sideman.data.pairs import PairConfig, PairSampler
from sideman.evaluation.musicnn import MusicnnEmbedder
from sideman.training import evaluate as ev
from sideman.evaluation.eval_references import References


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--bundle", type=Path, default=Path("sideman/default_bundle"), help="its CLAP towers")
    p.add_argument("--out", type=Path, required=True, help="cache and apa_study.json")
    p.add_argument("--candidates", type=int, default=512)
    p.add_argument("--references", type=int, default=500)
    args = p.parse_args()
    proto = ev.Protocol(n_batches=args.candidates // 128, batch_size=128, n_ref=args.references)
    cfg = ev.EvalConfig(protocol=proto, seconds=10.0, notes=False)
    engines = ev.Engines(threads=1)
    sampler = PairSampler(read_multitrack(args.data, progress=False),
                          PairConfig(seconds=10.0, clap_seconds=10.0), "validation")
    rows = [r for r in ev.build_rows([], [], True) if r.setting in ("real", "random")]
    inputs = ev.RunInputs(sampler, rows, ev.EngineClapEmbedder(engines.get(args.bundle)), engines, None,
                          {"musicnn": MusicnnEmbedder()})
    e = ev.Evaluation(inputs, cfg, ev.Workspace(args.out / "cache"))
    gts = [e.ground_truth(b) for b in range(proto.n_batches)]
    arrays = e.references({str(k) for gt in gts for k in gt["keys"]})
    units = {r.setting: [e.row_batch(r, b) for b in range(proto.n_batches)] for r in rows}
    e.bar.close()
    results = {}
    for space in ("", "musicnn"):
        suffix = f"__{space}" if space else ""
        for pca in (None, 64, 32, 16, 8, 4):
            if pca and pca >= arrays["emb" + suffix].shape[1]:
                continue
            refs = References.of(arrays, proto.k, pca, space)
            for batch in (64, 128, 256, 512):
                if batch > args.candidates:
                    continue
                line = {}
                for setting, us in units.items():
                    y = np.concatenate([u["mix" + suffix] for u in us])
                    values = [refs.apa(y[i:i + batch]) for i in range(0, len(y), batch)]
                    line[setting] = (float(np.mean(values)), float(np.std(values)))
                key = f"{space or 'clap'} pca={pca} batch={batch}"
                results[key] = line
                print(key, " ".join(f"{s}: {m:.3f} ± {sd:.3f}" for s, (m, sd) in line.items()), flush=True)
    (args.out / "apa_study.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
