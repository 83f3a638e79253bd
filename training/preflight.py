"""Checks of a command's arguments and data layout that run before TensorFlow is imported.

Importing TensorFlow costs seconds; a typo should not. Everything that can be
known from the arguments and the file system alone is checked here, and a
problem is a `UsageError` (exit 2, one line naming the flag). What needs the
network or the model (ImageNet weights, a precision the device lacks) is checked
later, where it is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelstore.layout import check_model_name, resolve_model_path
from training.data import DataError, load_dataset


class UsageError(ValueError):
    """A bad argument, found before any work: the message names the flag."""


def check_models_dir(models_dir: Path, flag: str = "--models-dir") -> None:
    """The model repository is a folder, or can be created as one, and is writable."""
    path = Path(models_dir)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise UsageError(f"{flag} {models_dir}: {what}; give a folder for the model repository")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {models_dir}: {existing} is not writable by this user")


def check_name(name: str) -> None:
    try:
        check_model_name(name)
    except ValueError as exc:
        raise UsageError(f"--name: {exc}") from None


def check_fit(
    data: Path, name: str, models_dir: Path, valid_split: float | None, seed: int
) -> None:
    """Everything `fit` can check without TensorFlow: name, repository, data layout."""
    check_name(name)
    check_models_dir(models_dir)
    try:
        load_dataset(Path(data), valid_split, seed)  # folders and file names only, no decoding
    except DataError as exc:
        raise UsageError(f"--data: {exc}") from None


def check_model_path(model: Path) -> None:
    """`--model models/NAME[/N]` names a published version."""
    try:
        resolve_model_path(Path(model))
    except FileNotFoundError as exc:
        raise UsageError(f"--model: {exc}") from None
