"""RealWorldQA: real-world spatial questions."""

from .record import Benchmark, ImageSet, Scoring

BENCHMARK = Benchmark(
    name="realworldqa",
    title="RealWorldQA",
    images=ImageSet(
        hub_id="xai-org/RealworldQA",
        hub_splits=("test",),
        image_columns="image (Image); question, answer",
        file_split="test",
        local_forms="OpenCompass RealWorldQA.tsv (what the paper used)",
        other_hub_ids={"lmms-lab/RealWorldQA": ("test",)},
        notes="765 questions; the split was first published as 'test_0412', now 'test'.",
    ),
    scoring=Scoring(title="RealWorldQA", group_by="category", vlmeval_dataset="RealWorldQA"),
    aliases=("rwqa",),
)
