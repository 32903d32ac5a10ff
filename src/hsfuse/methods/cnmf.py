"""CNMF: coupled nonnegative matrix factorization unmixing for HSI + MSI fusion.

Yokoya, Yairi, Iwasaki, "Coupled nonnegative matrix factorization unmixing for hyperspectral and multispectral
data fusion", IEEE TGRS 50(2), 528-537, 2012; the toolbox code (``methods/CNMF/CNMF_fusion`` / ``CNMF_init.m``
/ ``CNMF_ite.m`` / ``vca.m`` / ``vd.m`` of hif-benchmarking, Yokoya 2015), re-derived, not copied.

Model. ``V_h = W_h H_h`` (LR HSI, ``L x n``), ``V_m = W_m H_m`` (MSI, ``m x N``), coupled through the SRF
``W_m = R W_h`` and the spatial degradation ``H_h = H_m B S`` (PSF blur ``B``, decimation ``S``); the fused image
is ``Z = W_h H_m``. Sum-to-one is soft: every data matrix and endmember matrix gets an extra constant row
``delta 1^T``, ``delta = 2 sqrt(mean(Y_m) / 0.7455) / m^3`` (``Y_m``: the clipped MSI), so the abundance
updates also fit ``delta 1^T H ~ delta 1^T``. Each NMF step is a Lee-Seung multiplicative update of
``||V - W H||^2`` (with the augmented ``V``, ``W`` for ``H``; the ``delta`` row of ``W`` is never updated)::

    H <- H .* (W^T V) ./ (W^T W H)                       (augmented W, V)
    W[:K] <- W[:K] .* (V[:K] H^T) ./ (W[:K] H H^T)       (K = L or m data rows)

and the convergence test of every inner loop is ``(c_prev - c) / c < threshold`` with
``c = ||V[:K] - W[:K] H||_F^2`` (data rows only); on it the step just made is undone and the loop ends.

Algorithm (defaults in brackets: ``CNMF_fusion``'s ``I1 = 200`` (``75`` for a single MSI band), ``I2 = 1``,
``th_h = th_m = 1e-8``, ``th2 = 1e-2``):

1. Negative values of both images are set to 0. ``M = max(min(30, L), VD(Y_h, 5e-2))`` endmembers
   (:func:`hsfuse.methods.vca.virtual_dimensionality`) unless ``endmembers`` is given.
2. **Initialisation (``CNMF_init``).** ``W_h`` = VCA endmembers of the LR HSI pixels (the toolbox's VCA variant,
   :func:`hsfuse.methods.vca.vca` with ``variant="cnmf"``); ``H_h = 1/M``. HSI NMF: up to ``3 I1`` updates of
   ``H_h`` alone (convergence tested from the second), then up to ``I1 - 1`` alternating updates (``W_h``,
   then ``H_h``). MSI: ``W_m = [R W_h; delta 1^T]``, ``H_m`` = cubic upsampling of each abundance image of
   ``H_h`` with negatives clipped; ``I1`` updates of ``H_m`` alone (the original tests convergence here with
   the outer loop's counter, ``i > 1``, which is false, so all ``I1`` run: kept), then up to ``I1 - 1``
   alternating updates (``W_m`` only if ``m > 3``, then ``H_m``).
3. **Outer iterations (``CNMF_ite``, ``outer_iterations`` times).** ``H_h = S B H_m`` (abundances seen at LR);
   HSI NMF with ``H_h`` fixed: up to ``I1`` updates of ``W_h`` alone, then up to ``I1 - 1`` alternating updates
   (``H_h`` only if ``m > 3``, then ``W_h``). If ``outer_iterations > 1``: ``W_m[:m] = R W_h``, and the MSI NMF as
   in step 2 but testing convergence from the second ``H_m`` update. The outer loop continues while both the
   HSI and the MSI RMSE drop by more than ``outer_threshold`` (relative) and iterations remain; the last outer
   iteration keeps its ``W_h`` and the ``H_m`` it started from (as ``CNMF_fusion``).
4. ``Z = W_h[:L] H_m``.

Deviations from the toolbox, all deliberate:

* **Operators.** The SRF is the physics' (``R``: ``physics.spectral.matrix``); the toolbox estimates it and an
  MSI offset from the pair (``estR.m``, a QP) and subtracts the offset. The abundance degradation ``S B`` is the
  physics' PSF, boundary and decimation phase (a per-band PSF is averaged over bands), instead of
  ``gaussian_down_sample`` (a Gaussian with FWHM = ratio, block-aligned); the abundance upsampling of the
  initialisation is the grid-aligned Keys cubic of :func:`hsfuse.methods.bicubic.upsample_cubic` (replicate
  borders) instead of ``imresize`` (bicubic on its half-pixel grid). Since ``estR`` is not run, its
  "synthetic/real data" switch is moot (both branches use ``I1 = 200``, ``I2 = 1``).
* **Division by zero.** Where a multiplicative update's denominator is 0 (an all-zero abundance pixel or
  endmember) the entry is kept (factor 1); MATLAB would produce ``NaN`` there. Elsewhere identical.
* **VCA randomness.** Seeded ``torch.Generator`` (``seed``), not MATLAB's ``rand``; see :mod:`hsfuse.methods.vca`.
* **Batches.** Each image is unmixed independently (its own ``M``, ``delta``, VCA draws and stopping points);
  images with the same ``M`` run together, an image that has converged is frozen while the others go on.
* No masking mode (``CNMF_fusion(HSI, MSI, mask)``); ``init_mode = 0`` (constant ``H_h``, the toolbox default).

Implementation: on the input's device, float32 for float32 inputs and float64 for float64 inputs (VCA and the
endmember count always in float64; on the three shared scenes float32 changes PSNR by at most 0.03 dB and runs
1.2-1.3x faster), batched ``bmm``; ``W H H^T`` is formed as ``W (H H^T)`` (MATLAB
evaluates ``(W H) H^T``: the same up to rounding). Cost: each inner update is ``O(M (K + M) P)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .._checks import check_positive_int
from ..errors import InputError
from ..physics import FusionObservation
from ..physics.spatial import blur_decimate
from ..types import FusionMeasurement
from .bicubic import upsample_cubic
from .chunking import Chunked, State, StatsPass, Tile
from .options import MethodOptions, option
from .vca import vca, virtual_dimensionality

__all__ = ["fuse_cnmf", "CnmfOptions", "cnmf_update_h", "cnmf_update_w", "cnmf_cost", "cnmf_sum_to_one",
           "cnmf_endmember_count", "CnmfFactors", "cnmf_factors", "MIN_MS_BANDS", "VD_FALSE_ALARM", "CNMF_CHUNKED"]

#: the toolbox updates W_m (and, in the outer iterations, H_h) only when the MSI has more bands than this
MIN_MS_BANDS = 3
#: false-alarm rate of the VD endmember count in CNMF_fusion
VD_FALSE_ALARM = 5e-2
#: CNMF_fusion's cap below which the endmember count is raised to min(30, L)
MIN_ENDMEMBERS = 30


@dataclass(frozen=True)
class CnmfOptions(MethodOptions):
    """Options of :func:`fuse_cnmf` (defaults: ``CNMF_fusion.m``)."""

    endmembers: int | None = option(None, "number of endmembers M (<= the HSI band count); none = the toolbox "
                                    "rule max(min(30, L), VD(HSI, 0.05))", ge=1)
    outer_iterations: int = option(1, "I2, the outer iterations (CNMF_fusion: 1; the paper suggests 3-5 on "
                                   "synthetic data)", ge=1)
    inner_iterations: int | None = option(None, "I1, the maximum iterations of each inner NMF loop; none = "
                                          "CNMF_fusion's 200 (75 for a single MSI band)", ge=1)
    threshold: float = option(1e-8, "relative cost decrease below which an inner NMF loop stops (th_h = th_m)", ge=0)
    outer_threshold: float = option(1e-2, "relative RMSE decrease of both images needed to run another outer "
                                    "iteration (th2)", ge=0)
    seed: int = option(0, "seed of VCA's random directions", ge=0)


# ------------------------------------------------------------------------------------------------- the NMF updates


def _factor(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.ones_like(num))


def cnmf_update_h(w: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``H .* (W^T V) ./ (W^T W H)`` with the augmented ``w`` ``(N, K+1, M)`` and ``v`` ``(N, K+1, P)``;
    ``h`` ``(N, M, P)``."""
    wt = w.transpose(1, 2)
    return h * _factor(wt @ v, (wt @ w) @ h)


