import importlib

"""Errors that the CLI reports as one clear line (no traceback)."""


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
