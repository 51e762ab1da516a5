"""`ssl4rl doctor`: check a verl launch (stack, GPUs, memory, data, checkpoints) before it costs GPU-hours."""

from __future__ import annotations

import argparse
import sys

from ..backends.verl.doctor import failed, preflight, report
from .verl_launch_args import add_launch_arguments, launch_from_args

DESCRIPTION = """Check everything a verl launch needs, one line per check (ok / warn / FAIL / skip) with the fix.

Takes the same options as `ssl4rl train --backend verl`, composes the config exactly as verl's main_ppo
will, and checks: Python and the pinned stack; every module the trainer imports for this config
(imported in a fresh interpreter through verl's own loaders); the CUDA build against the NVIDIA driver;
GPUs and GPU memory against the layout (actor + vLLM + reserve); Ray CPUs; the data (rows >= one
batch, every prompt's tokens within data.max_prompt_length counted with the model's processor,
vLLM's images per prompt, train/validation overlap); existing checkpoints (never resumed unless
asked) and free disk for the checkpoints kept; the model's processor files. It also prints the
adjustments `ssl4rl train` would make from these measurements (vLLM image limit, offloading, Ray CPUs).

Exit status 1 when any check FAILs. `ssl4rl train` runs the same checks before starting Ray.
--login skips the GPU-machine checks (CUDA, GPUs, Ray CPUs) and turns a missing training stack into a
warning, for a login node that only submits jobs.

examples:
  ssl4rl doctor --recipe mmbench_rotation --data-dir data/verl/mmbench/rotation --gpus-per-node 8
  ssl4rl doctor --recipe mmbench_rotation --login --gpu-memory-gb 80 --model /models/Qwen2.5-VL-3B-Instruct"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_launch_arguments(parser)
    parser.add_argument(
        "--login",
        action="store_true",
        help="a login node: skip CUDA/GPU/Ray checks, stack problems are warnings",
    )
    parser.add_argument(
        "--gpu-memory-gb", type=float, help="memory of each training GPU (default: read from nvidia-smi)"
    )
    parser.add_argument("--smoke", action="store_true", help="check the --smoke launch of `ssl4rl train`")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    launch = launch_from_args(args, smoke=args.smoke)
    result = preflight(
        launch, login=args.login, gpu_memory_gb=args.gpu_memory_gb, progress=not args.no_progress
    )
    for note in result.launch.notes:
        print(f"# {note}", file=sys.stderr)
    print(report(result.checks))
    return 1 if failed(result.checks) else 0
