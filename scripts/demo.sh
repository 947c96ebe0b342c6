#!/usr/bin/env bash
# README command 1: install everything, then run Sideman's main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/sideman demo "$@"
