"""`ssl4rl doctor` and the checks `ssl4rl train` runs before starting Ray: each FAIL it must catch, on real data,
a real tiny model and verl's real config; plus the adjustments it makes from what it measured."""

from __future__ import annotations

import importlib.util
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("verl")
pytest.importorskip("torchvision")

from ssl4rl.backends.verl import doctor, resources  # noqa: E402
from ssl4rl.backends.verl import launch as vl  # noqa: E402
from ssl4rl.backends.verl.recipes import get_recipe  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402
from ssl4rl.lora import lora_settings  # noqa: E402

GIB = resources.GIB
SMALL_BATCH = ["data.train_batch_size=4", "actor_rollout_ref.actor.ppo_mini_batch_size=4"]


@pytest.fixture(scope="module")
def rl_dir(tmp_path_factory, photo_folder, small_photos, make_rl_parquet) -> str:
    """RL parquet of rotation (2 images) and 3x3 jigsaw (9) rows: training rows from 8 photographs,
    validation rows from the other ones (the same photograph in both could give identical rows)."""
    root = tmp_path_factory.mktemp("doctor")
    held_out = sorted(set(os.listdir(small_photos(192, None))) - set(os.listdir(photo_folder)))
    val_photos = root / "val_photos"
    val_photos.mkdir()
    for name in held_out:
        (val_photos / name).symlink_to(os.path.join(small_photos(192, None), name))
    return make_rl_parquet(root, photo_folder, [("rotation", {}), ("jigsaw", {"grid": "3"})], str(val_photos))


def run_preflight(tmp_path, model, data_dir, *extra, login=True, resume=None, gpu_memory_gb=None):
    launch = vl.build_launch(
        get_recipe("mmbench_jigsaw"),
        vl.Layout(1, 1),
        model=model,
        data_dir=data_dir,
        extra=list(extra),
        attn="sdpa",
        run=vl.RunOptions(
            checkpoint_root=str(tmp_path / "ckpt"), run_id="r1" if resume is None else None, resume=resume
        ),
    )
    return doctor.preflight(launch, login=login, gpu_memory_gb=gpu_memory_gb, progress=False, imports=False)


def by_name(result) -> dict[str, doctor.Check]:
    return {c.name: c for c in result.checks}


def test_a_good_launch_passes_the_data_checks(tmp_path, tiny_model, rl_dir):
    result = run_preflight(tmp_path, tiny_model, rl_dir, *SMALL_BATCH)
    checks = by_name(result)
    for name in (
        "verl config",
        "train rows",
        "val rows",
        "prompt tokens",
        "train/val overlap",
        "checkpoints",
        "processor",
    ):
        assert checks[name].status == doctor.OK, checks[name].line()
    assert "counted with the model's processor" in checks["prompt tokens"].detail
    # the adjustment measured on the data: jigsaw 3x3 prompts carry 9 images
    assert result.config.actor_rollout_ref.rollout.limit_images == 9
    assert "vLLM limit_images=9" in " ".join(result.launch.notes)


def test_too_few_rows_for_one_batch_fail(tmp_path, tiny_model, rl_dir):
    check = by_name(run_preflight(tmp_path, tiny_model, rl_dir))["train rows"]
    assert check.status == doctor.FAIL and "< data.train_batch_size 512" in check.detail
    assert "0 steps" in check.detail


def test_overlong_rows_fail_unless_verls_filter_is_on(tmp_path, tiny_model, rl_dir):
    check = by_name(run_preflight(tmp_path, tiny_model, rl_dir, *SMALL_BATCH, "data.max_prompt_length=120"))[
        "prompt tokens"
    ]
    assert check.status == doctor.FAIL and "over data.max_prompt_length 120" in check.detail
    assert "agent loop would stop the run" in check.detail
    filtered = run_preflight(
        tmp_path,
        tiny_model,
        rl_dir,
        *SMALL_BATCH,
        "data.max_prompt_length=120",
        "data.filter_overlong_prompts=true",
    )
    assert by_name(filtered)["prompt tokens"].status == doctor.WARN


def _drop_token_counts(src: str, dst: str) -> None:
    table = pq.read_table(src)
    extra = table["extra_info"].combine_chunks()
    fields = [f for f in extra.type if f.name != "prompt_tokens"]
    stripped = pa.StructArray.from_arrays([extra.field(f.name) for f in fields], fields=fields)
    pq.write_table(table.set_column(table.schema.get_field_index("extra_info"), "extra_info", stripped), dst)


