#!/usr/bin/env bash
# README command 2: install everything with the test extras, build the plugin, run the tests.
# (SIDEMAN_DAW=1 also installs Ardour for the opt-in end-to-end test, SIDEMAN_ARDOUR_E2E=1.)
set -euo pipefail
cd "$(dirname "$0")/.."
SIDEMAN_EXTRAS=dev SIDEMAN_DAW="${SIDEMAN_DAW:-0}" bash scripts/install.sh
bash scripts/build-plugin.sh   # the JUCE plugin that the end-to-end tests load in real hosts
exec .venv/bin/python -m pytest "$@"
