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

No-data: every function takes ``valid``, an ``(H, W)`` or ``(N, H, W)`` boolean mask on the fused/MSI grid
(True = usable; mark a pixel usable only where both sensors saw it, e.g. the MSI's valid mask and the HSI's
valid mask repeated ``r x r``). The Q indices then average only over the ``S x S`` blocks that hold no invalid
pixel, and at the low resolution over the ``S / r`` blocks at the same block positions (the same ground);
:func:`consistency` compares only usable pixels. Values under invalid pixels never enter a result and may be
anything, NaN and inf included; a NaN or inf at a usable pixel is still an error. ``valid=None`` (the default)
uses every pixel. When the mask leaves nothing to average, :class:`InputError` is raised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int, check_ratio
from ..errors import InputError
from ..types import FusionMeasurement, infer_ratio
from . import functional as fm

__all__ = ["consistency", "d_lambda", "d_s", "qnr"]


def _check_blocks(H: int, W: int, block: int) -> None:
    if H % block or W % block:
        raise InputError(
            f"the {H}x{W} image is not a whole number of {block}x{block} Q blocks; crop it to a multiple of "
            f"{block} or choose a q_block that divides both sizes"
        )


def _q_pairs(a: torch.Tensor, b: torch.Tensor, block: int, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean blockwise Q between every band of ``a`` ``(N, A, H, W)`` and every band of ``b`` ``(N, B, H, W)``.

    Non-overlapping ``block x block`` blocks (``H``, ``W`` multiples of ``block``); returns ``(N, A, B)``. With
    ``keep`` (``(N, n_blocks)`` boolean, row-major block order, see :func:`_block_keep`) image ``n`` averages
    over its kept blocks only (at least one each).
    """
    N, _, H, W = a.shape
    _check_blocks(H, W, block)
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
    )  # (N, nb, A, B)
    if keep is None or bool(keep.all()):
        return q.mean(dim=1)
    keep = keep.to(q.device)
    return torch.stack([q[n, keep[n]].mean(dim=0) for n in range(N)])


# ----------------------------------------------------------------------------------------------------------
# No-data masks
# ----------------------------------------------------------------------------------------------------------


def _parse(x: Any, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`~hsfuse.metrics.functional.as_image_batch`, but NaN/inf are set to 0 and returned as a mask.

    Returns the ``(N, C, H, W)`` float64 batch and the ``(N, C, H, W)`` mask of its NaN/inf values (``None``
    when every value is finite); :func:`_finite_where` decides whether they are allowed.
    """
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.ndim in (3, 4):
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            bad = ~finite if t.ndim == 4 else ~finite[None]
            return fm.as_image_batch(torch.where(finite, t, torch.zeros_like(t)), name), bad
    return fm.as_image_batch(x, name), None


def _finite_where(nonfinite: torch.Tensor | None, usable: torch.Tensor | None, name: str) -> None:
    """Raise when a NaN/inf sits at a usable pixel (anywhere when ``usable`` is None, as ``check_finite``)."""
    if nonfinite is None:
        return
    if usable is None:
        count = int(nonfinite.sum())
        raise InputError(
            f"{name} contains {count} NaN/inf value(s); replace or mask them (e.g. fill no-data pixels) "
            "before fusion"
        )
    count = int((nonfinite.any(dim=1) & usable.to(nonfinite.device)).sum())
    if count:
        raise InputError(
            f"{name} contains NaN/inf at {count} usable pixel(s); fill them or mark them False in the valid mask"
        )


def _valid_mask(
    valid: Any, n: int, hw: tuple[int, int], name: str = "valid", grid: str = "fused/MSI"
) -> torch.Tensor | None:
    """``None`` or the ``(n, H, W)`` boolean mask (an ``(H, W)`` or ``(1, H, W)`` mask is shared by all images)."""
    if valid is None:
        return None
    if isinstance(valid, torch.Tensor):
        m = valid.detach()
    else:
        try:
            m = torch.from_numpy(np.array(valid))
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a boolean mask (True = usable pixel), got {type(valid).__name__}") from None
    H, W = hw
    if m.dtype != torch.bool:
        raise InputError(f"{name} must be a boolean mask (True = usable pixel), got dtype {m.dtype}")
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or tuple(m.shape[1:]) != (H, W) or m.shape[0] not in (1, n):
        raise InputError(
            f"{name} must be an ({H}, {W}) or ({n}, {H}, {W}) boolean mask on the {grid} grid, got shape "
            f"{tuple(m.shape)}"
        )
    return m.expand(n, H, W)


def _block_all(mask: torch.Tensor, block: int) -> torch.Tensor:
    """``(N, H, W)`` boolean -> ``(N, H / block, W / block)``: True where the whole block is True."""
    N, H, W = mask.shape
    return mask.reshape(N, H // block, block, W // block, block).all(dim=4).all(dim=2)


def _block_keep(valid: torch.Tensor | None, block: int, what: str) -> torch.Tensor | None:
    """``(N, n_blocks)``: the ``block x block`` Q blocks holding no invalid pixel, in :func:`_q_pairs` order."""
    if valid is None:
        return None
    N, H, W = valid.shape
    _check_blocks(H, W, block)
    keep = _block_all(valid, block).reshape(N, -1)
    empty = (~keep.any(dim=1)).nonzero()
    if empty.numel():
        raise InputError(
            f"valid leaves no whole {block}x{block} Q block of image {int(empty[0, 0])} free of invalid pixels, so "
            f"{what} is undefined there; use a smaller q_block or a larger valid area"
        )
    return keep


def _low_block(q_block: Any, ratio: int) -> tuple[int, int]:
    S = check_positive_int(q_block, "q_block", minimum=2)
    if S % ratio or S // ratio < 2:
        raise InputError(
            f"q_block={S} must be a multiple of the ratio {ratio} with q_block / ratio >= 2 (the low-resolution "
            "block covers the same ground area); e.g. q_block=32 for ratios 2, 4, 8, 16"
        )
    return S, S // ratio


def _exponent(value: Any, name: str) -> float:
    return fm._positive_float(value, name)


def d_lambda(fused: Any, hsi_lr: Any, *, q_block: int = 32, p: float = 1.0, valid: Any = None) -> torch.Tensor:
    """Spectral distortion: how much fusion changed the relations between bands.

    ``D_lambda = (mean_{l != k} |Q(F_l, F_k) - Q(Y_l, Y_k)|^p)^(1/p)`` where ``F`` is the fused image, ``Y`` the
    low-resolution HSI and ``Q`` the block-averaged Wang-Bovik index (blocks ``q_block`` on ``F``,
    ``q_block / r`` on ``Y``; Alparone et al. 2008). 0 is ideal.

    Args:
        fused: ``(N, L, H, W)``; hsi_lr: ``(N, L, h, w)``; the ratio ``r = H / h`` is inferred.
        q_block: block side at the fused resolution (a multiple of ``r`` dividing ``H`` and ``W``).
        p: exponent (1 in the paper).
        valid: ``(H, W)`` or ``(N, H, W)`` boolean, True = usable (module docstring): both ``Q`` averages run
            over the same block positions, those whose ``q_block`` block on the fused grid is fully usable.

    Returns:
        ``(N,)`` float64. Needs at least two bands.
    """
    F_, bad_f = _parse(fused, "fused image")
    Y, bad_y = _parse(hsi_lr, "low-resolution HSI")
    if F_.shape[:2] != Y.shape[:2]:
        raise InputError(f"fused {tuple(F_.shape)} and low-resolution HSI {tuple(Y.shape)} need the same N and bands")
    L = F_.shape[1]
    if L < 2:
        raise InputError("D_lambda compares pairs of bands; it needs at least 2 bands")
    r = infer_ratio(tuple(Y.shape[-2:]), tuple(F_.shape[-2:]))
    S, s = _low_block(q_block, r)
    pe = _exponent(p, "p")
    mask = _valid_mask(valid, F_.shape[0], tuple(F_.shape[-2:]))
    _finite_where(bad_f, mask, "fused image")
    _finite_where(bad_y, None if mask is None else _block_all(mask, r), "low-resolution HSI")
    keep = _block_keep(mask, S, "D_lambda")
    diff = (_q_pairs(F_, F_, S, keep) - _q_pairs(Y, Y, s, keep)).abs() ** pe
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
    valid: Any = None,
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
        valid: ``(H, W)`` or ``(N, H, W)`` boolean, True = usable (module docstring): both ``Q`` averages run
            over the block positions whose ``q_block`` block on the fused grid is fully usable (the default
            ``M~`` of such a block only sees usable MSI pixels).

    Returns:
        ``(N,)`` float64.
    """
    F_, bad_f = _parse(fused, "fused image")
    Y, bad_y = _parse(hsi_lr, "low-resolution HSI")
    M, bad_m = _parse(msi, "multispectral image")
    r = check_ratio(ratio)
    N, L, H, W = F_.shape
    if Y.shape[:2] != (N, L) or tuple(Y.shape[-2:]) != (H // r, W // r) or H % r or W % r:
        raise InputError(
            f"low-resolution HSI {tuple(Y.shape)} does not match the fused image {tuple(F_.shape)} at ratio {r} "
            f"(expected ({N}, {L}, {H // r}, {W // r}))"
        )
    if M.shape[0] != N or tuple(M.shape[-2:]) != (H, W):
        raise InputError(f"MSI {tuple(M.shape)} must have the fused image's batch and size ({N}, m, {H}, {W})")
    bad_ml = None
    if msi_lr is None:
        M_lr = F.avg_pool2d(M, r)
    else:
        M_lr, bad_ml = _parse(msi_lr, "low-resolution MSI")
        if M_lr.shape != (N, M.shape[1], H // r, W // r):
            raise InputError(f"msi_lr {tuple(M_lr.shape)} must be ({N}, {M.shape[1]}, {H // r}, {W // r})")
    S, s = _low_block(q_block, r)
    qe = _exponent(q, "q")
    mask = _valid_mask(valid, N, (H, W))
    low = None if mask is None else _block_all(mask, r)
    for bad, usable, name in ((bad_f, mask, "fused image"), (bad_m, mask, "multispectral image"),
                              (bad_y, low, "low-resolution HSI"), (bad_ml, low, "low-resolution MSI")):
        _finite_where(bad, usable, name)
    keep = _block_keep(mask, S, "D_s")
    diff = (_q_pairs(F_, M, S, keep) - _q_pairs(Y, M_lr.to(Y.device), s, keep)).abs() ** qe
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
    valid: Any = None,
) -> torch.Tensor:
    """Quality with no reference: ``QNR = (1 - D_lambda)^alpha (1 - D_s)^beta``; 1 is ideal.

    See :func:`d_lambda` and :func:`d_s`. Since ``Q`` lies in ``[-1, 1]`` a distortion can exceed 1; such a
    factor counts as 0 (total distortion), so QNR stays in ``[0, 1]``. The low-resolution HSI's ratio to the
    fused image must equal ``ratio``. ``valid`` (no-data mask, module docstring) is passed to both. Returns
    ``(N,)`` float64.
    """
    r = check_ratio(ratio)
    dl = d_lambda(fused, hsi_lr, q_block=q_block, p=p, valid=valid)
    ds = d_s(fused, hsi_lr, msi, ratio=r, q_block=q_block, q=q, msi_lr=msi_lr, valid=valid)
    a, b = _exponent(alpha, "alpha"), _exponent(beta, "beta")
    return (1.0 - dl).clamp_min(0.0) ** a * (1.0 - ds).clamp_min(0.0) ** b


def _branch_scores(meas: torch.Tensor, est: torch.Tensor, usable: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """RMSE, PSNR (peak: the measured maximum) and SAM of one branch, over the usable pixels only."""
    if usable is None or bool(usable.all()):
        return {
            "rmse": fm.rmse(meas, est),
            "psnr": fm.psnr(meas, est, data_range="image_max", reduction="band_mean"),
            "sam": fm.sam(meas, est, unit="degrees", zero_pixels="exclude"),
        }
    parts = []
    for n in range(meas.shape[0]):
        m = usable[n].to(meas.device)
        a, b = meas[n][:, m][None, :, None, :], est[n][:, m][None, :, None, :]  # (1, C, 1, P)
        parts.append(_branch_scores(a, b, None))
    return {k: torch.cat([d[k] for d in parts]) for k in parts[0]}


def _hsi_usable(
    mask: torch.Tensor | None, hsi_valid: Any, hsi_shape: tuple[int, ...], hw: tuple[int, int]
) -> torch.Tensor | None:
    """The usable low-resolution pixels: ``hsi_valid`` when given, else the fully usable ``r x r`` blocks."""
    N, _, h, w = hsi_shape
    if hsi_valid is not None:
        return _valid_mask(hsi_valid, N, (h, w), "hsi_valid", "HSI")
    if mask is None:
        return None
    r = infer_ratio((h, w), hw)
    return _block_all(mask, r)


def consistency(
    fused: Any,
    measurement: FusionMeasurement,
    physics: Any,
    *,
    valid: Any = None,
    hsi_valid: Any = None,
) -> dict[str, torch.Tensor]:
    """Degrade ``fused`` with the observation model and compare it with both measured inputs.

    ``(Y_h^, Y_m^) = physics.A(fused)``; then RMSE, PSNR and SAM of ``Y_h^`` against the measured HSI and of
    ``Y_m^`` against the measured MSI. PSNR's peak is the measured input's maximum (over all its bands, per
    image), PSNR is per band and averaged; SAM is in degrees, zero-norm pixels excluded. An exact physics and the
    true scene give RMSE 0, SAM 0 and PSNR ``inf``.

    No-data: with ``valid`` (``(H, W)`` or ``(N, H, W)`` boolean on the fused/MSI grid, True = usable) the
    MSI-side scores use the usable pixels only (the MSI model ``R z`` is per pixel, so they see no invalid
    value) and the HSI-side scores use the low-resolution pixels whose ``r x r`` block of high-resolution
    pixels is fully usable; the peak is the maximum over those pixels. That HSI rule ignores the PSF: a
    low-resolution pixel next to the no-data region also averages, through the PSF's tails (and the offset), a
    few invalid pixels, which this function cannot see, since ``physics`` is only known through ``A``. Invalid
    fused pixels are set to 0 where they are NaN/inf before ``A`` is applied, so their values still enter
    those neighbours. For an exact footprint pass ``hsi_valid`` (``(h, w)`` or ``(N, h, w)``, on the HSI
    grid), e.g. ``hsfuse.estimation.lowres_valid(valid, ratio=r, kernel_size=k, offset=o)``; it replaces the
    ``r x r`` rule (and may be given without ``valid``).

    Args:
        fused: ``(N, L, H, W)`` (or ``(L, H, W)``).
        measurement: the :class:`~hsfuse.types.FusionMeasurement` that was fused.
        physics: a :class:`~hsfuse.physics.FusionObservation` (known or estimated), or anything whose ``A(z)``
            returns a ``FusionMeasurement``.
        valid, hsi_valid: the no-data masks above (default: every pixel usable).

    Returns:
        ``{"hsi_rmse", "hsi_psnr", "hsi_sam", "msi_rmse", "msi_psnr", "msi_sam"}``, each ``(N,)`` float64.
    """
    z, bad_z = _parse(fused, "fused image")
    if not isinstance(measurement, FusionMeasurement):
        raise InputError(f"measurement must be a FusionMeasurement (hsi, msi), got {type(measurement).__name__}")
    if not callable(getattr(physics, "A", None)):
        raise InputError(f"physics must be a FusionObservation (an object with A(z)), got {type(physics).__name__}")
    N, _, H, W = z.shape
    mask = _valid_mask(valid, N, (H, W))
    if mask is not None and not bool(mask.reshape(N, -1).any(dim=1).all()):
        raise InputError("valid marks no pixel of some image as usable; there is nothing to compare")
    _finite_where(bad_z, mask, "fused image")
    with torch.no_grad():
        pred = physics.A(z)
    if not isinstance(pred, FusionMeasurement):
        raise InputError(f"physics.A must return a FusionMeasurement, got {type(pred).__name__}")
    out: dict[str, torch.Tensor] = {}
    for branch in ("hsi", "msi"):
        meas, bad = _parse(getattr(measurement, branch), f"measured {branch.upper()}")
        est = getattr(pred, branch).detach().to(torch.float64)
        if est.shape != meas.shape:
            raise InputError(
                f"the degraded fused image's {branch.upper()} {tuple(est.shape)} does not match the measured "
                f"{branch.upper()} {tuple(meas.shape)}; check the physics (ratio, SRF) against the inputs"
            )
        usable = mask
        if branch == "hsi":
            usable = _hsi_usable(mask, hsi_valid, tuple(meas.shape), (H, W))
        _finite_where(bad, usable, f"measured {branch.upper()}")
        if usable is not None:
            empty = (~usable.reshape(N, -1).any(dim=1)).nonzero()
            if empty.numel():
                raise InputError(
                    f"no {branch.upper()} pixel of image {int(empty[0, 0])} is usable under the valid mask"
                    + (" (a low-resolution pixel needs its whole r x r block valid)" if branch == "hsi" else "")
                )
        for key, value in _branch_scores(meas, est.to(meas.device), usable).items():
            out[f"{branch}_{key}"] = value
    return out

