"""MMStar: 1,500 vision-indispensable questions."""

from .record import Benchmark, ImageSet, Scoring

BENCHMARK = Benchmark(
    name="mmstar",
    title="MMStar",
    images=ImageSet(
        hub_id="Lin-Chen/MMStar",
        hub_splits=("val",),
        image_columns="image (Image); index, question, answer, category, l2_category, meta_info",
        file_split="val",
        local_forms="MMStar.tsv (VLMEvalKit layout, shipped in the hub repo) or mmstar.parquet",
        notes="1,500 questions, one split 'val'.",
    ),
    scoring=Scoring(title="MMStar", group_by="category", vlmeval_dataset="MMStar"),
)
