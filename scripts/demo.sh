#!/usr/bin/env bash
# The main job on built-in data: set up .venv (if needed), then run the end-to-end demo
# (synthetic scenes -> SSL task -> verl parquet -> GRPO on a tiny offline Qwen2.5-VL and a blind control
# -> held-out eval of both -> report).
# Usage: bash scripts/demo.sh [ssl4rl demo args, e.g. --out demo_out --steps 30]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ssl4rl demo "$@"