def cnmf_update_w(w: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``W[:K] .* (V[:K] H^T) ./ (W[:K] H H^T)``, the ``delta`` row (the last) kept; shapes as
    :func:`cnmf_update_h`."""
    k = w.shape[1] - 1
    ht = h.transpose(1, 2)
    wk = w[:, :k]
    out = w.clone()
    out[:, :k] = wk * _factor(v[:, :k] @ ht, wk @ (h @ ht))
    return out


def cnmf_cost(w: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``||V[:K] - W[:K] H||_F^2`` per image (the data rows only), ``(N,)``."""
    k = w.shape[1] - 1
    res = v[:, :k] - w[:, :k] @ h
    return (res * res).sum(dim=(1, 2))


def cnmf_sum_to_one(msi: torch.Tensor) -> torch.Tensor:
    """``delta = 2 sqrt(mean(Y_m) / 0.7455) / m^3`` per image of the (clipped) MSI ``(N, m, ...)``: ``(N,)``."""
    m = msi.shape[1]
    return 2.0 * torch.sqrt(msi.flatten(1).mean(dim=1) / 0.7455) / m**3


def cnmf_endmember_count(hsi_pixels: torch.Tensor) -> torch.Tensor:
    """``max(min(30, L), VD(Y_h, 0.05))`` per image of ``(N, L, n)`` pixels: ``(N,)`` long."""
    bands = hsi_pixels.shape[1]
    vd = virtual_dimensionality(hsi_pixels, VD_FALSE_ALARM)
    return vd.clamp_min(min(MIN_ENDMEMBERS, bands))


Step = Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]


