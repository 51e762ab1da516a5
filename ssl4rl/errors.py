"""Errors that the CLI reports as one clear line (no traceback)."""

import errno
import importlib


class UserError(Exception):
    """Bad input or configuration: the message says what is wrong and how to fix it."""


class MissingDependencyError(UserError):
    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package {package!r}; install it with: pip install 'ssl4rl[{extra}]'"
        )


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency lazily, turning ImportError into a one-line install hint."""

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], extra, purpose) from None


# Errors of the machine rather than of the code: reported as one line naming the path and what to do.
_OS_HINTS = {
    errno.ENOSPC: "free some space and rerun the same command (finished work is kept)",
    errno.EDQUOT: "free some space and rerun the same command (finished work is kept)",
    errno.EROFS: "choose a writable location",
    errno.EACCES: "choose a location you may write to, or fix its permissions",
    errno.EPERM: "choose a location you may write to, or fix its permissions",
    errno.EEXIST: "choose another path or remove it",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "the path is a directory; name a file",
    errno.ENOENT: "check the path",
}


def describe_os_error(exc: OSError) -> str | None:
    """One line for an OSError caused by the file system (no space, read-only, permissions, a file in the
    way, a missing path); None for any other OSError, which stays a traceback: it is a bug to report."""
    hint = _OS_HINTS.get(exc.errno)
    if hint is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}: {hint}"
