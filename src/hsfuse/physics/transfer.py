"""Radiometric transfer functions of consumer RGB products.

The observation model ``Y_m = R Z`` is linear in radiance; 8-bit camera images (JPEG, PNG, most TIFFs) are
usually gamma-encoded with the sRGB transfer function and must be decoded before an SRF is fitted or applied,
or before a network trained on linear simulated RGB sees them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import InputError

__all__ = ["srgb_to_linear", "to_linear", "Transfer"]

Transfer = Literal["linear", "srgb"]


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer function (IEC 61966-2-1) on values in ``[0, 1]``.

    ``v / 12.92`` for ``v <= 0.04045``, else ``((v + 0.055) / 1.055) ** 2.4``.
    """
    v = np.clip(values, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def to_linear(values: np.ndarray, transfer: Transfer) -> np.ndarray:
    """Image values -> values linear in radiance (float64).

    ``"linear"``: the values unchanged (already linear; any scale). ``"srgb"``: integer images are divided by
    their type's maximum (255 for 8-bit), floating-point ones must lie in ``[0, 1]``; then
    :func:`srgb_to_linear`.
    """
    if transfer not in ("linear", "srgb"):
        raise InputError(f"transfer must be 'linear' or 'srgb', got {transfer!r}")
    arr = np.asarray(values)
    data = arr.astype(np.float64)
    if transfer == "linear":
        return data
    if np.issubdtype(arr.dtype, np.integer):
        full = float(np.iinfo(arr.dtype).max)
    else:
        full = 1.0
        if np.nanmax(data) > 1.0 + 1e-6:
            raise InputError("an sRGB-encoded image in floating point must lie in [0, 1]; its maximum is "
                             f"{np.nanmax(data):g} (integer images are divided by their type's maximum)")
    return srgb_to_linear(data / full)
