"""Atomic file writes and run manifests: a crash never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same directory; it replaces `path` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_directory(tmp: str, out: str) -> None:
    """Move a directory written under a temporary name into place, with the permissions a plain
    `mkdir`/`open` would have given it: mkdtemp makes 0700 and some writers 0600, so a model built for a
    shared cluster would otherwise be private to its builder whatever the umask says. `out` must not exist."""
    for root, dirs, files in os.walk(tmp):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~_UMASK)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~_UMASK)
    os.chmod(tmp, 0o777 & ~_UMASK)
    os.replace(tmp, out)


def write_json(path: str, data: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def package_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("ssl4rl", *names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def command_line() -> str:
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
