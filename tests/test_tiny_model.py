"""The tiny offline Qwen2.5-VL loads through the Auto classes and generates for a 2-image prompt."""

from __future__ import annotations

import hashlib
import os

import pytest

pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # numpy copy= notice inside transformers


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from ssl4rl.tiny import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(str(tmp_path_factory.mktemp("tiny") / "model"), seed=0)


def _digest(path: str) -> str:
    with open(os.path.join(path, "model.safetensors"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_loads_with_auto_classes_and_generates_for_two_images(tiny_dir, photos):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "image"},
                {"type": "text", "text": "How many degrees was the second image rotated?"},
            ],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.endswith("<|im_start|>assistant\n")

    images = [photos[0].image, photos[1].image]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    # small min/max pixels: each photograph costs 1..4 image tokens, whatever its size
    pad_id = model.config.image_token_id
    n_image_tokens = int((inputs["input_ids"] == pad_id).sum())
    assert 2 <= n_image_tokens <= 8

    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=True)
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 12
    assert isinstance(processor.decode(new_tokens, skip_special_tokens=True), str)


def test_format_tags_and_task_answers_are_single_tokens_that_decoding_keeps(tiny_dir):
    from transformers import AutoProcessor

    from ssl4rl.tiny import REPLY_TAGS, reply_answer_tokens

    tokenizer = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    answers = reply_answer_tokens()
    assert {"0", "90", "180", "270", "top-left", "bottom-right", "positive", "negative"} <= set(answers)
    for token in (*REPLY_TAGS, *answers):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    reply = "<think></think><answer>bottom-right</answer>"
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    assert len(ids) == 5
    # TRL and the evaluators decode with skip_special_tokens=True: the tags must survive it
    assert tokenizer.decode(ids, skip_special_tokens=True) == reply
    # answer tokens match whole words only: "1990" is not split around an added "90"
    assert "90" not in tokenizer.tokenize("1990 positives")
    assert "positive" not in tokenizer.tokenize("1990 positives")


def test_same_seed_same_weights_other_seed_differs(tiny_dir, tmp_path):
    from ssl4rl.tiny import build_tiny_qwen2_5_vl

    again = build_tiny_qwen2_5_vl(str(tmp_path / "again"), seed=0)
    other = build_tiny_qwen2_5_vl(str(tmp_path / "other"), seed=1)
    assert _digest(again) == _digest(tiny_dir)
    assert _digest(other) != _digest(tiny_dir)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tiny-qwen-")]  # no temp leftovers


def test_cli_refuses_to_overwrite_without_flag(tmp_path, capsys):
    from ssl4rl.cli import main

    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["tiny-model", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["tiny-model", str(out), "--overwrite", "--seed", "3"]) == 0
    assert (out / "config.json").exists() and not (out / "keep.txt").exists()


def assert_usual_permissions(directory) -> None:
    """What mkdir/open give under the process umask: a model on a shared cluster is readable by others."""
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(directory).st_mode & 0o777 == 0o777 & ~umask
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o777 & ~umask, name
        for name in files:
            assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o666 & ~umask, name


def test_written_model_has_the_usual_permissions(tiny_dir):
    assert_usual_permissions(tiny_dir)


OTHER_FAMILIES = {
    # family: (model class, processor class, chat-template markers of one image)
    "qwen3-vl": (
        "Qwen3VLForConditionalGeneration",
        "Qwen3VLProcessor",
        "<|vision_start|><|image_pad|><|vision_end|>",
    ),
    "glm-4.1v": (
        "Glm4vForConditionalGeneration",
        "Glm4vProcessor",
        "<|begin_of_image|><|image|><|end_of_image|>",
    ),
}


@pytest.mark.parametrize("family", sorted(OTHER_FAMILIES))
def test_other_families_load_count_image_tokens_as_the_budget_says_and_generate(
    family, tiny_family_model, photos
):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ssl4rl.model_families import family_of_model_dir, get_family
    from ssl4rl.rl_row import PromptLength, processor_family

    model_dir = tiny_family_model(family)
    model_class, processor_class, markers = OTHER_FAMILIES[family]
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    assert (type(model).__name__, type(processor).__name__) == (model_class, processor_class)
    assert family_of_model_dir(model_dir) is get_family(family) is processor_family(processor)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000

    prompt = [{"role": "user", "content": "<image><image>How many degrees was the second image rotated?"}]
    length = PromptLength(processor, fetch_resize=False)
    assert length.budget is not None and length.budget.family is get_family(family)
    text = length.template(prompt)
    assert text.count(markers) == 2
    images = [photos[0].image, photos[1].image.resize((40, 300))]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    assert len(inputs["input_ids"][0]) == length(prompt, images)  # the budget's count is the processor's
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    # 1 to 4 tokens for a photograph; the 40x300 strip keeps its narrow side one token wide and costs a few more
    assert 2 <= image_tokens <= 12

    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=8, do_sample=True)
    assert 1 <= out.shape[1] - inputs["input_ids"].shape[1] <= 8

    from ssl4rl.tiny import REPLY_TAGS

    for tag in REPLY_TAGS:
        assert len(processor.tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag


def test_cli_writes_the_asked_family(tmp_path, capsys):
    from ssl4rl.cli import main

    assert main(["tiny-model", str(tmp_path / "q3"), "--model-family", "qwen3-vl"]) == 0
    assert "tiny Qwen3-VL" in capsys.readouterr().out
    assert main(["tiny-model", str(tmp_path / "x"), "--model-family", "qwen3"]) == 2
    assert "Did you mean 'qwen3-vl'" in capsys.readouterr().err
