"""verl's own GRPO actor update on CPU: one step of verl 0.9.1's worker, FSDP2 engine and ppo_loss on a batch
from our RL parquet, with the tiny Qwen2.5-VL and the recipe's model settings.

The step (tests/support/verl_cpu_grpo_step.py, run in a subprocess because it registers a CPU platform and
engine with verl's plugin registries and opens a process group) goes through verl's RLHFDataset, agent loop
(chat template, image processing, 3D rope positions), reward loop with our reward, old and reference
log-probs, GRPO advantages, the PPO loss with the low-variance KL term, backward over two micro-batches and
one optimizer step. Prompts hold 2, 4 and 9 images of different sizes. See the script for what is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("verl")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.slow


SCRIPT = os.path.join(os.path.dirname(__file__), "support", "verl_cpu_grpo_step.py")


@pytest.fixture(scope="module")
def rl_files(tmp_path_factory, photo_folder, make_rl_parquet) -> list[str]:
    """One parquet per image count: rotation (2 images), jigsaw 2x2 (4) and 3x3 (9)."""
    root = tmp_path_factory.mktemp("actor_step")
    files = []
    for name, task, knobs in (
        ("rot", "rotation", {}),
        ("jig2", "jigsaw", {"grid": "2"}),
        ("jig3", "jigsaw", {"grid": "3"}),
    ):
        files.append(
            os.path.join(make_rl_parquet(root / name, photo_folder, [(task, knobs)]), "train.parquet")
        )
    return files


def run_step(
    tiny_model: str, files: list[str], tmp_path, *extra: str
) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "step.json"
    command = [sys.executable, SCRIPT, "--model", tiny_model, "--data", *files, "--json", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    report = json.loads(out.read_text()) if out.exists() else {}
    return result, report


def test_one_grpo_update_of_verls_actor_on_cpu(tiny_model, rl_files, tmp_path):
    result, report = run_step(tiny_model, rl_files, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "RESULT: PASS" in result.stdout and report["failures"] == []
    metrics = report["metrics"]
    assert metrics["actor/grad_norm"][0] > 0
    assert metrics["actor/pg_clipfrac"] == [0.0]  # ratio 1 at the first step
    # the checks the script made, by name, so that dropping one fails here
    for check in (
        "engine for device cpu: FSDPEngineWithLMHead",
        "loss ppo_loss: use_kl_loss=True low_var_kl coef=0.01 clip=0.2 token-mean",
        "gradient checkpointing on, attention sdpa, use_remove_padding=False",
        "prompts with [2, 4, 9] images",
        "scores = ssl4rl.reward.compute_score",
        "actor weights changed",
        "reference weights unchanged",
        "engine log-probs = plain forward of the model",
    ):
        assert check in result.stdout, f"missing check: {check}"


def test_remove_padding_needs_flash_attn_so_sdpa_turns_it_off(tiny_model, rl_files, tmp_path):
    """Why `--attn sdpa` (and `auto` without flash-attn) sets use_remove_padding=false: verl's packed Qwen2-VL
    attention has no fallback without flash-attn and stops at its first forward."""
    result, _ = run_step(tiny_model, rl_files, tmp_path, "--remove-padding")
    assert result.returncode != 0
    assert "_flash_use_top_left_mask" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def family_rl_files(tmp_path_factory, photo_folder, tiny_family_model):
    """`family_rl_files(name)`: rotation, jigsaw 2x2 and 3x3 parquet built for a family's tiny model (its
    pixel limits and tokenizer)."""
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.model_families import get_family
    from ssl4rl.tiny import tiny_pixel_limits
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    def files(name: str) -> list[str]:
        root = tmp_path_factory.mktemp(f"actor_step_{name}")
        low, high = tiny_pixel_limits(get_family(name))
        out = []
        for part, task, knobs in (
            ("rot", "rotation", {}),
            ("jig2", "jigsaw", {"grid": 2}),
            ("jig3", "jigsaw", {"grid": 3}),
        ):
            built = {}
            for split in ("train", "validation"):
                built[split] = [str(root / f"{part}-{split}")]
                build(
                    BuildConfig(
                        task=task,
                        source="folder",
                        input=photo_folder,
                        out=built[split][0],
                        knobs=knobs,
                        split=split,
                        model_family=name,
                        min_pixels=low,
                        max_pixels=high,
                        tokenizer=tiny_family_model(name),
                        progress=False,
                    )
                )
            preprocess(
                PreprocessConfig(
                    out=str(root / part),
                    train=built["train"],
                    val=built["validation"],
                    allow_shared_images=True,
                    progress=False,
                )
            )
            out.append(str(root / part / "train.parquet"))
        return out

    return files


@pytest.mark.parametrize("family", ["qwen3-vl", "glm-4.1v"])
def test_one_grpo_update_of_verls_actor_for_other_families(
    family, tiny_family_model, family_rl_files, tmp_path
):
    """The same step for Qwen3-VL and GLM-4.1V, with the overrides `ssl4rl train` adds for the family (GLM-4.1V:
    ssl4rl.backends.verl.glm4v_patch, without which verl 0.9.1's engine stops at its first forward)."""
    from ssl4rl.backends.verl.launch import family_overrides

    model = tiny_family_model(family)
    overrides = [arg for o in family_overrides(model) for arg in ("--override", o)]
    assert bool(overrides) == (family == "glm-4.1v")
    result, report = run_step(model, family_rl_files(family), tmp_path, *overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "RESULT: PASS" in result.stdout and report["failures"] == []
    assert report["metrics"]["actor/grad_norm"][0] > 0
    for check in (
        "prompts with [2, 4, 9] images",
        "actor weights changed",
        "engine log-probs = plain forward",
    ):
        assert check in result.stdout, f"missing check: {check}"


def test_one_update_of_verls_actor_with_an_objective(tiny_model, rl_files, tmp_path):
    """An objective's config group (ssl4rl/configs/objective/gspo.yaml) reaches verl's actor update: the same CPU
    step with `+objective=gspo` trains, and the two checks written for the paper's loss fail exactly as GSPO's
    per-sequence aggregation makes them (every other check holds)."""
    result, report = run_step(tiny_model, rl_files, tmp_path, "--override", "+objective=gspo")
    output = result.stdout + result.stderr
    assert "RESULT: FAIL (2 checks)" in result.stdout, output[-4000:]
    loss, pg_loss = report["failures"]
    assert loss.startswith("loss ppo_loss:") and "seq-mean-token-mean" in loss
    assert pg_loss.startswith("pg_loss") and "= -token-mean advantage" in pg_loss
    assert report["metrics"]["actor/grad_norm"][0] > 0 and "actor weights changed" in result.stdout
