"""MMBench (English): the paper's main table. Images from the hub dataset or VLMEvalKit's TSV."""

from .record import Benchmark, ImageSet, Scoring

# The paper's MMBench table: column title -> MMBench `l2-category`, in the paper's order.
PAPER_COLUMNS = (
    ("Logical", "logic_reasoning"),
    ("Relation", "relation_reasoning"),
    ("Attribute", "attribute_reasoning"),
    ("Coarse", "coarse_perception"),
    ("Cross-Inst.", "finegrained_perception (cross-instance)"),
    ("Single-Inst.", "finegrained_perception (instance-level)"),
)

BENCHMARK = Benchmark(
    name="mmbench",
    title="MMBench (English)",
    images=ImageSet(
        hub_id="HuggingFaceM4/MMBench",
        hub_splits=("validation", "test"),
        image_columns="image: base64 string (HF and TSV alike); index: question index",
        file_split="validation",
        local_forms="VLMEvalKit MMBench_DEV_EN.tsv (the dev set = hub validation), or a snapshot of the hub repo",
        options={"dedupe_circular": True, "index_column": "index", "key_column": "index"},
        notes="validation 4,329 rows, test 6,666; rows with index >= 1e6 are circular-evaluation copies of "
        "index % 1e6 (same image) and are dropped. The paper trains on SSL data built from both splits.",
    ),
    scoring=Scoring(
        title="MMBench",
        group_by="l2_category",
        overall_title="Average",
        paper_columns=PAPER_COLUMNS,
        vlmeval_dataset="MMBench_DEV_EN",
    ),
    recipes=True,
    aliases=("MMBench_DEV_EN", "MMBench_DEV_EN_V11", "mmbench_v11"),
)
