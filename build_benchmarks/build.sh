#!/usr/bin/env bash
# Build the SSL datasets of one benchmark: each task (default: all four) x each split the input offers,
# one `ssl4rl build` run per pair, written to OUTROOT/BENCHMARK/TASK/SPLIT.
#
#   build_benchmarks/build.sh BENCHMARK INPUT OUTROOT [TASK...] [-- extra `ssl4rl build` arguments]
#
# BENCHMARK  a preset from `ssl4rl sources` (mmbench, seedbench, blink, ...)
# INPUT      a .tsv file, a directory (hub snapshot, save_to_disk, image folder) or a hub id
# Splits come from `ssl4rl sources BENCHMARK --splits INPUT`. Environment overrides:
#   SPLITS="val test"   build these splits instead
#   MAX_PROMPT_TOKENS=1024  prompt budget of every build (the paper's, the recipes' max_prompt_length;
#                       0 or none: views keep their size); a --max-prompt-tokens after -- wins too
#   SSL4RL="python -m ssl4rl.cli"   the command to run (default: ssl4rl)
#   DRY_RUN=1           print the commands instead of running them
# Every build is resumable: rerunning the script finishes what an interrupted run left.
set -euo pipefail

if [[ $# -lt 3 || $1 == -h || $1 == --help ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
benchmark=$1 input=$2 outroot=$3
shift 3
tasks=()
while [[ $# -gt 0 && $1 != -- ]]; do
  tasks+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
extra=("$@")
[[ ${#tasks[@]} -gt 0 ]] || tasks=(rotation jigsaw position contrastive)
read -r -a ssl4rl <<< "${SSL4RL:-ssl4rl}"

if [[ -n ${SPLITS:-} ]]; then
  read -r -a splits <<< "$SPLITS"
else
  mapfile -t splits < <("${ssl4rl[@]}" sources "$benchmark" --splits "$input")
  [[ ${#splits[@]} -gt 0 ]] || { echo "build.sh: no splits for $benchmark $input" >&2; exit 2; }
fi

failed=()
for task in "${tasks[@]}"; do
  for split in "${splits[@]}"; do
    command=("${ssl4rl[@]}" build --task "$task" --source "$benchmark" --input "$input" --split "$split"
      --out "$outroot/$benchmark/$task/$split" --max-prompt-tokens "${MAX_PROMPT_TOKENS:-1024}" "${extra[@]}")
    if [[ -n ${DRY_RUN:-} ]]; then
      printf '%q ' "${command[@]}"
      printf '\n'
    elif ! "${command[@]}"; then
      failed+=("$task/$split")
    fi
  done
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "build.sh: $benchmark failed for: ${failed[*]} (rerun to resume)" >&2
  exit 1
fi
