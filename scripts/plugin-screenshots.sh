#!/usr/bin/env bash
# Screenshots of the plugin's window under Xvfb, taken by tests/test_plugin_ui.py as it clicks
# through the Standalone build: idle, generating (progress bar and queue position), the take
# browser with several takes, an error, the window reopened. Into $1 (default build/screenshots).
# Needs the plugin built (scripts/build-plugin.sh) and Xvfb + xdotool (scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-build/screenshots}")"
mkdir -p "$OUT"
SIDEMAN_SCREENSHOTS="$OUT" .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_plugin_ui.py
ls "$OUT"/*.png
