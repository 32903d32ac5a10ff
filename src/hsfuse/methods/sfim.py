"""SFIM-HS: smoothing-filter-based intensity modulation adapted to hyperspectral + multispectral fusion.

Pansharpening SFIM: J. G. Liu, "Smoothing filter-based intensity modulation: a spectral preserve image fusion
technique for improving spatial details", Int. J. Remote Sens. 21(18), 2000: ``Out = MS * PAN / PAN_lowpass``.
HS-MS adaptation ("hypersharpening", Selva et al., IEEE JSTARS 8(6), 2015) as in the Yokoya HSMSFusionToolbox /
hif-benchmarking ``SFIM.m`` + ``nls_coef.m`` (Yokoya, Grohnfeldt, Chanussot, IEEE GRSM 5(2), 2017):

1. Degrade the MSI to the HSI grid: ``Y_m^lr`` (``m`` bands), design ``A = [Y_m^lr, 1]`` (LR pixels x ``m+1``).
2. For every HSI band ``i`` a synthetic "PAN": coefficients ``x_i = argmin_{x >= 0} || A x - H_i ||^2``
   (``synthesis="nnls"``, the toolbox's mode 3: ``quadprog`` with lower bound 0 on every coefficient, the constant
   included), or unconstrained least squares (``"ls"``, mode 2), or the most correlated MSI band with no constant
   (``"select"``, mode 1: Pearson correlation over the LR pixels, as GSA's band groups).
3. ``P_i = [Y_m, 1] x_i`` (HR) and ``P_i^lr = A x_i`` (LR, the "smoothed" PAN of SFIM: the MSI brought through the
   HSI's degradation), and ``Out_i = P_i * NN(H_i) / NN(P_i^lr)`` with ``NN`` the nearest-neighbour upsampling
   by ``r`` (MATLAB ``imresize(., r, 'nearest')``: every LR pixel fills its ``r x r`` block).

Choices where hsfuse differs from the MATLAB code, and why:

* The MSI is degraded with the physics' own blur + decimation (``degrade="physics"``, the known PSF and decimation
  phase) instead of ``imresize(..., 'bilinear')`` (whose antialiasing kernel is not the sensor's PSF);
  ``degrade="block_mean"`` averages disjoint ``r x r`` blocks (the toolbox's commented-out "original implementation
  (mean filtering)", and the PSF-free choice). This is the same choice as :mod:`hsfuse.methods.gsa`.
* The nearest-neighbour upsampling is kept (it is exact block replication for an integer ratio, as MATLAB's);
  ``NN(H_i) / NN(P_i^lr) = NN(H_i / P_i^lr)`` is computed on the LR grid, then replicated (same numbers, ``r^2``
  fewer divisions).
* The non-negative least squares is solved by the Lawson-Hanson active-set method on the normal equations
  (``A^T A``, ``A^T H``; float64) instead of ``quadprog``'s interior point: the same minimiser where it is unique
  (MATLAB's result agrees with it to the interior point's tolerance); the normal equations are what the
  large-scene engine streams.
* Where the synthetic LR PAN is exactly zero the MATLAB code divides by zero (``Inf``/``NaN``); here such pixels
  take ``Out_i = NN(H_i)`` (the upsampled HSI band, unmodulated).
* Data are processed in float64 (MATLAB's doubles) and returned in the input's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..errors import InputError
from ..physics import FusionObservation
from ..types import FusionMeasurement
from .chunking import Chunked, State, StatsPass, Tile, select
from .gsa import MsiDegradation, degrade_msi
from .options import MethodOptions, option

__all__ = ["fuse_sfim", "SfimOptions", "SFIM_CHUNKED", "Synthesis", "nnls_gram", "synthesis_coefficients",
           "synthesis_partial", "upsample_nearest"]

#: how each HSI band's synthetic PAN is made from the MSI: non-negative LS (toolbox mode 3), LS (2), band selection (1)
Synthesis = Literal["nnls", "ls", "select"]
_SYNTHESES = ("nnls", "ls", "select")


@dataclass(frozen=True)
class SfimOptions(MethodOptions):
    """Options of :func:`fuse_sfim` (defaults: ``SFIM.m``'s mode 3; hsfuse's degradation, see the module docstring)."""

    synthesis: Synthesis = option("nnls", "synthetic PAN per HSI band: nnls (non-negative least squares on the MSI "
                                  "bands and a constant, SFIM.m mode 3), ls (least squares, mode 2) or select "
                                  "(the most correlated MSI band, mode 1)")
    degrade: MsiDegradation = option("physics", "how the MSI is brought to the HSI grid: physics (the known PSF "
                                     "and decimation phase) or block_mean (mean of r x r blocks, PSF-free)")


def upsample_nearest(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """Block replication ``(N, C, h, w) -> (N, C, r h, r w)`` (MATLAB ``imresize(x, r, 'nearest')``, integer ``r``)."""
    return x.repeat_interleave(ratio, dim=-2).repeat_interleave(ratio, dim=-1)


def nnls_gram(gram: np.ndarray, rhs: np.ndarray, *, max_iter: int | None = None) -> np.ndarray:
    """``argmin_{x >= 0} x^T G x - 2 b^T x`` (= non-negative least squares ``min ||A x - y||`` with ``G = A^T A``,
    ``b = A^T y``) by the Lawson-Hanson active-set method, for every column of ``rhs`` ``(k, p)`` -> ``(k, p)``.

    Sub-problems are solved by least squares on the passive set (a rank-deficient ``G`` is fine).
    """
    gram = np.asarray(gram, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64).reshape(gram.shape[0], -1)
    k = gram.shape[0]
    max_iter = 30 * k if max_iter is None else max_iter
    scale = max(float(np.abs(gram).max()), np.finfo(float).tiny)
    tol = 1e-12 * scale * max(1.0, float(np.abs(rhs).max()) / scale)
    out = np.zeros_like(rhs)

    def solve(passive: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = np.zeros(k)
        idx = np.flatnonzero(passive)
        if idx.size:
            s[idx] = np.linalg.lstsq(gram[np.ix_(idx, idx)], b[idx], rcond=None)[0]
        return s

    for c in range(rhs.shape[1]):
        b = rhs[:, c]
        x = np.zeros(k)
        passive = np.zeros(k, dtype=bool)
        w = b - gram @ x
        for _ in range(max_iter):
            if passive.all() or w[~passive].max() <= tol:
                break
            passive[np.argmax(np.where(passive, -np.inf, w))] = True
            for _ in range(max_iter):
                s = solve(passive, b)
                if (s[passive] > 0).all():
                    x = s
                    break
                bad = passive & (s <= 0)
                alpha = np.min(x[bad] / (x[bad] - s[bad]))
                x = x + alpha * (s - x)
                passive &= x > 1e-15 * max(1.0, np.abs(x).max())
                x[~passive] = 0.0
            w = b - gram @ x
        out[:, c] = x
    return out


def synthesis_coefficients(gram: torch.Tensor, cross: torch.Tensor, synthesis: Synthesis) -> torch.Tensor:
    """The ``(m + 1, L)`` coefficients of the synthetic PANs from the normal equations of ``A = [Y_m^lr, 1]``:
    ``gram = A^T A`` ``(m+1, m+1)`` and ``cross = A^T H`` ``(m+1, L)`` (float64). ``"ls"``: minimum-norm least
    squares (MATLAB's ``(A'A) \\ A'`` on a full-rank ``A``); ``"nnls"``: :func:`nnls_gram`."""
    if synthesis == "ls":
        return torch.linalg.lstsq(gram.cpu(), cross.cpu(), driver="gelsd").solution.to(cross.device)
    if synthesis == "nnls":
        x = nnls_gram(gram.detach().cpu().numpy(), cross.detach().cpu().numpy())
        return torch.from_numpy(x).to(device=cross.device, dtype=torch.float64)
    raise InputError(f"synthesis must be one of {_SYNTHESES}, got {synthesis!r}")


