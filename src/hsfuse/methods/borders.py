"""Real (non-periodic) borders for the FFT-based solvers: solve a periodic problem on a smooth extension, crop back.

HySure, LTMR and CSTF diagonalise the blur (and HySure its differences) with the FFT, so their model is circular:
each image edge is joined to the opposite one. Real images and harnesses that simulate with zero-filled or mirrored
borders (``boundary="zero"`` / ``"reflect"``, e.g. ``convolve2d(..., 'same', boundary='fill')``) break that model
near the edges. ``border="pad"`` (the same option as FUSE's, :mod:`hsfuse.methods.sylvester`) runs the method on a
periodic problem built from the data:

1. with ``boundary="zero"`` physics, the LR pixels within a PSF radius of the edge saw zeros through part of their
   PSF: they are divided by the PSF mass inside the image, :func:`hsfuse.physics.spatial.zero_border_gain`
   (normalised convolution), so they are what a non-darkening model predicts;
2. both images are extended by a margin (``pad`` LR pixels, ``r pad`` HR pixels: the decimation grid is kept) with
   :func:`smooth_periodic_pad` (mirror images cross-faded around the periodic seam);
3. the method runs with the same PSF, SRF and offset under a circular boundary, and the result is cropped back.

Measured for FUSE on Pavia U simulated with zero borders (``tests/test_borders.py``): 3.37 of the 3.54 dB the
circular model loses are recovered. The margin defaults to :func:`default_pad`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import math

import torch

from .._checks import check_positive_int
from ..errors import InputError
from ..physics import FusionObservation, SpatialDegradation
from ..physics.spatial import zero_border_gain
from ..types import FusionMeasurement

__all__ = ["Border", "check_border_option", "default_pad", "smooth_periodic_pad", "periodic_extension",
           "solve_with_border", "PAD_PSF_WIDTHS", "PAD_MIN"]

Border = Literal["circular", "pad"]

#: default margin of ``border="pad"``, in PSF widths (and at least ``PAD_MIN`` LR pixels)
PAD_PSF_WIDTHS, PAD_MIN = 3, 2


def default_pad(psf_size: int, ratio: int) -> int:
    """Default LR margin of ``border="pad"``: ``PAD_PSF_WIDTHS`` PSF widths in LR pixels, at least ``PAD_MIN``."""
    return max(PAD_MIN, -(-PAD_PSF_WIDTHS * int(psf_size) // int(ratio)))


def _mirror_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the symmetric extension (edge repeated, ``numpy.pad(mode="symmetric")``), any length."""
    m = torch.remainder(i, 2 * n)
    return torch.where(m >= n, 2 * n - 1 - m, m)


def _smooth_pad_axis(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    t = torch.arange(2 * pad, device=x.device)  # position in the seam gap, after pixel n - 1 and before pixel 0
    near = _mirror_index(n + t, n)  # mirror of the far (last) edge continued past it
    far = _mirror_index(t - 2 * pad, n)  # mirror of the first edge continued backwards
    a = 0.5 - 0.5 * torch.cos(math.pi * (t.to(torch.float64) + 0.5) / (2 * pad))
    shape = [1] * x.ndim
    shape[dim] = 2 * pad
    a = a.to(dtype=x.dtype, device=x.device).reshape(shape)
    gap = (1 - a) * x.index_select(dim, near) + a * x.index_select(dim, far)
    after, before = gap.narrow(dim, 0, pad), gap.narrow(dim, pad, pad)
    return torch.cat([before, x, after], dim=dim)


def smooth_periodic_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Extend ``(..., H, W)`` by ``pad`` pixels on every side so the result is periodic without a jump.

    Along each axis (rows, then columns) the ``2 pad`` pixels that join the last pixel to the first one around the
    periodic seam are a raised-cosine cross-fade ``(1 - a(t)) m_end(t) + a(t) m_start(t)``, ``a`` rising from ~0
    to ~1: ``m_end`` mirrors the image about its last edge (symmetric: edge pixel repeated), ``m_start`` about its
    first edge. Next to each edge the extension is that edge's mirror image (continuous, no slope jump), and the
    two mirrors meet smoothly half way. The centre ``[pad:pad+H, pad:pad+W]`` is ``x``; ``pad = 0`` returns ``x``.
    """
    if pad <= 0:
        return x
    return _smooth_pad_axis(_smooth_pad_axis(x, pad, x.ndim - 2), pad, x.ndim - 1)


def check_border_option(border: str, pad: int | None, boundary: str, *, who: str) -> None:
    """Refuse an unknown ``border``, a negative ``pad``, or non-circular physics with ``border="circular"``."""
    if border not in ("circular", "pad"):
        raise InputError(f"border must be 'circular' or 'pad', got {border!r}")
    if pad is not None:
        check_positive_int(pad, "pad", minimum=0)
    if border == "circular" and boundary != "circular":
        raise InputError(
            f"{who} assumes circular boundary conditions (the FFT diagonalises the blur), but the physics uses "
            f"boundary={boundary!r}; pass border='pad' (renormalised zero borders, smooth periodic extension, "
            "solve, crop), build the physics with boundary='circular', or use e.g. 'gsa'"
        )


def periodic_extension(y: FusionMeasurement, physics: FusionObservation, *, pad: int | None = None
                       ) -> tuple[FusionMeasurement, FusionObservation, Callable[[torch.Tensor], torch.Tensor]]:
    """``(y', physics', crop)``: the periodic problem of ``border="pad"`` (module docstring) and the function that
    crops its ``(N, L, H', W')`` solution back to the ``(H, W)`` grid of ``y``."""
    spatial = physics.spatial
    psf = spatial.psf.detach()
    k = psf.shape[-1]
    r = physics.ratio
    margin = default_pad(k, r) if pad is None else check_positive_int(pad, "pad", minimum=0)
    hsi, msi = y.hsi, y.msi
    H, W = msi.shape[-2:]
    if spatial.boundary == "zero":
        kernel = psf if psf.ndim == 2 else psf[0]
        hsi = hsi / zero_border_gain(kernel, (H, W), ratio=r, offset=spatial.offset).to(hsi)
    P = r * margin
    ext = FusionMeasurement(hsi=smooth_periodic_pad(hsi, margin), msi=smooth_periodic_pad(msi, P))
    circular = FusionObservation(SpatialDegradation(ratio=r, psf=spatial.psf, offset=spatial.offset,
                                                    boundary="circular"), physics.spectral)

    def crop(z: torch.Tensor) -> torch.Tensor:
        return z[..., P:P + H, P:P + W]

    return ext, circular, crop


def solve_with_border(fn: Callable[..., torch.Tensor], y: FusionMeasurement, physics: FusionObservation, *,
                      border: Border, pad: int | None, who: str, **options: Any) -> torch.Tensor:
    """``fn(y, physics, **options)`` under ``border``: as is (``"circular"``, circular physics only) or on the
    periodic extension, cropped back (``"pad"``; any boundary)."""
    check_border_option(border, pad, physics.spatial.boundary, who=who)
    if border == "circular":
        return fn(y, physics, **options)
    ext, circular, crop = periodic_extension(y, physics, pad=pad)
    return crop(fn(ext, circular, **options))
