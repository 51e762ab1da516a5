#!/usr/bin/env bash
# The main job on built-in data: set up .venv (if needed), then run the end-to-end demo
# (photos -> 4 SSL tasks -> verl parquet -> GRPO on a tiny offline Qwen2.5-VL -> eval -> report).
# Usage: bash scripts/demo.sh [ssl4rl demo args, e.g. --out demo_out --steps 30]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ssl4rl demo "$@"
