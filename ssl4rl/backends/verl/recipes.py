"""The verl recipe table: one recipe per (benchmark, SSL task or mix) that `ssl4rl train --recipe` runs.

Benchmarks come from their records (`ssl4rl/benchmarks/<name>.py`, `recipes=True`), tasks are the paper's
four (`SSLTask.paper_rank`), and `ssl4rl/configs/recipes.yaml` holds what is neither: where each recipe's
data lives and the task mixes. Recipe NAME = {benchmark}_{task}; every recipe runs the overlay
`ssl4rl_grpo.yaml` with
  data.train_files = [DATA_DIR/<train_files...>], data.val_files = [DATA_DIR/<val_files...>]
  trainer.experiment_name = ssl4rl_{benchmark}_{task}
  plus the benchmark's and the mix's `overrides` (plain verl overrides), in that order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import yaml

from ...benchmarks import BENCHMARKS
from ...configs import RECIPES_FILE
from ...errors import UserError
from ...registry import Registry
from ...tasks import TASKS, paper_tasks


@dataclass(frozen=True)
class Recipe:
    name: str
    benchmark: str
    task: str  # an SSL task, or a mix name
    title: str
    data_dir: str
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    overrides: tuple[str, ...] = ()

    @property
    def experiment_name(self) -> str:
        return f"ssl4rl_{self.name}"


@functools.lru_cache(maxsize=1)
def recipe_table() -> dict:
    with open(RECIPES_FILE) as f:
        return yaml.safe_load(f)


def load_mixes() -> dict[str, dict]:
    """The `mixes:` table of recipes.yaml: mix name -> {title, weights, overrides}."""
    return recipe_table().get("mixes") or {}


def recipe_benchmarks() -> list[str]:
    return [name for name in BENCHMARKS.names() if BENCHMARKS.get(name).recipes]


def load_recipes() -> Registry[Recipe]:
    """Every recipe: the recipe benchmarks x (the paper's tasks + the mixes)."""
    table = recipe_table()
    parts = {task: (TASKS.get(task).summary, ()) for task in paper_tasks()}
    parts.update(
        {
            mix: (spec.get("title", mix), tuple(spec.get("overrides") or ()))
            for mix, spec in load_mixes().items()
        }
    )
    recipes: Registry[Recipe] = Registry("recipe")
    for benchmark in recipe_benchmarks():
        record = BENCHMARKS.get(benchmark)
        for task, (title, overrides) in parts.items():
            name = f"{benchmark}_{task}"
            recipe = Recipe(
                name=name,
                benchmark=benchmark,
                task=task,
                title=f"{record.title}: {title}",
                data_dir=table["data_dir"].format(benchmark=benchmark, task=task),
                train_files=tuple(table["train_files"]),
                val_files=tuple(table["val_files"]),
                overrides=record.recipe_overrides + overrides,
            )
            recipes.register(name)(recipe)
    return recipes


def get_recipe(name: str) -> Recipe:
    return load_recipes().get(name)


def mix_parts(name: str) -> tuple[list[str], dict[str, float], str]:
    """(part specs TASK=DIR, weights, output dir) of a mixing recipe `{benchmark}_{mix}`, for `ssl4rl mix`."""
    table = recipe_table()
    mixes = load_mixes()
    names = {f"{b}_{m}": (b, m) for b in recipe_benchmarks() for m in mixes}
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise UserError(f"{name!r} is not a mixing recipe; mixing recipes: {known}")
    benchmark, mix_name = names[name]
    weights = {task: float(w) for task, w in mixes[mix_name]["weights"].items()}
    specs = [f"{task}={table['data_dir'].format(benchmark=benchmark, task=task)}" for task in weights]
    return specs, weights, table["data_dir"].format(benchmark=benchmark, task=mix_name)
