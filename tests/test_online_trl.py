"""The online dataset under TRL's real GRPOTrainer (tiny Qwen2.5-VL on CPU): every generation of a
prompt sees the same sample, epochs bring new samples, the callback drives curriculum steps, and the
reward wrapper records accuracy for accuracy-driven stages."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from PIL import Image

pytest.importorskip("trl")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from ssl4rl import accuracy_ledger  # noqa: E402
from ssl4rl.training_data.online_spec import load_spec  # noqa: E402


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory, photo_paths):
    root = tmp_path_factory.mktemp("online_trl")
    (root / "photos").mkdir()
    for path in photo_paths[:4]:
        image = Image.open(path).convert("RGB")
        image.thumbnail((128, 128))
        image.save(root / "photos" / (os.path.splitext(os.path.basename(path))[0] + ".png"))
    (root / "steps.yaml").write_text(
        "task: rotation\nsource: folder\ninput: photos\n"
        "curriculum:\n  - {until_step: 2}\n  - {knobs: {granularity: 45}}\n"
    )
    (root / "accuracy.yaml").write_text(
        "task: position\nsource: folder\ninput: photos\n"
        "curriculum:\n  - {advance: {accuracy: 0.5, window: 4}}\n  - {knobs: {min_ratio: 0.5}}\n"
    )
    return root


def _train(tiny_model, spec_path, out, reward_fn, epochs: int = 2):
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.online import online_trl_setup
    from ssl4rl.backends.trl.train import grpo_arguments

    processor = AutoProcessor.from_pretrained(tiny_model, padding_side="left")
    dataset, reward, callback = online_trl_setup(
        load_spec(str(spec_path)), processor, max_prompt_length=1024, reward_fn=reward_fn
    )
    settings = TrlGrpoConfig(
        model=tiny_model,
        train_files=[str(spec_path)],
        output_dir=str(out),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        num_train_epochs=epochs,
        save_steps=0,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=[],
    )
    trainer = GRPOTrainer(
        model=tiny_model,
        reward_funcs=[reward],
        args=grpo_arguments(settings, cuda=False, bf16=False),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[callback],
    )
    trainer.train()
    return callback.online, trainer.state.log_history


def test_grpo_groups_share_a_sample_and_epochs_and_stages_advance(tiny_model, spec_dir, tmp_path):
    calls = []

    def spy(prompts=None, completions=None, **columns):
        pictures = [
            hashlib.sha1(b"".join(im.tobytes() for im in ims)).hexdigest() for ims in columns["images"]
        ]
        calls.append(
            [
                (info["index"], info["epoch"], info["stage"], truth["ground_truth"], picture)
                for info, truth, picture in zip(columns["extra_info"], columns["reward_model"], pictures)
            ]
        )
        return [0.0] * len(completions)

    _train(tiny_model, spec_dir / "steps.yaml", tmp_path / "run", spy)
    assert len(calls) == 2 * 2  # 4 prompts x 4 generations per epoch in batches of 8 completions
    items = [item for call in calls for item in call]
    by_prompt = {}
    for index, epoch, stage, truth, picture in items:
        by_prompt.setdefault((epoch, index), set()).add((stage, truth, picture))
    assert all(len(v) == 1 for v in by_prompt.values())  # all 4 generations of a prompt: one sample
    assert sorted(by_prompt) == [(e, i) for e in (0, 1) for i in range(4)]
    assert [call[0][1] for call in calls] == [0, 0, 1, 1]
    # accelerate fetches one batch ahead, so stage 1 (from step 3) shows in the third batch
    assert [call[0][2] for call in calls] == [0, 0, 1, 1]
    assert {truth for _, _, stage, truth, _ in items if stage == 1} <= {str(a) for a in range(0, 360, 45)}


def test_reward_wrapper_records_accuracy_and_keeps_the_scores(tiny_model, spec_dir, tmp_path):
    def constant(prompts=None, completions=None, **columns):
        return [0.25] * len(completions)

    online, logs = _train(tiny_model, spec_dir / "accuracy.yaml", tmp_path / "run", constant, epochs=1)
    assert [log["rewards/constant/mean"] for log in logs if "rewards/constant/mean" in log] == [0.25, 0.25]
    accuracy_ledger.flush_all()
    ledger = os.path.join(online.session.directory, accuracy_ledger.LEDGER_DIR)
    lines = [json.loads(line) for name in os.listdir(ledger) for line in open(os.path.join(ledger, name))]
    assert sum(line["n"] for line in lines) == 16  # every completion scored once
    assert {(line["part"], line["stage"]) for line in lines} == {("position", 0)}
    assert sum(line["sum"] for line in lines) <= 16
