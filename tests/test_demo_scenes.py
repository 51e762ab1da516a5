"""The demo's synthetic scenes and its knob handling: what the default run's proof of sight rests on."""

from __future__ import annotations

import numpy as np
import pytest

from ssl4rl.demo.config import DemoConfig
from ssl4rl.demo.photos import SCENES, stage_images
from ssl4rl.demo.scenes import draw_scene
from ssl4rl.demo.workflow import task_knobs, task_list
from ssl4rl.errors import UserError
from ssl4rl.tasks import TASKS


def test_scenes_are_deterministic_all_different_and_brighter_above():
    assert np.array_equal(np.asarray(draw_scene(7)), np.asarray(draw_scene(7)))
    scenes = [np.asarray(draw_scene(seed), dtype=np.float64) for seed in range(40)]
    assert len({scene.tobytes() for scene in scenes}) == 40
    # the up direction the default task asks about: the top quarter is brighter than the bottom quarter
    for scene in scenes:
        assert scene[:32].mean() > scene[-32:].mean() + 40


def test_staged_scenes_are_split_by_scene_and_downscaled(tmp_path):
    sides = stage_images(SCENES, str(tmp_path), 20, 32, 0.3, seed=1)
    assert len(sides["val"]) == 6 and len(sides["train"]) == 14
    assert not set(sides["train"]) & set(sides["val"])
    assert (tmp_path / "val" / sides["val"][0]).stat().st_size > 0


def test_default_task_and_knobs_and_knobs_no_task_has():
    config = DemoConfig()
    assert task_list(config.tasks) == ["single_rotation"] and config.task_knobs() == {"granularity": 180}
    assert DemoConfig(tasks=["jigsaw"]).task_knobs() == {}
    assert task_list(["paper"]) == ["rotation", "jigsaw", "position", "contrastive"]
    chosen = task_knobs(["rotation", "jigsaw"], {"granularity": 180, "grid": 3})
    # values read as `ssl4rl build` reads the same flags
    assert chosen == {
        "rotation": {"granularity": 180},
        "jigsaw": {"grid": TASKS.get("jigsaw").parse_knob("grid", "3")},
    }
    with pytest.raises(UserError, match="no knob of jigsaw"):
        task_knobs(["jigsaw"], {"granularity": 180})
    with pytest.raises(UserError, match="--knobs granularity=7"):
        task_knobs(["single_rotation"], {"granularity": 7})
    with pytest.raises(UserError, match="--blind"):
        DemoConfig(blind="sometimes").settings(tiny_model=True)
