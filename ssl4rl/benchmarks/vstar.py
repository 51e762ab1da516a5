"""V* Bench: high-resolution visual search (its images)."""

from .record import Benchmark, ImageSet

BENCHMARK = Benchmark(
    name="vstar",
    title="V* Bench",
    images=ImageSet(
        hub_id="lmms-lab/vstar-bench",
        hub_splits=("test",),
        image_columns="image (Image); text, label, category, question_id",
        file_split="test",
        local_forms="a snapshot of craigwu/vstar_bench: direct_attributes/, relative_position/ (jpg + json)",
        notes="from a craigwu/vstar_bench snapshot every image file below the directory is read.",
    ),
)
