"""Exceptions raised at hsfuse's public boundaries.

Every error a user can cause (bad file, inconsistent sizes, unknown sensor, existing output, ...) is raised
as a subclass of :class:`HsfuseError` with a message that names the problem and the fix. The command line
prints that message alone and exits non-zero; library users can catch ``HsfuseError`` (it also derives
from ``ValueError`` so ordinary ``except ValueError`` code keeps working).
"""

from __future__ import annotations

__all__ = ["HsfuseError", "InputError", "FileFormatError", "OutputExistsError", "MissingDependencyError"]


class HsfuseError(ValueError):
    """Base class: a problem with the user's input or environment, described in the message."""


class InputError(HsfuseError):
    """An argument or array has the wrong shape, type, range or value."""


class FileFormatError(HsfuseError):
    """A file is missing, truncated, corrupt, ambiguous or not of the expected format."""


class OutputExistsError(HsfuseError):
    """An output file exists and overwriting was not requested."""


class MissingDependencyError(HsfuseError, ImportError):
    """An optional dependency needed for this feature is not installed."""
