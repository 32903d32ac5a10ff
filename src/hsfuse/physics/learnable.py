"""Learnable observation operators for blind fusion (UDALN, DBIN-style estimators).

* :class:`LearnableSpatialDegradation`: the PSF is ``softmax(theta)`` over its ``k x k`` taps, so it stays on
  the probability simplex (non-negative, sums to one: the blur preserves the mean radiance).
* :class:`LearnableSpectralResponse`: ``R = softplus(theta) * M`` is non-negative and zero outside an optional
  support mask ``M`` (e.g. each MSI band's wavelength range); with ``normalize="sum"`` each row is divided by
  its sum (gradients flow through the normaliser).

Both expose the same ``A`` / ``A_adjoint`` as their fixed counterparts, computed from the current parameters.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .spatial import Boundary, SpatialDegradation
from .spectral import SpectralResponse, SrfNormalization, check_srf, normalize_srf

__all__ = ["LearnableSpatialDegradation", "LearnableSpectralResponse", "support_from_srf"]

_EPS = 1e-12


def _inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp_min(1e-8)
    return x + torch.log(-torch.expm1(-x))


class LearnableSpatialDegradation(SpatialDegradation):
    """Blur + decimation with a learnable simplex-constrained ``k x k`` PSF shared by all bands.

    Args:
        ratio: decimation factor ``r``.
        kernel_size: PSF support ``k`` (default ``r``, UDALN's block PSF).
        init: optional ``(k, k)`` non-negative initial PSF; default uniform ``1/k^2``.
        offset, boundary: as in :class:`SpatialDegradation`.
    """

    def __init__(
        self,
        *,
        ratio: int,
        kernel_size: int | None = None,
        init: torch.Tensor | None = None,
        offset: int | None = None,
        boundary: Boundary = "circular",
    ) -> None:
        k = int(kernel_size) if kernel_size is not None else int(ratio)
        super().__init__(ratio=ratio, psf=torch.full((k, k), 1.0 / (k * k), dtype=torch.float64), offset=offset,
                         boundary=boundary)
        start = torch.full((k, k), 1.0 / (k * k), dtype=torch.float64) if init is None else torch.as_tensor(init)
        if start.shape != (k, k) or torch.any(start < 0) or float(start.sum()) <= 0:
            raise InputError(f"PSF init must be a non-negative ({k}, {k}) kernel with a positive sum")
        start = start.to(torch.float64) / start.sum()
        self.theta = nn.Parameter(torch.log(start.clamp_min(1e-12)).to(torch.float32))

    @property
    def psf(self) -> torch.Tensor:
        k = self.theta.shape[-1]
        return torch.softmax(self.theta.reshape(-1), dim=0).reshape(k, k)


def support_from_srf(matrix: torch.Tensor | np.ndarray, *, contiguous: bool = True) -> torch.Tensor:
    """Boolean ``(m, L)`` support: where each row of a reference SRF is positive.

    With ``contiguous=True`` each row's support is the whole range from its first to its last positive entry
    (UDALN's ``sp_range``).
    """
    R = check_srf(matrix)
    mask = R > 0
    if contiguous:
        for i in range(mask.shape[0]):
            idx = torch.nonzero(mask[i]).reshape(-1)
            if idx.numel():
                mask[i, int(idx[0]) : int(idx[-1]) + 1] = True
    if not torch.all(mask.any(dim=1)):
        raise InputError("every MSI band needs at least one HSI band in its SRF support")
    return mask


class LearnableSpectralResponse(SpectralResponse):
    """A learnable non-negative SRF ``(m, L)``, optionally restricted to a support mask.

    Args:
        msi_bands, hsi_bands: matrix size ``m x L``.
        init: optional non-negative ``(m, L)`` start; default uniform over the support.
        support: optional boolean ``(m, L)`` mask (see :func:`support_from_srf`); entries outside stay zero.
        normalize: ``"sum"`` (rows sum to one) or ``"none"``.
    """

    def __init__(
        self,
        *,
        msi_bands: int,
        hsi_bands: int,
        init: torch.Tensor | np.ndarray | None = None,
        support: torch.Tensor | None = None,
        normalize: SrfNormalization = "sum",
    ) -> None:
        mask = torch.ones(msi_bands, hsi_bands, dtype=torch.bool) if support is None else torch.as_tensor(support)
        if mask.shape != (msi_bands, hsi_bands) or mask.dtype != torch.bool:
            raise InputError(f"SRF support must be a boolean ({msi_bands}, {hsi_bands}) mask")
        if not torch.all(mask.any(dim=1)):
            raise InputError("every MSI band needs at least one HSI band in its SRF support")
        start = mask.to(torch.float64) if init is None else check_srf(init, hsi_bands=hsi_bands).to(torch.float64)
        if start.shape[0] != msi_bands or torch.any(start < 0):
            raise InputError(f"SRF init must be a non-negative ({msi_bands}, {hsi_bands}) matrix")
        super().__init__(torch.where(mask, start, torch.zeros_like(start)) + _EPS, normalize="none")
        self.normalize = normalize
        self.register_buffer("support", mask)
        self.theta = nn.Parameter(_inverse_softplus(start + _EPS).to(torch.float32))

    @property
    def matrix(self) -> torch.Tensor:
        R = F.softplus(self.theta) * self.support
        return normalize_srf(R, normalize=self.normalize) if self.normalize != "none" else R
