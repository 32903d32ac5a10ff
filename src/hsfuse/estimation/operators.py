"""The result of a blind PSF/SRF estimator and the no-data masks the estimators share.

Conventions: the PSF follows :mod:`hsfuse.physics.spatial` (convolution, centre ``k // 2``, decimation offset
``offset``), so ``EstimatedOperators.to_observation()`` reproduces the fitted model exactly. The SRF is
``(m, L)``: MSI band ``j`` is ``sum_l R[j, l] * HSI band l``. Rows are not forced to sum to one: on a real
pair the two sensors' radiometric scales differ and the SRF carries that gain (HySure's convention: the PSF
is normalised to unit DC gain and the SRF absorbs the scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int, check_ratio
from ..errors import InputError
from ..physics import FusionObservation, SpatialDegradation, SpectralResponse
from ..physics.spatial import Boundary
from ..types import FusionMeasurement

__all__ = ["EstimatedOperators", "lowres_valid", "check_valid_mask", "check_measurement_type"]


@dataclass(frozen=True)
class EstimatedOperators:
    """Blindly estimated observation operators of one image pair.

    Attributes:
        psf: ``(k, k)`` float64, non-negative, sums to one.
        srf: ``(m, L)`` float64.
        ratio: the integer resolution ratio ``r``.
        offset: decimation offset the PSF was fitted with.
        method: the estimator's name (``"hysure"``, ``"udaln"``).
        band_names: MSI band names, if known.
        diagnostics: estimator-specific numbers (residuals, iterations, time), JSON-serialisable.
    """

    psf: torch.Tensor
    srf: torch.Tensor
    ratio: int
    offset: int
    method: str
    band_names: list[str] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_observation(self, *, boundary: Boundary = "circular") -> FusionObservation:
        """A fixed :class:`~hsfuse.physics.FusionObservation` with these operators (SRF used as estimated)."""
        return FusionObservation(
            SpatialDegradation(ratio=self.ratio, psf=self.psf, offset=self.offset, boundary=boundary),
            SpectralResponse(self.srf, normalize="none", band_names=self.band_names),
        )


def check_measurement_type(y: Any, who: str) -> FusionMeasurement:
    """``y`` itself, or :class:`InputError` when it is not a :class:`FusionMeasurement` (``who`` names the caller).

    Only the container: the pair inside is validated by :func:`hsfuse._checks.check_pair`.
    """
    if not isinstance(y, FusionMeasurement):
        raise InputError(f"{who} needs a FusionMeasurement(hsi, msi), got {type(y).__name__}")
    return y


def check_valid_mask(valid: Any, hw: tuple[int, int], name: str = "valid") -> torch.Tensor | None:
    """``None`` or an ``(H, W)`` boolean tensor (a ``(1, H, W)`` or NumPy mask is accepted)."""
    if valid is None:
        return None
    m = torch.as_tensor(np.asarray(valid) if not isinstance(valid, torch.Tensor) else valid)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dtype != torch.bool or tuple(m.shape) != tuple(hw):
        raise InputError(f"{name} must be a boolean {hw[0]}x{hw[1]} mask (True = usable pixel), got "
                         f"{m.dtype} {tuple(m.shape)}")
    if not bool(m.any()):
        raise InputError(f"{name} marks no pixel as usable")
    return m


def lowres_valid(valid: torch.Tensor, *, ratio: int, kernel_size: int, offset: int | None = None) -> torch.Tensor:
    """Which low-resolution pixels see only valid high-resolution pixels through a ``k x k`` PSF.

    A low-resolution pixel ``i`` averages high-resolution pixels ``offset + r i - j + k // 2`` for
    ``j in [0, k)`` (per axis; see :mod:`hsfuse.physics.spatial`); it is valid when all of them are valid and
    inside the image (no boundary rule is trusted near the edges).

    Args:
        valid: ``(H, W)`` boolean, ``H`` and ``W`` multiples of ``ratio``.
        ratio, kernel_size, offset: the spatial model (``offset`` default ``(r - 1) // 2``).

    Returns:
        ``(H / r, W / r)`` boolean.
    """
    r = check_ratio(ratio)
    off = (r - 1) // 2 if offset is None else check_positive_int(offset, "offset", minimum=0)
    H, W = valid.shape
    if H % r or W % r:
        raise InputError(f"mask size {H}x{W} is not a multiple of the ratio {r}")
    k = check_positive_int(kernel_size, "kernel_size")
    c = k // 2
    bad = (~valid).to(torch.float32)[None, None]
    # high-res pixel p - j + c for j in [0, k) covers p - (k - 1 - c) .. p + c
    before, after = k - 1 - c, c
    padded = F.pad(bad, (before, after, before, after), value=1.0)  # outside the image counts as invalid
    touched = F.max_pool2d(padded, kernel_size=k, stride=1)[0, 0] > 0
    return ~touched[off::r, off::r][: H // r, : W // r]
