"""A model reference is a local model directory or a reachable hub id; anything else fails at once, as one
line, before transformers spends minutes retrying the hub for a mistyped path."""

from __future__ import annotations

import huggingface_hub
import pytest

from ssl4rl import model_reference
from ssl4rl.cli import main
from ssl4rl.errors import UserError
from ssl4rl.model_reference import check_model_reference


@pytest.fixture
def no_hub(monkeypatch):
    """Any hub request fails the test: local-looking references must be judged without one."""

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was contacted")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)


def test_a_local_model_directory_is_accepted(tmp_path, no_hub):
    (tmp_path / "config.json").write_text("{}")
    assert check_model_reference(str(tmp_path)) == str(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no config.json"):
        check_model_reference(str(tmp_path / "empty"))
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_model_reference(str(tmp_path / "weights.bin"))


@pytest.mark.parametrize("reference", ["models/nonexist", "./nonexist", "/no/such/model", "a/b/c", "runs/x/"])
def test_a_missing_local_path_fails_at_once_without_the_hub(tmp_path, monkeypatch, no_hub, reference):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # `models/nonexist` beside an existing models/: meant as a local path
    with pytest.raises(UserError, match="no such directory") as info:
        check_model_reference(reference)
    assert "\n" not in str(info.value)


def test_a_hub_id_is_checked_once_and_offline_against_the_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(model_reference.hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        check_model_reference("Qwen/Qwen2.5-VL-3B-Instruct")
    monkeypatch.setattr(model_reference.hub_constants, "HF_HUB_OFFLINE", False)
    calls = []

    def unreachable(self, repo_id, timeout=None, **kwargs):
        calls.append(timeout)
        raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(UserError, match="could not be reached"):
        check_model_reference("Qwen/Qwen2.5-VL-3B-Instruct")
    assert calls == [model_reference.HUB_TIMEOUT_S]  # one short request, no retries
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, timeout=None: object())
    model_reference._check_on_hub.cache_clear()
    assert check_model_reference("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_eval_with_a_mistyped_model_path_is_one_line_and_writes_nothing(
    tmp_path, monkeypatch, capsys, no_hub, mmbench_sample
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    out = tmp_path / "eval"
    args = ["eval", "--model", "models/nonexist", "--benchmark", "mmbench", "--data", mmbench_sample]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl4rl eval: error: --model models/nonexist: no such directory")
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
