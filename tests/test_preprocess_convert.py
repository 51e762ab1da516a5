"""`ssl4rl preprocess`: built / release-layout SSL datasets -> verl RL parquet."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl4rl.cli import main as cli_main
from ssl4rl.errors import UserError
from ssl4rl.rl_row import RL_SCHEMA
from ssl4rl.training_data.preprocess import (
    PreprocessConfig,
    holdout_side,
    infer_task,
    preprocess,
)

# ---- fixtures: datasets in `ssl4rl build`'s layout and in the original release's layout ------------

SMALL_SIDE = 160  # photos are shrunk so every fixture builds in well under a second


def write_small_photos(out, photo_paths) -> str:
    """The bundled photographs, shrunk, as a folder of PNG/JPEG files (the `folder` source's input)."""
    for path in photo_paths:
        image = Image.open(path).convert("RGB")
        image.thumbnail((SMALL_SIDE, SMALL_SIDE))
        name = os.path.splitext(os.path.basename(path))[0]
        if path.endswith(".jpg"):
            image.save(out / f"{name}.jpg", quality=90)
        else:
            image.save(out / f"{name}.png")
    return str(out)


@pytest.fixture(scope="session")
def small_photo_dir(tmp_path_factory, photo_paths) -> str:
    return write_small_photos(tmp_path_factory.mktemp("photos"), photo_paths)


def build_dataset(photo_dir: str, out: str, task: str, split: str, **knobs) -> str:
    """`ssl4rl build --source folder` into `out` (several splits may share one directory)."""
    from ssl4rl.builder import BuildConfig, build

    build(
        BuildConfig(
            task=task,
            source="folder",
            input=photo_dir,
            out=out,
            split=split,
            knobs=knobs,
            seed=0,
            progress=False,
        )
    )
    return out


@pytest.fixture(scope="session")
def built(tmp_path_factory, small_photo_dir) -> dict[str, str]:
    """Built datasets: rotation with test + validation splits, and jigsaw / contrastive / position."""
    root = tmp_path_factory.mktemp("built")
    dirs = {"rotation": build_dataset(small_photo_dir, str(root / "rotation"), "rotation", "test")}
    build_dataset(small_photo_dir, dirs["rotation"], "rotation", "validation")
    for task in ("jigsaw", "contrastive", "position"):
        dirs[task] = build_dataset(small_photo_dir, str(root / task), task, "train")
    return dirs


def release_rows(photo_dir: str, n: int = 4) -> dict[str, list]:
    names = sorted(os.listdir(photo_dir))[:n]
    images = [[Image.open(os.path.join(photo_dir, name)).convert("RGB")] * 2 for name in names]
    return {
        "images": images,
        "query": ["<image><image>By how many degrees was the second image rotated?"] * len(names),
        "answer": ["90", "180", "0", "270"][: len(names)],
    }


def release_features():
    from datasets import Features, Image, List, Value

    return Features({"images": List(Image()), "query": Value("string"), "answer": Value("string")})


def read(path: str) -> list[dict]:
    return pq.read_table(path).to_pylist()


def input_rows(directory: str, split: str | None = None) -> list[dict]:
    rows = []
    for name in sorted(os.listdir(os.path.join(directory, "data"))):
        if name.endswith(".parquet") and (split is None or name.startswith(f"{split}-")):
            rows.extend(pq.read_table(os.path.join(directory, "data", name)).to_pylist())
    return rows


# ---- row format ----------------------------------------------------------------------------------


def test_paper_split_rows_match_verl_format_and_pass_bytes_through(built, tmp_path):
    rot = built["rotation"]
    manifest = preprocess(PreprocessConfig(out=str(tmp_path), train=[rot], paper_split=True, progress=False))
    test_rows, val_rows = input_rows(rot, "test"), input_rows(rot, "validation")
    train, val = read(tmp_path / "train.parquet"), read(tmp_path / "val.parquet")
    # the paper trains on the data built from both benchmark splits and validates on `validation`
    assert len(train) == len(test_rows) + len(val_rows) and len(val) == len(val_rows) > 0
    schema = pq.read_schema(tmp_path / "train.parquet")
    assert schema.remove_metadata().equals(RL_SCHEMA)
    assert b"huggingface" not in (schema.metadata or {})  # no HF features: verl gets plain dicts
    by_key = {(r["split"], r["sample_index"]): r for r in test_rows + val_rows}
    for row in train + val:
        info = row["extra_info"]
        source_row = by_key[(info["split"], info["sample_index"])]
        assert row["data_source"] == "ssl4rl/rotation" == source_row["data_source"]
        assert row["prompt"] == [{"role": "user", "content": source_row["query"]}]
        assert row["reward_model"] == {"style": "rule", "ground_truth": source_row["answer"]}
        assert row["ability"] == "visual_ssl"
        assert [im["path"] for im in row["images"]] == [None] * len(source_row["images"])
        assert [im["bytes"] for im in row["images"]] == [im["bytes"] for im in source_row["images"]]
        assert row["prompt"][0]["content"].count("<image>") == len(row["images"])
        for key in ("task", "knobs", "label", "source", "source_key", "source_index"):
            assert info[key] == source_row[key]
    for rows in (train, val):
        assert sorted(r["extra_info"]["index"] for r in rows) == list(range(len(rows)))
    assert {r["extra_info"]["split"] for r in val} == {"validation"}
    assert manifest["outputs"]["train"]["rows"] == len(train)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["outputs"]["val"]["by_split"] == {"validation": len(val)}
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_explicit_train_and_val_with_split_suffix(built, tmp_path):
    rot = built["rotation"]
    manifest = preprocess(
        PreprocessConfig(
            out=str(tmp_path),
            train=[f"{rot}:test", built["jigsaw"]],
            val=[f"{rot}:validation"],
            allow_shared_images=True,  # every fixture is built from the same photographs
            progress=False,
        )
    )
    train, val = read(tmp_path / "train.parquet"), read(tmp_path / "val.parquet")
    assert {(r["extra_info"]["task"], r["extra_info"]["split"]) for r in train} == {
        ("rotation", "test"),
        ("jigsaw", "train"),
    }
    assert {(r["extra_info"]["task"], r["extra_info"]["split"]) for r in val} == {("rotation", "validation")}
    assert sorted(r["extra_info"]["index"] for r in train) == list(range(len(train)))
    overlap = manifest["train_val_overlap"]
    assert overlap["checked_rows"] == {"train": len(train), "val": len(val)}
    assert overlap["same_rows"] == 0 and overlap["train_rows_sharing_source_images"] == len(train)


# ---- train/val overlap and incomplete builds --------------------------------------------------------


def test_validation_rows_read_again_as_training_rows_are_refused(built, tmp_path):
    """The audit: `--train X --val X:validation` put X's validation rows in train.parquet as well."""
    rot = built["rotation"]
    config = dict(out=str(tmp_path / "out"), train=[rot], val=[f"{rot}:validation"], progress=False)
    with pytest.raises(UserError, match=r"^\d+ training rows are also validation rows"):
        preprocess(PreprocessConfig(**config))
    with pytest.raises(UserError, match=r"^\d+ training rows are also validation rows"):
        preprocess(PreprocessConfig(**config, allow_shared_images=True))  # same rows, not just same photos
    assert os.listdir(tmp_path / "out") == []


def test_validation_from_the_training_photos_is_refused_unless_allowed(built, tmp_path):
    """A train and a validation build of one folder: other samples, the same photographs."""
    config = dict(
        train=[f"{built['rotation']}:test"], val=[f"{built['rotation']}:validation"], progress=False
    )
    with pytest.raises(UserError, match="training rows use source images that validation rows use too"):
        preprocess(PreprocessConfig(out=str(tmp_path / "refused"), **config))
    manifest = preprocess(PreprocessConfig(out=str(tmp_path / "allowed"), allow_shared_images=True, **config))
    assert manifest["train_val_overlap"]["shared_images_allowed"] is True


def test_validation_from_other_photos_passes_the_overlap_check(small_photo_dir, tmp_path):
    names = sorted(os.listdir(small_photo_dir))
    dirs = {}
    for side, chosen in (("train", names[:5]), ("validation", names[5:])):
        photos = tmp_path / f"{side}_photos"
        photos.mkdir()
        for name in chosen:
            (photos / name).symlink_to(os.path.join(small_photo_dir, name))
        dirs[side] = build_dataset(str(photos), str(tmp_path / side), "rotation", side)
    manifest = preprocess(
        PreprocessConfig(
            out=str(tmp_path / "out"), train=[dirs["train"]], val=[dirs["validation"]], progress=False
        )
    )
    overlap = manifest["train_val_overlap"]
    assert overlap["checked_rows"] == {"train": 5, "val": len(names) - 5}
    assert overlap["same_rows"] == overlap["train_rows_sharing_source_images"] == 0


def build_shards(photo_dir: str, out: str, shard: tuple[int, int]) -> None:
    from ssl4rl.builder import BuildConfig, build

    build(
        BuildConfig(
            task="rotation",
            source="folder",
            input=photo_dir,
            out=out,
            samples_per_shard=3,
            shard=shard,
            progress=False,
        )
    )


def test_incomplete_builds_are_refused_unless_allowed(small_photo_dir, tmp_path, capsys):
    """The audit: after only `ssl4rl build --shard 0/2` preprocess wrote what was there without a word."""
    out = str(tmp_path / "built")
    build_shards(small_photo_dir, out, (0, 2))  # 9 photos, 3 per shard: shards 0 and 2 of 3
    config = dict(train=[out], holdout_fraction=0.5, progress=False)
    with pytest.raises(UserError, match=r"incomplete build: .*split 'train' has 2 of 3 shards built"):
        preprocess(PreprocessConfig(out=str(tmp_path / "refused"), **config))
    manifest = preprocess(PreprocessConfig(out=str(tmp_path / "allowed"), allow_incomplete=True, **config))
    assert manifest["incomplete_inputs"] == [
        f"{out}: split 'train' has 2 of 3 shards built (manifest-train.part-0-of-2.json; the other --shard runs have not finished)"
    ]
    assert manifest["inputs"][0]["incomplete"] and manifest["config"]["allow_incomplete"]
    code = cli_main(
        [
            "preprocess",
            "--train",
            out,
            "--holdout-fraction",
            "0.5",
            "--allow-incomplete",
            "--no-progress",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert code == 0 and "warning: incomplete input used" in capsys.readouterr().out

    build_shards(small_photo_dir, out, (1, 2))  # the other run: now whole
    manifest = preprocess(PreprocessConfig(out=str(tmp_path / "whole"), **config))
    assert manifest["incomplete_inputs"] == [] and manifest["inputs"][0]["rows"] == 9
    one_shard = os.path.join(out, "data", "train-00001.parquet")
    with pytest.raises(UserError, match="is read from 1 of its 3 shards"):
        preprocess(
            PreprocessConfig(
                out=str(tmp_path / "one"), train=[one_shard], holdout_fraction=0.5, progress=False
            )
        )
    for name in os.listdir(out):  # as a killed build leaves it
        if name.startswith("manifest"):
            os.unlink(os.path.join(out, name))
    with pytest.raises(UserError, match="a build that has not finished"):
        preprocess(PreprocessConfig(out=str(tmp_path / "killed"), **config))


# ---- held-out split by source image ---------------------------------------------------------------


def images_of(row: dict, partners: dict) -> set[tuple[str, str]]:
    info = row["extra_info"]
    keys = {info["source_key"], *partners.get((info["task"], info["sample_index"]), [])}
    return {(info["source"], key) for key in keys}


def test_holdout_never_puts_one_source_image_on_both_sides(built, tmp_path):
    inputs = [built["rotation"], built["jigsaw"], built["position"], built["contrastive"]]
    partners = {(r["task"], r["sample_index"]): r["partner_keys"] for r in input_rows(built["contrastive"])}
    assert any(partners.values()), "the contrastive fixture should have negative pairs"
    for seed in range(3):
        out = tmp_path / str(seed)
        manifest = preprocess(
            PreprocessConfig(out=str(out), train=inputs, holdout_fraction=0.4, seed=seed, progress=False)
        )
        train, val = read(out / "train.parquet"), read(out / "val.parquet")
        train_images = set().union(*(images_of(r, partners) for r in train))
        val_images = set().union(*(images_of(r, partners) for r in val))
        assert train_images and val_images and not train_images & val_images
        # a task's sample follows its source image: the same photo is held out for every task
        for rows, side in ((train, "train"), (val, "val")):
            for row in rows:
                info = row["extra_info"]
                assert holdout_side(seed, info["source"], info["source_key"], 0.4) == side
        total = sum(len(input_rows(d)) for d in inputs)
        straddling = manifest["split_stats"].get("dropped_images_on_both_sides", 0)
        assert len(train) + len(val) + straddling == total


def test_holdout_is_deterministic_and_seeded(built, tmp_path):
    def val_keys(seed, name):
        preprocess(
            PreprocessConfig(
                out=str(tmp_path / name),
                train=[built["rotation"]],
                holdout_fraction=0.5,
                seed=seed,
                progress=False,
            )
        )
        return [
            (r["extra_info"]["split"], r["extra_info"]["source_key"])
            for r in read(tmp_path / name / "val.parquet")
        ]

    first = val_keys(0, "a")
    assert val_keys(0, "b") == first
    assert (tmp_path / "a" / "train.parquet").read_bytes() == (tmp_path / "b" / "train.parquet").read_bytes()
    assert any(val_keys(seed, f"s{seed}") != first for seed in (1, 2, 3))


# ---- the original release's layout -----------------------------------------------------------------


def test_release_layout_parquet_and_save_to_disk(small_photo_dir, tmp_path):
    from datasets import Dataset, DatasetDict

    dataset = Dataset.from_dict(release_rows(small_photo_dir), features=release_features())
    parquet_dir = tmp_path / "RotationQA"
    parquet_dir.mkdir()
    dataset.to_parquet(str(parquet_dir / "train-00000-of-00001.parquet"))
    DatasetDict({"train": dataset, "test": dataset.select([0, 1])}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "out"
    # --task names the task of inputs whose path does not ("saved")
    preprocess(
        PreprocessConfig(
            out=str(out),
            train=[str(parquet_dir)],
            val=[f"{tmp_path / 'saved'}:test"],
            task="rotation",
            progress=False,
        )
    )
    train, val = read(out / "train.parquet"), read(out / "val.parquet")
    assert len(train) == 4 and len(val) == 2
    expected = Dataset.from_dict(release_rows(small_photo_dir), features=release_features()).with_format(
        "arrow"
    )
    expected_bytes = [[im["bytes"] for im in images] for images in expected["images"].to_pylist()]
    assert [[im["bytes"] for im in r["images"]] for r in train] == expected_bytes
    assert all(r["data_source"] == "ssl4rl/rotation" for r in train + val)
    assert [r["reward_model"]["ground_truth"] for r in train] == ["90", "180", "0", "270"]
    assert {r["extra_info"]["split"] for r in val} == {"test"}
    assert len({r["extra_info"]["source_key"] for r in train}) == 4


def test_release_task_inferred_from_path_or_required(small_photo_dir, tmp_path):
    from datasets import Dataset

    dataset = Dataset.from_dict(release_rows(small_photo_dir), features=release_features())
    for name in ("RotationQA", "images"):
        (tmp_path / name).mkdir()
        dataset.to_parquet(str(tmp_path / name / "train-00000-of-00001.parquet"))
    out = tmp_path / "out"
    preprocess(
        PreprocessConfig(
            out=str(out), train=[str(tmp_path / "RotationQA")], holdout_fraction=0.5, progress=False
        )
    )
    assert {r["data_source"] for r in read(out / "train.parquet")} == {"ssl4rl/rotation"}
    with pytest.raises(UserError, match="--task"):
        preprocess(
            PreprocessConfig(
                out=str(out), train=[str(tmp_path / "images")], holdout_fraction=0.5, progress=False
            )
        )


@pytest.mark.parametrize("nested", ["", "data"])
def test_release_ssl_folder_with_split_suffix(small_photo_dir, tmp_path, nested):
    """The release's builders write `{split}_{worker:05d}.parquet` into one folder per task, with extra
    columns (index, source, split, height, width); `DIR:SPLIT` picks a split by file name."""
    from datasets import Dataset

    rows = release_rows(small_photo_dir)
    folder = tmp_path / "MMBench_RotationQA_90degree"
    (folder / nested).mkdir(parents=True)
    for split, shards in (("test", 2), ("validation", 1)):
        for worker in range(shards):
            extra = {
                "index": [worker * 10 + i for i in range(4)],
                "source": ["mmbench"] * 4,
                "split": [split] * 4,
                "height": [100] * 4,
                "width": [100] * 4,
            }
            Dataset.from_dict({**extra, **rows}).cast_column(
                "images", release_features()["images"]
            ).to_parquet(str(folder / nested / f"{split}_{worker:05d}.parquet"))
    out = tmp_path / "out"
    code = cli_main(
        [
            "preprocess",
            "--train",
            f"{folder}:test",
            "--val",
            f"{folder}:validation",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    train, val = read(out / "train.parquet"), read(out / "val.parquet")
    assert len(train) == 8 and len(val) == 4
    assert {r["extra_info"]["split"] for r in train} == {"test"}
    assert {r["extra_info"]["split"] for r in val} == {"validation"}
    assert {r["data_source"] for r in train + val} == {"ssl4rl/rotation"}
    with pytest.raises(UserError, match="no split 'dev'; splits there: test, validation"):
        preprocess(
            PreprocessConfig(out=str(out), train=[f"{folder}:dev"], holdout_fraction=0.5, progress=False)
        )


@pytest.mark.parametrize(
    "path, task",
    [
        ("/data/RotationQA", "rotation"),
        ("/data/release/JigsawQA_3x3", "jigsaw"),
        ("/data/single_rotation/mmbench", "single_rotation"),  # not also `rotation`
        ("/data/jigsaw_and_rotation", None),  # two tasks: ambiguous
        ("/data/images", None),
    ],
)
def test_infer_task_from_path(path, task):
    assert infer_task(path) == task


def test_path_only_images_are_read_without_decoding(small_photo_dir, tmp_path):
    """Images stored as paths (absolute, or relative to the file) are read as bytes, never decoded."""
    names = sorted(os.listdir(small_photo_dir))[:3]
    paths = [os.path.join(small_photo_dir, n) for n in names]
    (tmp_path / "PositionQA").mkdir()
    relative = os.path.relpath(paths[2], tmp_path / "PositionQA")
    images = [
        [{"bytes": None, "path": paths[0]}],
        [{"bytes": None, "path": paths[1]}],
        [{"bytes": None, "path": relative}],
    ]
    table = pa.table({"images": images, "query": ["<image>q"] * 3, "answer": ["top-left"] * 3})
    pq.write_table(table, tmp_path / "PositionQA" / "train.parquet")
    (tmp_path / "val" / "PositionQA").mkdir(parents=True)
    pq.write_table(table.slice(0, 2), tmp_path / "val" / "PositionQA" / "test.parquet")
    out = tmp_path / "out"
    spec = str(tmp_path / "PositionQA")
    preprocess(
        PreprocessConfig(
            out=str(out), train=[spec], val=[str(tmp_path / "val" / "PositionQA")], progress=False
        )
    )
    train = read(out / "train.parquet")
    assert [r["images"][0] for r in train] == [{"bytes": open(p, "rb").read(), "path": None} for p in paths]
    assert {r["extra_info"]["task"] for r in train} == {"position"}


def test_missing_image_file_skips_the_row(small_photo_dir, tmp_path):
    good = os.path.join(small_photo_dir, sorted(os.listdir(small_photo_dir))[0])
    images = [[{"bytes": None, "path": good}], [{"bytes": None, "path": str(tmp_path / "gone.png")}]]
    for name in ("c.parquet", "c_val.parquet"):  # the same rows in another file: other source keys
        pq.write_table(
            pa.table({"images": images, "query": ["<image>q"] * 2, "answer": ["positive"] * 2}),
            tmp_path / name,
        )
    manifest = preprocess(
        PreprocessConfig(
            out=str(tmp_path / "out"),
            train=[str(tmp_path / "c.parquet")],
            val=[str(tmp_path / "c_val.parquet")],
            task="contrastive",
            progress=False,
        )
    )
    assert manifest["skipped"] == {"bad_image": 2} and manifest["outputs"]["train"]["rows"] == 1


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_rows_are_skipped_and_counted(small_photo_dir, tmp_path):
    from datasets import Dataset

    rows = release_rows(small_photo_dir)
    rows["query"][0] = "<image>only one placeholder for two images"
    rows["answer"][1] = None
    rows["images"][2] = []
    for name in ("rotation.parquet", "rotation_val.parquet"):
        Dataset.from_dict(rows, features=release_features()).to_parquet(str(tmp_path / name))
    out = tmp_path / "out"
    manifest = preprocess(
        PreprocessConfig(
            out=str(out),
            train=[str(tmp_path / "rotation.parquet")],
            val=[str(tmp_path / "rotation_val.parquet")],
            progress=False,
        )
    )
    assert manifest["skipped"] == {"placeholder_mismatch": 2, "missing_answer": 2, "no_images": 2}
    assert len(read(out / "train.parquet")) == 1


def test_unknown_split_names_the_available_ones(built, tmp_path):
    with pytest.raises(UserError, match="no split 'valdation'; splits there: test, validation"):
        preprocess(
            PreprocessConfig(
                out=str(tmp_path), train=[built["rotation"] + ":valdation"], paper_split=True, progress=False
            )
        )


def test_failure_leaves_no_partial_output(built, tmp_path):
    out = tmp_path / "out"
    # a held-out share that selects nothing from a tiny dataset: the val set would be empty
    with pytest.raises(UserError, match="val set would be empty"):
        preprocess(
            PreprocessConfig(
                out=str(out), train=[built["rotation"] + ":test"], holdout_fraction=1e-9, progress=False
            )
        )
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train": []}, "--train"),
        ({"train": ["x"], "val": ["y"], "paper_split": True}, "exactly one"),
        ({"train": ["x"]}, "exactly one"),
        ({"train": ["x"], "holdout_fraction": 1.0}, "between 0 and 1"),
    ],
)
def test_config_errors(kwargs, message, tmp_path):
    with pytest.raises(UserError, match=message):
        PreprocessConfig(out=str(tmp_path), **kwargs)


def test_cli(built, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(
        ["preprocess", "--train", built["rotation"], "--paper-split", "--out", str(out), "--no-progress"]
    )
    assert code == 0 and (out / "train.parquet").exists() and (out / "val.parquet").exists()
    assert "train:" in capsys.readouterr().out
    assert (
        cli_main(["preprocess", "--train", str(tmp_path / "missing"), "--paper-split", "--out", str(out)])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
