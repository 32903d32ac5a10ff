"""Where the shared real data lives: one setting, the ``HSFUSE_DATA`` environment variable.

Defaults to ``../shared/data`` relative to the current working directory (the project root in development
and CI). Nothing here downloads; this only locates files a user or CI already has.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FileFormatError

__all__ = ["DATA_ENV", "data_root", "shared_file"]

DATA_ENV = "HSFUSE_DATA"


def data_root() -> Path:
    """The data folder: ``$HSFUSE_DATA`` if set, else ``../shared/data``."""
    return Path(os.environ.get(DATA_ENV, "../shared/data")).expanduser()


def shared_file(*parts: str) -> Path:
    """Path of a file under :func:`data_root`, or :class:`FileFormatError` saying how to point at it."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise FileFormatError(
            f"{path} not found: set {DATA_ENV} to the folder holding the shared data (scenes/, derived/, srf/)"
        )
    return path