def test_rows_without_token_counts_fail_when_the_model_is_not_here(tmp_path, rl_dir):
    remote = "no-such-org/no-such-vlm"  # a hub id this machine has not cached: no processor to count with
    stored = by_name(run_preflight(tmp_path, remote, rl_dir, *SMALL_BATCH))
    assert stored["prompt tokens"].status == doctor.OK  # ssl4rl preprocess stored the builder's counts
    assert "stored by ssl4rl preprocess" in stored["prompt tokens"].detail
    assert stored["processor"].status == doctor.SKIP

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("train.parquet", "val.parquet"):
        _drop_token_counts(os.path.join(rl_dir, name), str(bare / name))
    check = by_name(run_preflight(tmp_path, remote, str(bare), *SMALL_BATCH))["prompt tokens"]
    assert check.status == doctor.FAIL and "have no token count" in check.detail
    filtered = run_preflight(tmp_path, remote, str(bare), *SMALL_BATCH, "data.filter_overlong_prompts=true")
    assert by_name(filtered)["prompt tokens"].status == doctor.OK


def test_train_val_overlap_fails(tmp_path, tiny_model, rl_dir):
    result = run_preflight(
        tmp_path, tiny_model, rl_dir, *SMALL_BATCH, f"data.val_files=[{rl_dir}/train.parquet]"
    )
    check = by_name(result)["train/val overlap"]
    assert check.status == doctor.FAIL and "also training rows" in check.detail


def test_existing_checkpoints_are_never_resumed_unless_asked(tmp_path, tiny_model, rl_dir):
    run_dir = tmp_path / "ckpt" / "ssl4rl" / "ssl4rl_mmbench_jigsaw" / "r1"
    (run_dir / "global_step_50").mkdir(parents=True)
    fresh_name = by_name(run_preflight(tmp_path, tiny_model, rl_dir, *SMALL_BATCH))["checkpoints"]
    assert fresh_name.status == doctor.FAIL and "earlier run's global_step_*" in fresh_name.detail
    mine = by_name(
        run_preflight(tmp_path, tiny_model, rl_dir, *SMALL_BATCH, f"trainer.default_local_dir={run_dir}")
    )
    assert mine["checkpoints"].status == doctor.FAIL  # the user's own directory: still not resumed silently
    resumed = run_preflight(tmp_path, tiny_model, rl_dir, *SMALL_BATCH, resume="latest")
    assert by_name(resumed)["checkpoints"].status == doctor.OK
    assert resumed.launch.run_dir == str(run_dir) and resumed.config.trainer.resume_mode == "auto"
    with pytest.raises(UserError, match="no checkpoint"):
        run_preflight(tmp_path / "elsewhere", tiny_model, rl_dir, resume="latest")


def test_fresh_runs_get_their_own_directory_and_no_resume(tmp_path):
    first = vl.build_launch(get_recipe("mmbench_rotation"), run=vl.RunOptions(str(tmp_path), run_id="a"))
    second = vl.build_launch(get_recipe("mmbench_rotation"), run=vl.RunOptions(str(tmp_path), run_id="b"))
    assert first.run_dir != second.run_dir and os.path.isabs(first.run_dir)
    assert "trainer.resume_mode=disable" in first.overrides
    assert any(o.endswith(f"VERL_FILE_LOGGER_PATH={first.run_dir}/metrics.jsonl") for o in first.overrides)


QWEN_3B_PARAMS = 3_754_622_976


def recipe_config(*extra: str):
    launch = vl.build_launch(get_recipe("mmbench_rotation"), vl.Layout(1, 1), extra=list(extra), attn="sdpa")
    return doctor.composed_config(launch)


def test_one_gpu_memory_arithmetic_and_the_offload_it_chooses():
    config = recipe_config()
    # fp32 weights + grads + Adam (16 B/param) = 56 GiB resident, vLLM 0.6 of the card: no 1-GPU card fits
    for gpu_gib in (80, 141):
        plan = resources.memory_plan(config, QWEN_3B_PARAMS, gpu_gib * GIB)
        assert not plan.fits and plan.actor_bytes == QWEN_3B_PARAMS * 16
    h200 = resources.fit_memory(config, QWEN_3B_PARAMS, 141 * GIB)
    assert h200.fits and h200.changes == {resources.OPTIMIZER_OFFLOAD: True}
    a100 = resources.fit_memory(config, QWEN_3B_PARAMS, 80 * GIB)
    assert a100.fits and a100.changes == {resources.OPTIMIZER_OFFLOAD: True, resources.PARAM_OFFLOAD: True}
    # eight GPUs shard the actor: the recipe fits as released
    assert (
        resources.fit_memory(recipe_config("trainer.n_gpus_per_node=8"), QWEN_3B_PARAMS, 80 * GIB).changes
        == {}
    )
    # a user who pins the offload keys gets a FAIL line instead of a silent change
    pinned = resources.fit_memory(
        config, QWEN_3B_PARAMS, 80 * GIB, fixed={resources.OPTIMIZER_OFFLOAD, resources.PARAM_OFFLOAD}
    )
    assert not pinned.fits and pinned.changes == {}  # vLLM's share would fall below 0.3: nothing to move
    check = doctor.check_memory(config, doctor.Facts(params=QWEN_3B_PARAMS, gpu_bytes=80 * GIB))
    assert check.status == doctor.FAIL and "per GPU" in check.detail


