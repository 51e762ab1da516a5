"""Builder: determinism across workers and machine shards, resume after a kill, bad inputs, budget."""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from ssl4rl.builder import BuildConfig, build
from ssl4rl.errors import UserError


def shard_bytes(out: str) -> dict[str, bytes]:
    return {
        os.path.basename(p): open(p, "rb").read()
        for p in sorted(glob.glob(os.path.join(out, "data", "*.parquet")))
    }


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, photo_paths):
    """Twelve real photographs (some downsized copies) in nested folders."""
    root = tmp_path_factory.mktemp("photos")
    for i, path in enumerate(photo_paths):
        sub = root / f"group{i % 3}"
        sub.mkdir(exist_ok=True)
        image = Image.open(path).convert("RGB")
        image.thumbnail((400, 400))
        image.save(sub / f"{i:02d}.jpg", quality=90)
        if i < 3:
            image.resize((image.width // 2, image.height // 2)).save(sub / f"{i:02d}_small.png")
    return str(root)


def config(folder, out, **kw) -> BuildConfig:
    kw.setdefault("task", "rotation")
    kw.setdefault("samples_per_shard", 4)
    return BuildConfig(source="folder", input=folder, out=str(out), progress=False, **kw)


@pytest.mark.parametrize("task", ["rotation", "jigsaw", "position", "contrastive"])
def test_same_bytes_for_any_worker_count(photo_folder, tmp_path, task):
    one = build(config(photo_folder, tmp_path / "w1", task=task, workers=1))
    two = build(config(photo_folder, tmp_path / "w2", task=task, workers=2))
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")
    assert one["counts"]["written"] == two["counts"]["written"] > 0
    assert len(shard_bytes(tmp_path / "w1")) == one["counts"]["shards"] >= 3


def test_seed_and_split_change_the_samples(photo_folder, tmp_path):
    build(config(photo_folder, tmp_path / "a", split="train"))
    build(config(photo_folder, tmp_path / "b", split="validation"))
    answers = [
        [row["answer"] for row in pq.read_table(glob.glob(f"{tmp_path / d}/data/*.parquet")).to_pylist()]
        for d in ("a", "b")
    ]
    # The release reseeded per batch, so two splits got identical angle sequences.
    assert answers[0] != answers[1]


def test_machine_shards_merge_into_the_single_machine_build(photo_folder, tmp_path):
    build(config(photo_folder, tmp_path / "single"))
    parts = [build(config(photo_folder, tmp_path / "multi", shard=(i, 3))) for i in range(3)]
    assert [p["complete"] for p in parts] == [False, False, True]
    assert shard_bytes(tmp_path / "multi") == shard_bytes(tmp_path / "single")
    manifest = json.load(open(tmp_path / "multi" / "manifest-train.json"))
    single = json.load(open(tmp_path / "single" / "manifest-train.json"))
    assert manifest["counts"]["written"] == single["counts"]["written"]
    assert manifest["answers"] == single["answers"]


def test_loads_with_hf_datasets_and_traces_back(photo_folder, tmp_path):
    from datasets import load_dataset

    build(config(photo_folder, tmp_path / "ds", task="jigsaw"))
    dataset = load_dataset("parquet", data_dir=str(tmp_path / "ds" / "data"), split="train")
    row = dataset[0]
    assert isinstance(row["images"][0], Image.Image) and len(row["images"]) == 4
    assert row["query"].count("<image>") == len(row["images"])
    assert row["data_source"] == "ssl4rl/jigsaw" and row["task"] == "jigsaw"
    assert os.path.exists(os.path.join(photo_folder, row["source_key"]))
    assert json.loads(row["knobs"])["grid"] in ("2", "2x2", 2, [2, 2])
    assert row["image_tokens"] > 0 and row["scale"] == 1.0


def test_unchanged_source_passes_through_without_reencoding(photo_folder, tmp_path):
    # position shows the whole source; rotation shows its box of whole 16 px blocks, which is the whole
    # source only when both sides are multiples of 16 (else the cut view is encoded like every other view)
    for task in ("position", "rotation"):
        build(config(photo_folder, tmp_path / task, task=task))
        rows = pq.read_table(glob.glob(f"{tmp_path}/{task}/data/*.parquet")).to_pylist()
        passed_through = 0
        for row in rows:
            original = open(os.path.join(photo_folder, row["source_key"]), "rb").read()
            width, height = Image.open(io.BytesIO(original)).size
            whole = task == "position" or (width % 16 == 0 and height % 16 == 0)
            assert (row["images"][0]["bytes"] == original) == whole, (task, row["source_key"])
            passed_through += whole
        assert passed_through > 0


def test_resume_after_kill_gives_the_same_result(photo_folder, tmp_path):
    reference = tmp_path / "reference"
    build(config(photo_folder, reference, samples_per_shard=1))
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "ssl4rl.cli",
        "build",
        "--task",
        "rotation",
        "--source",
        "folder",
        "--input",
        photo_folder,
        "--out",
        str(out),
        "--samples-per-shard",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(glob.glob(f"{out}/data/*.parquet")) < 3:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(glob.glob(f"{out}/data/*.parquet"))
    assert 0 < finished < len(shard_bytes(reference)), "the kill should land mid-build"
    assert not os.path.exists(out / "manifest.json")
    manifest = build(config(photo_folder, out, samples_per_shard=1))
    assert manifest["complete"]
    assert shard_bytes(out) == shard_bytes(reference)
    assert not [p for p in os.listdir(out / "data") if p.endswith(".tmp")]


def test_a_different_build_in_the_same_directory_is_refused(photo_folder, tmp_path):
    build(config(photo_folder, tmp_path / "x"))
    with pytest.raises(UserError, match="different 'train' build.*seed"):
        build(config(photo_folder, tmp_path / "x", seed=1))


def _copy_photos(sources: list[str], folder, prefix: str) -> None:
    folder.mkdir(exist_ok=True)
    for i, path in enumerate(sources):
        shutil.copy(path, folder / f"{prefix}{i}.png")


def test_resume_refuses_an_input_that_changed(small_photos, tmp_path):
    """The audit: 6 photos built, 3 added whose names sort first, the same command rerun: the kept shards
    held the old items 0..5, so the dataset had one photo twice and none of the new ones."""
    photos = sorted(os.path.join(small_photos(96, 9), n) for n in os.listdir(small_photos(96, 9)))
    folder = tmp_path / "photos"
    _copy_photos(photos[:6], folder, "b")
    out = tmp_path / "out"
    build(config(str(folder), out, samples_per_shard=3))
    _copy_photos(photos[6:], folder, "a")
    with pytest.raises(
        UserError, match=r"input changed since the build started \(.*photos: 9 items, was 6\)"
    ):
        build(config(str(folder), out, samples_per_shard=3))


def test_resume_with_a_limit_refuses_other_first_items_and_other_sizes(small_photos, tmp_path):
    photos = sorted(os.path.join(small_photos(96, 9), n) for n in os.listdir(small_photos(96, 9)))
    folder = tmp_path / "photos"
    _copy_photos(photos[:6], folder, "b")
    build(config(str(folder), tmp_path / "limit", limit=4))
    _copy_photos(photos[6:7], folder, "c")  # sorts after the first four: they are unchanged
    assert build(config(str(folder), tmp_path / "limit", limit=4))["complete"]
    _copy_photos(photos[7:8], folder, "a")  # sorts first: the first four are other files now
    with pytest.raises(UserError, match="other item names among its 4 items"):
        build(config(str(folder), tmp_path / "limit", limit=4))
    os.unlink(folder / "a0.png")
    build(config(str(folder), tmp_path / "sizes"))
    shutil.copy(photos[8], folder / "b1.png")  # replaced in place by another photo
    with pytest.raises(UserError, match="files of other sizes"):
        build(config(str(folder), tmp_path / "sizes"))


def test_resume_of_the_same_files_with_other_times_warns_and_keeps_the_bytes(small_photos, tmp_path, capsys):
    """A copy of the input (another machine's for --shard i/N) has the same names and sizes, other times."""
    folder = tmp_path / "photos"
    _copy_photos(sorted(glob.glob(f"{small_photos(96, 9)}/*"))[:6], folder, "b")
    build(config(str(folder), tmp_path / "out", samples_per_shard=2))
    before = shard_bytes(tmp_path / "out")
    for path in folder.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    manifest = build(config(str(folder), tmp_path / "out", samples_per_shard=2))
    assert manifest["complete"] and shard_bytes(tmp_path / "out") == before
    assert "other modification times" in capsys.readouterr().err
    assert manifest["source"]["fingerprint"]["items"] == 6


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)


def test_bad_inputs_are_skipped_counted_and_good_ones_kept(photo_paths, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    photo = Image.open(photo_paths[2]).convert("RGB")
    photo.thumbnail((300, 300))
    photo.save(folder / "good.jpg")
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    photo.convert("P").save(folder / "palette.png")
    photo.convert("LA").save(folder / "la.png")
    photo.convert("RGBA").save(folder / "rgba.png")
    photo.convert("L").save(folder / "gray.png")
    Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(folder / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    photo.save(folder / "exif.jpg", exif=exif.tobytes())
    good = io.BytesIO()
    photo.save(good, format="JPEG")
    (folder / "truncated.jpg").write_bytes(good.getvalue()[:500])
    (folder / "garbage.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (20, 300)).save(folder / "tiny.png")
    Image.new("L", (1500, 1500)).save(folder / "bomb.png")
    manifest = build(config(str(folder), tmp_path / "out", max_source_pixels=2_000_000))
    assert manifest["counts"]["written"] == 8
    assert manifest["skipped"] == {"corrupt": 2, "too_large": 1, "too_small": 1}
    assert set(manifest["skip_examples"]) == {"corrupt", "too_large", "too_small"}
    # each example names the file it came from, and carries nothing that differs between identical runs
    examples = manifest["skip_examples"]
    assert examples["too_large"].startswith("bomb.png (sample ")
    assert examples["too_small"].startswith("tiny.png (sample ")
    assert examples["corrupt"].split(" (sample ")[0] in ("garbage.png", "truncated.jpg")
    again = build(config(str(folder), tmp_path / "again", max_source_pixels=2_000_000))
    assert again["skip_examples"] == examples and " at 0x" not in json.dumps(examples)


def test_unusable_input_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError):
        build(config(str(empty), tmp_path / "o1"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"junk")
    (bad / "b.jpg").write_bytes(b"junk")
    with pytest.raises(UserError, match="no usable samples.*corrupt: 2"):
        build(config(str(bad), tmp_path / "o2"))
    assert json.load(open(tmp_path / "o2" / "manifest-train.json"))["skipped"] == {"corrupt": 2}


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory, photo_paths) -> str:
    folder = tmp_path_factory.mktemp("big")
    for i, path in enumerate(photo_paths):  # 300 to 1411 px: rotation pairs cost 230 to 5000 tokens
        shutil.copy(path, folder / f"{i}{os.path.splitext(path)[1]}")
    return str(folder)


def test_token_budget_downscales_so_every_prompt_fits_by_default(big_photos, photo_paths, tmp_path):
    """The audit: without --max-prompt-tokens a 1411 px photo gave a 5,004-image-token sample while the
    manifest said would_be_dropped_by_overlong_filter: 0. The paper's 1024 is the default now."""
    manifest = build(config(big_photos, tmp_path / "fit"))
    rows = pq.read_table(glob.glob(f"{tmp_path}/fit/data/*.parquet")).to_pylist()
    assert len(rows) == len(photo_paths)
    dropped = manifest["counts"]["would_be_dropped_by_overlong_filter"]
    assert 0 < dropped == manifest["counts"]["downscaled_for_token_budget"] < len(rows)
    assert manifest["token_budget"] == {"max_prompt_tokens": 1024, "overlong_counted_against": 1024}
    for row in rows:
        text_bound = len(row["query"].replace("<image>", "").encode()) + 64
        assert row["image_tokens"] + text_bound <= 1024 and row["prompt_tokens"] <= 1024
        assert row["scale"] < 1.0 or row["image_tokens"] + text_bound <= 1024


@pytest.mark.parametrize("no_budget", [None, 0])
def test_without_a_budget_views_keep_their_size_and_overlong_samples_are_counted(
    big_photos, tmp_path, no_budget
):
    manifest = build(config(big_photos, tmp_path / "raw", max_prompt_tokens=no_budget))
    rows = pq.read_table(glob.glob(f"{tmp_path}/raw/data/*.parquet")).to_pylist()
    assert {row["scale"] for row in rows} == {1.0} and max(row["image_tokens"] for row in rows) > 4000
    over = sum(row["prompt_tokens"] > 1024 for row in rows)
    assert manifest["counts"]["would_be_dropped_by_overlong_filter"] == over > 0
    assert manifest["token_budget"] == {"max_prompt_tokens": None, "overlong_counted_against": 1024}
    assert manifest["counts"]["downscaled_for_token_budget"] == 0


def test_the_default_budget_is_the_recipe_prompt_length():
    from ssl4rl.builder.config import DEFAULT_MAX_PROMPT_TOKENS
    from ssl4rl.configs import CONFIG_DIR

    with open(os.path.join(CONFIG_DIR, "ssl4rl_grpo.yaml")) as f:
        recipe = yaml.safe_load(f)
    assert DEFAULT_MAX_PROMPT_TOKENS == recipe["data"]["max_prompt_length"] == 1024


def test_cli_budget_flag_default_opt_out_and_warning(big_photos, tmp_path, capsys):
    from ssl4rl.cli import main as cli_main

    base = ["build", "--task", "rotation", "--source", "folder", "--input", big_photos, "--no-progress"]
    assert cli_main([*base, "--out", str(tmp_path / "default")]) == 0
    assert "warning" not in capsys.readouterr().out
    for spelling in ("0", "none"):
        assert cli_main([*base, "--out", str(tmp_path / spelling), "--max-prompt-tokens", spelling]) == 0
        assert "prompts over 1024 tokens (no --max-prompt-tokens budget)" in capsys.readouterr().out
        manifest = json.load(open(tmp_path / spelling / "manifest.json"))["splits"]["train"]
        assert manifest["config"]["max_prompt_tokens"] is None
    assert shard_bytes(tmp_path / "0") == shard_bytes(tmp_path / "none")
    with pytest.raises(SystemExit):  # argparse: "invalid max_prompt_tokens value: 'lots'"
        cli_main([*base, "--out", str(tmp_path / "bad"), "--max-prompt-tokens", "lots"])
    assert "invalid max_prompt_tokens value" in capsys.readouterr().err


def test_outputs_get_ordinary_file_permissions(photo_folder, tmp_path):
    build(config(photo_folder, tmp_path / "perm"))
    expected = 0o666 & ~_umask()
    for path in [*glob.glob(f"{tmp_path}/perm/data/*.parquet"), str(tmp_path / "perm" / "manifest.json")]:
        assert os.stat(path).st_mode & 0o777 == expected


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_wrong_tokenizer_is_one_line_and_leaves_nothing_to_resume(small_photos, tmp_path, tiny_model):
    """A mistyped --tokenizer used to fail after the resume marker was written (and after hub retries)."""
    folder = small_photos(96, 4)
    out = tmp_path / "typo"
    for wrong, reason in [
        (str(tmp_path / "no-such-model"), "no such directory"),
        (folder, "no tokenizer_config"),
    ]:
        with pytest.raises(UserError, match=reason):
            build(config(folder, out, tokenizer=wrong))
    assert not out.exists() or not os.listdir(out)
    manifest = build(config(folder, tmp_path / "exact", tokenizer=tiny_model))
    assert manifest["counts"]["written"] > 0
