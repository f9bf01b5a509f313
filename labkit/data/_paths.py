"""Where datasets live, and the one error raised when one is missing or malformed."""

from __future__ import annotations

import os
from pathlib import Path

from labkit.errors import LabkitError

__all__ = ["DatasetNotFoundError", "resolve_root"]

#: Environment variable naming the folder that holds the course datasets.
DATA_ENV = "LABKIT_DATA"


class DatasetNotFoundError(LabkitError, FileNotFoundError):
    """A dataset is missing or not laid out as expected.

    The message names the path that was looked in, the layout expected there and what to do.
    """


def resolve_root(root: str | os.PathLike | None, *, dataset: str, expected: str) -> Path:
    """Turn a dataset root argument (or ``$LABKIT_DATA``) into a path.

    Args:
        root (str | os.PathLike | None): the folder given by the caller, or ``None`` to use
            ``$LABKIT_DATA``.
        dataset (str): the dataset's name, for the error message.
        expected (str): the layout expected under the root, for the error message.

    Returns:
        The root as a ``Path``.

    Raises:
        DatasetNotFoundError: if neither ``root`` nor ``$LABKIT_DATA`` is set.
    """
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise DatasetNotFoundError(
                f"No root folder for {dataset}: pass root=... or set {DATA_ENV} to the folder "
                f"that holds {expected}. For the generated Shapes set run "
                f"`labkit data shapes --out DIR`."
            )
        root = env
    return Path(root).expanduser()


def missing(path: Path, *, dataset: str, expected: str, hint: str) -> DatasetNotFoundError:
    """Build the error for a missing or malformed dataset tree.

    Args:
        path (Path): the path that was looked in and not found (or found malformed).
        dataset (str): the dataset's name.
        expected (str): the layout expected.
        hint (str): what the user should do.

    Returns:
        A ``DatasetNotFoundError`` ready to raise.
    """
    return DatasetNotFoundError(
        f"{dataset} not found: looked for {path} (expected {expected}). {hint}"
    )
