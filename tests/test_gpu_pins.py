"""The GPU stacks in ssl4rl/configs/gpu_stack*.txt are mutually consistent: pip's resolver installs each together
with ssl4rl[verl] at exactly the pinned versions, on every Python verl supports, and the result holds every
module verl's default trainer imports (the review found `transfer_queue` missing from the first pins).
Needs PyPI; deselect with `-m "not network"`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from ssl4rl import gpu_stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What verl 0.9.1's V1 trainer and rollout server import beyond plain verl (its `verl-core` extra).
TRAINER_IMPORTS = (
    "transferqueue",
    "cachetools",
    "uvicorn",
    "fastapi",
    "starlette",
    "pyzmq",
    "msgspec",
    "ray",
)


def test_pins_are_exact_and_cover_the_stack():
    for name in gpu_stack.STACKS:
        pins = gpu_stack.read_pins(gpu_stack.STACKS[name])
        assert {"verl", "transferqueue", "vllm", "torch", "torchvision", "transformers"} <= set(pins), name
        assert pins["verl"] == "0.9.1"
        major, minor, *_ = (int(p) for p in pins["transformers"].split("."))
        assert (5, 5) <= (major, minor) < (5, 11), "verl 0.9.1 requires transformers>=5.5.3,<5.11"
    with open(os.path.join(ROOT, "constraints", "gpu.txt")) as f:
        assert "-r ../ssl4rl/configs/gpu_stack.txt" in f.read()  # the install path reads the package's pins
    # the main stack installs verl with its own `vllm` extra: verl's tested set, TransferQueue included
    with open(gpu_stack.STACKS["main"]) as f:
        assert "verl[vllm]==0.9.1" in f.read()


def test_driver_table():
    assert gpu_stack.min_driver_for_cuda((13, 0)) == (580, 65)
    assert gpu_stack.min_driver_for_cuda((12, 8)) == (570, 26)
    assert gpu_stack.min_driver_for_cuda((12, 9)) == (575, 51)
    assert gpu_stack.min_driver_for_cuda((11, 8)) is None


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> str:
    """ssl4rl as a wheel, and antlr4-python3-runtime 4.9.3 (hydra's dependency, published as an sdist only),
    so that pip can resolve for other Pythons with --only-binary."""
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot run pip's resolver against the GPU stacks")
    out = tmp_path_factory.mktemp("wheels")
    for target in (ROOT, "antlr4-python3-runtime==4.9.3"):
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), target]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
    return str(out)


def resolve(stack: str, python: str, wheels: str, tmp_path) -> dict[str, str]:
    report = tmp_path / f"{stack}-{python}.json"
    wheel = next(f for f in os.listdir(wheels) if f.startswith("ssl4rl-"))
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--python-version", python, "--only-binary=:all:", "--find-links", wheels]
    command += ["--target", str(tmp_path / "target"), "--report", str(report)]
    command += ["-r", gpu_stack.STACKS[stack], f"{os.path.join(wheels, wheel)}[verl]"]
    env = {**os.environ, "PIP_CONSTRAINT": ""}  # this machine's pip cap on torch must not take part
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=env)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location")]
    assert result.returncode == 0, "\n".join(errors[-20:])
    return {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize(
    ("stack", "python"), [("main", "3.10"), ("main", "3.11"), ("main", "3.12"), ("cu12", "3.11")]
)
def test_resolver_installs_the_pinned_stack_with_ssl4rl(stack, python, wheels, tmp_path):
    installs = resolve(stack, python, wheels, tmp_path)
    for name, version in gpu_stack.read_pins(gpu_stack.STACKS[stack]).items():
        assert installs.get(name) == version, (
            f"{name}: resolver picked {installs.get(name)}, pinned {version}"
        )
    missing = [name for name in TRAINER_IMPORTS if name not in installs]
    assert not missing, f"the trainer would not find {missing}"
    assert "ssl4rl" in installs and installs["tensordict"].startswith("0.10")  # verl 0.9.1: tensordict<=0.10
    assert "trl" not in installs  # verl 0.9.1 cannot build a model while trl >= 1 is importable
    cuda = [name for name in installs if name.endswith(("-cu13", "-cu12"))]
    assert cuda and all(name.endswith("-cu13" if stack == "main" else "-cu12") for name in cuda), cuda
