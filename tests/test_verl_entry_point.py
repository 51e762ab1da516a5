"""verl's real entry point, `python -m verl.trainer.main_ppo`, with our recipe on this CPU machine.

The launch is exactly what `ssl4rl train` executes (same config directory, overlay and overrides), with a
tiny Qwen2.5-VL and RL parquet holding 2-, 4- and 9-image prompts. verl gets through its imports (every
module its V1 trainer needs: a missing `transfer_queue` stops it here), `validate_config`, Ray start, the
TransferQueue, its dataset classes loading our data, its resource pools and worker group, and its actor
worker's start-up, up to the point where the worker asks for GPUs: Ray is given one logical GPU so that
verl schedules its workers, and the worker's NCCL process group then finds no CUDA device. That error is
the deliberate stop; anything earlier failing is a bug in the install or the recipe.

(verl loads the reward function only after its GPU workers are up; tests/test_verl_dataset.py runs verl's
reward loop on our reward.)
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

pytest.importorskip("verl")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.slow

from ssl4rl.backends.verl import launch as vl  # noqa: E402
from ssl4rl.backends.verl.online import launch_overrides  # noqa: E402
from ssl4rl.backends.verl.recipes import get_recipe  # noqa: E402

GPU_ASK = "ProcessGroupNCCL is only supported with GPUs"
# Ray offers 16 logical CPUs (verl's placement groups and TransferQueue need 13 for one GPU; this machine
# has 2) and one logical GPU, so verl places its worker group instead of stopping at its GPU count check.
CPU_MACHINE = ["ray_kwargs.ray_init.num_cpus=16", "+ray_kwargs.ray_init.num_gpus=1"]
SMALL_BATCH = ["data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8"]


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory, photo_folder, make_rl_parquet) -> str:
    tasks = [("rotation", {}), ("jigsaw", {"grid": "2"}), ("jigsaw", {"grid": "3"})]
    return make_rl_parquet(tmp_path_factory.mktemp("entry_point"), photo_folder, tasks)


def run_main_ppo(launch: vl.Launch) -> str:
    """Run the launch's command line; returns everything it printed."""
    process = subprocess.Popen(
        launch.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"main_ppo did not reach the GPU request in 15 minutes:\n{output[-3000:]}")
    assert process.returncode != 0, "main_ppo cannot finish on a machine without GPUs"
    return output


def missing_modules(output: str) -> list[str]:
    """Import failures, except verl's optional training engines (torchtitan, veomni, ...), which only warn."""
    return [
        line
        for line in output.splitlines()
        if ("No module named" in line or "ImportError" in line) and "engine is not available" not in line
    ]


def assert_reached_gpu_request(output: str, dataset_class: str) -> None:
    tail = output[-4000:]
    assert not missing_modules(output), missing_modules(output)
    assert "[validate_config] All configuration checks passed" in output, tail
    assert f"Using dataset class: {dataset_class}" in output, tail
    assert "train and validate dataloader initialized" in output, tail
    assert "create worker group" in output, tail
    assert GPU_ASK in output, tail
    stages = [
        output.index(s)
        for s in ("Started a local Ray", "dataloader initialized", "create worker group", GPU_ASK)
    ]
    assert stages == sorted(stages), "verl's start-up stages came in an unexpected order"


def test_main_ppo_with_the_recipe_reaches_the_gpu_request(rl_data, tiny_model, tmp_path):
    launch = vl.build_launch(
        get_recipe("mmbench_jigsaw"),
        vl.Layout(1, 1),
        model=tiny_model,
        data_dir=rl_data,
        attn="sdpa",
        run=vl.RunOptions(checkpoint_root=str(tmp_path)),
        extra=[*CPU_MACHINE, *SMALL_BATCH],
    )
    output = run_main_ppo(launch)
    assert_reached_gpu_request(output, "RLHFDataset")
    # verl read our rows: 2-, 4- and 9-image prompts from the three builds
    assert "dataset len:" in output
    train_rows = int(output.split("train dataset size: ")[1].split(",")[0])
    assert train_rows >= 16, output[-2000:]


def test_main_ppo_with_online_data_reaches_the_gpu_request(tiny_model, photo_folder, tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text(
        f"source: folder\ninput: {photo_folder}\nparts:\n  - {{task: rotation}}\n  - {{task: jigsaw}}\n"
    )
    val = tmp_path / "val.yaml"
    val.write_text(f"task: position\nsource: folder\ninput: {photo_folder}\nsplit: validation\n")
    launch = vl.build_launch(
        get_recipe("mmbench_mix"),
        vl.Layout(1, 1),
        model=tiny_model,
        attn="sdpa",
        run=vl.RunOptions(checkpoint_root=str(tmp_path / "ckpt")),
        extra=[*launch_overrides([str(spec)], [str(val)]), *CPU_MACHINE, *SMALL_BATCH],
    )
    output = run_main_ppo(launch)
    assert_reached_gpu_request(output, "OnlineRLHFDataset")
    assert "online dataset: 16 items per epoch from 2 part(s)" in output


@pytest.mark.parametrize("family", ["qwen3-vl", "glm-4.1v"])
def test_main_ppo_with_other_families_reaches_the_gpu_request(
    family, tiny_family_model, photo_folder, tmp_path
):
    """The same launch for a tiny Qwen3-VL and GLM-4.1V on data built for their budgets: verl loads their
    processors and our rows and gets to its workers (GLM-4.1V with the overrides `ssl4rl train` adds)."""
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.model_families import get_family
    from ssl4rl.tiny import tiny_pixel_limits
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    model = tiny_family_model(family)
    low, high = tiny_pixel_limits(get_family(family))
    built = {"train": [], "validation": []}
    for task, knobs in (("rotation", {}), ("jigsaw", {"grid": 2})):
        for split in built:
            out = str(tmp_path / f"{task}-{split}")
            config = BuildConfig(
                task=task,
                source="folder",
                input=photo_folder,
                out=out,
                knobs=knobs,
                split=split,
                model_family=family,
                min_pixels=low,
                max_pixels=high,
                tokenizer=model,
                progress=False,
            )
            build(config)
            built[split].append(out)
    data = str(tmp_path / "verl")
    preprocess(
        PreprocessConfig(
            out=data, train=built["train"], val=built["validation"], allow_shared_images=True, progress=False
        )
    )
    launch = vl.build_launch(
        get_recipe("mmbench_jigsaw"),
        vl.Layout(1, 1),
        model=model,
        data_dir=data,
        attn="sdpa",
        run=vl.RunOptions(checkpoint_root=str(tmp_path / "ckpt")),
        extra=[*CPU_MACHINE, *SMALL_BATCH],
    )
    assert any("external_lib" in a for a in launch.argv) == (family == "glm-4.1v")
    output = run_main_ppo(launch)
    assert_reached_gpu_request(output, "RLHFDataset")
    assert "Failed to create processor" not in output  # verl's hf_processor took the family's processor
    train_rows = int(output.split("train dataset size: ")[1].split(",")[0])
    assert train_rows >= 16, output[-2000:]
