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

There is no chunked plan: the toolbox's circular interpolator wraps around the image while the physics' low-pass
may not (``reflect``), so one tile halo rule cannot reproduce the whole image at its border (see the report of
issue 17); the gains themselves would stream exactly.
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
from .options import MethodOptions, option
from .sfim import Synthesis, _coefficients, _design_sums

__all__ = ["fuse_glp", "GlpOptions", "fir23_taps", "upsample_fir23"]

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