def _groups_from_sums(n: torch.Tensor, gram: torch.Tensor, cross: torch.Tensor, sq_h: torch.Tensor) -> torch.Tensor:
    """Most correlated MSI band per HSI band, from the sums in ``gram``/``cross`` (last row: the constant) -> (L,)."""
    mean_p, mean_h = gram[-1, :-1] / n, cross[-1] / n
    cov = cross[:-1] / n - torch.outer(mean_p, mean_h)
    var_p = (torch.diagonal(gram)[:-1] / n - mean_p ** 2).clamp_min(0)
    var_h = (sq_h / n - mean_h ** 2).clamp_min(0)
    corr = cov / torch.sqrt(var_p[:, None] * var_h[None, :])
    return torch.nan_to_num(corr, nan=-2.0, posinf=-2.0, neginf=-2.0).argmax(dim=0)


def _design_sums(hs: torch.Tensor, ms_lr: torch.Tensor) -> State:
    """``hs (L, n)``, ``ms_lr (m, n)`` float64 -> the sums the coefficients need."""
    a = torch.cat([ms_lr, torch.ones_like(ms_lr[:1])])
    return {"n": torch.tensor(float(hs.shape[1]), dtype=torch.float64), "gram": a @ a.T, "cross": a @ hs.T,
            "sq_h": (hs * hs).sum(1)}


