"""MTF-GLP-HS: generalized Laplacian pyramid with an MTF-matched low-pass, adapted to HS + MS fusion.

Pansharpening MTF-GLP: Aiazzi, Alparone, Baronti, Garzelli, Selva, "MTF-tailored multiscale fusion of
high-resolution MS and Pan imagery", PE&RS 72(5), 2006 (GLP: Aiazzi et al., IEEE TGRS 40(10), 2002). HS-MS
adaptation ("hypersharpening", Selva et al., IEEE JSTARS 8(6), 2015) as in the Yokoya HSMSFusionToolbox /
hif-benchmarking ``MTF_GLP_wrapper.m`` + ``MTF_GLP.m`` + ``interp23tapGeneral.m`` (Yokoya, Grohnfeldt, Chanussot,
IEEE GRSM 5(2), 2017):

1. Degrade the MSI to the HSI grid, ``A = [Y_m^lr, 1]``; per HSI band ``j`` a synthetic PAN ``P_j = [Y_m, 1] x_j``
   with ``x_j`` the least squares of ``H_j`` on ``A`` (``synthesis="ls"``, the wrapper's mode 2; ``"nnls"`` and
   ``"select"`` as in :mod:`hsfuse.methods.sfim`).
2. ``HSU_j = U23(H_j)``: the 23-tap interpolator (``r * fir1(44, 1/r)``: a 45-tap Hamming-windowed sinc with cut-off
   ``1/r`` and unit DC gain, times ``r``), applied separably to the zero-filled HR image with circular borders.
3. The PAN's low-pass ``P_j^LP = U23(S G P_j)``: ``G`` the low-pass matched to the HSI sensor, ``S`` decimation.
4. One gain per band over the image, ``g_j = cov(HSU_j, P_j^LP) / var(P_j^LP)``, and
   ``Out_j = HSU_j + g_j (P_j - P_j^LP)``, clipped to ``[0, 2^sqrt(max H)]`` (the wrapper's ``th_value = 1``,
   ``L = max(hs(:))^0.5``).

Choices where hsfuse differs from the MATLAB code, and why:

* The MSI of the regression is degraded with the physics' blur + decimation (``degrade="physics"``) or block means
  (``"block_mean"``) instead of ``imresize(..., 'bilinear')``, as in :mod:`hsfuse.methods.gsa`.
* The low-pass ``G`` is the physics' PSF at its decimation phase (``lowpass="physics"``: the HSI sensor's MTF is
  what MTF-GLP matches, and hsfuse knows it) instead of ``gaussian_down_sample`` (a fixed Gaussian of FWHM ``r``
  summed over block-aligned ``2r`` windows, truncated to the block at the image border); ``lowpass="gaussian"``
  uses that Gaussian (``sigma = r / 2.35482``, ``2r + 1`` taps, centred, the physics' border and phase).
* The toolbox places LR pixel ``i`` at HR pixel ``r/2 + r i`` (1-based) and, for even ratios, averages the results
  of two phases (``r/2`` and ``r/2 + 1``), because its simulations' phase is unknown to it. hsfuse uses the one
  phase of the physics (HR pixel ``offset + r i``, 0-based) for the 23-tap interpolator and for the decimation.
* Per-band work is vectorised by linearity: the low-pass and interpolation are applied to the ``m`` MSI bands and
  a constant plane (``P_j^LP = sum_i x_ij U23(S G Y_m,i) + x_0j U23(1)``), and the gains are formed from their
  covariances, instead of filtering ``L`` synthetic PANs one by one (the same numbers up to rounding; float64).
* ``clip`` can be ``"nonnegative"`` or ``"none"``; the default ``"toolbox"`` keeps the wrapper's bounds.

Large scenes: :data:`GLP_CHUNKED` streams the regressions, the clip bound and the gains exactly and filters each chunk
locally (see the comment above it); the result equals the whole-image one up to summation order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..physics import FusionObservation
from ..physics.spatial import blur, decimate, gaussian_psf
from ..types import FusionMeasurement
from .gsa import MsiDegradation, degrade_msi
from .chunking import Chunked, State, StatsPass, Tile, select
from .options import MethodOptions, option
from .sfim import Synthesis, _coefficients, _design_sums, synthesis_partial

__all__ = ["fuse_glp", "GlpOptions", "fir23_taps", "upsample_fir23", "GLP_CHUNKED"]

GlpLowpass = Literal["physics", "gaussian"]
GlpClip = Literal["toolbox", "nonnegative", "none"]

#: order of the toolbox's interpolation filter (``fir1(44, 1/r)``: 45 taps)
FIR_ORDER = 44


@dataclass(frozen=True)
class GlpOptions(MethodOptions):
    """Options of :func:`fuse_glp` (defaults: ``MTF_GLP_wrapper.m``'s mode 2 and clipping; hsfuse's low-pass)."""

    synthesis: Synthesis = option("ls", "synthetic PAN per HSI band: ls (least squares on the MSI bands and a "
                                  "constant, MTF_GLP_wrapper.m mode 2), nnls (non-negative, mode 3) or select "
                                  "(the most correlated MSI band, mode 1)")
    degrade: MsiDegradation = option("physics", "how the MSI of the regression is brought to the HSI grid: "
                                     "physics (known PSF and phase) or block_mean")
    lowpass: GlpLowpass = option("physics", "low-pass of the synthetic PAN: physics (the known PSF, i.e. the HSI "
                                 "sensor's MTF) or gaussian (the toolbox's Gaussian of FWHM = ratio)")
    clip: GlpClip = option("toolbox", "output range: toolbox ([0, 2^sqrt(max HSI)]), nonnegative or none")


def fir23_taps(ratio: int, *, dtype: torch.dtype = torch.float64, device: torch.device | None = None
               ) -> torch.Tensor:
    """``r * fir1(44, 1/r)``: 45 taps of a Hamming-windowed sinc (cut-off ``1/r`` of Nyquist), DC gain ``r``."""
    n = torch.arange(FIR_ORDER + 1, dtype=torch.float64)
    centre = FIR_ORDER / 2
    cutoff = 1.0 / ratio
    window = 0.54 - 0.46 * torch.cos(2 * math.pi * n / FIR_ORDER)
    h = cutoff * torch.sinc(cutoff * (n - centre)) * window
    return (ratio * h / h.sum()).to(dtype=dtype, device=device)


def upsample_fir23(x: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """The toolbox's ``interp23tapGeneral`` on the physics grid: LR pixel ``i`` at HR pixel ``offset + r i``, zeros
    elsewhere, filtered separably with :func:`fir23_taps` and circular borders. ``(N, C, h, w) -> (N, C, r h, r w)``."""
    n, c, h, w = x.shape
    r = ratio
    if r == 1:
        return x.clone()
    taps = fir23_taps(r, dtype=x.dtype, device=x.device)
    k = taps.numel()
    half = k // 2
    p = -(-half // r) + 1
    start = r * p + half - offset  # padded LR sample p (image pixel 0) lands at r p + half; we want it at offset
    rows = torch.arange(-p, h + p, device=x.device) % h
    cols = torch.arange(-p, w + p, device=x.device) % w
    z = x.reshape(n * c, 1, h, w)[:, :, rows][:, :, :, cols]
    z = F.conv_transpose2d(z, taps.reshape(1, 1, k, 1), stride=(r, 1))[:, :, start : start + r * h]
    z = F.conv_transpose2d(z, taps.reshape(1, 1, 1, k), stride=(1, r))[:, :, :, start : start + r * w]
    return z.reshape(n, c, r * h, r * w)


def _lowpass_lr(ms: torch.Tensor, physics: FusionObservation, lowpass: GlpLowpass) -> torch.Tensor:
    """``S G Y_m``: the MSI through the low-pass at the decimation phase, ``(N, m, H, W) -> (N, m, h, w)``."""
    if lowpass == "physics":
        return degrade_msi(ms, physics, degrade="physics")
    r = physics.ratio
    kernel = gaussian_psf(2 * r + 1, sigma=r / 2.35482, dtype=ms.dtype).to(ms.device)
    return decimate(blur(ms, kernel, boundary=physics.spatial.boundary), ratio=r, offset=physics.spatial.offset)


def fuse_glp(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    synthesis: Synthesis = "ls",
    degrade: MsiDegradation = "physics",
    lowpass: GlpLowpass = "physics",
    clip: GlpClip = "toolbox",
) -> torch.Tensor:
    """MTF-GLP-HS: ``Out_j = U23(H_j) + g_j (P_j - U23(S G P_j))`` with one regression gain per band (module docstring).

    Uses the ratio, decimation offset and (with ``degrade``/``lowpass="physics"``) the PSF of ``physics``; the SRF is
    not used (the synthetic PANs are regressed).

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: the observation model (ratio, offset, PSF).
        synthesis: ``"ls"`` (toolbox default), ``"nnls"`` or ``"select"``.
        degrade: how the MSI of the regression is brought to the HSI grid: ``"physics"`` or ``"block_mean"``.
        lowpass: the PAN's low-pass: ``"physics"`` (the PSF) or ``"gaussian"`` (FWHM = ratio).
        clip: ``"toolbox"`` (``[0, 2^sqrt(max H)]``), ``"nonnegative"`` or ``"none"``.

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (computed in float64).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.rand(2, 6)))
        >>> tuple(fuse_glp(obs.A(torch.rand(1, 6, 10, 8)), obs).shape)
        (1, 6, 10, 8)
    """
    hsi, msi = physics.measurement_tensors(y)
    for name, value, allowed in (("synthesis", synthesis, ("ls", "nnls", "select")),
                                 ("degrade", degrade, ("physics", "block_mean")),
                                 ("lowpass", lowpass, ("physics", "gaussian")),
                                 ("clip", clip, ("toolbox", "nonnegative", "none"))):
        if value not in allowed:
            raise InputError(f"{name} must be one of {allowed}, got {value!r}")
    hs = hsi.detach().to(torch.float64)
    ms = msi.detach().to(torch.float64)
    r, offset = physics.ratio, physics.spatial.offset
    ms_lr = degrade_msi(ms, physics, degrade=degrade)
    lp = _lowpass_lr(ms, physics, lowpass)
    lp = torch.cat([lp, torch.ones_like(lp[:, :1])], dim=1)  # the constant plane of [Y_m, 1]
    u = upsample_fir23(lp, ratio=r, offset=offset)  # (N, m + 1, H, W): U23(S G [Y_m, 1])
    detail = torch.cat([ms, torch.ones_like(ms[:, :1])], dim=1) - u  # [Y_m, 1] - U23(S G [Y_m, 1])
    hsu = upsample_fir23(hs, ratio=r, offset=offset)  # (N, L, H, W)
    out = torch.empty_like(hsu)
    for n in range(hs.shape[0]):
        x = _coefficients(_design_sums(hs[n].flatten(1), ms_lr[n].flatten(1)), synthesis, ms.shape[1])  # (m+1, L)
        un = u[n].flatten(1)
        un = un - un.mean(dim=1, keepdim=True)
        hn = hsu[n].flatten(1)
        cov_hu = hn @ un.T  # (L, m + 1): centring one factor centres the product
        cov_uu = un @ un.T
        num = (cov_hu * x.T).sum(1)  # cov(HSU_j, P_j^LP) (times the pixel count)
        var = ((x.T @ cov_uu) * x.T).sum(1)  # var(P_j^LP)
        gains = torch.where(var > 0, num / torch.where(var > 0, var, torch.ones_like(var)), torch.zeros_like(var))
        out[n] = hsu[n] + torch.einsum("ml,mhw->lhw", x * gains[None], detail[n])
        if clip == "toolbox":
            out[n].clamp_(min=0.0, max=2.0 ** math.sqrt(max(float(hs[n].max()), 0.0)))
        elif clip == "nonnegative":
            out[n].clamp_(min=0.0)
    return out.to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Exact. Pass 1 (LR grid): the normal equations of the synthesis regression (as SFIM's plan), whose finish gives x.
# Pass 2 (LR, reduce "max"): the HSI's maximum, for clip="toolbox". Pass 3 (HR grid): the sums of HSU = U23(H),
# u = U23(S G [Y_m, 1]) and their cross products over the core (shifted by the LR means of pass 1, which only
# conditions the float64 sums), which give cov(HSU_j, P_j^LP) and var(P_j^LP), hence the gains, analytically.
# Apply: Out = HSU + (x g) ([Y_m, 1] - u) on the tile, keeping the core. The filtering is local: U23 reaches
# ceil(22 / r) + 1 LR pixels, the low-pass its PSF's half width more, so the halo GLP_HALO covers the footprint.
# U23 is circular in the whole-image code, so the tiles of pass 3 and of the apply wrap their halo around the image;
# the low-pass S G keeps the physics' boundary: with a circular physics the wrapped tile is filtered as it is, and
# otherwise each piece of the tile that is contiguous in the image (at most 3 x 3 pieces) is filtered on its own with
# the physics' boundary, so that the pixels next to the image border see that boundary, as in the whole image
# (the pieces' other edges are tile edges, whose wrong values stay in the halo). Working set (VmHWM of one apply on
# a 512 x 512 x 200 tile): 16.6 bytes per HR pixel per band with GLP_BAND_GROUP, rounded up to 24.


#: HSI bands upsampled at once on a tile (conv_transpose2d's workspace grows with the batch: 115 bytes per HR pixel
#: per band when all 200 bands of a 512 x 512 tile go at once)
GLP_BAND_GROUP = 8


def _glp_msi_halo(ratio: int, physics: FusionObservation, options: GlpOptions) -> int:
    """LR halo of ``S G Y_m`` (pass 1: the regression's degraded MSI; the low-pass of the PAN)."""
    k = max(physics.spatial.psf.shape[-1] if "physics" in (options.degrade, options.lowpass) else 1,
            2 * ratio + 1 if options.lowpass == "gaussian" else 1)
    return -(-(k // 2) // ratio) + 1


def _glp_halo(ratio: int, physics: FusionObservation, options: GlpOptions) -> int:
    """LR halo of the apply: U23's reach (``ceil(22 / r) + 1``) plus the low-pass's."""
    return -(-(FIR_ORDER // 2) // ratio) + 1 + _glp_msi_halo(ratio, physics, options)


def _glp_check(options: GlpOptions) -> None:
    for name, value, allowed in (("synthesis", options.synthesis, ("ls", "nnls", "select")),
                                 ("degrade", options.degrade, ("physics", "block_mean")),
                                 ("lowpass", options.lowpass, ("physics", "gaussian")),
                                 ("clip", options.clip, ("toolbox", "nonnegative", "none"))):
        if value not in allowed:
            raise InputError(f"{name} must be one of {allowed}, got {value!r}")


def _tile_lowpass(ms: torch.Tensor, tile: Tile, physics: FusionObservation, lowpass: GlpLowpass) -> torch.Tensor:
    """``S G Y_m`` of a tile, ``(1, m, r th, r tw) -> (1, m, th, tw)``, with the physics' boundary at the image's."""
    if physics.spatial.boundary == "circular":
        return _lowpass_lr(ms, physics, lowpass)
    r = tile.ratio
    th, tw = tile.hsi.shape[-2:]
    out = torch.zeros(*ms.shape[:2], th, tw, dtype=ms.dtype, device=ms.device)
    for a, b, c, d in tile.image_pieces():
        try:
            out[..., a:b, c:d] = _lowpass_lr(ms[..., r * a : r * b, r * c : r * d], physics, lowpass)
        except InputError:  # a piece too thin for the boundary's padding: at the tile's edge, in the halo
            pass
    return out


def _glp_pass1(tile: Tile, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    _glp_check(options)
    return synthesis_partial(tile, physics, options.degrade)  # SFIM's regression sums


def _glp_finish1(t: State, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    x = _coefficients(t, options.synthesis, t["gram"].shape[0] - 1)  # (m + 1, L)
    shift_u = torch.cat([t["gram"][-1, :-1] / t["n"], torch.ones(1, dtype=torch.float64)])
    return {**state, "x": x, "shift_h": t["cross"][-1] / t["n"], "shift_u": shift_u}


def _glp_pass_max(tile: Tile, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    hs = select(tile.lr_core(tile.hsi.to(torch.float64))[0].flatten(1), tile.valid_lr_core())
    return {"max": hs.max() if hs.numel() else torch.tensor(-math.inf, dtype=torch.float64)}


def _glp_finish_max(t: State, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    return {**state, "max": float(t["max"])}


def _glp_filtered(tile: Tile, physics: FusionObservation, options: GlpOptions
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The core's ``HSU (L, ch, cw)``, ``u = U23(S G [Y_m, 1]) (m + 1, ch, cw)`` and ``[Y_m, 1] (m + 1, ch, cw)``."""
    r, offset = tile.ratio, physics.spatial.offset
    ms = tile.msi.to(torch.float64)
    lp = _tile_lowpass(ms, tile, physics, options.lowpass)
    lp = torch.cat([lp, torch.ones_like(lp[:, :1])], dim=1)
    u = tile.hr_core(upsample_fir23(lp, ratio=r, offset=offset))[0]
    hs = tile.hsi.to(torch.float64)
    a, b, c, d = tile.core_hr
    hsu = torch.empty(hs.shape[1], b - a, d - c, dtype=torch.float64)
    for j in range(0, hs.shape[1], GLP_BAND_GROUP):  # a few bands at a time: conv_transpose2d's workspace
        hsu[j : j + GLP_BAND_GROUP] = tile.hr_core(upsample_fir23(hs[:, j : j + GLP_BAND_GROUP], ratio=r,
                                                                  offset=offset))[0]
    ms1 = tile.hr_core(torch.cat([ms, torch.ones_like(ms[:, :1])], dim=1))[0]
    return hsu, u, ms1


def _glp_pass3(tile: Tile, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    hsu, u, _ = _glp_filtered(tile, physics, options)
    keep = tile.valid_hr_core()
    h = select(hsu.flatten(1), keep) - state["shift_h"][:, None]
    v = select(u.flatten(1), keep) - state["shift_u"][:, None]
    return {"N": torch.tensor(float(h.shape[1]), dtype=torch.float64), "sum_h": h.sum(1), "sum_u": v.sum(1),
            "cross": h @ v.T, "gram": v @ v.T}


def _glp_finish3(t: State, physics: FusionObservation, options: GlpOptions, state: State) -> State:
    n = t["N"]
    cov_hu = t["cross"] - torch.outer(t["sum_h"], t["sum_u"]) / n  # (L, m + 1), times the pixel count
    cov_uu = t["gram"] - torch.outer(t["sum_u"], t["sum_u"]) / n
    x = state["x"]
    num = (cov_hu * x.T).sum(1)
    var = ((x.T @ cov_uu) * x.T).sum(1)
    gains = torch.where(var > 0, num / torch.where(var > 0, var, torch.ones_like(var)), torch.zeros_like(var))
    return {**state, "gains": gains}


def _glp_apply(tile: Tile, physics: FusionObservation, options: GlpOptions, state: State) -> torch.Tensor:
    out, u, ms1 = _glp_filtered(tile, physics, options)
    out += torch.einsum("ml,mhw->lhw", state["x"] * state["gains"][None], ms1 - u)
    if options.clip == "toolbox":
        out.clamp_(min=0.0, max=2.0 ** math.sqrt(max(state["max"], 0.0)))
    elif options.clip == "nonnegative":
        out.clamp_(min=0.0)
    return out[None].to(tile.hsi.dtype)


def _glp_wrap1(physics: FusionObservation, options: GlpOptions) -> bool:
    return physics.spatial.boundary == "circular"


def _glp_wrap(physics: FusionObservation, options: GlpOptions) -> bool:
    return True  # U23 is circular


#: chunked plan: three exact streaming passes (regression, maximum, gains), then a local apply (halo: U23 + low-pass)
GLP_CHUNKED = Chunked(
    passes=(StatsPass(halo=_glp_msi_halo, partial=_glp_pass1, finish=_glp_finish1, wrap=_glp_wrap1),
            StatsPass(halo=lambda r, physics, options: 0, partial=_glp_pass_max, finish=_glp_finish_max,
                      reduce="max"),
            StatsPass(halo=_glp_halo, partial=_glp_pass3, finish=_glp_finish3, wrap=_glp_wrap)),
    apply_halo=_glp_halo, apply=_glp_apply, exact=True, working_set=24.0, apply_wrap=_glp_wrap)
