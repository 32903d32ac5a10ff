"""Cubic (Keys) upsampling aligned to the decimation grid of :class:`~hsfuse.physics.SpatialDegradation`.

Grid convention. :func:`hsfuse.physics.decimate` keeps HR pixels ``offset, offset + r, offset + 2r, ...``,
so low-resolution pixel ``i`` *is* the (blurred) high-resolution pixel ``offset + r*i``. The interpolation
here is aligned to that grid: HR pixel ``X`` sits at LR coordinate ``u = (X - offset) / r`` and

    out[X] = sum_j y[j] * keys((X - offset) / r - j)              (separably in rows and columns)

with the Keys (1981) cubic convolution kernel, ``a = -0.5`` (MATLAB ``imresize(..., 'bicubic')``'s kernel;
``torch.nn.functional.interpolate(mode="bicubic")`` and OpenCV use ``a = -0.75``)::

    keys(s) = (a+2)|s|^3 - (a+3)|s|^2 + 1         |s| <= 1
            = a|s|^3 - 5a|s|^2 + 8a|s| - 4a        1 < |s| < 2
            = 0                                     otherwise

It interpolates (``out[offset + r*i] == y[i]``) and reproduces polynomials up to degree 2 away from the
borders. ``torch``'s and MATLAB's default grids (``align_corners=False``: LR pixel ``i`` centred at HR
coordinate ``r*i + (r-1)/2``) agree with it only when ``offset == (r-1)/2``, i.e. odd ``r`` with the default
offset; for even ``r`` they are half a HR pixel off, which costs PSNR on every scene.

Borders: the LR image is padded by two pixels (``"replicate"``, ``"reflect"`` = mirror without repeating the
edge pixel, or ``"circular"``) before interpolating.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_image_tensor, check_positive_int, check_ratio
from ..errors import InputError

__all__ = ["CubicBoundary", "keys_kernel", "upsample_cubic"]

CubicBoundary = Literal["replicate", "reflect", "circular"]
_CUBIC_BOUNDARIES = ("replicate", "reflect", "circular")


def keys_kernel(s: torch.Tensor, *, a: float = -0.5) -> torch.Tensor:
    """The Keys cubic convolution kernel evaluated at ``s`` (any shape); see the module docstring."""
    t = s.abs()
    near = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    far = ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    return torch.where(t <= 1.0, near, torch.where(t < 2.0, far, torch.zeros_like(t)))


def _cubic_taps(ratio: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The ``4r - 1`` taps ``keys(t / r)`` for ``t = -(2r-1) .. 2r-1`` (centre at index ``2r - 1``)."""
    t = torch.arange(-(2 * ratio - 1), 2 * ratio, dtype=torch.float64)
    return keys_kernel(t / ratio).to(dtype=dtype, device=device)


def upsample_cubic(
    x: torch.Tensor, *, ratio: int, offset: int | None = None, boundary: CubicBoundary = "replicate"
) -> torch.Tensor:
    """Keys-cubic upsampling by ``ratio`` aligned to the decimation grid ``offset::ratio``.

    ``(N, C, h, w) -> (N, C, r*h, r*w)`` with ``out[..., offset + r*i, offset + r*j] == x[..., i, j]``;
    ``offset`` defaults to ``(r - 1) // 2`` as in :class:`hsfuse.physics.SpatialDegradation`. Implemented as
    a separable transposed convolution with the ``4r - 1`` taps ``keys(t / r)`` (cost ``~8 r`` multiply-adds
    per output pixel), so it runs on any device and is differentiable.

    Example:
        >>> y = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 4, 5)
        >>> upsample_cubic(y, ratio=2, offset=0)[0, 0, 0, 2:7].tolist()
        [1.0, 1.5, 2.0, 2.5, 3.0]
    """
    x = check_image_tensor(x, "low-resolution image")
    r = check_ratio(ratio)
    o = (r - 1) // 2 if offset is None else check_positive_int(offset, "offset", minimum=0)
    if o >= r:
        raise InputError(f"offset must be an integer in [0, ratio={r}), got {offset!r}")
    if boundary not in _CUBIC_BOUNDARIES:
        raise InputError(f"boundary must be one of {_CUBIC_BOUNDARIES}, got {boundary!r}")
    n, c, h, w = x.shape
    if boundary == "reflect" and min(h, w) < 3:
        raise InputError(f"reflect padding needs an image of at least 3x3 pixels, got {h}x{w}; use 'replicate'")
    if boundary == "circular" and min(h, w) < 2:
        raise InputError(f"circular padding needs an image of at least 2x2 pixels, got {h}x{w}")
    if r == 1:
        return x.clone()
    taps = _cubic_taps(r, dtype=x.dtype, device=x.device)
    k = taps.numel()
    start = 4 * r - 1 - o  # padded sample i + 2 lands at r*(i+2) + (2r-1); we want it at offset + r*i
    z = F.pad(x.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode=boundary)
    z = F.conv_transpose2d(z, taps.reshape(1, 1, k, 1), stride=(r, 1))[:, :, start : start + r * h]
    z = F.conv_transpose2d(z, taps.reshape(1, 1, 1, k), stride=(1, r))[:, :, :, start : start + r * w]
    return z.reshape(n, c, r * h, r * w)
