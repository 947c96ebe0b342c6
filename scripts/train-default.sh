#!/usr/bin/env bash
# How the embedded default bundle is made, on a 2-core CPU (docs/dit.md): a 1,000-song corpus,
# 20,480 band-codec latent pairs (+ 320 held out), the `medium` DiT in bf16 with EDM then
# consistency training, export beside the current default bundle's CLAP towers and bridge with
# the DiT's weights stored in float16, the note-level evaluation on the held-out demo songs,
# and the figures into the bundle's manifest. Every step resumes where it stopped: run it again
# after an interruption. `--install` then copies the bundle to sideman/default_bundle.
#   [PRESET=fine] [EDM_STEPS=8500] [CONSISTENCY_STEPS=500] bash scripts/train-default.sh [RUN_FOLDER (default runs/big)] [--install]
# The DiT preset (default `fine`) names the run's folders: RUN/dit-PRESET, bundle-PRESET, eval-PRESET.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-runs/big}"
P="${PRESET:-fine}"
source .venv/bin/activate
CLAP=sideman/default_bundle
[ -f "$B/conditioning/manifest.json" ] || { mkdir -p "$B"; cp -r "$CLAP" "$B/conditioning"; }  # kept: the install replaces it
sideman corpus render --songs 1000 --seconds 30 --seed 0 --out "$B/corpus" --jobs 2
sideman -q dit-pairs --autoencoder band --clap-bundle "$B/conditioning" --data "$B/corpus" --out "$B/val" \
  --count 320 --split validation --seed 1 --jobs 2
sideman -q dit-pairs --autoencoder band --clap-bundle "$B/conditioning" --data "$B/corpus" --out "$B/pairs" \
  --count 20480 --jobs 2
sideman -q train dit --preset "$P" --bf16 --pairs "$B/pairs" --val-pairs "$B/val" --out "$B/dit-$P" \
  --edm-steps "${EDM_STEPS:-8500}" --batch-size 16 --warmup 200 --val-every 250 --ckpt-every 250 --log-every 50
sideman -q train dit --kind consistency --init "$B/dit-$P/dit_edm.pt" --preset "$P" --bf16 --pairs "$B/pairs" \
  --out "$B/dit-$P" --consistency-steps "${CONSISTENCY_STEPS:-500}" --batch-size 16 --warmup 100 --ckpt-every 250 --log-every 50
[ -f "$B/bundle-$P/manifest.json" ] || sideman export --autoencoder band --dit "$B/dit-$P/dit_consistency.pt" \
  --conditioning-from "$B/conditioning" --dit-fp16-weights --name "sideman-band-$P" --out "$B/bundle-$P"
sideman eval --bundle "$B/bundle-$P" --data "$B/corpus" --settings ctx+clap_t,ctx+clap_b --space musicnn \
  --batches 2 --batch-size 128 --references 500 --out "$B/eval-$P" --resume
python - "$B/bundle-$P" "$B/corpus" "$B/eval-$P" <<'PY'
import json, sys
from pathlib import Path
from sideman.evaluation.notes import Transcriber
from sideman.evaluation.speed import time_generation
from sideman.evaluation.text_control import markdown, text_control
from sideman.plugin_host.engine import OnnxEngine
bundle, corpus, out = (Path(a) for a in sys.argv[1:4])
engine = OnnxEngine(bundle)
if not (out / "text_control.json").is_file():
    print(markdown(text_control(engine, corpus, out, contexts=8, transcriber=Transcriber(), progress=False)))
speed = time_generation(engine, seconds=10.0, steps=5)
(out / "speed.json").write_text(json.dumps(speed, indent=2))
print("speed", speed)
PY
sideman bundle-figures --bundle "$B/bundle-$P" --eval "$B/eval-$P" --text-control "$B/eval-$P/text_control.json" \
  --speed "$B/eval-$P/speed.json"
if [ "${2:-}" = "--install" ]; then
  rm -rf sideman/default_bundle && cp -r "$B/bundle-$P" sideman/default_bundle
  echo "installed $B/bundle-$P as sideman/default_bundle"
fi
echo "done: $B/bundle-$P, its evaluation in $B/eval-$P"
