"""`ssl4rl merge` on a real verl FSDP checkpoint: written by verl's own FSDPCheckpointManager from a 2-rank
gloo FSDP2 group on CPU, merged by verl's model merger, loaded back with its processor, generating."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("verl")
transformers = pytest.importorskip("transformers")
tiny = pytest.importorskip("ssl4rl.tiny")

from support.fsdp_ranks import free_port, run_ranks  # noqa: E402

from ssl4rl.backends.verl import merge  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORLD_SIZE = 2
STEP = 3


def _perturb(model) -> None:
    """Stands in for training: a fixed change to every weight, so the merge must carry the shards' values."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            param.add_(0.05 * torch.randn(param.shape, generator=generator, dtype=param.dtype))


def _save_rank(rank: int, model_dir: str, actor_dir: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank))
    os.environ["WORLD_SIZE"] = str(WORLD_SIZE)
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    model = transformers.AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    _perturb(model)
    # verl's FSDP2 engine shards each decoder layer, then the root, over a mesh named "fsdp".
    mesh = init_device_mesh("cpu", (WORLD_SIZE,), mesh_dim_names=("fsdp",))
    for layer in model.model.language_model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    manager = FSDPCheckpointManager(
        model=model,
        optimizer=None,
        lr_scheduler=None,
        processing_class=transformers.AutoProcessor.from_pretrained(model_dir),
        checkpoint_config={"save_contents": ["model"], "load_contents": ["model"]},
    )
    manager.save_checkpoint(local_path=actor_dir, global_step=STEP)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A verl run directory: run/global_step_3/actor/{model_world_size_2_rank_*.pt, fsdp_config.json, huggingface/}."""
    import verl.utils.checkpoint.fsdp_checkpoint_manager  # noqa: F401  imported once here, shared by forked ranks

    root = tmp_path_factory.mktemp("merge")
    model_dir = tiny.build_tiny_qwen2_5_vl(str(root / "tiny"))
    run = root / "run"
    actor_dir = run / f"global_step_{STEP}" / "actor"
    run_ranks(_save_rank, (model_dir, str(actor_dir), free_port()), WORLD_SIZE)
    (run / "latest_checkpointed_iteration.txt").write_text(str(STEP))
    return run


@pytest.fixture(scope="module")
def merged(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "model"
    assert main(["merge", str(run_dir / f"global_step_{STEP}"), str(out), "--no-progress"]) == 0
    return out


def test_checkpoint_is_verls_sharded_layout(run_dir):
    actor = run_dir / f"global_step_{STEP}" / "actor"
    names = set(os.listdir(actor))
    assert {f"model_world_size_{WORLD_SIZE}_rank_{r}.pt" for r in range(WORLD_SIZE)} <= names
    assert json.loads((actor / "fsdp_config.json").read_text()) == {
        "FSDP_version": 2,
        "world_size": WORLD_SIZE,
    }
    assert (actor / "huggingface" / "config.json").is_file()


def test_merged_model_loads_with_processor_and_generates_for_an_image(merged, run_dir):
    from PIL import Image

    processor = transformers.AutoProcessor.from_pretrained(merged)
    model = transformers.AutoModelForImageTextToText.from_pretrained(merged, dtype="auto")  # as stored
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and processor.chat_template

    # The weights are the shards' (perturbed) values, not the base model's.
    base = transformers.AutoModelForImageTextToText.from_pretrained(
        run_dir.parent / "tiny", dtype=torch.float32
    )
    trained = transformers.AutoModelForImageTextToText.from_pretrained(
        run_dir.parent / "tiny", dtype=torch.float32
    )
    _perturb(trained)
    got, want, before = model.state_dict(), trained.state_dict(), base.state_dict()
    assert set(got) == set(want)
    for key in want:
        # the merger stores the config's dtype (bfloat16): exact at that precision
        assert torch.equal(got[key], want[key].to(got[key].dtype)), key
    assert max((got[k].float() - before[k]).abs().max().item() for k in want) > 0.05

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many degrees?"}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() > 0
    model = model.float()  # bfloat16 generation on CPU is slow and not what is being checked
    output = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4


def test_manifest_records_the_merge(merged, run_dir):
    manifest = json.loads((merged / merge.MANIFEST_NAME).read_text())
    assert (
        manifest["global_step"] == STEP
        and manifest["world_size"] == WORLD_SIZE
        and manifest["fsdp_version"] == 2
    )
    assert manifest["actor_dir"] == str(run_dir / f"global_step_{STEP}" / "actor")
    assert manifest["merger_command"][1:4] == ["-m", "verl.model_merger", "merge"]
    assert manifest["merger_command"][-1] == str(merged)
    assert "model.safetensors" in manifest["files"] and manifest["processor_class"] == "Qwen2_5_VLProcessor"
    assert not [p for p in os.listdir(merged.parent) if ".merging-" in p]  # no temporary left behind


def test_merged_model_has_the_usual_permissions(merged):
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(merged).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    for name in os.listdir(merged):
        assert os.stat(merged / name).st_mode & 0o777 == 0o666 & ~umask, name


def test_checkpoint_path_forms_resolve_to_the_actor_dir(run_dir, tmp_path):
    actor = str(run_dir / f"global_step_{STEP}" / "actor")
    for form in (run_dir, run_dir / f"global_step_{STEP}", actor):
        assert merge.resolve_actor_dir(str(form)) == actor
    with pytest.raises(UserError, match="no verl checkpoint"):
        merge.resolve_actor_dir(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        merge.resolve_actor_dir(str(tmp_path / "missing"))


def test_incomplete_checkpoint_is_refused(run_dir, tmp_path):
    actor = tmp_path / "global_step_9" / "actor"
    shutil.copytree(run_dir / f"global_step_{STEP}" / "actor", actor)
    os.unlink(actor / f"model_world_size_{WORLD_SIZE}_rank_1.pt")
    with pytest.raises(UserError, match=r"no shard for rank\(s\) 1"):
        merge.describe_actor_dir(str(actor))


def test_processor_files_are_carried_when_the_merger_leaves_them_out(merged, run_dir, tmp_path):
    hf_dir = str(run_dir / f"global_step_{STEP}" / "actor" / "huggingface")
    bare = tmp_path / "bare"
    shutil.copytree(merged, bare)
    removed = [
        n
        for n in os.listdir(bare)
        if n.startswith(("tokenizer", "chat_template", "processor_config", "preprocessor", "video_pre"))
    ]
    for name in removed:
        os.unlink(bare / name)
    with pytest.raises(UserError, match="does not load"):
        merge.check_loads(str(bare), hf_dir)
    copied = merge.carry_processor_files(hf_dir, str(bare))
    assert sorted(copied) == sorted(n for n in removed if os.path.exists(os.path.join(hf_dir, n)))
    assert merge.check_loads(str(bare), hf_dir) == "Qwen2_5_VLProcessor"
    assert merge.carry_processor_files(hf_dir, str(bare)) == []  # never overwrites what OUT has


def test_existing_output_and_failed_merges_leave_nothing_behind(run_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["merge", str(run_dir), str(out), "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err

    monkeypatch.setattr(
        merge, "merger_command", lambda *a, **k: [sys.executable, "-c", "raise SystemExit(3)"]
    )
    assert main(["merge", str(run_dir), str(out), "--no-progress", "--force"]) == 2
    assert "model merger failed (exit 3)" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]  # the old OUT survives a failed merge
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_merge_models_script_calls_ssl4rl_merge():
    script = os.path.join(ROOT, "scripts", "merge_models.sh")
    env = {**os.environ, "PYTHON": sys.executable}
    usage = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "merge_models.sh CKPT_DIR OUT_DIR" in usage.stderr
    help_text = subprocess.run(
        ["bash", script, "--help"], capture_output=True, text=True, env=env, check=True
    )
    assert "verl.model_merger merge --backend fsdp" in help_text.stdout


# ---- the merged model in an evaluation environment on transformers 4.x ------------------------------------

PROBE = os.path.join(ROOT, "tests", "support", "hf_load_probe.py")
# transformers 4.x lines (with the packages each needs beside the venv's torch): the newest 4.x, and the
# oldest whose Qwen2.5-VL config is flat (4.49 - 4.51 crash on 5.x's nested one)
TRANSFORMERS_4 = {
    "4.57.6": ["transformers==4.57.6", "huggingface_hub==0.36.2"],
    "4.51.3": ["transformers==4.51.3", "huggingface_hub==0.36.2", "tokenizers==0.21.4"],
}


def _pypi_reachable() -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


def _probe(model_dir, site: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site:
        env["PYTHONPATH"] = site
    result = subprocess.run(
        [sys.executable, PROBE, str(model_dir)], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert result.returncode == 0 and lines, (result.stdout + result.stderr)[-3000:]
    return json.loads(lines[-1][len("PROBE ") :])


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("version", sorted(TRANSFORMERS_4))
def test_merged_model_loads_and_generates_the_same_under_transformers_4(merged, version, tmp_path_factory):
    """What VLMEvalKit does with the merged directory (AutoProcessor, AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration, chat template, generate), in a transformers 4.x installed beside this
    environment's torch: the same prompt ids, image grid, pixels and greedy tokens as under 5.x."""
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot install a transformers 4.x to load the model with")
    site = tmp_path_factory.mktemp(f"transformers-{version}")
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-compile",
        "--target",
        str(site),
    ]
    subprocess.run([*install, *TRANSFORMERS_4[version]], check=True, capture_output=True, timeout=900)
    reference = _probe(merged)
    legacy = _probe(merged, str(site))
    assert reference["version"].startswith("5.") and legacy["version"] == version
    for key in ("tokenizer_ids", "input_ids", "image_grid_thw", "generated"):
        assert legacy[key] == reference[key], key
    assert legacy["pixel_sum"] == pytest.approx(reference["pixel_sum"], rel=1e-6)


