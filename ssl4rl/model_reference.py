"""Check a model reference (a local directory or a Hugging Face hub id) before anything loads it.

transformers treats any string that is not an existing directory as a hub id and, offline, retries the
hub for minutes before failing: a mistyped local path (`models/nonexist`) cost 145 s and a traceback.
Here a reference that looks local fails at once, and a hub id is checked with one short request (or
against the local cache when the hub is switched off), so the error is one line naming what was given.
"""

from __future__ import annotations

import functools
import os
import re

import huggingface_hub
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from .errors import UserError

# A hub id is `name` or `org/name`, of letters, digits and -_. (huggingface_hub's own rule).
_HUB_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
HUB_TIMEOUT_S = 10.0


def looks_local(reference: str) -> bool:
    """A path the user meant on this machine: absolute, relative with ./ or ../ or ~, more than one
    separator, a trailing separator, or whose first component exists here (`models/x` beside `models/`)."""
    if reference.startswith(("/", "./", "../", "~", ".\\")) or reference.endswith(("/", os.sep)):
        return True
    parts = reference.split("/")
    return len(parts) > 2 or (len(parts) == 2 and os.path.isdir(parts[0]))


def check_model_reference(reference: str, flag: str = "--model", need: str | None = "config.json") -> str:
    """`reference` if it names a local model directory (holding `need`) or a reachable hub repository;
    UserError otherwise. `need` is the file that makes a directory usable (config.json for a model,
    tokenizer_config.json for a tokenizer)."""
    path = os.path.expanduser(reference)
    if os.path.isdir(path):
        if need and not os.path.exists(os.path.join(path, need)):
            raise UserError(f"{flag} {reference}: the directory holds no {need}; is it a model directory?")
        return path
    if os.path.exists(path):
        raise UserError(f"{flag} {reference} is a file; give a model directory or a hub id (org/name)")
    if looks_local(reference) or not _HUB_ID.match(reference):
        raise UserError(f"{flag} {reference}: no such directory")
    cached = huggingface_hub.try_to_load_from_cache(reference, need or "config.json")
    if isinstance(cached, str):
        return reference
    if hub_constants.HF_HUB_OFFLINE:
        raise UserError(
            f"{flag} {reference}: not a local directory and not in the Hugging Face cache (HF_HUB_OFFLINE is "
            "set); download it first or give a local directory"
        )
    _check_on_hub(reference, flag)
    return reference


@functools.lru_cache(maxsize=64)  # one request per hub id and process, however many runs ask (failures raise)
def _check_on_hub(reference: str, flag: str) -> None:
    try:
        huggingface_hub.HfApi().model_info(reference, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise UserError(f"{flag} {reference}: no such local directory or hub repository") from None
    except GatedRepoError:
        return  # it exists; loading will ask for the token it needs
    except Exception as exc:  # noqa: BLE001 - no network, proxy, DNS: every way of not reaching the hub
        raise UserError(
            f"{flag} {reference}: not a local directory, and the Hugging Face hub could not be reached "
            f"({type(exc).__name__}); give a local directory or check the network"
        ) from None
