"""GSA (Gram-Schmidt Adaptive) adapted to hyperspectral + multispectral fusion.

Pansharpening GSA: Aiazzi, Baronti, Selva, "Improving component substitution pansharpening through
multivariate regression of MS+Pan data", IEEE TGRS 45(10), 2007. HS-MS adaptation as in the Yokoya
HSMSFusionToolbox / hif-benchmarking ``GSA_wrapper.m`` + ``GSA.m`` + ``estimation_alpha.m``
(Yokoya, Grohnfeldt, Chanussot, IEEE GRSM 5(2), 2017):

1. Degrade the MSI to the HSI grid (``Y_m^lr``) and assign each HSI band to the MSI band it correlates
   with most (Pearson correlation over the low-resolution pixels).
2. For each MSI band ``P`` ("PAN") and its group of HSI bands ``H_k``:
   ``Hup_k = U(H_k)`` (cubic upsampling); ``alpha = argmin || [H_k - mean(H_k), 1] alpha - (P^lr - mean(P)) ||``
   (global least squares with a constant term, on the LR grid); ``I = [Hup_k - mean(Hup_k), 1] alpha``,
   ``I0 = I - mean(I)``; gains ``g_k = cov(I0, Hup_k) / var(I0)``;
   ``Out_k = Hup_k + g_k (P - mean(P) - I0)``, then the band mean is reset to ``mean(Hup_k)``.

Choices where hsfuse differs from the MATLAB code, and why:

* The MSI is degraded with the physics' own blur + decimation (``degrade="physics"``, the known PSF and
  decimation phase) instead of ``imresize(..., 'bilinear')``; ``degrade="block_mean"`` averages disjoint
  ``r x r`` blocks (the PSF-free choice when the PSF is unknown). The LR "PAN" of the regression is this
  degraded MSI band minus the HR band mean (MATLAB: ``imresize`` of the mean-removed PAN; the same when the
  degradation preserves the mean).
* Upsampling is the grid-aligned cubic of :func:`hsfuse.methods.bicubic.upsample_cubic` (MATLAB: ``imresize``
  on its half-pixel grid, which is misaligned with the decimation phase for even ratios).
* Means are removed per band on each grid separately (LR means from the LR bands, HR means from the
  upsampled bands), as in ``GSA.m``.
* The least-squares fit uses a pseudo-inverse in float64 (MATLAB ``\\`` = pivoted QR); both give the same
  fitted intensity when the group is full rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_finite, check_image_tensor
from ..errors import InputError
from ..physics import FusionObservation
from ..physics.spatial import blur, decimate
from ..types import FusionMeasurement
from .bicubic import CubicBoundary, upsample_cubic
from .options import MethodOptions, option

__all__ = ["fuse_gsa", "degrade_msi", "band_groups", "GsaOptions"]

MsiDegradation = Literal["physics", "block_mean"]


@dataclass(frozen=True)
class GsaOptions(MethodOptions):
    """Options of :func:`fuse_gsa` (defaults: hsfuse's choices, see the module docstring)."""

    degrade: MsiDegradation = option("physics", "how the MSI is brought to the HSI grid: physics (the known PSF "
                                     "and decimation phase) or block_mean (mean of r x r blocks, PSF-free)")
    boundary: CubicBoundary = option("replicate", "border handling of the cubic upsampling of the HSI")


def degrade_msi(msi: torch.Tensor, physics: FusionObservation, *, degrade: MsiDegradation = "physics") -> torch.Tensor:
    """The MSI on the HSI grid: ``S(B * Y_m)`` with the physics' PSF (``"physics"``; a per-band PSF is
    averaged over bands) or the mean of each disjoint ``r x r`` block (``"block_mean"``).

    ``(N, m, H, W) -> (N, m, H/r, W/r)``.
    """
    r = physics.ratio
    if degrade == "block_mean":
        return F.avg_pool2d(msi, kernel_size=r, stride=r)
    if degrade != "physics":
        raise InputError(f"degrade must be 'physics' or 'block_mean', got {degrade!r}")
    spatial = physics.spatial
    psf = spatial.psf.detach()
    if psf.ndim == 3:
        psf = psf.mean(dim=0)
    return decimate(blur(msi, psf, boundary=spatial.boundary), ratio=r, offset=spatial.offset)


def band_groups(hsi: torch.Tensor, msi_lr: torch.Tensor) -> torch.Tensor:
    """Index of the most correlated MSI band for each HSI band: ``(N, L, h, w), (N, m, h, w) -> (N, L)`` long.

    ``A[i, j] = corr(MSI_i, HSI_j)`` (Pearson, over pixels); band ``j`` goes to ``argmax_i A[i, j]``
    (``GSA_wrapper.m``). Constant bands (undefined correlation) go to MSI band 0.
    """
    def standardise(x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).to(torch.float64)
        x = x - x.mean(dim=2, keepdim=True)
        return x / x.norm(dim=2, keepdim=True)

    corr = standardise(msi_lr) @ standardise(hsi).transpose(1, 2)  # (N, m, L)
    return torch.nan_to_num(corr, nan=-2.0).argmax(dim=1)


def _gsa_group(hs_lr: torch.Tensor, hs_up: torch.Tensor, pan: torch.Tensor, pan_lr: torch.Tensor) -> torch.Tensor:
    """Pansharpening GSA of ``g`` bands: ``hs_lr (g, n)``, ``hs_up (g, M)``, ``pan (M,)``, ``pan_lr (n,)``."""
    hs_lr0 = hs_lr - hs_lr.mean(dim=1, keepdim=True)
    up_mean = hs_up.mean(dim=1, keepdim=True)
    hs_up0 = hs_up - up_mean
    pan_mean = pan.mean()
    design = torch.cat([hs_lr0, torch.ones_like(hs_lr0[:1])], dim=0).T  # (n, g + 1)
    alpha = torch.linalg.pinv(design) @ (pan_lr - pan_mean)
    intensity = alpha[:-1] @ hs_up0 + alpha[-1]
    i0 = intensity - intensity.mean()
    var = (i0 * i0).sum()
    gains = (hs_up0 @ i0) / var if var > 0 else torch.zeros_like(hs_up0[:, 0])
    out = hs_up0 + gains[:, None] * (pan - pan_mean - i0)[None]
    return out - out.mean(dim=1, keepdim=True) + up_mean


def fuse_gsa(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    degrade: MsiDegradation = "physics",
    boundary: CubicBoundary = "replicate",
) -> torch.Tensor:
    """GSA hyperspectral sharpening: per MSI band, component substitution on its most correlated HSI bands.

    ``Out_k = U(H_k) + g_k (P - mean(P) - I0)`` with the regression intensity ``I0`` and gains
    ``g_k = cov(I0, U(H_k)) / var(I0)`` (module docstring). Uses the ratio, decimation offset and (with
    ``degrade="physics"``) the PSF of ``physics``; the SRF is not used (bands are grouped by correlation).

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: the observation model (ratio, offset, PSF).
        degrade: how the MSI is brought to the HSI grid: ``"physics"`` (known PSF) or ``"block_mean"``.
        boundary: border handling of the cubic upsampling.

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (computed in float64).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.rand(2, 6)))
        >>> tuple(fuse_gsa(obs.A(torch.rand(1, 6, 10, 8)), obs).shape)
        (1, 6, 10, 8)
    """
    physics.check_measurement(y)
    hsi = check_image_tensor(y.hsi, "low-resolution HSI")
    msi = check_image_tensor(y.msi, "multispectral image").to(device=hsi.device)
    check_finite(hsi, "low-resolution HSI")
    check_finite(msi, "multispectral image")
    if degrade not in ("physics", "block_mean"):
        raise InputError(f"degrade must be 'physics' or 'block_mean', got {degrade!r}")
    hs = hsi.to(torch.float64)
    ms = msi.to(torch.float64)
    r = physics.ratio
    ms_lr = degrade_msi(ms, physics, degrade=degrade)
    hs_up = upsample_cubic(hs, ratio=r, offset=physics.spatial.offset, boundary=boundary)
    groups = band_groups(hs, ms_lr)
    out = torch.empty_like(hs_up)
    n_img, bands = hs.shape[:2]
    for n in range(n_img):
        for j in range(ms.shape[1]):
            idx = torch.nonzero(groups[n] == j).reshape(-1)
            if idx.numel() == 0:
                continue
            fused = _gsa_group(
                hs[n, idx].flatten(1), hs_up[n, idx].flatten(1), ms[n, j].flatten(), ms_lr[n, j].flatten()
            )
            out[n, idx] = fused.reshape(idx.numel(), *hs_up.shape[-2:])
    return out.to(hsi.dtype)
