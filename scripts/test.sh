#!/usr/bin/env bash
# README command 2: install everything with the test extras, build the plugin, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SIDEMAN_EXTRAS=dev bash scripts/install.sh
bash scripts/build-plugin.sh   # the JUCE plugin that the end-to-end tests load in real hosts
exec .venv/bin/python -m pytest "$@"
