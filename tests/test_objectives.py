"""Named GRPO-variant objectives: each composes over the paper's recipe and passes verl 0.9.1's validation, drives
verl's own policy-loss function the way docs/objectives.md says, and maps onto TRL's GRPOConfig (or is refused)."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

pytest.importorskip("verl")
pytest.importorskip("hydra")
torch = pytest.importorskip("torch")

from ssl4rl import objectives  # noqa: E402
from ssl4rl.backends.trl import config as trl_config  # noqa: E402
from ssl4rl.backends.verl import launch as vl  # noqa: E402
from ssl4rl.backends.verl.recipes import get_recipe  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = [n for n in objectives.objective_names() if n != objectives.PAPER]


EIGHT_GPUS = vl.Layout(1, 8)


def composed(objective: str | None, *extra: str, layout=EIGHT_GPUS, model: str | None = None):
    launch = vl.build_launch(
        get_recipe("mmbench_rotation"),
        layout,
        extra=list(extra),
        attn="sdpa",
        objective=objective,
        model=model,
    )
    config_dir, config_name, overrides = vl.parse_command(launch.argv)
    return launch, vl.compose(config_dir, config_name, overrides)


def test_every_objective_has_its_verl_group_and_the_paper_has_none():
    assert objectives.objective_names()[0] == "grpo" and set(VARIANTS) == {"gspo", "dapo", "cispo", "sapo"}
    assert objectives.get_objective("grpo").verl_override is None
    for name in VARIANTS:
        objective = objectives.get_objective(name)
        assert os.path.isfile(objective.verl_file) and objective.verl_override == f"+objective={name}"


@pytest.mark.parametrize("layout", [vl.Layout(1, 1), vl.Layout(2, 8)])
@pytest.mark.parametrize("name", VARIANTS)
def test_objectives_compose_over_the_recipe_and_pass_verls_validation(name, layout):
    launch, config = composed(name, layout=layout)
    assert f"+objective={name}" in launch.argv
    vl.check_config(config)
    actor = config.actor_rollout_ref.actor
    expected = {
        "gspo": ("gspo", 0.0003, 0.0004, "seq-mean-token-mean"),
        "dapo": ("vanilla", 0.2, 0.28, "token-mean"),
        "cispo": ("cispo", 1.0, 4.0, "token-mean"),
        "sapo": ("sapo", 0.2, 0.2, "seq-mean-token-mean"),
    }[name]
    assert (
        actor.policy_loss.loss_mode,
        actor.clip_ratio_low,
        actor.clip_ratio_high,
        actor.loss_agg_mode,
    ) == expected
    # everything else is still the paper's recipe
    assert (actor.kl_loss_coef, actor.optim.lr, config.actor_rollout_ref.rollout.n) == (0.01, 1e-6, 5)
    assert config.algorithm.filter_groups.enable == (name == "dapo")
    if name == "dapo":
        assert config.reward.reward_manager.name == "dapo" and config.trainer.use_v1
        assert config.reward.reward_kwargs.max_resp_len == config.data.max_response_length == 2048


def test_single_keys_still_override_an_objective(capsys):
    _, config = composed(
        "dapo",
        "actor_rollout_ref.actor.clip_ratio_high=0.3",
        "reward.reward_kwargs.overlong_buffer_cfg.len=64",
    )
    assert config.actor_rollout_ref.actor.clip_ratio_high == 0.3
    assert config.reward.reward_kwargs.overlong_buffer_cfg.len == 64
    argv = ["train", "--recipe", "mmbench_rotation", "--no-check", "--dry-run", "--objective", "gspo"]
    assert main(argv) == 0 and "+objective=gspo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*argv[:-1], "gpso"])  # argparse names the choices


# ---- the composed config drives verl's own policy loss as documented ----------------------------------------


def _policy_gradient(config, ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """d(loss)/d(log_prob) per token of verl's policy loss for `config`'s actor, at the given token ratios."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    old_log_prob = torch.full_like(ratio, -1.0)
    log_prob = (old_log_prob + ratio.log()).requires_grad_()
    loss_fn = get_policy_loss_fn(actor.policy_loss.loss_mode)
    mask = torch.ones_like(ratio)
    loss, _ = loss_fn(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=actor.loss_agg_mode,
        config=actor,
    )
    loss.backward()
    return log_prob.grad


