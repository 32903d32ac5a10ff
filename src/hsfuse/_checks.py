"""Small validation helpers used at public boundaries (internal)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = ["check_image_tensor", "check_ratio", "check_finite"]


def check_image_tensor(x: Any, name: str, *, channels: int | None = None) -> torch.Tensor:
    """Return ``x`` as a ``(N, C, H, W)`` floating tensor, or raise :class:`InputError` naming the problem.

    A ``(C, H, W)`` tensor is not accepted silently: callers add the batch axis explicitly.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(
            f"{name} must have shape (N, C, H, W) (batch, bands, height, width), got {tuple(x.shape)}; "
            "add a batch axis with x[None] or convert a H x W x B cube with Cube.to_tensor()"
        )
    if x.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(x.shape)})")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"{name} must have {channels} bands (dim 1), got {x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def check_ratio(ratio: Any, name: str = "ratio") -> int:
    """Return ``ratio`` as a positive ``int`` or raise :class:`InputError` (2.0 is accepted, 2.5 is not)."""
    if isinstance(ratio, bool):
        raise InputError(f"{name} must be a positive integer, got {ratio!r}")
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer, got {ratio!r}") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer (the HSI/MSI resolution ratio), got {ratio!r}")
    return int(value)


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`InputError` if ``x`` contains NaN or infinity, saying how many and where to look."""
    bad = ~torch.isfinite(x) if isinstance(x, torch.Tensor) else ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        raise InputError(
            f"{name} contains {count} NaN/inf value(s); replace or mask them (e.g. fill no-data pixels) "
            "before fusion"
        )
