"""Every model family end to end on CPU: the builder's budget guarantee against the family's real processor
(with its released checkpoints' pixel limits), a few TRL GRPO steps and an evaluation with its tiny offline
model, its verl recipe composed and validated with verl 0.9.1, and data built for another family's budget
re-counted or refused with one line."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from ssl4rl.builder import BuildConfig, build
from ssl4rl.cli import main
from ssl4rl.model_families import get_family
from ssl4rl.rl_row import decode_image_cell, to_content_blocks
from ssl4rl.tiny import tiny_pixel_limits
from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALL_FAMILIES = ["qwen2.5-vl", "qwen3-vl", "glm-4.1v"]
NEW_FAMILIES = ["qwen3-vl", "glm-4.1v"]
# small, large, square, portrait, landscape and strip-like images (up to 1:6), as photographs
SIZES = [(28, 28), (97, 61), (45, 300), (640, 480), (1024, 768), (333, 999), (1500, 250), (1600, 1200)]


@pytest.fixture(scope="module")
def varied_photos(tmp_path_factory, photo_paths) -> str:
    from PIL import Image

    root = tmp_path_factory.mktemp("varied")
    for i, size in enumerate(SIZES):
        with Image.open(photo_paths[i % len(photo_paths)]) as image:
            image.convert("RGB").resize(size).save(root / f"{i}-{size[0]}x{size[1]}.png")
    return str(root)


def real_processor(model_dir: str, family):
    """The family's processor classes with its released checkpoints' pixel limits (the tiny model's
    tokenizer and template): what a real model of the family counts."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        model_dir, **family.processor_pixel_kwargs(family.min_pixels, family.max_pixels)
    )
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (family.min_pixels, family.max_pixels)
    return processor


def prompt_tokens(processor, row, family, verl: bool) -> int:
    from qwen_vl_utils import fetch_image

    images = [decode_image_cell(cell) for cell in row["images"]]
    if verl:  # verl resizes with qwen_vl_utils (the processor's patch size) before the processor
        images = [fetch_image({"image": im}, image_patch_size=family.patch_size) for im in images]
    text = processor.apply_chat_template(
        to_content_blocks([{"role": "user", "content": row["query"]}]),
        add_generation_prompt=True,
        tokenize=False,
    )
    return len(processor(text=[text], images=images)["input_ids"][0])


@pytest.mark.parametrize("name", ALL_FAMILIES)
def test_build_guarantees_the_budget_for_the_family(name, varied_photos, tiny_family_model, tmp_path, capsys):
    """`ssl4rl build --model-family F --max-prompt-tokens 1024`: every prompt fits 1024 tokens as F's real
    processor counts them, with verl's image path and TRL's, for images of many sizes and aspect ratios."""
    pytest.importorskip("qwen_vl_utils")
    family = get_family(name)
    model = tiny_family_model(name)
    processor = real_processor(model, family)
    downscaled = 0
    for task, knobs in (("jigsaw", ["--grid", "3"]), ("rotation", [])):
        out = tmp_path / task
        argv = ["build", "--task", task, *knobs, "--source", "folder", "--input", varied_photos]
        argv += ["--out", str(out), "--model-family", name, "--max-prompt-tokens", "1024", "--no-progress"]
        # exact text counts: Qwen3-VL's released limits cost at least 66 tokens an image, so a 9-view prompt
        # fits 1024 only when its text is counted, not bounded by its UTF-8 length
        argv += ["--tokenizer", model]
        assert main(argv) == 0
        assert f"within 1024 {name} tokens" in capsys.readouterr().out
        manifest = json.loads((out / "manifest.json").read_text())["splits"]["train"]
        assert manifest["model_family"]["name"] == name
        assert manifest["model_family"]["factor"] == family.factor
        downscaled += manifest["counts"]["downscaled_for_token_budget"]
        rows = pq.read_table(str(out / "data")).to_pylist()
        assert rows
        for row in rows:
            for verl in (True, False):
                assert prompt_tokens(processor, row, family, verl) <= 1024, (row["source_key"], verl)
    assert downscaled > 0  # the budget did bind: large 9-view jigsaw prompts were scaled down to fit


def test_a_budget_for_qwen3_differs_from_qwen25s(varied_photos, tmp_path):
    """Same images, same budget: Qwen3-VL's 32-px tokens (and its larger min_pixels) count other tokens and
    downscale other views."""
    sizes = {}
    for name in ("qwen2.5-vl", "qwen3-vl"):
        out = tmp_path / name
        build(
            BuildConfig(
                task="rotation",
                source="folder",
                input=varied_photos,
                out=str(out),
                model_family=name,
                max_prompt_tokens=1024,
                progress=False,
            )
        )
        rows = pq.read_table(str(out / "data")).to_pylist()
        sizes[name] = [(r["image_tokens"], r["scale"]) for r in rows]
    assert len(sizes["qwen2.5-vl"]) == len(sizes["qwen3-vl"])
    assert [t for t, _ in sizes["qwen2.5-vl"]] != [t for t, _ in sizes["qwen3-vl"]]
    assert [s for _, s in sizes["qwen2.5-vl"]] != [s for _, s in sizes["qwen3-vl"]]