def test_verls_losses_behave_as_the_table_says():
    positive = torch.ones(1, 3)
    _, paper = composed(None)
    # PPO's clip at 1.2: a token already pushed to 1.25 gets no gradient; clip-higher (1.28) still moves it
    ratio = torch.tensor([[1.0, 1.25, 1.3]])
    assert _policy_gradient(paper, ratio, positive)[0, 1] == 0
    dapo = _policy_gradient(composed("dapo")[1], ratio, positive)
    assert dapo[0, 1] != 0 and dapo[0, 2] == 0
    # CISPO: every token keeps a gradient, up to and beyond the cap of 5
    cispo = _policy_gradient(composed("cispo")[1], torch.tensor([[0.5, 1.3, 7.0]]), positive)
    assert (cispo != 0).all()
    # SAPO: a smooth gate instead of a cut: far-off tokens keep a gradient that fades the further they stray
    far = torch.tensor([[1.0, 5.0, 10.0]])
    sapo = _policy_gradient(composed("sapo")[1], far, positive).abs()
    assert (sapo > 0).all() and sapo[0, 0] > sapo[0, 1] > sapo[0, 2]
    assert (_policy_gradient(paper, far, positive)[0, 1:] == 0).all()
    # GSPO: one ratio per sequence, so every token of a sequence gets the same gradient (PPO: one per token)
    close_to_one = torch.tensor([[1.0001, 0.9999, 1.0002]])
    gspo = _policy_gradient(composed("gspo")[1], close_to_one, positive)
    per_token = _policy_gradient(paper, close_to_one, positive)
    assert torch.allclose(gspo, gspo[:, :1].expand(1, 3), rtol=0, atol=1e-9)
    assert not torch.allclose(per_token, per_token[:, :1].expand(1, 3), rtol=0, atol=1e-9)