def _coefficients(sums: State, synthesis: Synthesis, m: int) -> torch.Tensor:
    """``(m + 1, L)`` synthesis coefficients (``"select"``: a one-hot column per HSI band, no constant)."""
    if synthesis == "select":
        groups = _groups_from_sums(sums["n"], sums["gram"], sums["cross"], sums["sq_h"])
        x = torch.zeros(m + 1, groups.numel(), dtype=torch.float64, device=sums["cross"].device)
        x[groups, torch.arange(groups.numel())] = 1.0
        return x
    return synthesis_coefficients(sums["gram"], sums["cross"], synthesis)


def _combine(ms: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[ms, 1] x``: ``ms (m, H, W)``, ``x (m + 1, L)`` -> ``(L, H, W)``."""
    return torch.einsum("ml,mhw->lhw", x[:-1], ms) + x[-1, :, None, None]


def _modulate(hs: torch.Tensor, ms: torch.Tensor, ms_lr: torch.Tensor, x: torch.Tensor, r: int) -> torch.Tensor:
    """``P * NN(H / P_lr)`` for one image: ``hs (L, h, w)``, ``ms (m, H, W)``, ``ms_lr (m, h, w)``."""
    p_lr = _combine(ms_lr, x)
    ratio = torch.where(p_lr != 0, hs / torch.where(p_lr != 0, p_lr, torch.ones_like(p_lr)), torch.nan)
    up = upsample_nearest(ratio[None], r)[0]
    p = _combine(ms, x)
    # where P_lr == 0 (MATLAB: Inf/NaN) keep the upsampled HSI band
    return torch.where(torch.isnan(up), upsample_nearest(hs[None], r)[0], p * up)


def fuse_sfim(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    synthesis: Synthesis = "nnls",
    degrade: MsiDegradation = "physics",
) -> torch.Tensor:
    """SFIM-HS: every HSI band modulated by the ratio of a synthetic HR PAN to its LR counterpart.

    ``Out_i = P_i * NN(H_i) / NN(P_i^lr)``, ``P_i = [Y_m, 1] x_i``, ``P_i^lr = [S B Y_m, 1] x_i`` with ``x_i`` the
    (non-negative) regression of HSI band ``i`` on the degraded MSI (module docstring). Uses the ratio, decimation
    offset and (with ``degrade="physics"``) the PSF of ``physics``; the SRF is not used.

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: the observation model (ratio, offset, PSF).
        synthesis: ``"nnls"`` (toolbox default), ``"ls"`` or ``"select"``.
        degrade: how the MSI is brought to the HSI grid: ``"physics"`` or ``"block_mean"``.

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (computed in float64).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.rand(2, 6)))
        >>> tuple(fuse_sfim(obs.A(torch.rand(1, 6, 10, 8)), obs).shape)
        (1, 6, 10, 8)
    """
    hsi, msi = physics.measurement_tensors(y)
    if synthesis not in _SYNTHESES:
        raise InputError(f"synthesis must be one of {_SYNTHESES}, got {synthesis!r}")
    if degrade not in ("physics", "block_mean"):
        raise InputError(f"degrade must be 'physics' or 'block_mean', got {degrade!r}")
    hs = hsi.detach().to(torch.float64)
    ms = msi.detach().to(torch.float64)
    r = physics.ratio
    ms_lr = degrade_msi(ms, physics, degrade=degrade)
    out = []
    for n in range(hs.shape[0]):
        x = _coefficients(_design_sums(hs[n].flatten(1), ms_lr[n].flatten(1)), synthesis, ms.shape[1])
        out.append(_modulate(hs[n], ms[n], ms_lr[n], x, r))
    return torch.stack(out).to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# One exact streaming pass on the LR grid: the normal equations A^T A, A^T H of the regression (and the sums of
# squares of the HSI bands, for the correlations of synthesis="select"); finish solves for the coefficients. The
# apply is local: the tile's degraded MSI (halo: the PSF's reach), the LR ratio H / P_lr on the core, block
# replication, times the HR synthetic PAN. Tiles of a circular PSF wrap their halo around the image, as the whole
# image does; so the result equals the whole-image one up to summation order.


def synthesis_partial(tile: Tile, physics: FusionObservation, degrade: MsiDegradation) -> State:
    """The regression sums of one tile's core (the MSI degraded to the LR grid against the HSI), over the LR pixels
    whose footprint is usable: the streamed statistics of SFIM's and MTF-GLP-HS's synthesis."""
    ms = tile.msi.to(torch.float64)
    k = physics.spatial.psf.shape[-1] if degrade == "physics" else tile.ratio
    keep = tile.valid_lr_core(k, physics.spatial.offset if degrade == "physics" else None)
    ms_lr = select(tile.lr_core(degrade_msi(ms, physics, degrade=degrade))[0].flatten(1), keep)
    hs = select(tile.lr_core(tile.hsi.to(torch.float64))[0].flatten(1), keep)
    return _design_sums(hs, ms_lr)


def _pass(tile: Tile, physics: FusionObservation, options: SfimOptions, state: State) -> State:
    return synthesis_partial(tile, physics, options.degrade)


def _finish(t: State, physics: FusionObservation, options: SfimOptions, state: State) -> State:
    return {**state, "x": _coefficients(t, options.synthesis, t["gram"].shape[0] - 1)}


def _apply(tile: Tile, physics: FusionObservation, options: SfimOptions, state: State) -> torch.Tensor:
    ms = tile.msi.to(torch.float64)
    ms_lr = tile.lr_core(degrade_msi(ms, physics, degrade=options.degrade))[0]
    hs = tile.lr_core(tile.hsi.to(torch.float64))[0]
    out = _modulate(hs, tile.hr_core(ms)[0], ms_lr, state["x"], tile.ratio)
    return out[None].to(tile.hsi.dtype)


def _msi_halo(ratio: int, physics: FusionObservation, options: SfimOptions) -> int:
    """LR halo the tile's degraded MSI needs: the PSF's reach (none for block means)."""
    if options.degrade == "block_mean":
        return 0
    return -(-(physics.spatial.psf.shape[-1] // 2) // ratio) + 1


def _wrap(physics: FusionObservation, options: SfimOptions) -> bool:
    return options.degrade == "physics" and physics.spatial.boundary == "circular"


#: chunked plan: one exact streaming pass (the regression's normal equations), then a local apply
SFIM_CHUNKED = Chunked(
    passes=(StatsPass(halo=_msi_halo, partial=_pass, finish=_finish, wrap=_wrap),),
    apply_halo=_msi_halo, apply=_apply, exact=True, working_set=32.0, apply_wrap=_wrap)
