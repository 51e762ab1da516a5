"""BLINK: perception tasks, up to four images per question."""

from .record import Benchmark, ImageSet, Scoring

BENCHMARK = Benchmark(
    name="blink",
    title="BLINK",
    images=ImageSet(
        hub_id="BLINK-Benchmark/BLINK",
        hub_splits=("val", "test"),
        image_columns="image_1 .. image_4 (Image; None when a question has fewer images)",
        file_split="val",
        local_forms="a snapshot of the hub repo: one directory per subtask with val-*.parquet / test-*.parquet",
        hub_options={"name": "all"},
        notes="14 subtask configs (Art_Style, Counting, ...), val 1,901 and test 1,906 questions; from the hub "
        "every config is read (keys SUBTASK/ROW/image_N); empty image_N cells are counted as no_image.",
    ),
    scoring=Scoring(title="BLINK", group_by="category", vlmeval_dataset="BLINK"),
)
