"""`ssl4rl build --ray N` on a local Ray instance: the shards as Ray tasks equal a one-machine build."""

from __future__ import annotations

import glob
import os

import pytest
from PIL import Image

from ssl4rl.builder import BuildConfig, build
from ssl4rl.builder.ray_fanout import build_on_ray
from ssl4rl.cli import main as cli_main

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, photo_paths):
    root = tmp_path_factory.mktemp("photo_dir")
    for i, path in enumerate(photo_paths[:8]):
        image = Image.open(path).convert("RGB")
        image.thumbnail((160, 160))
        image.save(root / f"{i:02d}.jpg", quality=90)
    return str(root)


def shard_bytes(out) -> dict[str, bytes]:
    return {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(f"{out}/data/*.parquet"))}


def config(photo_dir, out, **kw) -> BuildConfig:
    return BuildConfig(
        task="rotation",
        source="folder",
        input=photo_dir,
        out=str(out),
        samples_per_shard=2,
        progress=False,
        **kw,
    )


@pytest.mark.slow
def test_ray_tasks_give_the_one_machine_build(local_ray, photo_dir, tmp_path):
    single = build(config(photo_dir, tmp_path / "single"))
    manifest = build_on_ray(config(photo_dir, tmp_path / "ray"), 3)
    assert manifest["complete"] and manifest["counts"]["written"] == single["counts"]["written"]
    assert (
        shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "single")
        and len(shard_bytes(tmp_path / "single")) == 4
    )
    # the CLI flag: the finished shards are kept, so the same command is a quick no-op resume
    argv = [
        "build",
        "--task",
        "rotation",
        "--source",
        "folder",
        "--input",
        photo_dir,
        "--out",
        str(tmp_path / "ray"),
    ]
    assert cli_main([*argv, "--samples-per-shard", "2", "--ray", "3", "--no-progress"]) == 0
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "single")


def test_ray_refuses_an_explicit_shard(photo_dir, tmp_path):
    from ssl4rl.errors import UserError

    with pytest.raises(UserError, match="leave out --shard"):
        build_on_ray(config(photo_dir, tmp_path / "x", shard=(1, 2)), 2)
