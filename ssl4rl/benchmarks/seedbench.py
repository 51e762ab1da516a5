"""SEED-Bench (image questions): the paper's second benchmark."""

from .record import Benchmark, ImageSet, Scoring

BENCHMARK = Benchmark(
    name="seedbench",
    title="SEED-Bench (image questions)",
    images=ImageSet(
        hub_id="lmms-lab/SEED-Bench",
        hub_splits=("test",),
        image_columns="hub: image = list of Image (video questions hold frames; data_type tells); TSV: image",
        file_split="test",
        local_forms="OpenCompass SEEDBench_IMG.tsv (what the paper used; image questions only)",
        hub_options={"keep_if": "data_type=image"},
        notes="the hub copy also holds video questions: only rows with data_type == image are read.",
    ),
    scoring=Scoring(title="SEED-Bench", group_by="category", vlmeval_dataset="SEEDBench_IMG"),
    recipes=True,
    aliases=("seed", "SEEDBench_IMG"),
)
