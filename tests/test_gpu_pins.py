"""The GPU stack in constraints/gpu.txt is mutually consistent: pip's resolver installs it together with
ssl4rl[verl] at exactly the pinned versions. Needs PyPI; deselect with `-m "not network"`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINS = os.path.join(ROOT, "constraints", "gpu.txt")


def read_pins(path: str = PINS) -> dict[str, str]:
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
                pins[name.lower()] = version
    return pins


def test_pins_are_exact_and_cover_the_stack():
    pins = read_pins()
    assert {"verl", "vllm", "torch", "torchvision", "transformers"} <= set(pins)
    assert pins["verl"] == "0.9.1"
    major, minor, *_ = (int(p) for p in pins["transformers"].split("."))
    assert (5, 5) <= (major, minor) < (5, 11), "verl 0.9.1 requires transformers>=5.5.3,<5.11"


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.network
@pytest.mark.slow
def test_resolver_installs_the_pinned_stack_with_ssl4rl(tmp_path):
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot run pip's resolver against constraints/gpu.txt")
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--report", str(report), "-r", PINS, f"{ROOT}[verl]"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: Location")]
    assert result.returncode == 0, "\n".join(errors[-20:])

    installs = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    for name, version in read_pins().items():
        assert installs.get(name) == version, (
            f"{name}: resolver picked {installs.get(name)}, pinned {version}"
        )
    assert "ssl4rl" in installs
    assert installs["tensordict"].startswith("0.10")  # verl 0.9.1: tensordict<=0.10
