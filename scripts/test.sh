#!/usr/bin/env bash
# README command 2: install everything with the test extras, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SIDEMAN_EXTRAS=dev bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"
