"""Quality of a fused image when no high-resolution reference exists (real HSI-MSI pairs).

* QNR-style distortions (Alparone, Aiazzi, Baronti, Garzelli, Nencini, Selva, "Multispectral and panchromatic
  data fusion assessment without reference", PE&RS 74(2):193-200, 2008): :func:`d_lambda`, :func:`d_s`,
  :func:`qnr`.
* Consistency with the observation model: :func:`consistency` degrades the fused image with a (known or
  estimated) :class:`~hsfuse.physics.FusionObservation` and compares it with both inputs.

Layout: fused ``(N, L, H, W)``, low-resolution HSI ``(N, L, h, w)``, MSI ``(N, m, H, W)`` with ``H = r h``,
``W = r w``; ``(C, H, W)`` inputs are one image. Every function returns float64 values per image, shape ``(N,)``.

The Q index here is computed on non-overlapping ``S x S`` blocks and averaged, as in the QNR paper and
Vivone's pansharpening toolbox (``D_lambda.m``/``D_s.m``: ``blockproc`` with ``S = 32``); at the low
resolution the block is ``S / r`` so that both compare the same ground area (the paper's option). Flat blocks
follow ``img_qi.m``'s rules (see :func:`~hsfuse.metrics.functional.uiqi`) instead of the toolbox's NaN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._checks import check_ratio
from ..errors import InputError
from ..types import FusionMeasurement, infer_ratio
from . import functional as fm

__all__ = ["consistency", "d_lambda", "d_s", "qnr"]


def _q_pairs(a: torch.Tensor, b: torch.Tensor, block: int) -> torch.Tensor:
    """Mean blockwise Q between every band of ``a`` ``(N, A, H, W)`` and every band of ``b`` ``(N, B, H, W)``.

    Non-overlapping ``block x block`` blocks (``H``, ``W`` multiples of ``block``); returns ``(N, A, B)``.
    """
    N, _, H, W = a.shape
    if H % block or W % block:
        raise InputError(
            f"the {H}x{W} image is not a whole number of {block}x{block} Q blocks; crop it to a multiple of "
            f"{block} or choose a q_block that divides both sizes"
        )
    P = block * block

    def blocks(t: torch.Tensor) -> torch.Tensor:  # (N, C, nb, P)
        t = t.reshape(N, t.shape[1], H // block, block, W // block, block).permute(0, 1, 2, 4, 3, 5)
        return t.reshape(N, t.shape[1], -1, P)

    xa, xb = blocks(a), blocks(b)
    ma, mb = xa.mean(dim=-1), xb.mean(dim=-1)  # (N, C, nb)
    flat_a = xa.amax(dim=-1) == xa.amin(dim=-1)
    flat_b = xb.amax(dim=-1) == xb.amin(dim=-1)
    ca = torch.where(flat_a[..., None], 0.0, xa - ma[..., None])
    cb = torch.where(flat_b[..., None], 0.0, xb - mb[..., None])
    va, vb = (ca * ca).mean(dim=-1), (cb * cb).mean(dim=-1)  # (N, C, nb)
    cov = torch.einsum("nakp,nbkp->nkab", ca, cb) / P  # (N, nb, A, B)
    q = fm._q_from_moments(
        ma.transpose(1, 2)[..., :, None],
        mb.transpose(1, 2)[..., None, :],
        va.transpose(1, 2)[..., :, None],
        vb.transpose(1, 2)[..., None, :],
        cov,
    )
    return q.mean(dim=1)


def _low_block(q_block: Any, ratio: int) -> tuple[int, int]:
    S = fm._positive_int(q_block, "q_block", minimum=2)
    if S % ratio or S // ratio < 2:
        raise InputError(
            f"q_block={S} must be a multiple of the ratio {ratio} with q_block / ratio >= 2 (the low-resolution "
            "block covers the same ground area); e.g. q_block=32 for ratios 2, 4, 8, 16"
        )
    return S, S // ratio


def _exponent(value: Any, name: str) -> float:
    return fm._positive_float(value, name)


def d_lambda(fused: Any, hsi_lr: Any, *, q_block: int = 32, p: float = 1.0) -> torch.Tensor:
    """Spectral distortion: how much fusion changed the relations between bands.

    ``D_lambda = (mean_{l != k} |Q(F_l, F_k) - Q(Y_l, Y_k)|^p)^(1/p)`` where ``F`` is the fused image, ``Y`` the
    low-resolution HSI and ``Q`` the block-averaged Wang-Bovik index (blocks ``q_block`` on ``F``,
    ``q_block / r`` on ``Y``; Alparone et al. 2008). 0 is ideal.

    Args:
        fused: ``(N, L, H, W)``; hsi_lr: ``(N, L, h, w)``; the ratio ``r = H / h`` is inferred.
        q_block: block side at the fused resolution (a multiple of ``r`` dividing ``H`` and ``W``).
        p: exponent (1 in the paper).

    Returns:
        ``(N,)`` float64. Needs at least two bands.
    """
    F_ = fm.as_image_batch(fused, "fused image")
    Y = fm.as_image_batch(hsi_lr, "low-resolution HSI")
    if F_.shape[:2] != Y.shape[:2]:
        raise InputError(f"fused {tuple(F_.shape)} and low-resolution HSI {tuple(Y.shape)} need the same N and bands")
    L = F_.shape[1]
    if L < 2:
        raise InputError("D_lambda compares pairs of bands; it needs at least 2 bands")
    r = infer_ratio(tuple(Y.shape[-2:]), tuple(F_.shape[-2:]))
    S, s = _low_block(q_block, r)
    pe = _exponent(p, "p")
    diff = (_q_pairs(F_, F_, S) - _q_pairs(Y, Y, s)).abs() ** pe
    off = ~torch.eye(L, dtype=torch.bool, device=diff.device)
    return (diff[:, off].mean(dim=1)) ** (1.0 / pe)


def d_s(
    fused: Any,
    hsi_lr: Any,
    msi: Any,
    *,
    ratio: int,
    q_block: int = 32,
    q: float = 1.0,
    msi_lr: Any = None,
) -> torch.Tensor:
    """Spatial distortion against a multi-band guide (the MSI), generalising QNR's ``D_s``.

    ``D_s = (mean_{l, j} |Q(F_l, M_j) - Q(Y_l, M~_j)|^q)^(1/q)`` over HSI bands ``l`` and MSI bands ``j``, where
    ``M`` is the MSI, ``M~`` the MSI degraded to the HSI grid and ``Y`` the low-resolution HSI; blocks
    ``q_block`` at high and ``q_block / r`` at low resolution. With one guide band (a panchromatic image) this is
    exactly Alparone et al.'s ``D_s``; averaging over all (HSI band, MSI band) pairs is our generalisation for
    HS-MS fusion (it asks that each HSI band keep, across scales, its Q with every MSI band; torchmetrics'
    ``spatial_distortion_index`` instead pairs band ``l`` with guide band ``l``). 0 is ideal.

    Args:
        fused: ``(N, L, H, W)``; hsi_lr: ``(N, L, H/r, W/r)``; msi: ``(N, m, H, W)``.
        ratio: the integer resolution ratio ``r``.
        msi_lr: the MSI on the HSI grid ``(N, m, H/r, W/r)``. Default: the mean of each ``r x r`` block of the
            MSI (an ideal box sensor). Pass an MTF-matched degradation (e.g. the estimated PSF via
            :class:`~hsfuse.physics.SpatialDegradation`) to follow Vivone's toolbox more closely.
        q_block, q: block side and exponent (32 and 1 in the paper).

    Returns:
        ``(N,)`` float64.
    """
    F_ = fm.as_image_batch(fused, "fused image")
    Y = fm.as_image_batch(hsi_lr, "low-resolution HSI")
    M = fm.as_image_batch(msi, "multispectral image")
    r = check_ratio(ratio)
    N, L, H, W = F_.shape
    if Y.shape[:2] != (N, L) or tuple(Y.shape[-2:]) != (H // r, W // r) or H % r or W % r:
        raise InputError(
            f"low-resolution HSI {tuple(Y.shape)} does not match the fused image {tuple(F_.shape)} at ratio {r} "
            f"(expected ({N}, {L}, {H // r}, {W // r}))"
        )
    if M.shape[0] != N or tuple(M.shape[-2:]) != (H, W):
        raise InputError(f"MSI {tuple(M.shape)} must have the fused image's batch and size ({N}, m, {H}, {W})")
    if msi_lr is None:
        M_lr = F.avg_pool2d(M, r)
    else:
        M_lr = fm.as_image_batch(msi_lr, "low-resolution MSI")
        if M_lr.shape != (N, M.shape[1], H // r, W // r):
            raise InputError(f"msi_lr {tuple(M_lr.shape)} must be ({N}, {M.shape[1]}, {H // r}, {W // r})")
    S, s = _low_block(q_block, r)
    qe = _exponent(q, "q")
    diff = (_q_pairs(F_, M, S) - _q_pairs(Y, M_lr.to(Y.device), s)).abs() ** qe
    return diff.mean(dim=(1, 2)) ** (1.0 / qe)


def qnr(
    fused: Any,
    hsi_lr: Any,
    msi: Any,
    *,
    ratio: int,
    q_block: int = 32,
    p: float = 1.0,
    q: float = 1.0,
    alpha: float = 1.0,
    beta: float = 1.0,
    msi_lr: Any = None,
) -> torch.Tensor:
    """Quality with no reference: ``QNR = (1 - D_lambda)^alpha (1 - D_s)^beta``; 1 is ideal.

    See :func:`d_lambda` and :func:`d_s`. Since ``Q`` lies in ``[-1, 1]`` a distortion can exceed 1; such a
    factor counts as 0 (total distortion), so QNR stays in ``[0, 1]``. The low-resolution HSI's ratio to the
    fused image must equal ``ratio``. Returns ``(N,)`` float64.
    """
    r = check_ratio(ratio)
    dl = d_lambda(fused, hsi_lr, q_block=q_block, p=p)
    ds = d_s(fused, hsi_lr, msi, ratio=r, q_block=q_block, q=q, msi_lr=msi_lr)
    a, b = _exponent(alpha, "alpha"), _exponent(beta, "beta")
    return (1.0 - dl).clamp_min(0.0) ** a * (1.0 - ds).clamp_min(0.0) ** b


def consistency(fused: Any, measurement: FusionMeasurement, physics: Any) -> dict[str, torch.Tensor]:
    """Degrade ``fused`` with the observation model and compare it with both measured inputs.

    ``(Y_h^, Y_m^) = physics.A(fused)``; then RMSE, PSNR and SAM of ``Y_h^`` against the measured HSI and of
    ``Y_m^`` against the measured MSI. PSNR's peak is the measured input's maximum (over all its bands, per
    image), PSNR is per band and averaged; SAM is in degrees, zero-norm pixels excluded. An exact physics and the
    true scene give RMSE 0, SAM 0 and PSNR ``inf``.

    Args:
        fused: ``(N, L, H, W)`` (or ``(L, H, W)``).
        measurement: the :class:`~hsfuse.types.FusionMeasurement` that was fused.
        physics: a :class:`~hsfuse.physics.FusionObservation` (known or estimated), or anything whose ``A(z)``
            returns a ``FusionMeasurement``.

    Returns:
        ``{"hsi_rmse", "hsi_psnr", "hsi_sam", "msi_rmse", "msi_psnr", "msi_sam"}``, each ``(N,)`` float64.
    """
    z = fm.as_image_batch(fused, "fused image")
    if not isinstance(measurement, FusionMeasurement):
        raise InputError(f"measurement must be a FusionMeasurement (hsi, msi), got {type(measurement).__name__}")
    if not callable(getattr(physics, "A", None)):
        raise InputError(f"physics must be a FusionObservation (an object with A(z)), got {type(physics).__name__}")
    with torch.no_grad():
        pred = physics.A(z)
    if not isinstance(pred, FusionMeasurement):
        raise InputError(f"physics.A must return a FusionMeasurement, got {type(pred).__name__}")
    out: dict[str, torch.Tensor] = {}
    for branch in ("hsi", "msi"):
        meas = fm.as_image_batch(getattr(measurement, branch), f"measured {branch.upper()}")
        est = getattr(pred, branch).detach().to(torch.float64)
        if est.shape != meas.shape:
            raise InputError(
                f"the degraded fused image's {branch.upper()} {tuple(est.shape)} does not match the measured "
                f"{branch.upper()} {tuple(meas.shape)}; check the physics (ratio, SRF) against the inputs"
            )
        out[f"{branch}_rmse"] = fm.rmse(meas, est)
        out[f"{branch}_psnr"] = fm.psnr(meas, est, data_range="image_max", reduction="band_mean")
        out[f"{branch}_sam"] = fm.sam(meas, est, unit="degrees", zero_pixels="exclude")
    return out
