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
   :func:`hsfuse.methods.sylvester.smooth_periodic_pad` (mirror images cross-faded around the periodic seam);
3. the method runs with the same PSF, SRF and offset under a circular boundary, and the result is cropped back.

Measured for FUSE on Pavia U simulated with zero borders (``tests/test_borders.py``): 3.37 of the 3.54 dB the
circular model loses are recovered. The margin defaults to :func:`hsfuse.methods.sylvester.default_pad`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from .._checks import check_positive_int
from ..errors import InputError
from ..physics import FusionObservation, SpatialDegradation
from ..physics.spatial import zero_border_gain
from ..types import FusionMeasurement
from .sylvester import default_pad, smooth_periodic_pad

__all__ = ["Border", "check_border_option", "periodic_extension", "solve_with_border"]

Border = Literal["circular", "pad"]


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
