"""LoRA on both backends ends as a full model: a TRL LoRA run on CPU and a verl LoRA checkpoint (written by verl's
own FSDPCheckpointManager from a 2-rank gloo FSDP2 group over a peft model, as verl's FSDP engine builds it) are
merged by `ssl4rl merge`, loaded by plain transformers (no peft), compared with peft's own merge, and generate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from support.fsdp_ranks import free_port, run_ranks  # noqa: E402

from ssl4rl import adapters  # noqa: E402
from ssl4rl.backends.verl import merge, resources  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402
from ssl4rl.evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl  # noqa: E402
from ssl4rl.lora import LoraSettings, adapter_parameters, lora_settings  # noqa: E402

RANK, ALPHA = 4, 8
WORLD_SIZE = 2
STEP = 2


def _peft_model(model_dir: str, settings: LoraSettings):
    """The model wrapped exactly as verl's FSDP engine and the TRL backend wrap it."""
    model = transformers.AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.lora_alpha,
        target_modules=settings.peft_target_modules,
        exclude_modules=settings.exclude_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def _train_adapter(model) -> None:
    """Stands in for training: every LoRA B (zero at start) gets a fixed non-zero value."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))


def _image_inputs(processor):
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=[prompt], images=[image], return_tensors="pt")


# ---- the adapter's size, as the doctor counts it ---------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        LoraSettings(rank=4),
        LoraSettings(rank=8, target_modules=("q_proj", "v_proj")),
        LoraSettings(rank=2, exclude_modules=None),  # the vision tower too
    ],
)
def test_adapter_size_from_weight_shapes_is_what_peft_trains(tiny_model, settings):
    model = _peft_model(tiny_model, settings)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable > 0
    assert adapter_parameters(resources.weight_shapes(tiny_model), settings) == trainable
    # verl's LoRA never adapts the vision tower unless asked
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert any("visual" in n for n in adapted) == (settings.exclude_modules is None)


def test_lora_flags_are_checked_in_one_line():
    assert lora_settings(None) is None and lora_settings(0) is None
    assert lora_settings(16).lora_alpha == 32 and lora_settings(16, 16).scaling == 1.0
    assert lora_settings(8, exclude_modules="none").exclude_modules is None
    with pytest.raises(UserError, match="need --lora-rank"):
        lora_settings(0, alpha=16)
    with pytest.raises(UserError, match="positive"):
        lora_settings(-1)
    with pytest.raises(UserError, match="not a regex"):
        lora_settings(8, exclude_modules="(visual")


# ---- TRL: a LoRA run on CPU -> ssl4rl merge -> a full model ---------------------------------------------------


@pytest.fixture(scope="module")
def trl_run(tiny_model, tmp_path_factory, small_photos, make_rl_parquet):
    pytest.importorskip("trl")
    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.train import train_grpo

    root = tmp_path_factory.mktemp("trl_lora")
    data = make_rl_parquet(root / "data", small_photos(160, 4), [("rotation", {})])
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    digit_ids = {i for token, i in tokenizer.get_vocab().items() if any(c.isdigit() for c in token)}

    def digits(completion_ids=None, **_):  # reachable from random init: the adapter must move
        return [sum(t in digit_ids for t in ids) / max(len(ids), 1) for ids in completion_ids]

    config = TrlGrpoConfig(
        model=tiny_model,
        train_files=[os.path.join(data, "train.parquet")],
        output_dir=str(root / "run"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=3,
        save_steps=0,
        learning_rate=5e-2,
        lora_rank=RANK,
        lora_alpha=ALPHA,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=["none"],
    )
    manifest = train_grpo(config, reward_funcs=digits)
    return root / "run", manifest


def test_a_trl_lora_run_saves_an_adapter_of_the_language_model_only(trl_run, tiny_model):
    run, manifest = trl_run
    assert manifest["status"] == "done" and manifest["lora_adapter"] is True
    final = run / "final"
    assert adapters.is_adapter_dir(str(final)) and not (final / "model.safetensors").exists()
    adapter = adapters.load_adapter(str(final))
    assert adapter.rank == RANK and adapter.scaling == ALPHA / RANK
    assert os.path.realpath(adapter.base_model) == os.path.realpath(tiny_model)
    layers = adapter.pairs()
    assert layers and not any("visual" in name for name in layers)
    assert any(b.abs().max() > 0 for _, b in layers.values())  # training moved B away from zero


def test_trl_lora_run_merges_into_a_full_model_that_loads_and_generates(
    trl_run, tiny_model, tmp_path, capsys
):
    run, _ = trl_run
    out = tmp_path / "merged"
    assert main(["merge", str(run), str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "LoRA rank 4, scale 2" in printed and "layers merged" in printed

    assert not (out / "adapter_config.json").exists()  # a plain model: transformers loads it without peft
    manifest = json.loads((out / merge.MANIFEST_NAME).read_text())
    assert manifest["kind"] == "lora_adapter" and manifest["lora_layers_merged"] == 14  # 2 layers x 7 linears
    processor = transformers.AutoProcessor.from_pretrained(out)
    merged = transformers.AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)

    # the same function as the base model with the adapter on (peft), not the base model's
    base = transformers.AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    with_adapter = peft.PeftModel.from_pretrained(
        transformers.AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32),
        str(run / "final"),
    )
    inputs = _image_inputs(processor)
    with torch.no_grad():
        got = merged(**inputs).logits
        want = with_adapter(**inputs).logits
        before = base(**inputs).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - before).abs().max() > 1e-3

    output = merged.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4

    # and `ssl4rl eval --ssl` evaluates it like any model (transformers backend, the run's held-out rows)
    report = evaluate_ssl(
        SSLEvalConfig(
            data=str(run.parent / "data" / "verl" / "val.parquet"),
            out=str(tmp_path / "eval"),
            model=str(out),
            max_new_tokens=8,
            backend="transformers",
            min_pixels=None,
            max_pixels=None,
            progress=False,
        )
    )
    assert report["tasks"]["rotation"]["n"] > 0 and 0 <= report["tasks"]["rotation"]["acc"] <= 100


def test_adapter_of_another_model_is_refused(trl_run, tmp_path):
    run, _ = trl_run
    adapter = adapters.load_adapter(str(run / "final"))
    adapter.tensors = {k.replace("layers.0", "layers.9"): v for k, v in adapter.tensors.items()}
    model = transformers.AutoModelForImageTextToText.from_pretrained(adapter.base_model)
    with pytest.raises(UserError, match=r"layers\.9.* is not in the model"):
        adapters.merge_into(model, adapter)
    with pytest.raises(UserError, match="not a LoRA adapter directory"):
        adapters.load_adapter(str(tmp_path))
    with pytest.raises(UserError, match="names no base model"):
        dest = tmp_path / "adapter"
        dest.mkdir()
        config = json.loads((run / "final" / "adapter_config.json").read_text())
        (dest / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": None}))
        (dest / "adapter_model.safetensors").write_bytes(
            (run / "final" / "adapter_model.safetensors").read_bytes()
        )
        merge.merge_checkpoint(str(dest), str(tmp_path / "out"), progress=False)


# ---- verl: a LoRA checkpoint as verl's FSDP engine writes it -> ssl4rl merge -> a full model -----------------


def _save_lora_rank(rank: int, model_dir: str, actor_dir: str, port: int, lora_only: bool = False) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank))
    os.environ["WORLD_SIZE"] = str(WORLD_SIZE)
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    model = _peft_model(model_dir, LoraSettings(rank=RANK, alpha=ALPHA))
    _train_adapter(model)
    mesh = init_device_mesh("cpu", (WORLD_SIZE,), mesh_dim_names=("fsdp",))
    for layer in model.base_model.model.model.language_model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    manager = FSDPCheckpointManager(
        model=model,
        optimizer=None,
        lr_scheduler=None,
        processing_class=transformers.AutoProcessor.from_pretrained(model_dir),
        checkpoint_config={
            "save_contents": ["model"],
            "load_contents": ["model"],
            "save_lora_only": lora_only,
        },
    )
    manager.save_checkpoint(local_path=actor_dir, global_step=STEP)
    dist.barrier()
    dist.destroy_process_group()


def _verl_lora_checkpoint(tiny_model, run, lora_only: bool = False):
    pytest.importorskip("verl")
    import verl.utils.checkpoint.fsdp_checkpoint_manager  # noqa: F401  imported once, shared by forked ranks

    actor_dir = run / f"global_step_{STEP}" / "actor"
    run_ranks(_save_lora_rank, (tiny_model, str(actor_dir), free_port(), lora_only), WORLD_SIZE)
    return run


@pytest.fixture(scope="module")
def verl_lora_run(tiny_model, tmp_path_factory):
    return _verl_lora_checkpoint(tiny_model, tmp_path_factory.mktemp("verl_lora") / "run")


def _merged_lora_weights(tiny_model):
    expected_model = _peft_model(tiny_model, LoraSettings(rank=RANK, alpha=ALPHA))
    _train_adapter(expected_model)
    return expected_model.merge_and_unload().state_dict()


def test_verl_lora_checkpoint_merges_into_the_full_model(verl_lora_run, tiny_model, tmp_path, capsys):
    actor = verl_lora_run / f"global_step_{STEP}" / "actor"
    assert json.loads((actor / "lora_train_meta.json").read_text())["lora_alpha"] == ALPHA
    out = tmp_path / "merged"
    assert main(["merge", str(verl_lora_run), str(out), "--no-progress"]) == 0
    assert "LoRA rank 4, scale 2" in capsys.readouterr().out
    manifest = json.loads((out / merge.MANIFEST_NAME).read_text())
    assert manifest["kind"] == "lora_checkpoint" and manifest["lora_layers_merged"] == 14
    assert adapters.is_adapter_dir(str(out / merge.VERL_ADAPTER_DIR))  # kept for serving the adapter alone

    got = transformers.AutoModelForImageTextToText.from_pretrained(out, dtype="auto").state_dict()
    want = _merged_lora_weights(tiny_model)
    base = transformers.AutoModelForImageTextToText.from_pretrained(
        tiny_model, dtype=torch.float32
    ).state_dict()
    assert set(got) == set(want)
    moved = 0.0
    for key, value in want.items():
        # verl's merger stores bfloat16; the merge adds the update to those weights: equal at that precision
        torch.testing.assert_close(got[key].float(), value, atol=2e-3, rtol=1e-2, msg=key)
        moved = max(moved, (got[key].float() - base[key]).abs().max().item())
        if "visual" in key:
            torch.testing.assert_close(got[key].float(), base[key], atol=1e-2, rtol=1e-2, msg=key)
    assert moved > 0.1  # the adapter's update is in the weights

    processor = transformers.AutoProcessor.from_pretrained(out)
    model = transformers.AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    inputs = _image_inputs(processor)
    output = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4


def test_a_lora_only_verl_checkpoint_merges_onto_the_model_the_run_started_from(tiny_model, tmp_path, capsys):
    """actor.checkpoint.save_lora_only=true: no base weights in the shards (verl's merger stops after writing the
    adapter); the base is the model of the run's launch manifest, or --base-model."""
    run = _verl_lora_checkpoint(tiny_model, tmp_path / "run", lora_only=True)
    assert main(["merge", str(run), str(tmp_path / "no_base"), "--no-progress"]) == 2
    assert "holds only the LoRA adapter" in capsys.readouterr().err and not (tmp_path / "no_base").exists()

    launch = {
        "verl_command": [
            "python",
            "-m",
            "verl.trainer.main_ppo",
            f"actor_rollout_ref.model.path={tiny_model}",
        ]
    }
    (run / "ssl4rl_launch.json").write_text(json.dumps(launch))
    out = tmp_path / "merged"
    assert main(["merge", str(run), str(out), "--no-progress"]) == 0
    manifest = json.loads((out / merge.MANIFEST_NAME).read_text())
    assert manifest["base_model"] == tiny_model and manifest["lora_layers_merged"] == 14
    got = transformers.AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).state_dict()
    want = _merged_lora_weights(tiny_model)
    assert set(got) == set(want)
    for key, value in want.items():  # verl's merger stores the adapter in bfloat16: equal at that precision
        torch.testing.assert_close(got[key], value, atol=2e-3, rtol=1e-2, msg=key)
    base = transformers.AutoModelForImageTextToText.from_pretrained(
        tiny_model, dtype=torch.float32
    ).state_dict()
    assert max((got[k] - base[k]).abs().max().item() for k in base) > 0.1
    assert transformers.AutoProcessor.from_pretrained(out).chat_template
