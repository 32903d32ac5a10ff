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
* The least-squares fit solves the normal equations of the centred LR pixels in float64, dropping directions
  whose eigenvalue is below ``RANK_TOLERANCE`` (1e-10) of the largest (:func:`group_alpha`); MATLAB's ``\\``
  (pivoted QR) gives the same fitted intensity when the group is full rank, and on (nearly) rank-deficient
  groups its result depends on rounding.

Borders (``stats_border``): the degraded MSI ``Y_m^lr`` equals what the HSI sensor saw only where the blur model
is right; next to the image border it depends on the boundary assumed (circular / reflect / zero-filled), and any
mismatch with the data's real border (real images are not periodic; harnesses simulate with zero-filled borders)
makes those LR pixels wrong. Being whole-image statistics, the band-group correlations and the regression are then
contaminated everywhere. ``stats_border=b`` leaves the LR pixels within ``b`` pixels of the image border out of
both (the gains, on the HR grid, and everything else are unchanged); ``None`` (default) uses every pixel.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..physics import FusionObservation
from ..physics.spatial import blur, decimate
from ..types import FusionMeasurement
from .bicubic import CUBIC_HALO, CubicBoundary, upsample_cubic
from .chunking import Chunked, State, StatsPass, Tile, select
from .options import MethodOptions, option

__all__ = ["fuse_gsa", "degrade_msi", "band_groups", "group_alpha", "GsaOptions", "GSA_CHUNKED", "RANK_TOLERANCE"]

MsiDegradation = Literal["physics", "block_mean"]


@dataclass(frozen=True)
class GsaOptions(MethodOptions):
    """Options of :func:`fuse_gsa` (defaults: hsfuse's choices, see the module docstring)."""

    degrade: MsiDegradation = option("physics", "how the MSI is brought to the HSI grid: physics (the known PSF "
                                     "and decimation phase) or block_mean (mean of r x r blocks, PSF-free)")
    boundary: CubicBoundary = option("replicate", "border handling of the cubic upsampling of the HSI")
    stats_border: int | None = option(None, "leave the LR pixels within this many pixels of the image border out "
                                      "of the band-group correlations and the regression (their degraded MSI is "
                                      "wrong under any boundary mismatch); none = use all pixels", ge=0)


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


#: eigenvalues of a group's LR covariance below this fraction of the largest are dropped from the regression
#: (singular values of the centred pixels below 1e-5 of the largest: float32 rounding, not signal)
RANK_TOLERANCE = 1e-10


def group_alpha(cov_h: torch.Tensor, cov_hp: torch.Tensor) -> torch.Tensor:
    """The regression weights of one group: ``alpha = C_kk^+ C_kp`` (float64 covariances of the centred LR pixels,
    ``(g, g)`` and ``(g,)``), with ``C_kk``'s eigenvalues below ``RANK_TOLERANCE`` of its largest dropped.

    This is the least squares of the module docstring (the constant column of its design is orthogonal to the
    centred bands, so it decouples). MATLAB's ``\\`` and a plain pseudo-inverse keep the directions where the
    group's bands are linearly dependent up to rounding, which on (nearly) low-rank data makes ``alpha`` depend on
    rounding noise; dropping them makes it a property of the data, the same however the pixels are summed (the
    large-scene engine streams these covariances).
    """
    vals, vecs = torch.linalg.eigh(0.5 * (cov_h + cov_h.T))
    keep = vals > RANK_TOLERANCE * vals.max().clamp_min(0)
    if not bool(keep.any()):
        return torch.zeros_like(cov_hp)
    v = vecs[:, keep]
    return v @ ((v.T @ cov_hp) / vals[keep])


def _check_stats_border(stats_border: int | None, h: int, w: int) -> int:
    """``stats_border`` as an int (0 for ``None``), checked to leave some LR pixels."""
    if stats_border is None:
        return 0
    from .._checks import check_positive_int

    b = check_positive_int(stats_border, "stats_border", minimum=0)
    if 2 * b >= min(h, w):
        raise InputError(f"stats_border={b} leaves no pixel of the {h}x{w} low-resolution image")
    return b


def _interior(x: torch.Tensor, b: int) -> torch.Tensor:
    """``x[..., b:-b, b:-b]`` (all of ``x`` for ``b = 0``)."""
    return x if b == 0 else x[..., b : x.shape[-2] - b, b : x.shape[-1] - b]