def test_ray_cpu_need_and_the_count_train_sets(monkeypatch):
    config = recipe_config()
    assert resources.ray_cpus_needed(config) == 3 * 1 + 1 + 1 + 8  # one GPU's bundle, TransferQueue's 9
    assert doctor.check_ray_cpus(config, local_ray=True).status == (
        doctor.OK if resources.available_cpus() >= 13 else doctor.FAIL
    )
    monkeypatch.setattr(resources, "available_cpus", lambda: 2)
    launch = vl.build_launch(get_recipe("mmbench_rotation"), vl.Layout(1, 1), attn="sdpa")
    values, notes = doctor.adjustments(config, doctor.Facts(), launch, local_ray=True)
    assert values == {"ray_kwargs.ray_init.num_cpus": 13} and "wait forever" in notes[0]


def test_checkpoint_count_and_disk_arithmetic():
    config = recipe_config()  # save every 50 steps, keep 2
    assert resources.training_steps(config, 512 * 16) == 16 * 20
    assert resources.checkpoints_kept(config, 320) == 2
    assert (
        resources.checkpoints_kept(recipe_config("trainer.max_actor_ckpt_to_keep=null"), 320) == 7
    )  # 6 + last
    assert resources.checkpoint_bytes(QWEN_3B_PARAMS) == QWEN_3B_PARAMS * 12  # ~45 GB a save


def test_parameters_are_read_from_safetensors_headers(tiny_model):
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    assert resources.count_parameters(tiny_model) == sum(p.numel() for p in model.state_dict().values())


