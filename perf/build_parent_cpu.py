"""CPU time the build's parent process spends per sample, against its workers' (the scaling ceiling).

Run by hand (not a test):  .venv/bin/python perf/build_parent_cpu.py [--samples 400] [--workers 2 4]

Builds one MMBench-like folder (~0.5 Mpx JPEG q90) in this process with `build()` and reads the CPU
time of this process (the parent: planning, collecting results, whatever it writes) and of its reaped
children (the workers) from getrusage. With W workers each building r samples/s, one machine's build
tops out at min(W * r, 1 / parent CPU per sample).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time

from mmbench_like import make_photo_folder

from ssl4rl.builder import BuildConfig, build


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def model(workers: int, parent_ms: float, worker_ms: float) -> float:
    """Samples/s of one machine: the workers' rate, capped by the parent's."""
    return min(workers * 1e3 / worker_ms, 1e3 / parent_ms)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--tasks", nargs="+", default=["rotation", "position"])
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load: {load}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_photo_folder(os.path.join(tmp, "photos"), args.samples)
        for task in args.tasks:
            for workers in args.workers:
                out = os.path.join(tmp, f"{task}-{workers}")
                parent0, children0, wall0 = (
                    cpu(resource.RUSAGE_SELF),
                    cpu(resource.RUSAGE_CHILDREN),
                    time.time(),
                )
                manifest = build(
                    BuildConfig(
                        task=task,
                        source="folder",
                        input=folder,
                        out=out,
                        workers=workers,
                        max_prompt_tokens=None,
                        progress=False,
                    )
                )
                wall = time.time() - wall0
                parent = cpu(resource.RUSAGE_SELF) - parent0
                children = cpu(resource.RUSAGE_CHILDREN) - children0
                n = manifest["counts"]["written"]
                rows.append((task, workers, n, wall, parent / n * 1e3, children / n * 1e3))
    print()
    print(
        "| task | workers | samples | wall s | parent CPU ms/sample | worker CPU ms/sample | parent ceiling samples/s |"
        " 16 workers samples/s | 64 workers samples/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, workers, n, wall, parent, child in rows:
        if workers == 1:  # everything runs in the parent: no split to model
            print(f"| {task} | 1 | {n} | {wall:.1f} | {parent:.2f} | - | - | - | - |")
            continue
        print(
            f"| {task} | {workers} | {n} | {wall:.1f} | {parent:.2f} | {child:.1f} | {1e3 / parent:.0f} |"
            f" {model(16, parent, child):.0f} | {model(64, parent, child):.0f} |"
        )
    print(
        "\nmodel: W workers build min(W / worker CPU per sample, 1 / parent CPU per sample) samples/s "
        "(cores not shared; input reading and disk not limiting)"
    )


if __name__ == "__main__":
    main()
