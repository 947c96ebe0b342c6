#!/usr/bin/env bash
# README command 2: install everything with the training and test extras (and Ardour for the end-to-end
# test in a real DAW; SIDEMAN_DAW=0 skips it), build the plugin, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SIDEMAN_EXTRAS=train,dev SIDEMAN_DAW="${SIDEMAN_DAW:-1}" bash scripts/install.sh
bash scripts/build-plugin.sh   # the JUCE plugin that the end-to-end tests load in real hosts
exec .venv/bin/python -m pytest "$@"