def _loop(state: tuple[torch.Tensor, ...], step: Step, cost: Callable[[tuple[torch.Tensor, ...]], torch.Tensor],
          *, iterations: int, cost0: torch.Tensor, check_from: int | None,
          threshold: float) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """One inner loop of the toolbox for a batch: ``state = step(state)`` up to ``iterations`` times; from the
    ``check_from``-th step on (never if ``None``), an image whose ``(cost0 - cost) / cost < threshold`` gets its
    step undone and stops (others go on). Returns the state and ``cost0`` (each image's last accepted cost)."""
    active = torch.ones_like(cost0, dtype=torch.bool)
    for q in range(1, iterations + 1):
        new = step(state)
        c = cost(new)
        if check_from is not None and q >= check_from:
            moving = active & ~((cost0 - c) / c < threshold)
        else:
            moving = active
        if bool(moving.all()):
            state = new
        elif not bool(moving.any()):
            break
        else:
            sel = moving[:, None, None]
            state = tuple(torch.where(sel, a, b) for a, b in zip(new, state))
        cost0 = torch.where(moving, c, cost0)
        active = moving
    return state, cost0


def _hs_nmf_init(wh, vh, hh, *, iterations, threshold):
    zero = torch.zeros(wh.shape[0], dtype=wh.dtype, device=wh.device)
    (hh,), cost0 = _loop((hh,), lambda s: (cnmf_update_h(wh, vh, s[0]),), lambda s: cnmf_cost(wh, vh, s[0]),
                         iterations=3 * iterations, cost0=zero, check_from=2, threshold=threshold)

    def step(s):
        w = cnmf_update_w(s[0], vh, s[1])
        return w, cnmf_update_h(w, vh, s[1])

    (wh, hh), _ = _loop((wh, hh), step, lambda s: cnmf_cost(s[0], vh, s[1]), iterations=iterations - 1,
                        cost0=cost0, check_from=1, threshold=threshold)
    return wh, hh


def _ms_nmf(wm, vm, hm, *, iterations, threshold, check_first, msi_bands):
    zero = torch.zeros(wm.shape[0], dtype=wm.dtype, device=wm.device)
    (hm,), cost0 = _loop((hm,), lambda s: (cnmf_update_h(wm, vm, s[0]),), lambda s: cnmf_cost(wm, vm, s[0]),
                         iterations=iterations, cost0=zero, check_from=2 if check_first else None,
                         threshold=threshold)

    def step(s):
        w = cnmf_update_w(s[0], vm, s[1]) if msi_bands > MIN_MS_BANDS else s[0]
        return w, cnmf_update_h(w, vm, s[1])

    (wm, hm), _ = _loop((wm, hm), step, lambda s: cnmf_cost(s[0], vm, s[1]), iterations=iterations - 1,
                        cost0=cost0, check_from=1, threshold=threshold)
    return wm, hm


