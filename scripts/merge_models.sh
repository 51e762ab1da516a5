#!/usr/bin/env bash
# Merge verl FSDP checkpoints into Hugging Face models (the release's merge_models.sh step), via `ssl4rl merge`.
# usage: bash scripts/merge_models.sh CKPT_DIR OUT_DIR [--force] [--trust-remote-code]
#   CKPT_DIR: global_step_N, its actor/ dir, or a run's checkpoint dir (its latest step), e.g.
#   bash scripts/merge_models.sh checkpoints/ssl4rl/ssl4rl_mmbench_rotation/global_step_300 models/mmbench_rotation
# PYTHON selects the interpreter that has ssl4rl and verl (default `python`).
set -euo pipefail
if (( $# == 0 )); then
  sed -n 3,6p "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
exec "${PYTHON:-python}" -m ssl4rl.cli merge "$@"
