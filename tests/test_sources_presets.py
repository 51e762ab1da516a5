"""Benchmark presets, `open_source` dispatch, `ssl4rl sources` and build_benchmarks/build.sh."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from ssl4rl.cli import main
from ssl4rl.errors import UserError
from ssl4rl.registry import UnknownNameError
from ssl4rl.sources import PRESETS, SOURCES, infer_adapter, open_source
from ssl4rl.sources.folder import FolderSource
from ssl4rl.sources.hf import HFSource
from ssl4rl.sources.parquet import ParquetSource
from ssl4rl.sources.tsv import TsvSource

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png(seed: int) -> bytes:
    array = np.random.default_rng(seed).integers(0, 256, size=(30, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def blink_snapshot(root) -> None:
    """The layout of a BLINK-Benchmark/BLINK hub snapshot: SUBTASK/{val,test}-00000-of-00001.parquet."""
    features = Features({"idx": Value("string"), **{f"image_{i}": Image() for i in range(1, 5)}})
    for subtask in ("Counting", "Art_Style"):
        os.makedirs(root / subtask)
        for split in ("val", "test"):
            rows = {
                "idx": [f"{split}_{subtask}_1", f"{split}_{subtask}_2"],
                "image_1": [{"bytes": png(1), "path": None}, {"bytes": png(2), "path": None}],
                "image_2": [{"bytes": png(3), "path": None}, None],
                "image_3": [None, None],
                "image_4": [None, None],
            }
            table = Dataset.from_dict(rows, features=features).data.table
            pq.write_table(table, str(root / subtask / f"{split}-00000-of-00001.parquet"))


def test_every_preset_records_where_its_images_are():
    assert set(PRESETS.names()) == {
        "mmbench",
        "seedbench",
        "blink",
        "mme-realworld-lite",
        "mmstar",
        "realworldqa",
        "imagenet-subset",
        "caparena",
        "vstar",
    }
    for name in PRESETS.names():
        preset = PRESETS.get(name)
        assert preset.image_columns and preset.local_forms and preset.file_split
        assert preset.hub_id is None or (preset.hub_splits and preset.default_split == preset.hub_splits[0])
        for option in {**preset.options, **preset.hub_options}:
            assert any(option in SOURCES.get(a).OPTIONS for a in SOURCES.names()), (name, option)
    assert PRESETS.get("mmbench").hub_splits == ("validation", "test")
    assert PRESETS.get("mmstar").hub_splits == ("val",)
    assert PRESETS.get("blink").hub_options == {"name": "all"}


def test_preset_picks_the_adapter_from_the_input(mmbench_sample, tmp_path):
    source = open_source("mmbench", mmbench_sample)
    assert isinstance(source, TsvSource) and source.source_id == "mmbench:mmbench_dev_en_sample.tsv"
    assert [source.key(i) for i in range(len(source))] == ["241", "252", "253"]
    assert source.split == "validation"  # the preset's default split labels a single-split input

    folder = tmp_path / "caparena_auto_docci_600"
    folder.mkdir()
    for i in range(3):
        (folder / f"test_{i:05d}.jpg").write_bytes(png(i))  # PNG bytes behind a .jpg name decode all the same
    caparena = open_source("caparena", str(folder))
    assert isinstance(caparena, FolderSource) and len(caparena) == 3
    assert caparena.load(0).image.size == (32, 30)

    blink_snapshot(tmp_path / "BLINK")
    blink = open_source("blink", str(tmp_path / "BLINK"), split="test")
    assert isinstance(blink, ParquetSource)
    keys = [blink.key(i) for i in range(len(blink))]
    assert keys == [
        "Art_Style/test-00000-of-00001.parquet:0/image_1",
        "Art_Style/test-00000-of-00001.parquet:0/image_2",
        "Art_Style/test-00000-of-00001.parquet:1/image_1",
        "Counting/test-00000-of-00001.parquet:0/image_1",
        "Counting/test-00000-of-00001.parquet:0/image_2",
        "Counting/test-00000-of-00001.parquet:1/image_1",
    ]
    assert blink.skipped_at_open["no_image"] == 10  # image_2 once, image_3 and image_4 twice per file
    assert blink.source_id == "blink:BLINK[test]"

    encoded = base64.b64encode(png(5)).decode()
    Dataset.from_dict({"index": [7, 1000007], "image": [encoded, encoded]}).save_to_disk(
        str(tmp_path / "mmb")
    )
    saved = open_source("mmbench", str(tmp_path / "mmb"), split="validation")
    assert isinstance(saved, HFSource) and saved.options["key_column"] == "index"
    assert [saved.key(i) for i in range(len(saved))] == ["7"] and saved.skipped_at_open["circular_copy"] == 1


def test_hub_inputs_resolve_without_network():
    adapter, path, options = PRESETS.get("seedbench").resolve("lmms-lab/SEED-Bench", {})
    assert (adapter, path, options) == ("hf", "lmms-lab/SEED-Bench", {"keep_if": "data_type=image"})
    adapter, path, options = PRESETS.get("blink").resolve(None, {"name": "Counting"})
    assert (adapter, path, options["name"]) == ("hf", "BLINK-Benchmark/BLINK", "Counting")
    adapter, _, options = PRESETS.get("mmbench").resolve("HuggingFaceM4/MMBench", {})
    assert adapter == "hf" and options == {
        "dedupe_circular": True,
        "index_column": "index",
        "key_column": "index",
    }
    assert PRESETS.get("blink").splits_for("BLINK-Benchmark/BLINK") == ["val", "test"]
    assert PRESETS.get("realworldqa").splits_for("lmms-lab/RealWorldQA") == ["test"]
    assert PRESETS.get("mmbench").splits_for(None) == ["validation", "test"]
    source = open_source("mmstar")  # opening is lazy: nothing is downloaded until the source is used
    assert isinstance(source, HFSource) and source.path == "Lin-Chen/MMStar" and source.split == "val"
    assert source.source_id == "mmstar:Lin-Chen/MMStar[val]"


def test_infer_adapter(tmp_path, mmbench_sample):
    assert infer_adapter(mmbench_sample) == "tsv"
    blink_snapshot(tmp_path / "snap")
    assert infer_adapter(str(tmp_path / "snap")) == "parquet"
    assert infer_adapter(str(tmp_path / "snap" / "Counting" / "val-00000-of-00001.parquet")) == "parquet"
    assert infer_adapter(str(tmp_path / "snap" / "*" / "val-*.parquet")) == "parquet"
    Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "saved"))
    assert infer_adapter(str(tmp_path / "saved")) == "hf"
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "imgs" / "sub" / "a.png").write_bytes(png(0))
    assert infer_adapter(str(tmp_path / "imgs")) == "folder"
    assert infer_adapter("owner/dataset") == "hf"
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.json").write_text("{}")
    for bad, message in [
        (str(tmp_path / "text"), "holds no parquet, arrow or image files"),
        (str(tmp_path / "missing" / "x.tsv"), "does not exist"),
        (str(tmp_path / "text" / "a.json"), "cannot read"),
    ]:
        with pytest.raises(UserError, match=message):
            infer_adapter(bad)


def test_names_and_options_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="'mmbnch'. Did you mean 'mmbench'") as info:
        open_source("mmbnch", "x.tsv")
    assert "Adapters: folder, hf, parquet, tsv" in str(info.value)
    with pytest.raises(UserError, match="no hub dataset; give --input"):
        open_source("caparena")
    with pytest.raises(UserError, match="needs an input"):
        open_source("folder")
    with pytest.raises(UserError, match="has no option 'dedupe'"):
        open_source("hf", "owner/name", dedupe="true")
    with pytest.raises(UserError, match="expects true/false"):
        open_source("hf", "owner/name", dedupe_circular="maybe")


def test_sources_command(capsys, tmp_path, mmbench_sample):
    assert main(["sources"]) == 0
    listing = capsys.readouterr().out
    for name in SOURCES.names() + PRESETS.names():
        assert f"  {name} " in listing
    assert "HuggingFaceM4/MMBench [validation, test]" in listing
    assert main(["sources", "--json", "blink", "tsv"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["presets"][0]["hub_id"] == "BLINK-Benchmark/BLINK"
    assert data["adapters"][0]["options"]["dedupe_circular"]["default"] is True
    blink_snapshot(tmp_path / "BLINK")
    assert main(["sources", "blink", "--splits", str(tmp_path / "BLINK")]) == 0
    assert capsys.readouterr().out.split() == ["val", "test"]
    assert main(["sources", "mmbench", "--check", mmbench_sample, "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 items via the tsv adapter" in out and "241: 302x232" in out
    assert main(["sources", "mmbnch"]) == 2
    assert "Did you mean 'mmbench'" in capsys.readouterr().err


def test_build_script_loops_over_tasks_and_splits(tmp_path, mmbench_sample):
    blink_snapshot(tmp_path / "BLINK")
    env = dict(os.environ, DRY_RUN="1", SSL4RL=f"{sys.executable} -m ssl4rl.cli")
    script = os.path.join(REPO, "build_benchmarks", "build.sh")
    result = subprocess.run(
        [
            script,
            "blink",
            str(tmp_path / "BLINK"),
            str(tmp_path / "out"),
            "rotation",
            "jigsaw",
            "--",
            "--workers",
            "4",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.strip() for line in result.stdout.strip().splitlines()]
    assert len(lines) == 4
    assert lines[0].endswith(
        f"build --task rotation --source blink --input {tmp_path / 'BLINK'} --split val "
        f"--out {tmp_path / 'out' / 'blink' / 'rotation' / 'val'} --max-prompt-tokens 1024 --workers 4"
    )
    assert " --split test " in lines[1] and " --task jigsaw " in lines[3]
    unbudgeted = subprocess.run(
        [script, "blink", str(tmp_path / "BLINK"), str(tmp_path / "out"), "rotation"],
        env=dict(env, MAX_PROMPT_TOKENS="0"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(
        line.strip().endswith("--max-prompt-tokens 0") for line in unbudgeted.stdout.strip().splitlines()
    )
    result = subprocess.run(
        [script, "mmbench", mmbench_sample, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    tasks = [line.split(" --task ")[1].split()[0] for line in result.stdout.splitlines()]
    assert tasks == ["rotation", "jigsaw", "position", "contrastive"]
    assert all(" --split validation " in line for line in result.stdout.splitlines())
    usage = subprocess.run([script], capture_output=True, text=True)
    assert usage.returncode == 2 and "BENCHMARK INPUT OUTROOT" in usage.stdout
