"""verl recipes compose with the installed verl 0.9.1 offline and pass its own validation on real GPU layouts.

Every check composes with Hydra exactly as `python -m verl.trainer.main_ppo --config-path ... --config-name ...`
would (same search path, same overrides) and runs `verl.utils.config.validate_config`; no Ray, no GPU.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("verl")
pytest.importorskip("hydra")

from ssl4rl.backends.verl import launch as vl  # noqa: E402
from ssl4rl.backends.verl.recipes import load_mixes, load_recipes  # noqa: E402
from ssl4rl.cli import main  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUTS = [vl.Layout(1, 1), vl.Layout(1, 8), vl.Layout(2, 8)]
RECIPES = load_recipes()
MIXES = load_mixes()  # multi-task recipes ({benchmark}_{mix}) besides benchmark x task


def composed(launch: vl.Launch):
    config_dir, config_name, overrides = vl.parse_command(launch.argv)
    return vl.compose(config_dir, config_name, overrides)


def test_recipe_table_covers_the_papers_benchmarks_and_tasks():
    from ssl4rl.tasks import TASKS

    paper_tasks = ("rotation", "jigsaw", "position", "contrastive")
    expected = {f"{b}_{t}" for b in ("mmbench", "seedbench") for t in paper_tasks}
    assert expected <= set(RECIPES.names())
    for name in RECIPES.names():
        recipe = RECIPES.get(name)
        assert recipe.task in TASKS or recipe.task in MIXES, f"{name}: unknown SSL task {recipe.task}"
        assert recipe.experiment_name == f"ssl4rl_{name}"
        assert recipe.data_dir == f"data/verl/{recipe.benchmark}/{recipe.task}"


def test_paper_recipe_values_reach_verls_config():
    config = composed(vl.build_launch(RECIPES.get("mmbench_rotation"), vl.Layout(1, 8)))
    vl.check_config(config)
    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    assert config.algorithm.adv_estimator == "grpo"
    assert config.algorithm.use_kl_in_reward is False
    assert (config.data.train_batch_size, rollout.n, actor.ppo_mini_batch_size) == (512, 5, 128)
    assert actor.ppo_micro_batch_size_per_gpu == 10
    assert actor.optim.lr == pytest.approx(1e-6) and actor.optim.lr_scheduler_type == "constant"
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.01, "low_var_kl")
    assert actor.entropy_coeff == 0 and actor.strategy == "fsdp2"
    assert (config.data.max_prompt_length, config.data.max_response_length) == (1024, 2048)
    assert config.data.filter_overlong_prompts is False
    assert (rollout.name, rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == (
        "vllm",
        1,
        0.6,
    )
    assert config.actor_rollout_ref.model.enable_gradient_checkpointing is True
    assert config.actor_rollout_ref.ref.fsdp_config.param_offload is True
    assert (config.trainer.total_epochs, config.trainer.save_freq) == (20, 50)
    assert config.trainer.experiment_name == "ssl4rl_mmbench_rotation"
    assert config.data.train_files == [os.path.join(ROOT, "data/verl/mmbench/rotation/train.parquet")]
    assert config.data.val_files == [os.path.join(ROOT, "data/verl/mmbench/rotation/val.parquet")]


def test_reward_is_wired_where_main_ppo_reads_it():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from ssl4rl import reward

    config = composed(vl.build_launch(RECIPES.get("seedbench_jigsaw"), vl.Layout(1, 8)))
    assert config.custom_reward_function.path is None  # the legacy top-level key main_ppo ignores
    fn = get_custom_reward_fn(config)
    assert fn is not None and fn.args[0] is reward.compute_score


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_recipes_compose_and_validate_on_layout(layout):
    # Recipes differ only in data, names and their own overrides, so one recipe per task covers 1x1 and 2x8;
    # the full matrix runs under -m slow.
    names = RECIPES.names() if layout == vl.Layout(1, 8) else [f"mmbench_{t}" for t in ("rotation", "jigsaw")]
    for name in names:
        launch = vl.build_launch(RECIPES.get(name), layout)
        config = composed(launch)
        vl.check_config(config)
        assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (
            layout.nnodes,
            layout.gpus_per_node,
        )
        assert config.trainer.experiment_name == f"ssl4rl_{name}"
        layout_notes = [n for n in launch.notes if n.startswith(f"{layout} GPUs:")]
        assert not layout_notes, f"the paper's batch shape should need no change on {layout}: {layout_notes}"


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_full_recipe_matrix_validates(layout):
    for name in RECIPES.names():
        vl.check_config(composed(vl.build_launch(RECIPES.get(name), layout)))


@pytest.mark.parametrize("layout", [vl.Layout(1, 3), vl.Layout(3, 8)], ids=str)
def test_uneven_layouts_get_batch_sizes_that_validate(layout):
    launch = vl.build_launch(RECIPES.get("mmbench_position"), layout)
    assert any(
        "GPUs:" in n for n in launch.notes
    )  # 512 x 5 rollouts do not split over 3 or 24 GPUs as they stand
    config = composed(launch)
    vl.check_config(config)
    samples = config.actor_rollout_ref.actor.ppo_mini_batch_size * 5
    assert samples % layout.n_gpus == 0
    assert (samples // layout.n_gpus) % config.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 0


def test_user_batch_override_is_kept_and_rejected_with_verls_reason():
    launch = vl.build_launch(
        RECIPES.get("mmbench_rotation"), vl.Layout(1, 3), extra=["data.train_batch_size=512"]
    )
    assert "data.train_batch_size=512" in launch.overrides
    with pytest.raises(UserError, match="divisible"):
        vl.check_config(composed(launch))


def test_fit_layout_rules():
    values = {vl.TRAIN_BATCH: 512, vl.MINI_BATCH: 128, vl.MICRO_BATCH: 10, vl.ROLLOUT_N: 5, vl.ROLLOUT_TP: 4}
    assert vl.fit_layout(values, vl.Layout(2, 8), fixed=set()) == ({}, [])
    changed, _ = vl.fit_layout(values, vl.Layout(1, 2), fixed=set())
    assert changed == {vl.ROLLOUT_TP: 2}  # TP 4 cannot fit 2 GPUs
    changed, _ = vl.fit_layout(values, vl.Layout(1, 6), fixed=set())
    assert changed[vl.MINI_BATCH] == 126 and changed[vl.TRAIN_BATCH] == 504
    assert changed[vl.ROLLOUT_TP] == 3
    assert (126 * 5 // 6) % changed[vl.MICRO_BATCH] == 0
    assert vl.fit_layout(
        values, vl.Layout(1, 6), fixed={vl.MINI_BATCH, vl.TRAIN_BATCH, vl.MICRO_BATCH, vl.ROLLOUT_TP}
    ) == ({}, [])


def test_dry_run_prints_exactly_the_command_that_composes(capsys, tmp_path):
    data_dir = tmp_path / "data dir, with 'quotes'"
    argv = ["train", "--recipe", "seedbench_position", "--data-dir", str(data_dir), "--gpus-per-node", "1"]
    argv += ["--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--run-id", "r1", "--checkpoint-root", str(tmp_path)]
    argv += ["--dry-run", "--", "trainer.total_epochs=3"]
    assert main(argv) == 1  # printed, but the data it names does not exist yet: the doctor says so
    out, err = capsys.readouterr()
    assert "passes verl's validate_config on 1x1" in err and "FAIL  data files" in err
    printed = shlex.split(out.strip())
    expected = vl.build_launch(
        RECIPES.get("seedbench_position"),
        vl.Layout(1, 1),
        model="Qwen/Qwen2.5-VL-7B-Instruct",
        data_dir=str(data_dir),
        extra=["trainer.total_epochs=3"],
        run=vl.RunOptions(checkpoint_root=str(tmp_path), run_id="r1"),
    )
    assert printed == expected.argv
    assert printed[1:3] == ["-m", "verl.trainer.main_ppo"]
    config = vl.compose(*vl.parse_command(printed))
    assert config.data.train_files == [str(data_dir / "train.parquet")]  # quoting survives Hydra's grammar
    assert config.trainer.total_epochs == 3 and config.trainer.n_gpus_per_node == 1
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert config.trainer.default_local_dir == str(tmp_path / "ssl4rl" / "ssl4rl_seedbench_position" / "r1")
    assert config.trainer.resume_mode == "disable"
    keys = [vl.override_key(o) for o in printed[7:]]
    assert len(keys) == len(set(keys))


def test_user_overrides_win_and_appear_once():
    launch = vl.build_launch(
        RECIPES.get("mmbench_jigsaw"),
        vl.Layout(1, 8),
        extra=["trainer.experiment_name=mine", "trainer.n_gpus_per_node=4", "+trainer.extra_flag=1"],
    )
    assert launch.layout == vl.Layout(1, 4)
    keys = [vl.override_key(o) for o in launch.overrides]
    assert len(keys) == len(set(keys))
    assert launch.overrides[-3:] == [
        "trainer.experiment_name=mine",
        "trainer.n_gpus_per_node=4",
        "+trainer.extra_flag=1",
    ]
    config = composed(launch)
    assert config.trainer.experiment_name == "mine" and config.trainer.n_gpus_per_node == 4


def test_sdpa_attention_composes():
    config = composed(vl.build_launch(RECIPES.get("mmbench_contrastive"), vl.Layout(1, 8), attn="sdpa"))
    vl.check_config(config)
    assert config.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert config.actor_rollout_ref.model.use_remove_padding is False


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("/data/a.parquet", "/data/a.parquet"),
        ("Qwen/Qwen2.5-VL", "Qwen/Qwen2.5-VL"),
        ("a b", "'a b'"),
        ("it's", "'it\\'s'"),
        ("null", "'null'"),
        ("1e-6", "'1e-6'"),
        ("x,y", "'x,y'"),
    ],
)
def test_hydra_value_quoting(value, quoted):
    assert vl.hydra_value(value) == quoted


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(lambda v: "${" not in v))
def test_hydra_value_round_trips_through_hydras_parser(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"data.train_files=[{vl.hydra_value(value)}]")
    assert parsed.value() == [value]


def test_override_key():
    assert [vl.override_key(o) for o in ("a.b=1", "+a.b=1", "++a.b=[1,2]", "~a.b", "~a.b=3")] == ["a.b"] * 5


def test_cli_errors_are_one_line(capsys):
    assert main(["train", "--recipe", "mmbench_rotaton", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'mmbench_rotation'" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--dry-run"]) == 2
    assert "--recipe is required" in capsys.readouterr().err
    assert (
        main(["train", "--recipe", "mmbench_rotation", "--dry-run", "--no-check", "--", "not_an_override"])
        == 2
    )
    assert "KEY=VALUE" in capsys.readouterr().err


def test_trl_only_flags_are_refused_for_verl(capsys):
    assert main(["train", "--recipe", "mmbench_rotation", "--dry-run", "--num-generations", "4"]) == 2
    assert "--num-generations only apply to --backend trl" in capsys.readouterr().err


def test_missing_trl_backend_is_a_clear_error(monkeypatch, capsys):
    from ssl4rl.commands import train

    real = train.importlib.util.find_spec
    monkeypatch.setattr(
        train.importlib.util, "find_spec", lambda n: None if n == train.TRL_MODULE else real(n)
    )
    assert main(["train", "--backend", "trl"]) == 2
    assert "TRL backend" in capsys.readouterr().err


def test_list_shows_every_recipe(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES.names():
        assert re.search(rf"^{name}\s", out, re.M)


def test_recipes_come_from_the_benchmark_records_and_the_papers_tasks():
    from ssl4rl.benchmarks import BENCHMARKS
    from ssl4rl.tasks import paper_tasks

    benchmarks = [b for b in BENCHMARKS.names() if BENCHMARKS.get(b).recipes]
    assert benchmarks == ["mmbench", "seedbench"]
    parts = [*paper_tasks(), *MIXES]
    assert RECIPES.names() == sorted(f"{b}_{p}" for b in benchmarks for p in parts)


def test_launcher_dry_run_uses_env_layout(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "DRY_RUN": "1", "N_GPUS_PER_NODE": "2", "NNODES": "2", "DATA_DIR": str(tmp_path)}
    env["PYTHON"] = sys.executable
    result = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "verl", "launch.sh"),
            "mmbench_rotation",
            "--no-check",
            "trainer.total_epochs=1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    printed = shlex.split(result.stdout.strip())
    assert "trainer.nnodes=2" in printed and "trainer.n_gpus_per_node=2" in printed
    assert f"data.train_files=[{tmp_path}/train.parquet]" in printed
    assert printed[-1] == "trainer.total_epochs=1"


def test_real_launch_stops_on_the_doctors_failures(tmp_path, capsys):
    argv = ["train", "--recipe", "mmbench_rotation", "--data-dir", str(tmp_path), "--gpus-per-node", "1"]
    argv += ["--checkpoint-root", str(tmp_path / "ckpt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"FAIL  data files        not found: {tmp_path}/train.parquet" in err
    assert "not starting: fix the FAIL lines above" in err
    assert not (tmp_path / "ckpt").exists()  # nothing was launched
    # --no-check skips the doctor but still refuses data that is not there
    assert main([*argv, "--no-check"]) == 2
    assert f"data file {tmp_path}/train.parquet not found" in capsys.readouterr().err


def test_overlay_opens_with_the_command_that_runs_it():
    with open(os.path.join(vl.CONFIG_DIR, "ssl4rl_grpo.yaml")) as f:
        header = [line[1:].strip() for line in f.read().split("\n\n")[0].splitlines()]
    first = header.index(next(line for line in header if line.startswith("ssl4rl train")))
    assert shlex.split(header[first]) == [
        "ssl4rl",
        "train",
        "--recipe",
        "mmbench_rotation",
        "--data-dir",
        "DATA_DIR",
        "--gpus-per-node",
        "8",
    ]
    start = next(i for i in range(first, len(header)) if header[i].startswith("python -m verl"))
    block = header[start : header.index("", start)]  # the command after "which executes ...:"
    executed = " ".join(line.rstrip("\\") for line in block)
    launch = vl.build_launch(
        RECIPES.get("mmbench_rotation"),
        vl.Layout(1, 8),
        data_dir="DATA_DIR",
        python="python",
        attn="flash_attention_2",
        run=vl.RunOptions(run_id="RUN"),
    )
    expected = [
        a.replace(os.path.abspath("DATA_DIR"), "DATA_DIR").replace(launch.run_dir, "RUN_DIR")
        for a in launch.argv
    ]
    assert launch.run_dir == os.path.abspath("checkpoints/ssl4rl/ssl4rl_mmbench_rotation/RUN")
    assert shlex.split(executed) == [a.replace(vl.CONFIG_DIR, "CONFIG_DIR") for a in expected]


def test_smoke_launch_is_two_small_steps_on_one_gpu_that_validate_save_and_merge(tmp_path):
    launch = vl.build_launch(
        RECIPES.get("mmbench_rotation"),
        vl.Layout(2, 8),  # --smoke runs on one GPU whatever the layout given
        run=vl.RunOptions(checkpoint_root=str(tmp_path), run_id="s"),
        smoke=True,
    )
    config = composed(launch)
    vl.check_config(config)
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (1, 1)
    assert config.trainer.total_training_steps == 2 and config.trainer.save_freq == 2
    assert config.trainer.test_freq == 2 and config.data.val_max_samples == 16
    assert (config.data.train_batch_size, config.actor_rollout_ref.actor.ppo_mini_batch_size) == (8, 8)
    # the recipe's per-sample settings are kept, so memory per sample is the real run's
    assert config.actor_rollout_ref.rollout.n == 5 and config.data.max_response_length == 2048
    assert config.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 10
    assert config.trainer.experiment_name == "ssl4rl_mmbench_rotation_smoke"
    assert config.trainer.default_local_dir == str(
        tmp_path / "ssl4rl" / "ssl4rl_mmbench_rotation_smoke" / "s"
    )
    assert "file" in config.trainer.logger  # the metrics --smoke summarizes
    # a user's own value still wins over the smoke settings
    mine = vl.build_launch(
        RECIPES.get("mmbench_rotation"), smoke=True, extra=["trainer.total_training_steps=3"]
    )
    assert composed(mine).trainer.total_training_steps == 3
