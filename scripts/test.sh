#!/usr/bin/env bash
# Set up (if needed), lint, and run the test suite on CPU. GPU-only tests skip themselves.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -p no:cacheprovider "$@"
