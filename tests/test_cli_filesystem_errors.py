"""File-system trouble is one clear line and a non-zero exit in every command, never a traceback, and
nothing half-written: an --out that names an existing file, a directory that cannot be written, a disk
that fills up mid-build (the finished shards stay, so the same command resumes)."""

from __future__ import annotations

import errno
import glob
import os

import pytest

from ssl4rl.builder import writer as shard_writer
from ssl4rl.cli import main


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ssl4rl {command}: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory, photo_folder, make_rl_parquet):
    root = tmp_path_factory.mktemp("rl")
    make_rl_parquet(root, photo_folder, [("rotation", {})])
    return root


def commands(photo_folder, tiny_model, mmbench_sample, rl_data) -> dict[str, list[str]]:
    built = str(rl_data / "0-rotation-train")
    return {
        "build": ["build", "--task", "rotation", "--source", "folder", "--input", photo_folder, "--out"],
        "preprocess": [
            *("preprocess", "--train", built, "--val", str(rl_data / "0-rotation-validation")),
            *("--allow-shared-images", "--out"),
        ],
        "mix": ["mix", str(rl_data / "verl"), "--no-progress", "--out"],
        "calibrate": [
            "calibrate",
            "--model",
            tiny_model,
            "--task",
            "rotation",
            "--images",
            photo_folder,
            "--out",
        ],
        "eval": ["eval", "--model", tiny_model, "--benchmark", "mmbench", "--data", mmbench_sample, "--out"],
        "eval-ssl": ["eval", "--model", tiny_model, "--ssl", str(rl_data / "verl" / "val.parquet"), "--out"],
        "demo": ["demo", "--out"],
    }


@pytest.mark.parametrize("name", ["build", "preprocess", "mix", "calibrate", "eval", "eval-ssl", "demo"])
def test_out_naming_an_existing_file_is_one_line(
    name, tmp_path, capsys, photo_folder, tiny_model, mmbench_sample, rl_data
):
    argv = commands(photo_folder, tiny_model, mmbench_sample, rl_data)[name]
    blocker = tmp_path / "taken"
    blocker.write_text("someone's file")
    code = main([*argv, str(blocker)])
    assert code != 0
    err = one_line_error(capsys, argv[0])
    assert str(blocker) in err
    assert blocker.read_text() == "someone's file"  # untouched


def test_tiny_model_and_merge_refuse_an_existing_out(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    assert main(["tiny-model", str(blocker)]) != 0
    one_line_error(capsys, "tiny-model")
    assert blocker.read_text() == "x"


def test_a_directory_that_cannot_be_written_is_one_line(tmp_path, capsys, photo_folder, monkeypatch):
    # Root ignores permission bits, so the refusal the kernel would give a user is injected where the
    # build first creates its output directory.
    real_makedirs = os.makedirs

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only)
    argv = ["build", "--task", "rotation", "--source", "folder", "--input", photo_folder]
    assert main([*argv, "--out", str(tmp_path / "ro" / "out")]) == 1
    err = one_line_error(capsys, "build")
    assert "Permission denied" in err and str(tmp_path / "ro") in err


def test_a_full_disk_keeps_finished_shards_and_the_same_command_resumes(
    tmp_path, capsys, photo_folder, monkeypatch
):
    out = tmp_path / "out"
    argv = ["build", "--task", "rotation", "--source", "folder", "--input", photo_folder, "--out", str(out)]
    argv += ["--samples-per-shard", "2", "--no-progress"]
    real_write = shard_writer.ShardWriter.write
    written = {"rows": 0}

    def fill_up(self, rows):
        if written["rows"] >= 4:  # two shards fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", self.path)
        written["rows"] += len(rows)
        return real_write(self, rows)

    monkeypatch.setattr(shard_writer.ShardWriter, "write", fill_up)
    assert main(argv) == 1
    err = one_line_error(capsys, "build")
    assert "No space left on device" in err and "rerun the same command" in err
    kept = sorted(glob.glob(str(out / "data" / "*.parquet")))
    assert len(kept) == 2 and not glob.glob(str(out / "data" / "*.tmp"))  # no temporary left behind
    monkeypatch.setattr(shard_writer.ShardWriter, "write", real_write)
    assert main(argv) == 0
    assert "resuming: 2 finished shard(s) kept" in capsys.readouterr().out


def test_preview_of_no_samples_is_a_usage_error(capsys, rl_data):
    """`preview -n 0` used to end in a traceback from an empty contact sheet."""
    with pytest.raises(SystemExit) as stop:
        main(["preview", str(rl_data / "0-rotation-train"), "-n", "0", "--out", "x.png"])
    assert stop.value.code == 2
    assert "argument -n: must be at least 1, got 0" in capsys.readouterr().err