def test_dapo_overlong_shaping_runs_in_verls_reward_loop(tiny_model):
    """verl's `dapo` reward manager calls the ssl4rl reward and subtracts the overlong penalty."""
    from transformers import AutoTokenizer
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from ssl4rl.reward import compute_score
    from verl import DataProto

    _, config = composed(
        "dapo",
        "data.max_response_length=64",
        "reward.reward_kwargs.overlong_buffer_cfg.len=16",
        model=tiny_model,
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    answer = tokenizer("<think> a </think> <answer> 90 </answer>", add_special_tokens=False)["input_ids"]
    filler = tokenizer(" x", add_special_tokens=False)["input_ids"]
    short = answer
    long = (filler * 64)[: 56 - len(answer)] + answer  # 56 tokens: 8 into the 16-token buffer before 64
    prompt_len, width = 4, 64
    responses, masks = [], []
    for ids in (short, long):
        responses.append(ids + [tokenizer.pad_token_id] * (width - len(ids)))
        masks.append([1] * (prompt_len + len(ids)) + [0] * (width - len(ids)))
    batch = DataProto.from_single_dict(
        {
            "prompts": torch.full((2, prompt_len), tokenizer.pad_token_id),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
            "data_source": np.array(["ssl4rl/rotation"] * 2, dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": "90"}] * 2, dtype=object),
            "extra_info": np.array([{"index": 0}, {"index": 1}], dtype=object),
        }
    )
    worker = RewardLoopWorker(config)
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(batch))
    scores = [
        compute_score("ssl4rl/rotation", tokenizer.decode(ids, skip_special_tokens=True), "90")["score"]
        for ids in (short, long)
    ]
    assert scores == [1.0, 1.0]  # both answer right
    assert [out["reward_score"] for out in outputs] == pytest.approx([1.0, 1.0 - 8 / 16])
    assert outputs[1]["reward_extra_info"]["score"] == 1.0  # the reward's own keys pass through


# ---- TRL's equivalents --------------------------------------------------------------------------------------


def _trl_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    trl_config.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("name", VARIANTS)
def test_objectives_map_onto_trl_and_flags_still_win(name):
    config = trl_config.config_from_args(_trl_args("--objective", name, "--config", "paper"))
    for key, value in objectives.get_objective(name).trl.items():
        assert getattr(config, key) == value, key
    assert config.beta == 0.01 and config.num_generations == 5  # the paper's recipe otherwise
    flagged = trl_config.config_from_args(_trl_args("--objective", name, "--epsilon-high", "0.5"))
    assert flagged.epsilon_high == 0.5


def test_trl_settings_reach_grpo_config(tmp_path):
    pytest.importorskip("trl")
    from ssl4rl.backends.trl.train import grpo_arguments

    config = trl_config.config_from_args(
        _trl_args("--objective", "gspo", "--model", "m", "--train-files", "x", "--output-dir", str(tmp_path))
    )
    args = grpo_arguments(config, cuda=False, bf16=False)
    assert (args.importance_sampling_level, args.loss_type, args.epsilon, args.epsilon_high) == (
        "sequence",
        "grpo",
        3e-4,
        4e-4,
    )
    dapo = grpo_arguments(
        trl_config.config_from_args(_trl_args("--objective", "dapo", "--output-dir", str(tmp_path))),
        cuda=False,
        bf16=False,
    )
    assert dapo.mask_truncated_completions and dapo.epsilon_high == 0.28 and dapo.loss_type == "dapo"


def test_an_objective_trl_lacks_is_refused_in_one_line(monkeypatch, capsys):
    verl_only = objectives.Objective(
        name="verl_only", title="x", reference="x", trl=None, trl_missing="TRL has no such loss"
    )
    monkeypatch.setitem(objectives.OBJECTIVES._items, "verl_only", verl_only)
    with pytest.raises(UserError, match="--objective verl_only has no TRL equivalent: TRL has no such loss"):
        trl_config.config_from_args(_trl_args("--objective", "verl_only"))


def test_docs_table_lists_every_objective_with_its_command_and_changes():
    with open(os.path.join(ROOT, "docs", "objectives.md")) as f:
        text = f.read()
    for name in objectives.objective_names():
        objective = objectives.get_objective(name)
        assert f"`{name}`" in text
        for aspect, _paper, this in objective.changes:
            assert this in text, (name, aspect)
    for name in VARIANTS:
        assert f"--objective {name}" in text
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "docs/objectives.md" in readme and "--objective dapo" in readme and "--lora-rank" in readme


@pytest.fixture(scope="module")
def rotation_data(tmp_path_factory, small_photos, make_rl_parquet):
    return make_rl_parquet(
        tmp_path_factory.mktemp("objective_data"), small_photos(160, 4), [("rotation", {})]
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_trl_trains_with_each_objective(name, tiny_model, rotation_data, tmp_path):
    pytest.importorskip("trl")
    pytest.importorskip("torchvision")
    from ssl4rl.backends.trl.train import train_grpo

    out = tmp_path / name
    argv = ["--objective", name, "--model", tiny_model, "--output-dir", str(out)]
    argv += ["--train-files", os.path.join(rotation_data, "train.parquet"), "--num-generations", "4"]
    argv += ["--per-device-train-batch-size", "8", "--max-completion-length", "8", "--max-steps", "2"]
    argv += ["--save-steps", "0", "--device", "cpu", "--torch-threads", "1", "--no-gradient-checkpointing"]
    argv += ["--report-to", "none"]
    manifest = train_grpo(trl_config.config_from_args(_trl_args(*argv)))
    assert manifest["status"] == "done" and manifest["global_step"] == 2
    assert manifest["config"]["objective"] == name
    for key, value in objectives.get_objective(name).trl.items():
        assert manifest["config"][key] == value
