#!/usr/bin/env bash
# The launcher of every verl recipe: `bash verl/launch.sh RECIPE [ssl4rl train flags] [KEY=VALUE...]`.
# Environment (all optional): MODEL_PATH, DATA_DIR, N_GPUS_PER_NODE (default 8), NNODES (default 1),
# DRY_RUN=1 (print the verl command instead of running it), PYTHON (the interpreter with ssl4rl, default `python`).
# Arguments after the recipe go to `ssl4rl train` as they are: verl overrides (KEY=VALUE) or flags (--attn sdpa).
set -euo pipefail
recipe=${1:?usage: bash verl/launch.sh RECIPE [KEY=VALUE ...]}
shift
args=(train --backend verl --recipe "$recipe" --gpus-per-node "${N_GPUS_PER_NODE:-8}" --nnodes "${NNODES:-1}")
if [[ -n ${MODEL_PATH:-} ]]; then args+=(--model "$MODEL_PATH"); fi
if [[ -n ${DATA_DIR:-} ]]; then args+=(--data-dir "$DATA_DIR"); fi
if [[ ${DRY_RUN:-0} == 1 ]]; then args+=(--dry-run); fi
exec "${PYTHON:-python}" -m ssl4rl.cli "${args[@]}" "$@"
