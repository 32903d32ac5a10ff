"""The ``bicubic`` baseline method: grid-aligned Keys-cubic upsampling of the HSI alone.

The interpolation itself (grid convention, kernel, borders) lives in :mod:`hsfuse.physics.interpolation`
and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..physics import FusionObservation
from ..physics.interpolation import CubicBoundary, keys_kernel, upsample_cubic
from ..types import FusionMeasurement
from .chunking import Chunked, State, Tile
from .options import MethodOptions, option

__all__ = ["CubicBoundary", "keys_kernel", "upsample_cubic", "fuse_bicubic", "BicubicOptions", "BICUBIC_CHUNKED",
           "CUBIC_HALO"]

#: LR pixels the Keys kernel reaches on each side of an output pixel's position (its support is 4 LR pixels)
CUBIC_HALO = 2


@dataclass(frozen=True)
class BicubicOptions(MethodOptions):
    """Options of :func:`fuse_bicubic`."""

    boundary: CubicBoundary = option("replicate", "border handling of the cubic kernel: replicate (MATLAB imresize), "
                                     "reflect or circular")


def fuse_bicubic(
    y: FusionMeasurement, physics: FusionObservation, *, boundary: CubicBoundary = "replicate"
) -> torch.Tensor:
    """The floor every fusion method must beat: cubic upsampling of the HSI alone (the MSI is ignored).

    ``Z_hat = U_cubic(Y_h)`` on the grid of ``physics`` (ratio ``r``, decimation offset), see
    :func:`upsample_cubic`. Returns ``(N, L, r*h, r*w)`` on the input's device and dtype.

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.ones(1, 3) / 3))
        >>> z = fuse_bicubic(obs.A(torch.rand(1, 3, 8, 6)), obs)
        >>> tuple(z.shape)
        (1, 3, 8, 6)
    """
    physics.check_measurement(y)
    return upsample_cubic(y.hsi, ratio=physics.ratio, offset=physics.spatial.offset, boundary=boundary)


def _apply(tile: Tile, physics: FusionObservation, options: BicubicOptions, state: State) -> torch.Tensor:
    up = upsample_cubic(tile.hsi, ratio=physics.ratio, offset=physics.spatial.offset, boundary=options.boundary)
    return tile.hr_core(up)


#: chunked plan: local and exact (a ``circular`` border takes the halo from the opposite side of the image)
BICUBIC_CHUNKED = Chunked(passes=(), apply_halo=lambda r, physics, options: CUBIC_HALO, apply=_apply, exact=True,
                          working_set=12.0, apply_wrap=lambda physics, options: options.boundary == "circular")
