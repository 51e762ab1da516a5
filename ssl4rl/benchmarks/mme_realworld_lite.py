"""MME-RealWorld-Lite: high-resolution real-world questions."""

from .record import Benchmark, ImageSet, Scoring

BENCHMARK = Benchmark(
    name="mme-realworld-lite",
    title="MME-RealWorld-Lite",
    images=ImageSet(
        hub_id="yifanzhang114/MME-RealWorld-lite-lmms-eval",
        hub_splits=("train",),
        image_columns="bytes: base64 string (the lmms-eval copy); index, question, multi-choice options",
        file_split="test",
        local_forms="yifanzhang114/MME-RealWorld-Lite data.zip unzipped: data/imgs/ (what the paper used)",
        notes="the lmms-eval copy keeps its single split under the name 'train'.",
    ),
    scoring=Scoring(
        title="MME-RealWorld-Lite",
        group_by="category",
        vlmeval_dataset="MME-RealWorld-Lite",
        vlmeval_class="MMERealWorld",
    ),
    aliases=("mmerealworld", "mmerw"),
)
