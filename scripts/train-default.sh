#!/usr/bin/env bash
# How the embedded default bundle is made, on a 2-core CPU (docs/dit.md): a 1,000-song corpus,
# 20,480 band-codec latent pairs (+ 320 held out), the `medium` DiT in bf16 with EDM then
# consistency training, export beside the current default bundle's CLAP towers and bridge with
# the DiT's weights stored in float16, the note-level evaluation on the held-out demo songs,
# and the figures into the bundle's manifest. Every step resumes where it stopped: run it again
# after an interruption. `--install` then copies the bundle to sideman/default_bundle.
#   bash scripts/train-default.sh [RUN_FOLDER (default runs/big)] [--install]
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-runs/big}"
source .venv/bin/activate
CLAP=sideman/default_bundle
[ -f "$B/conditioning/manifest.json" ] || { mkdir -p "$B"; cp -r "$CLAP" "$B/conditioning"; }  # kept: the install replaces it
sideman corpus render --songs 1000 --seconds 30 --seed 0 --out "$B/corpus" --jobs 2
sideman -q dit-pairs --autoencoder band --clap-bundle "$B/conditioning" --data "$B/corpus" --out "$B/val" \
  --count 320 --split validation --seed 1 --jobs 2
sideman -q dit-pairs --autoencoder band --clap-bundle "$B/conditioning" --data "$B/corpus" --out "$B/pairs" \
  --count 20480 --jobs 2
sideman -q train dit --preset medium --bf16 --pairs "$B/pairs" --val-pairs "$B/val" --out "$B/dit" \
  --edm-steps 12000 --batch-size 16 --warmup 200 --val-every 250 --ckpt-every 250 --log-every 50
sideman -q train dit --kind consistency --init "$B/dit/dit_edm.pt" --preset medium --bf16 --pairs "$B/pairs" \
  --out "$B/dit" --consistency-steps 1000 --batch-size 16 --warmup 100 --ckpt-every 250 --log-every 50
[ -f "$B/bundle/manifest.json" ] || sideman export --autoencoder band --dit "$B/dit/dit_consistency.pt" \
  --conditioning-from "$B/conditioning" --dit-fp16-weights --name sideman-band-medium --out "$B/bundle"
sideman eval --bundle "$B/bundle" --data "$B/corpus" --settings ctx+clap_t,ctx+clap_b --space musicnn \
  --batches 2 --batch-size 128 --references 500 --out "$B/eval" --resume
python - "$B" <<'PY'
import json, sys
from pathlib import Path
from sideman.evaluation.notes import Transcriber
from sideman.evaluation.speed import time_generation
from sideman.evaluation.text_control import markdown, text_control
from sideman.plugin_host.engine import OnnxEngine
run = Path(sys.argv[1])
engine = OnnxEngine(run / "bundle")
if not (run / "eval" / "text_control.json").is_file():
    print(markdown(text_control(engine, run / "corpus", run / "eval", contexts=8, transcriber=Transcriber(),
                                progress=False)))
speed = time_generation(engine, seconds=10.0, steps=5)
(run / "eval" / "speed.json").write_text(json.dumps(speed, indent=2))
print("speed", speed)
PY
sideman bundle-figures --bundle "$B/bundle" --eval "$B/eval" --text-control "$B/eval/text_control.json" \
  --speed "$B/eval/speed.json"
if [ "${2:-}" = "--install" ]; then
  rm -rf sideman/default_bundle && cp -r "$B/bundle" sideman/default_bundle
  echo "installed $B/bundle as sideman/default_bundle"
fi
echo "done: $B/bundle, its evaluation in $B/eval"
