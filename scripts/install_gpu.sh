#!/usr/bin/env bash
# Install ssl4rl with the GPU training stack (ssl4rl/configs/gpu_stack.txt: verl[vllm] 0.9.1 + vLLM 0.24.0 +
# torch 2.11.0 + transformers 5.9.0 + TransferQueue) into the active Python environment. Use a fresh venv
# without ssl4rl's TRL extra: the pins replace torch and transformers, and verl 0.9.1 cannot build a model
# while trl >= 1 is importable.
#
# Requirements: Linux x86_64, Python 3.10-3.12, an NVIDIA driver >= 580 (the wheels are CUDA 13 builds).
#
#   bash scripts/install_gpu.sh                 # pinned stack + ssl4rl[verl]; training attention: sdpa
#   FLASH_ATTN=1 bash scripts/install_gpu.sh    # also build flash-attn 2.8.3 from source (needs a CUDA 13 nvcc;
#                                               # no wheel exists for torch 2.11 / CUDA 13; can take hours)
#   DRY_RUN=1 bash scripts/install_gpu.sh       # only resolve: print the versions pip would install
#   STACK=cu12 bash scripts/install_gpu.sh      # drivers 575-579: vLLM 0.19.1 + torch 2.10 (CUDA 12), same verl;
#                                               # resolver-checked, not yet run on a GPU (verl/README.md)
# PYTHON picks the interpreter (default `python`); MAX_JOBS limits the flash-attn compile (default 8).
# Afterwards, the first command on the node: ssl4rl train --recipe mmbench_rotation --smoke --model MODEL
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
case ${STACK:-main} in
  main) pins=$root/constraints/gpu.txt; min_driver=580 ;;
  cu12) pins=$root/constraints/gpu-cu12.txt; min_driver=575 ;;
  *) echo "STACK must be main or cu12" >&2; exit 2 ;;
esac

"$python" - <<'PY'
import sys
if not (3, 10) <= sys.version_info[:2] <= (3, 12):
    sys.exit(f"verl 0.9.1 and vLLM 0.24 ship wheels for Python 3.10-3.12; this is {sys.version.split()[0]}")
PY

if [[ ${DRY_RUN:-0} == 1 ]]; then
  report=$(mktemp --suffix=.json)
  "$python" -m pip install --dry-run --ignore-installed --quiet --report "$report" -r "$pins" "$root[verl]"
  "$python" - "$report" <<'PY'
import json, sys
installs = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
for name in ("verl", "transferqueue", "vllm", "torch", "torchvision", "transformers", "ray", "fastapi", "uvicorn",
             "cachetools", "flashinfer-python", "ssl4rl"):
    print(f"{name:18} {installs.get(name, '-')}")
print(f"({len(installs)} packages in total)")
PY
  rm -f "$report"
  exit 0
fi

if command -v nvidia-smi >/dev/null; then
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
  if [[ ${driver%%.*} -lt $min_driver ]]; then
    echo "NVIDIA driver $driver is older than $min_driver, which the ${STACK:-main} stack's CUDA build needs:" >&2
    echo "torch would see no GPU. Update the driver (or STACK=cu12 for 575-579); see verl/README.md." >&2
    exit 1
  fi
else
  echo "note: no nvidia-smi here; installing anyway (run ssl4rl doctor on the GPU node)" >&2
fi

"$python" -m pip install -r "$pins" -e "$root[verl]"

if [[ ${FLASH_ATTN:-0} == 1 ]]; then
  # Built against the torch just installed (no build isolation); needs nvcc from a CUDA 13 toolkit.
  MAX_JOBS=${MAX_JOBS:-8} "$python" -m pip install --no-build-isolation "flash-attn==2.8.3" \
    || { echo "flash-attn did not build; training uses sdpa without it (ssl4rl train --attn auto)" >&2; exit 1; }
fi

"$python" - <<'PY'
import importlib.util
import torch, transformers, verl, vllm, transfer_queue
print(f"verl {verl.__version__}, vllm {vllm.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}")
print(f"CUDA GPUs: {torch.cuda.device_count()}, flash-attn: {'yes' if importlib.util.find_spec('flash_attn') else 'no (sdpa)'}")
print("next: ssl4rl train --recipe mmbench_rotation --smoke --model MODEL   (ssl4rl doctor checks a launch)")
PY
