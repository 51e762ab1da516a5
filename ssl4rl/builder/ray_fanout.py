"""`ssl4rl build --ray N`: the N machine shards of a build (`--shard i/N`) as N Ray tasks.

Each task runs the ordinary builder for its shard with `--workers` processes (and asks Ray for that many
CPUs), so the result is byte-identical to a one-machine build, as `--shard` builds are. The output
directory and the input must be reachable at the same paths from every node (shared storage), as for a
Slurm array. Ray is the cluster verl already runs on: with RAY_ADDRESS set (or a cluster started with
`ray start`) the tasks go there, otherwise Ray starts a local instance on this machine.
"""

from __future__ import annotations

import dataclasses

from ..errors import UserError, require
from . import build
from .config import BuildConfig


def build_on_ray(config: BuildConfig, shards: int) -> dict:
    """Build every shard of `config` as `shards` Ray tasks; returns the complete build's manifest."""
    if shards < 1:
        raise UserError("--ray must be at least 1 (the number of Ray tasks)")
    if config.shard != (0, 1):
        raise UserError("--ray runs every shard itself; leave out --shard")
    ray = require("ray", "verl", "ssl4rl build --ray")
    if not ray.is_initialized():
        ray.init()
    task = ray.remote(num_cpus=config.workers)(_build_shard)
    pending = [
        task.remote(dataclasses.replace(config, shard=(i, shards), progress=False)) for i in range(shards)
    ]
    try:
        manifests = ray.get(pending)
    except ray.exceptions.RayTaskError as exc:
        # a task's own one-line error (a full disk, a changed input) stays one line
        if isinstance(exc.cause, (UserError, OSError)):
            raise exc.cause from None
        raise
    # every task writes its shard stats before it looks for the others', so the last to finish saw them all
    complete = [m for m in manifests if m["complete"]]
    if not complete:
        raise UserError(f"the Ray tasks finished but {config.out} is not complete; rerun the same command")
    return complete[-1]


def _build_shard(config: BuildConfig) -> dict:
    return build(config)
