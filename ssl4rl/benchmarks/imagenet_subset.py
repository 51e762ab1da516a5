"""The SSL4RL release's ImageNet subset: images for SSL data (the release's classification QA is not scored here)."""

from .record import Benchmark, ImageSet

BENCHMARK = Benchmark(
    name="imagenet-subset",
    title="ImageNet subset (SSL4RL release)",
    images=ImageSet(
        hub_id="PKU-ML/ImageNet-Subset",
        hub_splits=("train",),
        image_columns="auto-detected (the release's ImageNet QA data keeps a list column `images`, `filename`, `label`)",
        file_split="train",
        local_forms="train.parquet from the hub repo, or an ImageNet-style folder of class directories",
        notes="one train.parquet of about 3.9 GB; read by row group, never loaded whole.",
    ),
)
