"""The pinned GPU training stacks and the machine they run on: versions, Python, glibc, CUDA build, driver.

The pins live in `ssl4rl/configs/gpu_stack*.txt` (installed with the package, so `ssl4rl doctor` can compare
against them anywhere); `constraints/gpu*.txt` and `scripts/install_gpu.sh` include those files. `main` is the
CUDA 13 stack verl 0.9.1 is tested with; `cu12` the same verl on a CUDA 12 torch/vLLM for older drivers.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

from .configs import CONFIG_DIR

STACKS = {
    "main": os.path.join(CONFIG_DIR, "gpu_stack.txt"),
    "cu12": os.path.join(CONFIG_DIR, "gpu_stack_cu12.txt"),
}
PINS_FILE = STACKS["main"]
PYTHON_RANGE = ((3, 10), (3, 12))  # verl 0.9.1 requires <3.13; vLLM publishes wheels from 3.10
MIN_GLIBC = (2, 31)  # vLLM's llguidance dependency ships manylinux_2_31 wheels only
MIN_COMPUTE_CAPABILITY = (7, 5)  # CUDA 13 dropped Volta and older; vLLM needs 7.5 either way
# Minimum Linux driver of each CUDA toolkit release (NVIDIA's CUDA release notes, "CUDA Toolkit and
# Corresponding Driver Versions"). A wheel built with CUDA X needs at least X's driver: older drivers make
# torch report no GPU at all, and CUDA 13 has no minor-version compatibility with 12.x drivers.
CUDA_MIN_DRIVER = {
    (13, 0): (580, 65),
    (12, 9): (575, 51),
    (12, 8): (570, 26),
    (12, 6): (560, 28),
    (12, 4): (550, 54),
    (12, 1): (530, 30),
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(?P<version>\S+)$")


def read_pins(path: str = PINS_FILE) -> dict[str, str]:
    """`name -> version` of every `name[extras]==version` line (names lower-cased, comments dropped)."""
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            match = _PIN.match(line)
            if not match:
                raise ValueError(f"{path}: not an exact pin: {line!r}")
            pins[match["name"].lower()] = match["version"]
    return pins


def stack_for_environment() -> tuple[str, dict[str, str]]:
    """(name, pins) of the stack this environment was installed from: the one whose torch pin matches the
    installed torch, else the main stack."""
    torch = (installed_version("torch") or "").split("+", 1)[0]
    for name, path in STACKS.items():
        pins = read_pins(path)
        if pins.get("torch") == torch:
            return name, pins
    return "main", read_pins(STACKS["main"])


def glibc_version() -> tuple[int, ...] | None:

    library, version = platform.libc_ver()
    return parse_version(version) if library == "glibc" else None


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_mismatches(pins: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(name, pinned, installed or None) for every pin the environment does not match exactly."""
    problems = []
    for name, pinned in pins.items():
        installed = installed_version(name)
        # local builds such as 2.11.0+cu130 satisfy ==2.11.0, as pip itself decides
        if installed is None or installed.split("+", 1)[0] != pinned:
            problems.append((name, pinned, installed))
    return problems


def python_supported(version: tuple[int, int] = sys.version_info[:2]) -> bool:
    return PYTHON_RANGE[0] <= version <= PYTHON_RANGE[1]


def parse_version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers) if numbers else None


def min_driver_for_cuda(cuda: tuple[int, ...]) -> tuple[int, int] | None:
    """The oldest driver that runs a CUDA `cuda` build: the nearest listed toolkit at or below it."""
    known = sorted(k for k in CUDA_MIN_DRIVER if k <= cuda[:2])
    same_major = [k for k in known if k[0] == cuda[0]]
    return CUDA_MIN_DRIVER[same_major[-1]] if same_major else None


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class DriverReport:
    driver: str | None  # e.g. "580.82.07"; None when no NVIDIA driver is loaded
    gpus: tuple[GpuInfo, ...]


def nvidia_driver() -> DriverReport:
    """The NVIDIA driver version and GPUs, from nvidia-smi (or /proc when nvidia-smi is missing)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader,nounits"]
        try:
            result = subprocess.run(query, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            rows = [[part.strip() for part in line.split(",")] for line in result.stdout.splitlines() if line]
            gpus = tuple(GpuInfo(r[1], int(float(r[2])) * 2**20) for r in rows if len(r) == 3)
            return DriverReport(rows[0][0] if rows else None, gpus)
    try:
        with open("/proc/driver/nvidia/version") as f:
            match = re.search(r"Kernel Module\s+(\d+\.\d+(?:\.\d+)?)", f.read())
        return DriverReport(match.group(1) if match else None, ())
    except OSError:
        return DriverReport(None, ())