def _hs_nmf_ite(wh, vh, hh, *, iterations, threshold, msi_bands):
    zero = torch.zeros(wh.shape[0], dtype=wh.dtype, device=wh.device)
    (wh,), cost0 = _loop((wh,), lambda s: (cnmf_update_w(s[0], vh, hh),), lambda s: cnmf_cost(s[0], vh, hh),
                         iterations=iterations, cost0=zero, check_from=2, threshold=threshold)

    def step(s):
        h = cnmf_update_h(s[0], vh, s[1]) if msi_bands > MIN_MS_BANDS else s[1]
        return cnmf_update_w(s[0], vh, h), h

    (wh, hh), _ = _loop((wh, hh), step, lambda s: cnmf_cost(s[0], vh, s[1]), iterations=iterations - 1,
                        cost0=cost0, check_from=1, threshold=threshold)
    return wh, hh


def _rmse(w: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k = w.shape[1] - 1
    return torch.sqrt(cnmf_cost(w, v, h) / (v.shape[2] * k))


class CnmfFactors(NamedTuple):
    """:func:`cnmf_factors`' result (one image group): ``w_hyper`` ``(N, L+1, M)`` and ``h_multi`` ``(N, M, P)``
    (the fused image is ``w_hyper[:, :L] @ h_multi``), ``rmse_h`` / ``rmse_m`` ``(N,)`` of the initialisation,
    and ``outer`` ``(N,)`` long, the outer iterations run."""

    w_hyper: torch.Tensor
    h_multi: torch.Tensor
    rmse_h: torch.Tensor
    rmse_m: torch.Tensor
    outer: torch.Tensor


def cnmf_factors(
    hsi: torch.Tensor,
    msi: torch.Tensor,
    *,
    srf: torch.Tensor,
    downsample: Callable[[torch.Tensor], torch.Tensor],
    upsample: Callable[[torch.Tensor], torch.Tensor],
    endmembers: int,
    outer_iterations: int,
    inner_iterations: int,
    threshold: float,
    outer_threshold: float,
    generator: torch.Generator,
) -> CnmfFactors:
    """CNMF (module docstring, steps 2-3) on a batch of clipped images (float32 or float64) sharing ``M = endmembers``.

    ``hsi`` ``(N, L, h, w)``, ``msi`` ``(N, m, H, W)``, ``srf`` ``(m, L)``; ``downsample`` maps abundance
    images ``(N, M, H, W) -> (N, M, h, w)`` and ``upsample`` the reverse. Inputs are not validated here.
    """
    n_img, bands, h, w = hsi.shape
    msi_bands, H, W = msi.shape[1:]
    big_m = endmembers
    dt = dict(dtype=hsi.dtype, device=hsi.device)
    delta = cnmf_sum_to_one(msi)[:, None, None].to(hsi.dtype)  # (N, 1, 1)
    vh = hsi.reshape(n_img, bands, h * w)
    vm = msi.reshape(n_img, msi_bands, H * W)
    # ---- CNMF_init
    e = vca(vh.to(torch.float64), big_m, generator=generator, variant="cnmf").endmembers.to(hsi.dtype)
    wh = torch.cat([e, delta.expand(n_img, 1, big_m)], dim=1)
    vh = torch.cat([vh, delta.expand(n_img, 1, h * w)], dim=1)
    hh = torch.full((n_img, big_m, h * w), 1.0 / big_m, **dt)
    wh, hh = _hs_nmf_init(wh, vh, hh, iterations=inner_iterations, threshold=threshold)
    rmse_h = _rmse(wh, vh, hh)
    srf = srf.to(**dt)
    wm = torch.cat([srf @ wh[:, :bands], delta.expand(n_img, 1, big_m)], dim=1)
    vm = torch.cat([vm, delta.expand(n_img, 1, H * W)], dim=1)
    hm = upsample(hh.reshape(n_img, big_m, h, w)).reshape(n_img, big_m, H * W).clamp_min(0)
    wm, hm = _ms_nmf(wm, vm, hm, iterations=inner_iterations, threshold=threshold, check_first=False,
                     msi_bands=msi_bands)
    rmse_m = _rmse(wm, vm, hm)
    # ---- outer iterations (CNMF_ite), per image until its costs stop dropping
    cost_h, cost_m = rmse_h.clone(), rmse_m.clone()
    running = torch.ones(n_img, dtype=torch.bool, device=hsi.device)
    outer = torch.zeros(n_img, dtype=torch.long, device=hsi.device)
    for i in range(1, outer_iterations + 1):
        idx = torch.nonzero(running).reshape(-1)
        if idx.numel() == 0:
            break
        outer[idx] += 1
        s_vh, s_vm, s_wh, s_wm, s_hm = vh[idx], vm[idx], wh[idx], wm[idx], hm[idx]
        s_hh = downsample(s_hm.reshape(-1, big_m, H, W)).reshape(-1, big_m, h * w)
        s_wh, s_hh = _hs_nmf_ite(s_wh, s_vh, s_hh, iterations=inner_iterations, threshold=threshold,
                                 msi_bands=msi_bands)
        new_h = _rmse(s_wh, s_vh, s_hh)
        wh[idx] = s_wh
        if outer_iterations == 1:
            break
        s_wm = s_wm.clone()
        s_wm[:, :msi_bands] = srf @ s_wh[:, :bands]
        s_wm, s_hm2 = _ms_nmf(s_wm, s_vm, s_hm, iterations=inner_iterations, threshold=threshold,
                              check_first=True, msi_bands=msi_bands)
        new_m = _rmse(s_wm, s_vm, s_hm2)
        go = ((cost_h[idx] - new_h) / cost_h[idx] > outer_threshold) & (
            (cost_m[idx] - new_m) / cost_m[idx] > outer_threshold) & (i < outer_iterations)
        g = idx[go]
        wm[g], hm[g] = s_wm[go], s_hm2[go]
        cost_h[g], cost_m[g] = new_h[go], new_m[go]
        running[idx[~go]] = False
    return CnmfFactors(wh, hm, rmse_h, rmse_m, outer)


# -------------------------------------------------------------------------------------------------- the method


def _check_threshold(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def fuse_cnmf(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    endmembers: int | None = None,
    outer_iterations: int = 1,
    inner_iterations: int | None = None,
    threshold: float = 1e-8,
    outer_threshold: float = 1e-2,
    seed: int = 0,
) -> torch.Tensor:
    """CNMF (Yokoya et al., IEEE TGRS 50(2), 2012): coupled NMF unmixing of the HSI and the MSI.

    ``Z = W_h H_m``: endmembers ``W_h`` from the HSI (VCA-initialised, multiplicative-update NMF) and
    high-resolution abundances ``H_m`` from the MSI unmixed with the endmembers seen through the SRF, coupled by
    ``H_h = S B H_m`` (module docstring: update rules, sum-to-one row, stopping rules, deviations).

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: ratio, decimation offset, PSF and boundary (the abundance degradation) and SRF (``R``).
        endmembers: ``M`` (``1 <= M <= L``); ``None``: ``max(min(30, L), VD(Y_h, 0.05))`` per image.
        outer_iterations: ``I2`` (toolbox: 1). inner_iterations: ``I1``; ``None``: 200 (75 if ``m = 1``).
        threshold: inner stopping threshold (``th_h = th_m``). outer_threshold: ``th2``.
        seed: VCA's random directions.

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (float64 inputs computed in float64, others in
        float32).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.rand(4, 6)))
        >>> tuple(fuse_cnmf(obs.A(torch.rand(1, 6, 8, 8)), obs, endmembers=3, inner_iterations=5).shape)
        (1, 6, 8, 8)
    """
    hsi, msi = physics.measurement_tensors(y)
    n_img, bands, h, w = hsi.shape
    msi_bands, H, W = msi.shape[1:]
    if endmembers is not None:
        endmembers = check_positive_int(endmembers, "endmembers")
        if endmembers > bands:
            raise InputError(f"endmembers must be at most the {bands} HSI bands (VCA's limit), got {endmembers}")
    outer_iterations = check_positive_int(outer_iterations, "outer_iterations")
    if inner_iterations is None:
        inner_iterations = 75 if msi_bands == 1 else 200
    inner_iterations = check_positive_int(inner_iterations, "inner_iterations")
    threshold = _check_threshold(threshold, "threshold")
    outer_threshold = _check_threshold(outer_threshold, "outer_threshold")
    seed = check_positive_int(seed, "seed", minimum=0)
    if h * w < 2:
        raise InputError("CNMF needs an HSI of at least two pixels")
    cdt = torch.float64 if hsi.dtype == torch.float64 else torch.float32  # float32 by default, float64 on request
    hs = hsi.to(cdt).clamp_min(0)
    ms = msi.to(cdt).clamp_min(0)
    spatial = physics.spatial
    psf = spatial.psf.detach().to(cdt)
    if psf.ndim == 3:
        psf = psf.mean(dim=0)
    r, offset = physics.ratio, spatial.offset

    def downsample(x: torch.Tensor) -> torch.Tensor:
        return blur_decimate(x, psf.to(x.device), ratio=r, offset=offset, boundary=spatial.boundary)

    def upsample(x: torch.Tensor) -> torch.Tensor:
        return upsample_cubic(x, ratio=r, offset=offset, boundary="replicate")

    if endmembers is None:
        counts = cnmf_endmember_count(hs.to(torch.float64).reshape(n_img, bands, h * w)).tolist()
    else:
        counts = [endmembers] * n_img
    generator = torch.Generator(device="cpu").manual_seed(seed)
    srf = physics.spectral.matrix.detach()
    out = torch.empty(n_img, bands, H * W, dtype=cdt, device=hs.device)
    for big_m in sorted(set(counts)):
        idx = torch.tensor([i for i, c in enumerate(counts) if c == big_m], device=hs.device)
        f = cnmf_factors(hs[idx], ms[idx], srf=srf, downsample=downsample, upsample=upsample, endmembers=int(big_m),
                         outer_iterations=outer_iterations, inner_iterations=inner_iterations, threshold=threshold,
                         outer_threshold=outer_threshold, generator=generator)
        out[idx] = f.w_hyper[:, :bands] @ f.h_multi
    return out.reshape(n_img, bands, H, W).to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Not exact. Fit, pass 1 (no halo): the clipped LR HSI pixels are *collected* (the partials are lists of core blocks
# with their raster positions, concatenated in the engine's fixed order and put back in raster order), with the sum
# of the clipped MSI for delta. The LR HSI is r^2 times smaller than the output; the fit holds at most
# CNMF_FIT_PIXELS LR pixels (a 1-in-s^2 regular subsample of the LR grid, the same for every chunking, on larger
# scenes: about (L + 1 + 4 M) 8 bytes each, 0.9 GiB for L = 200, M = 30), on which finish runs the whole-image
# initialisation: endmember count, VCA, HSI NMF -> W_h^0 (exactly the whole image's when no subsampling is needed).
# Per tile (core + CNMF_HALO LR pixels, overlap and discard; wrapping for a circular physics) the abundances:
# H_h = 3 I1 multiplicative updates of the tile's LR pixels with W_h^0 fixed (per pixel, so independent of the
# tiling; the whole image's H_h comes from its joint NMF), H_m from its cubic upsampling by the MSI NMF of the
# module docstring (W_m = [R W_h^0; delta]; with m > 3 W_m adapts to the tile and the stopping tests are the
# tile's: this is where the plan departs from the whole image). Fit, pass 2: H_h = S B H_m of every tile's core is
# collected with the LR HSI and finish runs the outer step's HSI NMF on them -> W_h, exactly as the whole image does
# given H_m. Apply: the tile's H_m again (the same computation as pass 2), Z = W_h H_m on the core.
# outer_iterations > 1 would need one more pass pair per iteration: refused. Working set (VmHWM of one apply on a
# 512 x 512 x 200 tile, M = 30): 13.0 bytes per HR pixel per band, rounded up to 24 (it grows with M / L).

#: LR halo of the per-tile abundance estimation, and the most LR pixels the endmember fit holds
CNMF_HALO, CNMF_FIT_PIXELS = 8, 1 << 19


def _cnmf_settings(options: CnmfOptions, bands: int, msi_bands: int) -> tuple[int, float, float, int]:
    """Checked ``(inner_iterations, threshold, outer_threshold, seed)`` (as :func:`fuse_cnmf`)."""
    if check_positive_int(options.outer_iterations, "outer_iterations") != 1:
        raise InputError("CNMF's chunked plan runs one outer iteration (the toolbox default): set "
                         "outer_iterations=1, or run it on the whole image")
    if options.endmembers is not None:
        m = check_positive_int(options.endmembers, "endmembers")
        if m > bands:
            raise InputError(f"endmembers must be at most the {bands} HSI bands (VCA's limit), got {m}")
    inner = options.inner_iterations
    inner = check_positive_int(75 if inner is None and msi_bands == 1 else 200 if inner is None else inner,
                               "inner_iterations")
    return (inner, _check_threshold(options.threshold, "threshold"),
            _check_threshold(options.outer_threshold, "outer_threshold"), check_positive_int(options.seed, "seed",
                                                                                              minimum=0))


def _cnmf_stride(image: tuple[int, int]) -> int:
    """Keep every ``s``-th LR row and column in the fit so that at most ``CNMF_FIT_PIXELS`` are held."""
    return max(1, math.ceil(math.sqrt(image[0] * image[1] / CNMF_FIT_PIXELS)))


def _cnmf_core_columns(x: torch.Tensor, tile: Tile) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (C, th, tw)``'s usable, subsampled LR core pixels ``(C, n)`` and their raster positions ``(n,)``."""
    a, b, c, d = tile.core
    h, w = tile.image
    s = _cnmf_stride(tile.image)
    rows = (torch.arange(a, b) + tile.origin[0]) % h
    cols = (torch.arange(c, d) + tile.origin[1]) % w
    keep = ((rows % s == 0)[:, None] & (cols % s == 0)[None, :]).reshape(-1)
    valid = tile.valid_lr_core(tile.ratio)
    if valid is not None:
        keep &= valid
    pos = (rows[:, None] * w + cols[None, :]).reshape(-1)[keep]
    return x[:, a:b, c:d].reshape(x.shape[0], -1)[:, keep], pos


def _cnmf_gather(t: State, key: str) -> torch.Tensor:
    """The collected ``(C, n)`` columns of ``t[key]`` in raster order."""
    pos = torch.cat(t["pos"])
    return torch.cat(t[key], dim=1)[:, torch.argsort(pos)]


def _cnmf_pass1(tile: Tile, physics: FusionObservation, options: CnmfOptions, state: State) -> State:
    _cnmf_settings(options, tile.hsi.shape[1], tile.msi.shape[1])
    hs, pos = _cnmf_core_columns(tile.hsi[0].to(torch.float64).clamp_min(0), tile)
    ms = tile.hr_core(tile.msi[0].to(torch.float64).clamp_min(0)).flatten(1)
    keep = tile.valid_hr_core()
    if keep is not None:
        ms = ms[:, keep]
    return {"hsi": [hs], "pos": [pos], "sum_m": ms.sum(), "n_m": torch.tensor(float(ms.numel()), dtype=torch.float64)}


def _cnmf_finish1(t: State, physics: FusionObservation, options: CnmfOptions, state: State) -> State:
    vh = _cnmf_gather(t, "hsi")  # (L, n)
    bands, n = vh.shape
    msi_bands = physics.spectral.msi_bands
    inner, threshold, _, seed = _cnmf_settings(options, bands, msi_bands)
    if n < 2:
        raise InputError("CNMF needs an HSI of at least two pixels")
    big_m = int(options.endmembers) if options.endmembers is not None else int(cnmf_endmember_count(vh[None])[0])
    delta = 2.0 * math.sqrt(float(t["sum_m"] / t["n_m"]) / 0.7455) / msi_bands ** 3
    generator = torch.Generator(device="cpu").manual_seed(seed)
    e = vca(vh[None], big_m, generator=generator, variant="cnmf").endmembers  # (1, L, M)
    wh = torch.cat([e, torch.full((1, 1, big_m), delta, dtype=torch.float64)], dim=1)
    vh1 = torch.cat([vh, torch.full((1, n), delta, dtype=torch.float64)])[None]
    hh = torch.full((1, big_m, n), 1.0 / big_m, dtype=torch.float64)
    wh, _ = _hs_nmf_init(wh, vh1, hh, iterations=inner, threshold=threshold)
    return {**state, "w_init": wh[0], "delta": delta, "endmembers": big_m}


def _cnmf_operators(physics: FusionObservation) -> tuple[torch.Tensor, torch.Tensor]:
    """SRF ``(m, L)`` and PSF ``(k, k)`` in float64, rounded through float32 so that the fit (float64 physics) and the
    apply (the engine's float32 copy) compute the same abundances."""
    srf = physics.spectral.matrix.detach().to(torch.float32).to(torch.float64)
    psf = physics.spatial.psf.detach().to(torch.float32).to(torch.float64)
    return srf, psf.mean(dim=0) if psf.ndim == 3 else psf


def _cnmf_abundances(tile: Tile, physics: FusionObservation, options: CnmfOptions, state: State) -> torch.Tensor:
    """The tile's HR abundances ``H_m`` ``(1, M, r th, r tw)`` with the fitted ``W_h^0`` (comment above)."""
    inner, threshold, _, _ = _cnmf_settings(options, tile.hsi.shape[1], tile.msi.shape[1])
    hs = tile.hsi.to(torch.float64).clamp_min(0)
    ms = tile.msi.to(torch.float64).clamp_min(0)
    _, bands, th, tw = hs.shape
    msi_bands, H, W = ms.shape[1:]
    wh, delta, big_m = state["w_init"][None], state["delta"], state["endmembers"]
    srf, _ = _cnmf_operators(physics)
    vh = torch.cat([hs.reshape(1, bands, th * tw), torch.full((1, 1, th * tw), delta, dtype=torch.float64)], dim=1)
    hh = torch.full((1, big_m, th * tw), 1.0 / big_m, dtype=torch.float64)
    for _ in range(3 * inner):
        hh = cnmf_update_h(wh, vh, hh)
    wm = torch.cat([srf @ wh[:, :bands], torch.full((1, 1, big_m), delta, dtype=torch.float64)], dim=1)
    vm = torch.cat([ms.reshape(1, msi_bands, H * W), torch.full((1, 1, H * W), delta, dtype=torch.float64)], dim=1)
    hh = hh.reshape(1, big_m, th, tw)
    r = tile.ratio
    hm = torch.empty(1, big_m, H, W, dtype=torch.float64)
    for a, b, c, d in tile.image_pieces():  # replicated image borders, as the whole image's (not the wrapped halo)
        hm[..., r * a : r * b, r * c : r * d] = upsample_cubic(hh[..., a:b, c:d], ratio=r,
                                                               offset=physics.spatial.offset, boundary="replicate")
    hm = hm.reshape(1, big_m, H * W).clamp_min(0)
    _, hm = _ms_nmf(wm, vm, hm, iterations=inner, threshold=threshold, check_first=False, msi_bands=msi_bands)
    return hm.reshape(1, big_m, H, W)


def _cnmf_pass2(tile: Tile, physics: FusionObservation, options: CnmfOptions, state: State) -> State:
    hm = _cnmf_abundances(tile, physics, options, state)
    _, psf = _cnmf_operators(physics)
    hh = blur_decimate(hm, psf, ratio=tile.ratio, offset=physics.spatial.offset, boundary=physics.spatial.boundary)
    hh, pos = _cnmf_core_columns(hh[0], tile)
    hs, _ = _cnmf_core_columns(tile.hsi[0].to(torch.float64).clamp_min(0), tile)
    return {"hsi": [hs], "abundances": [hh], "pos": [pos]}


def _cnmf_finish2(t: State, physics: FusionObservation, options: CnmfOptions, state: State) -> State:
    vh, hh = _cnmf_gather(t, "hsi"), _cnmf_gather(t, "abundances")
    inner, threshold, _, _ = _cnmf_settings(options, vh.shape[0], physics.spectral.msi_bands)
    vh1 = torch.cat([vh, torch.full((1, vh.shape[1]), state["delta"], dtype=torch.float64)])[None]
    wh, _ = _hs_nmf_ite(state["w_init"][None], vh1, hh[None], iterations=inner, threshold=threshold,
                        msi_bands=physics.spectral.msi_bands)
    return {**state, "w": wh[0, :vh.shape[0]]}


def _cnmf_apply(tile: Tile, physics: FusionObservation, options: CnmfOptions, state: State) -> torch.Tensor:
    hm = tile.hr_core(_cnmf_abundances(tile, physics, options, state))[0]  # (M, ch, cw)
    out = torch.einsum("lk,khw->lhw", state["w"], hm)
    return out[None].to(tile.hsi.dtype)


def _cnmf_halo(ratio: int, physics: FusionObservation, options: CnmfOptions) -> int:
    return max(CNMF_HALO, -(-physics.spatial.psf.shape[-1] // ratio) + 2)


def _cnmf_wrap(physics: FusionObservation, options: CnmfOptions) -> bool:
    return physics.spatial.boundary == "circular"


#: chunked plan: endmembers fitted on the collected LR HSI, abundances per overlap-and-discard tile (not exact)
CNMF_CHUNKED = Chunked(
    passes=(StatsPass(halo=lambda r, physics, options: 0, partial=_cnmf_pass1, finish=_cnmf_finish1),
            StatsPass(halo=_cnmf_halo, partial=_cnmf_pass2, finish=_cnmf_finish2, wrap=_cnmf_wrap)),
    apply_halo=_cnmf_halo, apply=_cnmf_apply, exact=False, working_set=24.0, apply_wrap=_cnmf_wrap)
