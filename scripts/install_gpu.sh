#!/usr/bin/env bash
# Install ssl4rl with the GPU training stack (verl 0.9.1 + vLLM 0.24.0 + torch 2.11.0, constraints/gpu.txt)
# into the active Python environment (use a fresh venv: these pins replace torch and transformers).
#
#   bash scripts/install_gpu.sh                 # pinned stack + ssl4rl[verl], then build flash-attn
#   FLASH_ATTN=0 bash scripts/install_gpu.sh    # no flash-attn build; train with `ssl4rl train --attn sdpa`
#   DRY_RUN=1 bash scripts/install_gpu.sh       # only resolve: print the versions pip would install
# PYTHON picks the interpreter (default `python`); MAX_JOBS limits the flash-attn compile (default 8).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
pins=$root/constraints/gpu.txt

"$python" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 12):
    sys.exit(f"verl 0.9.1 supports Python 3.10-3.12; this is {sys.version.split()[0]}")
PY

if [[ ${DRY_RUN:-0} == 1 ]]; then
  report=$(mktemp --suffix=.json)
  "$python" -m pip install --dry-run --ignore-installed --quiet --report "$report" -r "$pins" "$root[verl]"
  "$python" - "$report" <<'PY'
import json, sys
installs = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
for name in ("verl", "vllm", "torch", "torchvision", "torchaudio", "transformers", "flashinfer-python", "ray", "ssl4rl"):
    print(f"{name:18} {installs.get(name, '-')}")
print(f"({len(installs)} packages in total)")
PY
  rm -f "$report"
  exit 0
fi

"$python" -m pip install -r "$pins" -e "$root[verl]"

if [[ ${FLASH_ATTN:-1} != 0 ]]; then
  # Built against the torch just installed (no build isolation); needs nvcc from a CUDA toolkit matching torch's.
  MAX_JOBS=${MAX_JOBS:-8} "$python" -m pip install --no-build-isolation "flash-attn==2.8.3" \
    || { echo "flash-attn did not build; rerun with FLASH_ATTN=0 and train with: ssl4rl train --attn sdpa" >&2; exit 1; }
fi

"$python" - <<'PY'
import importlib.util
import torch, transformers, verl, vllm
print(f"verl {verl.__version__}, vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
print(f"CUDA GPUs: {torch.cuda.device_count()}, flash-attn: {'yes' if importlib.util.find_spec('flash_attn') else 'no (use --attn sdpa)'}")
PY