def test_unknown_family_is_one_line(capsys, tmp_path):
    argv = [
        "build",
        "--task",
        "rotation",
        "--source",
        "folder",
        "--input",
        str(tmp_path),
        "--out",
        str(tmp_path),
    ]
    assert main([*argv, "--model-family", "qwen3vl"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'qwen3-vl'" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def family_data(tmp_path_factory, small_photos, tiny_family_model):
    """`family_data(name)`: rotation + jigsaw 2x2 built for a family's tiny model (its pixel limits, exact
    text counts with its tokenizer, 512 tokens), preprocessed into verl RL parquet."""
    made = {}

    def data(name: str) -> str:
        if name not in made:
            root = tmp_path_factory.mktemp(f"data-{name}")
            model = tiny_family_model(name)
            low, high = tiny_pixel_limits(get_family(name))
            built = {"train": [], "validation": []}
            for task, knobs in (("rotation", {}), ("jigsaw", {"grid": 2})):
                for split in built:
                    out = str(root / f"{task}-{split}")
                    config = BuildConfig(
                        task=task,
                        source="folder",
                        input=small_photos(160, 6),
                        out=out,
                        knobs=knobs,
                        split=split,
                        model_family=name,
                        min_pixels=low,
                        max_pixels=high,
                        tokenizer=model,
                        max_prompt_tokens=512,
                        progress=False,
                    )
                    build(config)
                    built[split].append(out)
            out = str(root / "verl")
            preprocess(
                PreprocessConfig(
                    out=out,
                    train=built["train"],
                    val=built["validation"],
                    allow_shared_images=True,
                    progress=False,
                )
            )
            made[name] = out
        return made[name]

    return data


def _digit_reward(tokenizer):
    """Reward = share of generated tokens holding a digit: varies between sampled completions of a random
    model, so GRPO has advantages to follow."""
    digit_ids = {i for token, i in tokenizer.get_vocab().items() if any(c.isdigit() for c in token)}

    def digits(completions=None, completion_ids=None, **_):
        return [sum(t in digit_ids for t in ids) / max(len(ids), 1) for ids in completion_ids]

    return digits


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_trl_trains_each_family_for_a_few_steps(name, family_data, tiny_family_model, tmp_path):
    pytest.importorskip("trl")
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.train import train_grpo

    model = tiny_family_model(name)
    config = TrlGrpoConfig(
        model=model,
        train_files=[os.path.join(family_data(name), "train.parquet")],
        output_dir=str(tmp_path / "run"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_prompt_length=512,
        max_steps=2,
        save_steps=0,
        learning_rate=2e-2,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=[],
    )
    manifest = train_grpo(config, reward_funcs=_digit_reward(AutoTokenizer.from_pretrained(model)))
    assert manifest["status"] == "done" and manifest["global_step"] == 2
    assert manifest["model_family"] == name
    data = manifest["train_data"]
    assert data["skipped"] == {} and data["budget_built_for"] == [name] and "budget_note" not in data
    before = load_file(os.path.join(model, "model.safetensors"))
    after = load_file(os.path.join(tmp_path / "run" / "final", "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    trained = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "run" / "final"))
    assert trained.config.model_type == get_family(name).model_types[0]


def test_trl_recounts_data_built_for_another_family(family_data, tiny_family_model, tmp_path, capsys):
    """Data built for GLM-4.1V's budget, trained with Qwen3-VL: every prompt is counted again by Qwen3-VL's
    processor, and the run says so in one line."""
    pytest.importorskip("trl")
    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.train import train_grpo

    config = TrlGrpoConfig(
        model=tiny_family_model("qwen3-vl"),
        train_files=[os.path.join(family_data("glm-4.1v"), "train.parquet")],
        output_dir=str(tmp_path / "run"),
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=4,
        max_prompt_length=512,
        max_steps=1,
        save_steps=0,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=[],
    )
    manifest = train_grpo(config)
    note = manifest["train_data"]["budget_note"]
    assert "built for glm-4.1v's token budget but the model is Qwen3-VL" in note and "re-counted" in note
    assert "note: " + note in capsys.readouterr().err


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_evaluation_runs_each_family(name, family_data, tiny_family_model, tmp_path):
    from ssl4rl.evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl

    model = tiny_family_model(name)
    low, high = tiny_pixel_limits(get_family(name))
    run = SSLEvalConfig(
        data=os.path.join(family_data(name), "val.parquet"),
        out=str(tmp_path / "eval"),
        model=model,
        limit=4,
        max_new_tokens=6,
        backend="transformers",
        min_pixels=low,  # through the family's own processor argument (GLM-4.1V: `size`)
        max_pixels=high,
        progress=False,
    )
    evaluate_ssl(run)
    manifest = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert manifest["counts"]["answered_now"] == 4 and manifest["budget_note"] is None
    lines = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("response" in json.loads(line) for line in lines)


def test_evaluation_pixel_limits_follow_the_family(tiny_family_model):
    from ssl4rl.evaluation.runner import PAPER_MIN_PIXELS, BenchmarkEvalConfig, with_family_pixel_limits

    def limits(model):
        run = with_family_pixel_limits(
            BenchmarkEvalConfig(benchmark="mmbench", data="x", out="y", model=model)
        )
        return run.min_pixels, run.max_pixels

    assert limits(tiny_family_model("qwen2.5-vl"))[0] == PAPER_MIN_PIXELS  # the paper's, as before
    assert limits(tiny_family_model("qwen3-vl")) == (None, None)  # the model's own processor limits
    assert limits("zai-org/GLM-4.1V-9B-Thinking") == (None, None)


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_verl_recipe_composes_validates_and_verls_dataset_counts_as_the_budget(
    name, family_data, tiny_family_model, tmp_path
):
    """The recipe with the family's model passes verl's own validation; verl's processor loader takes the
    family's processor (rope index bound), and verl's RLHFDataset + image path give every row the token count
    the budget gives, within data.max_prompt_length."""
    pytest.importorskip("verl")
    pytest.importorskip("qwen_vl_utils")
    from omegaconf import OmegaConf
    from verl.utils import hf_processor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from ssl4rl.backends.verl import doctor
    from ssl4rl.backends.verl import launch as vl
    from ssl4rl.backends.verl.recipes import get_recipe
    from ssl4rl.rl_row import PromptLength

    model = tiny_family_model(name)
    data = family_data(name)
    launch = vl.build_launch(get_recipe("mmbench_rotation"), vl.Layout(1, 1), model=model, data_dir=data)
    config_dir, config_name, overrides = vl.parse_command(launch.argv)
    config = vl.compose(config_dir, config_name, overrides)
    vl.check_config(config)
    assert config.actor_rollout_ref.model.path == model
    # GLM-4.1V needs ssl4rl's fixes for verl 0.9.1 + transformers 5 in verl's workers (tests/test_verl_actor_step.py)
    expected = vl.GLM4V_PATCH if name == "glm-4.1v" else None
    assert config.actor_rollout_ref.model.get("external_lib") == expected
    probes = dict(doctor.import_probes(config, "sdpa"))  # the doctor imports it before a launch
    assert (f"model lib {vl.GLM4V_PATCH}" in probes) == (name == "glm-4.1v")

    processor = hf_processor(model)
    assert processor is not None and hasattr(processor, "get_rope_index")
    dataset_config = OmegaConf.create(
        {
            "max_prompt_length": 512,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": None,
            "cache_dir": str(tmp_path),
        }
    )
    path = os.path.join(data, "train.parquet")
    dataset = RLHFDataset(
        data_files=[path], tokenizer=processor.tokenizer, config=dataset_config, processor=processor
    )
    assert len(dataset) == pq.read_metadata(path).num_rows  # verl's overlong filter dropped nothing
    length = PromptLength(processor, fetch_resize=True)
    assert length.budget is not None and length.budget.family is get_family(name)
    rows = pq.read_table(path).to_pylist()
    for i, row in enumerate(rows):
        messages = dataset[i]["raw_prompt"]
        images, _, _ = dataset._process_multi_modal_info(messages, dataset.image_patch_size, dataset.config)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        real = len(processor(text=[text], images=images)["input_ids"][0])
        assert real == length(row["prompt"], row["images"]) <= 512


def test_doctor_refuses_stored_counts_of_another_family_and_recounts_with_a_local_model(
    family_data, tiny_family_model
):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from transformers import AutoProcessor

    from ssl4rl.backends.verl import doctor
    from ssl4rl.rl_row import PromptLength
    from ssl4rl.training_data.profile import budget_mismatch, profile_parquet

    data = family_data("glm-4.1v")
    files = [os.path.join(data, "train.parquet")]
    facts = doctor.Facts(model_family=get_family("qwen3-vl"))
    facts.train = [
        profile_parquet(files[0], length_of=None, max_prompt_length=512, digests=False, progress=False)
    ]
    facts.budget_mismatch = budget_mismatch(files, facts.model_family)
    config = OmegaConf.create({"data": {"max_prompt_length": 512, "filter_overlong_prompts": False}})
    check = doctor.check_prompt_tokens(config, facts)
    assert check.status == doctor.FAIL and "built for glm-4.1v's token budget" in check.detail

    facts.processor = AutoProcessor.from_pretrained(tiny_family_model("qwen3-vl"))
    length = PromptLength(facts.processor, fetch_resize=True)
    facts.train = [
        profile_parquet(files[0], length_of=length, max_prompt_length=512, digests=False, progress=False)
    ]
    check = doctor.check_prompt_tokens(config, facts)
    assert check.status == doctor.OK and "re-counted" in check.detail