def test_a_missing_trainer_module_fails_the_import_check(tmp_path, monkeypatch):
    config = recipe_config()
    probes = [label for label, _ in doctor.import_probes(config, "sdpa")]
    assert probes[:2] == ["entry point", "V1 trainer"] and "vllm rollout" in probes
    # a broken TransferQueue install (the package imports, its dependency does not)
    broken = tmp_path / "site" / "transfer_queue"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError(\"No module named 'zmq'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    check = doctor.check_imports(config, "sdpa")
    assert check.status == doctor.FAIL
    assert "V1 trainer: ImportError: No module named 'zmq'" in check.detail and "install_gpu.sh" in check.fix


def test_doctor_command_prints_one_line_per_check_and_exits_1_on_failure(
    tmp_path, tiny_model, rl_dir, capsys
):
    argv = ["doctor", "--recipe", "mmbench_jigsaw", "--model", tiny_model, "--data-dir", rl_dir]
    argv += ["--gpus-per-node", "1", "--checkpoint-root", str(tmp_path), "--login", "--no-progress"]
    assert main(argv) == 1  # 512 prompts a step, a few dozen rows
    out = capsys.readouterr().out.splitlines()
    statuses = {line.split()[0] for line in out if line and not line.startswith(" ")} - {"1", "all"}
    assert statuses <= {"ok", "warn", "FAIL", "skip"}
    assert any(line.startswith("FAIL  train rows") for line in out) and out[-1] == "1 check(s) failed"
    assert any(line.startswith("skip  CUDA") and "login node" in line for line in out)
    assert main([*argv, "--", *SMALL_BATCH]) == 0  # on a login node a missing GPU stack is only a warning
    assert "FAIL" not in capsys.readouterr().out


# ---- LoRA -----------------------------------------------------------------------------------------------

# rank 64 on every linear layer of Qwen2.5-VL-3B's language model: 36 layers x 64 x (q 2048+2048, k and v
# 2048+256 each, o 2048+2048, gate/up/down 2048+11008 each) (ssl4rl.lora.adapter_parameters on its shapes)
QWEN_3B_ADAPTER_R64 = 119_734_272


def lora_config(*extra: str, rank: int = 64):
    launch = vl.build_launch(
        get_recipe("mmbench_rotation"),
        vl.Layout(1, 1),
        extra=list(extra),
        attn="sdpa",
        lora=lora_settings(rank),
    )
    return doctor.composed_config(launch)


def test_lora_memory_is_a_frozen_base_plus_the_adapters_training_state():
    config = lora_config()
    settings = resources.config_lora(config)
    assert settings.rank == 64 and settings.lora_alpha == 128 and settings.exclude_modules
    plan = resources.memory_plan(config, QWEN_3B_PARAMS, 80 * GIB, adapter_params=QWEN_3B_ADAPTER_R64)
    # fp32 base weights (verl's default model_dtype; no gradients, no moments), the adapter's fp32 weights +
    # gradients + two Adam moments, and no reference model (the actor with its adapter off is the reference)
    assert plan.actor_bytes == QWEN_3B_PARAMS * 4 + QWEN_3B_ADAPTER_R64 * 16
    assert plan.fits and "LoRA, 119.7M trainable" in plan.describe()
    # full fine-tuning of the same model needs both offloads on this card; LoRA needs none
    assert (
        resources.fit_memory(config, QWEN_3B_PARAMS, 80 * GIB, adapter_params=QWEN_3B_ADAPTER_R64).changes
        == {}
    )
    full = resources.fit_memory(recipe_config(), QWEN_3B_PARAMS, 80 * GIB)
    assert full.changes == {resources.OPTIMIZER_OFFLOAD: True, resources.PARAM_OFFLOAD: True}
    # a bf16 base halves the frozen weights (verl then casts the adapter to bf16 too)
    bf16 = lora_config("actor_rollout_ref.actor.fsdp_config.model_dtype=bf16")
    assert resources.memory_plan(
        bf16, QWEN_3B_PARAMS, 80 * GIB, adapter_params=QWEN_3B_ADAPTER_R64
    ).actor_bytes == (QWEN_3B_PARAMS * 2 + QWEN_3B_ADAPTER_R64 * 8)
    # offloading the weights takes base and adapter off the GPU, the optimizer offload the moments
    offloaded = resources.memory_plan(
        config, QWEN_3B_PARAMS, 80 * GIB, {resources.PARAM_OFFLOAD: True}, QWEN_3B_ADAPTER_R64
    )
    assert offloaded.actor_bytes == QWEN_3B_ADAPTER_R64 * 8
    # a save: every weight in fp32, moments of the adapter only
    assert resources.checkpoint_bytes(QWEN_3B_PARAMS, QWEN_3B_ADAPTER_R64) == (
        (QWEN_3B_PARAMS + QWEN_3B_ADAPTER_R64) * 4 + QWEN_3B_ADAPTER_R64 * 8
    )


def test_the_doctor_counts_the_adapter_of_the_model_it_checks(tmp_path, tiny_model, rl_dir):
    import peft
    from transformers import AutoModelForImageTextToText

    launch = vl.build_launch(
        get_recipe("mmbench_jigsaw"),
        vl.Layout(1, 1),
        model=tiny_model,
        data_dir=rl_dir,
        extra=SMALL_BATCH,
        attn="sdpa",
        run=vl.RunOptions(checkpoint_root=str(tmp_path / "ckpt"), run_id="r1"),
        lora=lora_settings(8),
    )
    result = doctor.preflight(launch, login=True, gpu_memory_gb=24, progress=False, imports=False)
    checks = by_name(result)
    assert checks["verl config"].status == doctor.OK, checks["verl config"].line()
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    wrapped = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=8,
            target_modules="all-linear",
            exclude_modules=resources.config_lora(result.config).exclude_modules,
        ),
    )
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert (
        checks["GPU memory"].status == doctor.OK
        and f"LoRA, {trainable:,} trainable" in checks["GPU memory"].detail
    )
    facts = doctor.gather_facts(result.config, gpu_memory_gb=24, progress=False)
    assert facts.adapter_params == trainable


def test_lora_launch_sets_what_verl_needs_and_validates_without_vllm(monkeypatch):
    config = lora_config()
    model = config.actor_rollout_ref.model
    assert (model.lora_rank, model.lora_alpha, model.target_modules) == (64, 128, "all-linear")
    assert config.actor_rollout_ref.rollout.load_format == "safetensors"  # vLLM loads the base from disk
    assert config.actor_rollout_ref.actor.optim.lr == 1e-5
    # the user's own learning rate wins over LoRA's
    assert lora_config("actor_rollout_ref.actor.optim.lr=3e-6").actor_rollout_ref.actor.optim.lr == 3e-6
    vl.check_config(config)  # verl's validation, its vLLM rank check done here when vLLM is absent
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(UserError, match="above vLLM's largest, 512"):
            vl.check_config(lora_config(rank=1024))


def test_lora_flags_reach_the_printed_verl_command(capsys):
    argv = ["train", "--recipe", "mmbench_rotation", "--no-check", "--dry-run", "--gpus-per-node", "1"]
    assert main([*argv, "--lora-rank", "32", "--lora-target-modules", "q_proj", "v_proj"]) == 0
    printed = capsys.readouterr()
    assert "actor_rollout_ref.model.lora_rank=32" in printed.out
    assert "actor_rollout_ref.model.target_modules=[q_proj,v_proj]" in printed.out
    assert "actor_rollout_ref.model.lora_alpha=64" in printed.out and "LoRA: actor_rollout_ref" in printed.err
    assert main([*argv, "--lora-alpha", "16"]) == 2
    assert "need --lora-rank" in capsys.readouterr().err
