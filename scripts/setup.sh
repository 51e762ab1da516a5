#!/usr/bin/env bash
# Create .venv and install ssl4rl with the CPU-usable extras, pinned by constraints/cpu.txt.
# Usage: bash scripts/setup.sh            (idempotent; ~3-4 min on a fresh 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# PyPI's CUDA builds of torch/torchvision run on CPU; the machine's torch+cpu wheel has no torchvision.
.venv/bin/python -m pip install -q -c constraints/cpu.txt -e ".[all,demo]"
.venv/bin/python -c "import torch, torchvision, verl, trl, transfer_queue; print('ssl4rl env ready: torch', torch.__version__, 'verl', verl.__version__, 'trl', trl.__version__)"
