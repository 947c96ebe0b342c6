#!/usr/bin/env bash
# README command 1: install the lean runtime (no torch, no plugin toolchain), then run
# Sideman's main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
SIDEMAN_PLUGIN=0 bash scripts/install.sh
exec .venv/bin/sideman demo "$@"