def test_merge_writes_the_legacy_files_and_5x_still_loads_them(merged):
    manifest = json.loads((merged / merge.MANIFEST_NAME).read_text())
    written = set(manifest["legacy_files_for_transformers_4"])
    assert {
        "preprocessor_config.json",
        "chat_template.json",
        "tokenizer_config.json",
        "config.json",
    } <= written
    config = json.loads((merged / "config.json").read_text())
    assert "text_config" not in config and config["rope_scaling"]["mrope_section"]  # the Hub's flat layout
    preprocessor = json.loads((merged / "preprocessor_config.json").read_text())
    assert (preprocessor["min_pixels"], preprocessor["max_pixels"]) == (
        tiny.TINY_MIN_PIXELS,
        tiny.TINY_MAX_PIXELS,
    )
    assert (
        json.loads((merged / "tokenizer_config.json").read_text())["tokenizer_class"] != "TokenizersBackend"
    )


def test_smoke_run_summary_and_merge(run_dir, tmp_path):
    """What `ssl4rl train --smoke` does after verl's two steps: read the run's metrics.jsonl (verl's file
    logger) and merge the last checkpoint into RUN_DIR/merged."""
    from ssl4rl.backends.verl import smoke

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    metrics = run / "metrics.jsonl"
    lines = [
        {"step": 1, "data": {smoke.STEP_TIME: 41.5, smoke.THROUGHPUT: 1830.2, smoke.PEAK_ALLOCATED: 30.1}},
        {
            "step": 2,
            "data": {
                smoke.STEP_TIME: 38.25,
                smoke.THROUGHPUT: 1992.7,
                smoke.PEAK_ALLOCATED: 30.4,
                smoke.PEAK_RESERVED: 33.0,
                "val-core/ssl4rl/rotation/acc/mean@1": 0.25,
            },
        },
    ]
    metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = smoke.finish_smoke(str(run), str(metrics), progress=False)
    text = "\n".join(summary.lines())
    assert summary.steps == [1, 2] and "step time 38.2 s" in text and "1,993 tokens/s/GPU" in text
    assert "30.4 GB allocated / 33.0 GB reserved" in text and "ssl4rl/rotation/acc/mean@1 0.250" in text
    assert (
        run / "merged" / "model.safetensors"
    ).is_file() and summary.processor_class == "Qwen2_5_VLProcessor"
    metrics.write_text(json.dumps({"step": 0, "data": {"val-core/x": 1.0}}) + "\n")
    with pytest.raises(UserError, match="did not train"):
        smoke.summarize(str(metrics))