def _gsa_group(hs_lr: torch.Tensor, hs_up: torch.Tensor, pan: torch.Tensor, pan_lr: torch.Tensor) -> torch.Tensor:
    """Pansharpening GSA of ``g`` bands: ``hs_lr (g, n)``, ``hs_up (g, M)``, ``pan (M,)``, ``pan_lr (n,)``."""
    n = hs_lr.shape[1]
    hs_lr0 = hs_lr - hs_lr.mean(dim=1, keepdim=True)
    up_mean = hs_up.mean(dim=1, keepdim=True)
    hs_up0 = hs_up - up_mean
    pan_mean = pan.mean()
    alpha = group_alpha(hs_lr0 @ hs_lr0.T / n, hs_lr0 @ (pan_lr - pan_lr.mean()) / n)
    intensity = alpha @ hs_up0
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
    stats_border: int | None = None,
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
        stats_border: LR pixels within this many pixels of the image border are left out of the band-group
            correlations and the regression (module docstring, "Borders"); ``None``: all pixels.

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (computed in float64).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.rand(2, 6)))
        >>> tuple(fuse_gsa(obs.A(torch.rand(1, 6, 10, 8)), obs).shape)
        (1, 6, 10, 8)
    """
    hsi, msi = physics.measurement_tensors(y)
    if degrade not in ("physics", "block_mean"):
        raise InputError(f"degrade must be 'physics' or 'block_mean', got {degrade!r}")
    hs = hsi.to(torch.float64)
    ms = msi.to(torch.float64)
    r = physics.ratio
    b = _check_stats_border(stats_border, *hs.shape[-2:])
    ms_lr = _interior(degrade_msi(ms, physics, degrade=degrade), b)
    hs_up = upsample_cubic(hs, ratio=r, offset=physics.spatial.offset, boundary=boundary)
    hs_in = _interior(hs, b)
    groups = band_groups(hs_in, ms_lr)
    out = torch.empty_like(hs_up)
    n_img, bands = hs.shape[:2]
    for n in range(n_img):
        for j in range(ms.shape[1]):
            idx = torch.nonzero(groups[n] == j).reshape(-1)
            if idx.numel() == 0:
                continue
            fused = _gsa_group(
                hs_in[n, idx].flatten(1), hs_up[n, idx].flatten(1), ms[n, j].flatten(), ms_lr[n, j].flatten()
            )
            out[n, idx] = fused.reshape(idx.numel(), *hs_up.shape[-2:])
    return out.to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# GSA's whole-image statistics, streamed exactly (module docstring, steps 1-2). Pass 1 (LR grid): the sums that give
# each band's group (Pearson correlation of HSI band l with the degraded MSI band j) and each group's regression
# alpha = C_kk^+ C_kp (centred LR covariances: the least squares of the module docstring decouples the constant,
# whose value cancels), plus the HR band means of the MSI. Pass 2 (HR grid): the mean and the within-group
# covariance of the upsampled HSI, which give I0 = alpha^T (U(H_k) - mean) and the gains cov(I0, U(H_k)) / var(I0)
# analytically. Apply: Out_k = U(H_k) + g_k (P - mean(P) - I0) on each chunk (the whole-image code's final mean
# reset is then the identity). Tiles of a circular operator take their halo across the image border from the
# opposite side, as the whole image wraps; so the result equals the whole-image one up to summation order. With
# stats_border, pass 1 also skips the LR pixels within that many pixels of the image border (from the tile's origin
# and the image size), as the whole-image code does.


def _border_keep(tile: Tile, b: int) -> torch.Tensor:
    """Flattened mask of the LR core pixels at least ``b`` pixels from the image border."""
    r0, r1, c0, c1 = tile.core
    h, w = tile.image
    rows = torch.arange(r0, r1) + tile.origin[0]
    cols = torch.arange(c0, c1) + tile.origin[1]
    keep_r = (rows >= b) & (rows < h - b)
    keep_c = (cols >= b) & (cols < w - b)
    return (keep_r[:, None] & keep_c[None, :]).reshape(-1)


def _msi_halo(ratio: int, physics: FusionObservation, options: GsaOptions) -> int:
    if options.degrade == "block_mean":
        return 0
    return -(-(physics.spatial.psf.shape[-1] // 2) // ratio) + 1


def _pass1(tile: Tile, physics: FusionObservation, options: GsaOptions, state: State) -> State:
    ms = tile.msi.to(torch.float64)
    k = physics.spatial.psf.shape[-1] if options.degrade == "physics" else tile.ratio
    keep = tile.valid_lr_core(k, physics.spatial.offset if options.degrade == "physics" else None)
    b = _check_stats_border(options.stats_border, *tile.image)
    if b:
        inner = _border_keep(tile, b)
        keep = inner if keep is None else keep & inner
    ms_lr = select(tile.lr_core(degrade_msi(ms, physics, degrade=options.degrade))[0].flatten(1), keep)  # (m, n)
    hs = select(tile.lr_core(tile.hsi.to(torch.float64))[0].flatten(1), keep)  # (L, n)
    pan = select(tile.hr_core(ms)[0].flatten(1), tile.valid_hr_core())  # (m, N)
    return {"n": torch.tensor(float(hs.shape[1]), dtype=torch.float64), "sum_h": hs.sum(1), "gram_h": hs @ hs.T,
            "sum_p": ms_lr.sum(1), "sq_p": (ms_lr * ms_lr).sum(1), "cross_ph": ms_lr @ hs.T,
            "N": torch.tensor(float(pan.shape[1]), dtype=torch.float64), "sum_P": pan.sum(1)}


def _finish1(t: State, physics: FusionObservation, options: GsaOptions, state: State) -> State:
    n, N = t["n"], t["N"]
    mean_h, mean_p = t["sum_h"] / n, t["sum_p"] / n
    cov_h = t["gram_h"] / n - torch.outer(mean_h, mean_h)
    cov_ph = t["cross_ph"] / n - torch.outer(mean_p, mean_h)  # (m, L)
    var_p = (t["sq_p"] / n - mean_p * mean_p).clamp_min(0)
    var_h = torch.diagonal(cov_h).clamp_min(0)
    corr = cov_ph / torch.sqrt(var_p[:, None] * var_h[None, :])
    groups = torch.nan_to_num(corr, nan=-2.0, posinf=-2.0, neginf=-2.0).argmax(dim=0)  # (L,)
    alpha = torch.zeros_like(mean_h)
    for j in range(cov_ph.shape[0]):
        idx = torch.nonzero(groups == j).reshape(-1)
        if idx.numel():
            alpha[idx] = group_alpha(cov_h[idx][:, idx], cov_ph[j, idx])
    return {**state, "groups": groups, "alpha": alpha, "pan_mean": t["sum_P"] / N}


def _upsampled(tile: Tile, physics: FusionObservation, options: GsaOptions) -> torch.Tensor:
    up = upsample_cubic(tile.hsi.to(torch.float64), ratio=physics.ratio, offset=physics.spatial.offset,
                        boundary=options.boundary)
    return tile.hr_core(up)[0]  # (L, ch, cw)


def _pass2(tile: Tile, physics: FusionObservation, options: GsaOptions, state: State) -> State:
    up = select(_upsampled(tile, physics, options).flatten(1), tile.valid_hr_core())
    gram = torch.zeros(up.shape[0], up.shape[0], dtype=torch.float64)
    groups = state["groups"]
    for j in torch.unique(groups).tolist():
        idx = torch.nonzero(groups == j).reshape(-1)
        g = up[idx]
        gram[idx[:, None], idx[None, :]] = g @ g.T
    return {"N": torch.tensor(float(up.shape[1]), dtype=torch.float64), "sum_up": up.sum(1), "gram_up": gram}


def _finish2(t: State, physics: FusionObservation, options: GsaOptions, state: State) -> State:
    mean = t["sum_up"] / t["N"]
    cov = t["gram_up"] / t["N"] - torch.outer(mean, mean)
    groups, alpha = state["groups"], state["alpha"]
    gains = torch.zeros_like(mean)
    for j in torch.unique(groups).tolist():
        idx = torch.nonzero(groups == j).reshape(-1)
        c_a = cov[idx][:, idx] @ alpha[idx]
        var = float(alpha[idx] @ c_a)
        if var > 0:
            gains[idx] = c_a / var
    return {**state, "up_mean": mean, "gains": gains}


def _apply(tile: Tile, physics: FusionObservation, options: GsaOptions, state: State) -> torch.Tensor:
    up = _upsampled(tile, physics, options)
    pan = tile.hr_core(tile.msi.to(torch.float64))[0]
    out = up.clone()
    groups, alpha, mean, gains = state["groups"], state["alpha"], state["up_mean"], state["gains"]
    for j in torch.unique(groups).tolist():
        idx = torch.nonzero(groups == j).reshape(-1)
        i0 = torch.einsum("g,ghw->hw", alpha[idx], up[idx] - mean[idx, None, None])
        out[idx] += gains[idx, None, None] * (pan[j] - state["pan_mean"][j] - i0)[None]
    return out[None].to(tile.hsi.dtype)


#: chunked plan: two exact streaming passes, then a local apply (halo: the cubic kernel's 2 LR pixels)
GSA_CHUNKED = Chunked(
    passes=(StatsPass(halo=_msi_halo, partial=_pass1, finish=_finish1,
                      wrap=lambda physics, options: physics.spatial.boundary == "circular"),
            StatsPass(halo=lambda r, physics, options: CUBIC_HALO, partial=_pass2, finish=_finish2,
                      wrap=lambda physics, options: options.boundary == "circular")),
    apply_halo=lambda r, physics, options: CUBIC_HALO, apply=_apply, exact=True, working_set=48.0,
    apply_wrap=lambda physics, options: options.boundary == "circular")
