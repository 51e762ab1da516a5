"""Zero-signal filtering and task mixing on upstream verl 0.9.1: the configs compose, pass verl's own
validation, reach verl's dataclasses, and bad filter settings fail before Ray starts."""

from __future__ import annotations

import importlib.util
import os
import shlex

import pytest

pytest.importorskip("verl")
pytest.importorskip("hydra")

from ssl4rl.backends.verl import launch as vl  # noqa: E402
from ssl4rl.backends.verl.filtering import (  # noqa: E402
    EVICTED,
    SURPLUS,
    reward_metric_names,
    zero_signal_fraction,
)
from ssl4rl.backends.verl.recipes import load_mixes, load_recipes  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402

RECIPES = load_recipes()
FILTER = "+filter=zero_signal"


ONE_NODE = vl.Layout(1, 8)


def composed(recipe: str, layout=ONE_NODE, extra=()):
    launch = vl.build_launch(RECIPES.get(recipe), layout, extra=list(extra), run=vl.RunOptions(run_id="r"))
    return vl.compose(*vl.parse_command(launch.argv))


@pytest.mark.parametrize("layout", [vl.Layout(1, 1), vl.Layout(1, 8), vl.Layout(2, 8)], ids=str)
def test_filter_option_composes_on_the_paper_recipe_and_validates(layout):
    from verl.trainer.config import AlgoConfig, FilterGroupsConfig
    from verl.utils.config import omega_conf_to_dataclass

    config = composed("mmbench_rotation", layout, [FILTER])
    vl.check_config(config)
    groups = config.algorithm.filter_groups
    assert (groups.enable, groups.metric, groups.max_inflight_gen_batches) == (True, "score", 1)
    assert config.trainer.use_v1 is True
    # nothing else of the paper's recipe changes
    from omegaconf import OmegaConf

    plain = composed("mmbench_rotation", layout)
    assert plain.algorithm.filter_groups.enable is False
    without = OmegaConf.to_container(plain, resolve=False)
    with_filter = OmegaConf.to_container(config, resolve=False)
    with_filter["algorithm"]["filter_groups"] = without["algorithm"]["filter_groups"]
    assert with_filter == without
    # verl's own dataclass accepts it (what its trainer builds from the same node)
    algo = omega_conf_to_dataclass(config.algorithm, dataclass_type=AlgoConfig)
    assert isinstance(algo.filter_groups, FilterGroupsConfig) and algo.filter_groups.enable


def test_filter_metric_is_a_number_the_reward_returns_for_every_task():
    from ssl4rl.reward import compute_score
    from ssl4rl.tasks import TASKS

    assert {"score", "acc"} <= set(reward_metric_names()) and "pred" not in reward_metric_names()
    for task in TASKS.names():
        result = compute_score(f"ssl4rl/{task}", "<think>x</think> <answer>0</answer>", "0")
        assert isinstance(result["score"], float) and isinstance(result["acc"], float)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["algorithm.filter_groups.metric=scroe"], "not a number the ssl4rl reward returns"),
        (["algorithm.filter_groups.metric=pred"], "not a number"),
        (["trainer.use_v1=false"], "V1 trainer"),
        (
            ["+trainer.v1.sampler.custom_sampler.path=x.py", "+trainer.v1.sampler.custom_sampler.name=S"],
            "custom",
        ),
    ],
)
def test_broken_filter_settings_fail_before_ray(extra, message):
    with pytest.raises(UserError, match=message):
        vl.check_config(composed("seedbench_jigsaw", extra=[FILTER, *extra]))


def test_other_metrics_and_a_foreign_reward_are_accepted():
    vl.check_config(composed("mmbench_jigsaw", extra=[FILTER, "algorithm.filter_groups.metric=acc"]))
    vl.check_config(composed("mmbench_jigsaw", extra=[FILTER, "algorithm.filter_groups.metric=reward"]))
    foreign = [FILTER, "reward.custom_reward_function.path=/tmp/mine.py", "algorithm.filter_groups.metric=f1"]
    vl.check_config(composed("mmbench_jigsaw", extra=foreign))  # another reward's keys are not ours to judge


def test_mix_recipe_validates_with_and_without_filtering_and_dry_run_prints_it(capsys, tmp_path):
    for extra in ([], [FILTER]):
        config = composed("mmbench_mix", extra=extra)
        vl.check_config(config)
        assert config.trainer.experiment_name == "ssl4rl_mmbench_mix"
        assert config.data.train_files[0].endswith("data/verl/mmbench/mix/train.parquet")
    argv = ["train", "--recipe", "seedbench_mix", "--data-dir", str(tmp_path), "--dry-run", "--", FILTER]
    assert main(argv) == 1  # the command is printed; the data it names does not exist yet
    out, err = capsys.readouterr()
    printed = shlex.split(out.strip())
    assert printed[-1] == FILTER and "passes verl's validate_config" in err and "FAIL  data files" in err
    config = vl.compose(*vl.parse_command(printed))
    assert config.algorithm.filter_groups.enable is True
    assert config.data.val_files == [str(tmp_path / "val.parquet")]


def test_every_mix_names_task_recipes_that_exist():

    mixes = load_mixes()
    assert mixes
    for mix_name, spec in mixes.items():
        assert len(spec["weights"]) >= 2 and all(w > 0 for w in spec["weights"].values())
        for benchmark in ("mmbench", "seedbench"):
            assert f"{benchmark}_{mix_name}" in RECIPES.names()
            for task in spec["weights"]:
                assert f"{benchmark}_{task}" in RECIPES.names()


def test_zero_signal_fraction_from_logged_counts():
    assert zero_signal_fraction({EVICTED: 128, SURPLUS: 0}, 512) == pytest.approx(0.2)
    assert zero_signal_fraction({EVICTED: 100, SURPLUS: 12}, 388) == pytest.approx(0.2)
    assert zero_signal_fraction({}, 512) == 0.0


def test_the_metric_names_we_document_are_verls():
    """verl's V1 code cannot be imported without TransferQueue (a GPU-stack dependency), so read its source."""
    root = importlib.util.find_spec("verl").submodule_search_locations[0]
    with open(os.path.join(root, "trainer", "ppo", "v1", "utils.py")) as f:
        aggregation = f.read()
    assert f'"{EVICTED}"' in aggregation and f'"{SURPLUS}"' in aggregation  # summed over a step's iterations
    with open(os.path.join(root, "trainer", "ppo", "v1", "trainer_base.py")) as f:
        trainer = f.read()
    assert 'self.config.algorithm.get("filter_groups", None)' in trainer
    assert "max_num_gen_batches=%s is ignored by the built-in V1 ReplayBuffer" in trainer
