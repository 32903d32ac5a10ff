"""Spectral degradation: the spectral response (SRF) matrix applied per pixel, ``Y_m = R Z``.

``R`` has shape ``(m, L)``: row ``i`` holds MSI band ``i``'s weights over the ``L`` HSI bands. Normalisation
is explicit: ``normalize="sum"`` scales each MSI band's weights to sum to one (UDALN, HySure and most
fusion code; an MSI band of a spectrally flat scene then equals the HSI value), ``"none"`` keeps them as given
(e.g. the unnormalised Nikon D700 matrix of Akhtar et al. 2014).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from .._checks import check_image_tensor
from ..errors import InputError

__all__ = ["SrfNormalization", "normalize_srf", "check_srf", "apply_srf", "apply_srf_adjoint", "SpectralResponse"]

SrfNormalization = Literal["none", "sum"]


def check_srf(matrix: torch.Tensor | np.ndarray, *, hsi_bands: int | None = None) -> torch.Tensor:
    """Validate an SRF matrix ``(m, L)``: finite, 2-D, and ``L`` equal to the HSI band count when given."""
    R = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)
    if R.ndim != 2 or R.numel() == 0:
        raise InputError(f"SRF matrix must be 2-D (m MSI bands x L HSI bands), got shape {tuple(R.shape)}")
    if not torch.all(torch.isfinite(R)):
        raise InputError("SRF matrix contains NaN or inf")
    if hsi_bands is not None and R.shape[1] != hsi_bands:
        hint = " (it looks transposed: pass its transpose)" if R.shape[0] == hsi_bands else ""
        raise InputError(f"SRF matrix has {R.shape[1]} HSI-band columns but the HSI has {hsi_bands} bands{hint}")
    return R


def normalize_srf(matrix: torch.Tensor, *, normalize: SrfNormalization) -> torch.Tensor:
    """Apply an SRF normalisation convention to ``(m, L)``; ``"sum"`` makes each row sum to one."""
    if normalize == "none":
        return matrix
    if normalize != "sum":
        raise InputError(f"SRF normalize must be 'none' or 'sum', got {normalize!r}")
    sums = matrix.sum(dim=1, keepdim=True)
    if torch.any(sums.abs() <= 0):
        bad = torch.nonzero(sums.reshape(-1).abs() <= 0).reshape(-1).tolist()
        raise InputError(f"SRF rows {bad} sum to zero: those MSI bands see none of the HSI bands")
    return matrix / sums


def apply_srf(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``(N, L, H, W) -> (N, m, H, W)``: ``y[:, i] = sum_l R[i, l] x[:, l]``."""
    return torch.einsum("ml,nlhw->nmhw", matrix.to(dtype=x.dtype, device=x.device), x)


def apply_srf_adjoint(y: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``(N, m, H, W) -> (N, L, H, W)``: multiplication by ``R^T``."""
    return torch.einsum("ml,nmhw->nlhw", matrix.to(dtype=y.dtype, device=y.device), y)


class SpectralResponse(nn.Module):
    """The spectral branch ``A = R`` (per-pixel ``m x L`` matrix) with its adjoint ``R^T``.

    Args:
        matrix: ``(m, L)`` SRF, MSI bands by HSI bands.
        normalize: ``"none"`` (use as given) or ``"sum"`` (each MSI band's weights sum to one).
        band_names: optional names of the ``m`` MSI bands.

    Example:
        >>> R = SpectralResponse(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 3.0]]), normalize="sum")
        >>> R.matrix.sum(dim=1).tolist()
        [1.0, 1.0]
    """

    def __init__(
        self,
        matrix: torch.Tensor | np.ndarray,
        *,
        normalize: SrfNormalization = "none",
        band_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        R = normalize_srf(check_srf(matrix).to(torch.float64), normalize=normalize)
        self.normalize: SrfNormalization = normalize
        self.band_names = list(band_names) if band_names is not None else None
        if self.band_names is not None and len(self.band_names) != R.shape[0]:
            raise InputError(f"{len(self.band_names)} band names for an SRF with {R.shape[0]} MSI bands")
        self.register_buffer("_matrix", R)

    @property
    def matrix(self) -> torch.Tensor:
        """The current ``(m, L)`` matrix."""
        return self._matrix

    @property
    def msi_bands(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def hsi_bands(self) -> int:
        return int(self.matrix.shape[1])

    def A(self, x: torch.Tensor) -> torch.Tensor:
        x = check_image_tensor(x, "hyperspectral image", channels=self.hsi_bands)
        return apply_srf(x, self.matrix)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        y = check_image_tensor(y, "multispectral image", channels=self.msi_bands)
        return apply_srf_adjoint(y, self.matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def extra_repr(self) -> str:
        return f"msi_bands={self.msi_bands}, hsi_bands={self.hsi_bands}, normalize={self.normalize!r}"
