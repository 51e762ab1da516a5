"""CapArena-Auto: the paper's captioning benchmark (its images; captions are judged outside this toolkit)."""

from .record import Benchmark, ImageSet

BENCHMARK = Benchmark(
    name="caparena",
    title="CapArena-Auto (detailed captioning)",
    images=ImageSet(
        hub_id=None,
        hub_splits=(),
        image_columns="image files test_XXXXX.jpg (DOCCI photos)",
        file_split="test",
        local_forms="the 600 CapArena-Auto images (caparena_auto_docci_600/) from the CapArena GitHub release",
        notes="no hub dataset: download the image folder and give it as --input.",
    ),
)
