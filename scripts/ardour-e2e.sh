#!/usr/bin/env bash
# Sideman end to end in a real DAW: Ardour 7 headless (ardour7-lua, Dummy backend).
#   bash scripts/ardour-e2e.sh [WORKDIR]        (SIDEMAN_E2E_PLUGIN=LV2 to use the LV2 bundle)
# 1. exports a tiny random-weight bundle and starts `sideman serve` on a free port;
# 2. runs scripts/ardour/sideman_e2e.lua: a session with two context tracks routed into a bus
#    carrying the Sideman plugin, rolls, presses Generate, waits for the take, exports the mix;
# 3. checks that the export contains the take at its anchor (cross-correlation, then residual).
# Exit 0 when every check passes. Needs: ardour7-lua (apt-get install ardour), the plugin built
# by scripts/build-plugin.sh, and the sideman package in $PYTHON (default: .venv/bin/python if
# present, else python3).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$(mktemp -d /tmp/sideman-ardour-e2e.XXXXXX)}"
DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"
cd "$ROOT"
PTYPE="${SIDEMAN_E2E_PLUGIN:-VST3}"
ART="$ROOT/build/plugin/SidemanPlugin_artefacts/Release"
command -v ardour7-lua >/dev/null || { echo "ardour7-lua not found (apt-get install ardour)"; exit 2; }
[ -d "$ART/VST3/Sideman.vst3" ] || { echo "plugin not built: bash scripts/build-plugin.sh"; exit 2; }
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
START=$(date +%s)
echo "work folder: $DIR"

# A private HOME so Ardour's config and plugin cache stay in the work folder; the plugin is
# found through ~/.vst3 (VST3) or LV2_PATH (LV2).
mkdir -p "$DIR/home/.vst3" "$DIR/lv2" "$DIR/host/cache/context" "$DIR/export"
ln -sfn "$ART/VST3/Sideman.vst3" "$DIR/home/.vst3/Sideman.vst3"
ln -sfn "$ART/LV2/Sideman.lv2" "$DIR/lv2/Sideman.lv2"

"$PYTHON" - "$DIR/host/bundle" <<'PY'
import sys
sys.path.insert(0, "tests")
from bundle_fixture import make_tiny_bundle
print("bundle:", make_tiny_bundle(sys.argv[1]))
PY
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PYTHON" -m sideman.cli serve --bundle "$DIR/host/bundle" --port "$PORT" --session "$DIR/host/session" \
    --cache "$DIR/host/cache" --threads 2 > "$DIR/host.log" 2>&1 &
HOST_PID=$!
trap 'kill $HOST_PID 2>/dev/null || true' EXIT
echo "host pid $HOST_PID on udp port $PORT"

# ardour7-lua reads Ardour's VST3 cache but does not scan: run Ardour's scanner once.
if [ "$PTYPE" = VST3 ]; then
    HOME="$DIR/home" LD_LIBRARY_PATH=/usr/lib/ardour7 /usr/lib/ardour7/ardour-vst3-scanner \
        "$DIR/home/.vst3/Sideman.vst3" 2>&1 | sed 's/^/vst3-scanner: /'
fi

set +e
HOME="$DIR/home" LV2_PATH="$DIR/lv2:/usr/lib/lv2" SIDEMAN_HOST_PORT="$PORT" \
SIDEMAN_HOST_CACHE="$DIR/host/cache/context" E2E_DIR="$DIR" E2E_PLUGIN_TYPE="$PTYPE" \
    timeout 300 ardour7-lua "$ROOT/scripts/ardour/sideman_e2e.lua" > "$DIR/ardour.log" 2>&1
RC=$?
set -e
grep -E "^E2E" "$DIR/ardour.log" || true
if [ $RC -ne 0 ] || grep -q "^E2E-FAIL" "$DIR/ardour.log" || ! grep -q "^E2E: done" "$DIR/ardour.log"; then
    echo "ardour7-lua did not finish (rc $RC); last lines of $DIR/ardour.log:"; tail -20 "$DIR/ardour.log"
    echo "host log:"; tail -20 "$DIR/host.log"; exit 1
fi

"$PYTHON" - "$DIR" <<'PY'
import json, sys
from pathlib import Path
import numpy as np, soundfile as sf
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
print(f"peak |mix| {np.abs(mix).max():.4f}, peak |take| {np.abs(take).max():.4f}, "
      f"rms mix before anchor {np.sqrt((mix[:anchor] ** 2).mean()):.4f}, rms(mix - take) in the take "
      f"{np.sqrt((resid ** 2).mean()):.4f}")
ok = lag == anchor and np.abs(take).max() > 1e-4
print("ARDOUR E2E:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
echo "took $(( $(date +%s) - START )) s"
