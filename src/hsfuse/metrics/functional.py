"""Full-reference quality metrics for fused hyperspectral images, every convention an explicit option.

Layout and types
----------------
Every metric takes ``reference`` and ``estimate`` of shape ``(N, C, H, W)`` (batch, bands, rows, columns); a
``(C, H, W)`` tensor is one image (``N = 1``). Tensors or NumPy arrays of any real dtype are accepted and the
computation runs in float64, so integer (e.g. 0..255 or 16-bit DN) inputs give exact sums. Each metric returns
a float64 tensor of shape ``(N,)``: one value per image. Different shapes, NaN or infinity raise
:class:`~hsfuse.errors.InputError`.

Conventions (why the same fused image reads 39.7 dB in one paper and 29.2 dB in another) are keyword options
with no hidden defaults where the literature disagrees: PSNR peak and reduction, SSIM window and data range,
SAM unit and zero-pixel policy, ERGAS normalising mean. :mod:`hsfuse.metrics.presets` bundles them into named
presets that reproduce published code bases.

Degenerate cases never produce a silent NaN: each metric documents its policy (constant bands, zero-norm
pixels, zero band means, perfect reconstructions).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_finite, check_image_tensor, check_positive_int, check_ratio
from ..errors import InputError

__all__ = [
    "MATLAB_EPS",
    "as_image_batch",
    "cc",
    "clip",
    "crop_border",
    "ergas",
    "psnr",
    "q2n",
    "quantize_uint8",
    "quantize_uint16",
    "rmse",
    "sam",
    "ssim",
    "uiqi",
]

MATLAB_EPS = float(np.finfo(np.float64).eps)
"""MATLAB's ``eps`` (2.220446049250313e-16): the regulariser of DHSIS' ``SpectAngMapper.m`` and ``q2n.m``."""

PeakRange = float | Literal["band_max", "image_max"]


# ----------------------------------------------------------------------------------------------- input checks
def as_image_batch(x: Any, name: str) -> torch.Tensor:
    """``x`` as a float64 ``(N, C, H, W)`` tensor: a ``(C, H, W)`` input becomes ``N = 1``; NaN/inf rejected."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor or numpy array of shape (N, C, H, W), got {type(x).__name__}")
    if x.is_complex():
        raise InputError(f"{name} must be real-valued, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    elif x.ndim != 4:
        raise InputError(
            f"{name} must have shape (N, C, H, W) or (C, H, W) (bands first), got {tuple(x.shape)}; "
            "convert an H x W x B cube with Cube.to_tensor()"
        )
    x = check_image_tensor(x.to(torch.float64), name)
    check_finite(x, name)
    return x


def _pair(reference: Any, estimate: Any) -> tuple[torch.Tensor, torch.Tensor]:
    ref = as_image_batch(reference, "reference")
    est = as_image_batch(estimate, "estimate")
    if ref.shape != est.shape:
        raise InputError(
            f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape (N, C, H, W)"
        )
    return ref, est.to(ref.device)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise InputError(f"{name} must be one of {options}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------------ PSNR
def psnr(
    reference: Any,
    estimate: Any,
    *,
    data_range: PeakRange,
    reduction: Literal["band_mean", "global"] = "band_mean",
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB.

    ``band_mean``: ``mean_b 10 log10(peak_b^2 / MSE_b)`` with ``MSE_b`` the mean squared error of band ``b``
    (DHSIS ``csnr.m``, UDALN, DBIN's Python test). ``global``: ``10 log10(peak^2 / MSE)`` with one MSE over the
    whole cube (DHIF-Net ``Test.py``).

    Args:
        reference, estimate: ``(N, C, H, W)`` or ``(C, H, W)``.
        data_range: the peak: a fixed number (1.0 for [0, 1] data, 255 for 8-bit), ``"band_max"`` (each band's
            reference maximum, UDALN ``evaluation.py`` and Yokoya's ``PSNR.m``; only with ``band_mean``) or
            ``"image_max"`` (the reference maximum over all bands).
        reduction: ``"band_mean"`` or ``"global"``.

    Returns:
        ``(N,)`` float64. A perfect reconstruction (MSE 0) gives ``+inf``; with ``band_mean`` one exact band makes
        the mean ``+inf`` too. A non-positive reference peak (``band_max``/``image_max`` of an all-zero or negative
        band) raises :class:`InputError`.

    Example:
        >>> x = torch.full((1, 2, 4, 4), 0.5, dtype=torch.float64)
        >>> round(float(psnr(x, x + 0.1, data_range=1.0)[0]), 6)
        20.0
    """
    ref, est = _pair(reference, estimate)
    reduction = _choice(reduction, "reduction", ("band_mean", "global"))
    err2 = (ref - est) ** 2
    if isinstance(data_range, str):
        _choice(data_range, "data_range", ("band_max", "image_max"))
        if data_range == "band_max":
            if reduction == "global":
                raise InputError(
                    "data_range='band_max' gives one peak per band, which needs reduction='band_mean'; "
                    "use data_range='image_max' or a number with reduction='global'"
                )
            peak = ref.amax(dim=(2, 3))  # (N, C)
        else:
            peak = ref.amax(dim=(1, 2, 3))[:, None]  # (N, 1)
        bad = (peak <= 0).nonzero()
        if bad.numel():
            n, b = (int(v) for v in bad[0])
            raise InputError(
                f"PSNR peak data_range={data_range!r} is {float(peak[n, b])} (<= 0) for image {n}"
                + (f" band {b}" if data_range == "band_max" else "")
                + "; give a fixed positive data_range instead"
            )
    else:
        peak = torch.tensor([[_positive_float(data_range, "data_range")]], dtype=ref.dtype, device=ref.device)
    if reduction == "band_mean":
        mse = err2.mean(dim=(2, 3))
        return (10.0 * torch.log10(peak**2 / mse)).mean(dim=1)
    mse = err2.mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(peak[:, 0] ** 2 / mse)


# ------------------------------------------------------------------------------------------------------ SSIM
def _window_1d(window: str, size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    if window == "uniform":
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    t = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(t**2) / (2.0 * sigma**2))
    return g / g.sum()


def _separable_valid(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Filter every ``(H, W)`` plane of ``x`` ``(M, 1, H, W)`` by ``w ⊗ w`` keeping the 'valid' region."""
    k = w.numel()
    x = F.conv2d(x, w.view(1, 1, k, 1))
    return F.conv2d(x, w.view(1, 1, 1, k))


def ssim(
    reference: Any,
    estimate: Any,
    *,
    data_range: float,
    window: Literal["gaussian", "uniform"] = "gaussian",
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004) per band, averaged over bands.

    ``SSIM = ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` with local
    statistics under a ``window_size x window_size`` window, ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L =
    data_range``; the SSIM map is averaged over the 'valid' region only (windows fully inside the image), like
    Wang's MATLAB ``ssim_index.m`` (``filter2(..., 'valid')``) and scikit-image's border crop.

    * ``window="gaussian"``: normalised Gaussian weights (MATLAB ``fspecial('gaussian', 11, 1.5)``); weighted
      (population) moments, as ``ssim_index.m`` = ``skimage.metrics.structural_similarity(gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False)``. No automatic down-sampling (that is the later ``ssim.m``).
    * ``window="uniform"``: box window with the sample-covariance factor ``P / (P - 1)`` (``P = window_size^2``),
      as scikit-image's default (``win_size=7, use_sample_covariance=True``), used by DBIN's Python test and UBF.

    Args:
        data_range: ``L``, the dynamic range of the data (1.0 for [0, 1] data, 255 for 8-bit). Required: guessing
            it from the dtype is the classic pitfall (old scikit-image used 2.0 for floats).
        window_size: odd, at least 3 and at most the image height and width.

    Returns:
        ``(N,)`` float64. Constant bands are well defined (``C1, C2 > 0``).
    """
    ref, est = _pair(reference, estimate)
    L = _positive_float(data_range, "data_range")
    window = _choice(window, "window", ("gaussian", "uniform"))
    size = check_positive_int(window_size, "window_size", minimum=3)
    if size % 2 == 0:
        raise InputError(f"window_size must be odd (the window needs a centre pixel), got {size}")
    s = _positive_float(sigma, "sigma")
    c1 = (_positive_float(k1, "k1") * L) ** 2
    c2 = (_positive_float(k2, "k2") * L) ** 2
    N, C, H, W = ref.shape
    if H < size or W < size:
        raise InputError(f"SSIM window {size}x{size} is larger than the {H}x{W} image; use a smaller window_size")
    w = _window_1d(window, size, s, ref)
    x = ref.reshape(N * C, 1, H, W)
    y = est.reshape(N * C, 1, H, W)
    mx, my = _separable_valid(x, w), _separable_valid(y, w)
    vx = _separable_valid(x * x, w) - mx * mx
    vy = _separable_valid(y * y, w) - my * my
    vxy = _separable_valid(x * y, w) - mx * my
    if window == "uniform":
        factor = size * size / (size * size - 1.0)
        vx, vy, vxy = vx * factor, vy * factor, vxy * factor
    smap = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return smap.mean(dim=(1, 2, 3)).reshape(N, C).mean(dim=1)


# ------------------------------------------------------------------------------------------------------- SAM
def sam(
    reference: Any,
    estimate: Any,
    *,
    unit: Literal["degrees", "radians"] = "degrees",
    zero_pixels: Literal["exclude", "zero", "eps", "eps_denominator"] = "exclude",
    eps: float = MATLAB_EPS,
) -> torch.Tensor:
    """Spectral angle mapper: the mean over pixels of the angle between reference and estimated spectra.

    ``SAM = mean_p arccos(<x_p, y_p> / (|x_p| |y_p|))``. For the ``exclude``/``zero`` policies the angle is
    evaluated as ``2 atan2(|u - v|, |u + v|)`` with ``u, v`` the unit spectra (the same angle, but exact for
    identical spectra); the ``eps`` policies use ``arccos`` of their regularised cosine clipped to ``[-1, 1]``
    (MATLAB's ``real(acos(.))`` does the same). Pixels where a spectrum has zero norm follow ``zero_pixels``:

    * ``"exclude"``: drop pixels with ``|x_p| |y_p| = 0`` from the mean (Yokoya's ``SAM.m``, HySure, UBF). If
      every pixel of an image is dropped the angle is undefined and :class:`InputError` is raised (no silent 0).
    * ``"zero"``: such pixels count as angle 0 in the mean over all pixels (DHIF-Net's ``SAM_GPU``: NaN -> 0).
    * ``"eps"``: ``arccos((<x, y> + eps) / ((|x| + eps)(|y| + eps)))`` over all pixels (DHSIS
      ``SpectAngMapper.m`` with MATLAB ``eps``; two zero spectra give angle 0).
    * ``"eps_denominator"``: ``arccos(<x, y> / (|x| |y| + eps))`` over all pixels (UDALN ``evaluation.py`` with
      ``eps=1e-7``; a zero spectrum gives 90 degrees). UDALN does not clip, so its code can return NaN; we clip.

    Args:
        unit: ``"degrees"`` (every code base above) or ``"radians"``.
        eps: the regulariser of the ``eps`` policies (positive).

    Returns:
        ``(N,)`` float64.
    """
    ref, est = _pair(reference, estimate)
    unit = _choice(unit, "unit", ("degrees", "radians"))
    zero_pixels = _choice(zero_pixels, "zero_pixels", ("exclude", "zero", "eps", "eps_denominator"))
    dot = (ref * est).sum(dim=1)
    nr = torch.sqrt((ref * ref).sum(dim=1))
    ne = torch.sqrt((est * est).sum(dim=1))
    if zero_pixels in ("exclude", "zero"):
        valid = (nr * ne) > 0
        # The angle as 2 atan2(|u - v|, |u + v|) for unit vectors u, v: equal to arccos(<u, v>) but accurate
        # near 0 (arccos of a cosine rounded to 1 - 1e-16 is already 1e-6 degrees off).
        one = torch.ones_like(nr)
        u = ref / torch.where(valid, nr, one)[:, None]
        v = est / torch.where(valid, ne, one)[:, None]
        angle = 2.0 * torch.atan2(torch.linalg.vector_norm(u - v, dim=1), torch.linalg.vector_norm(u + v, dim=1))
        angle = torch.where(valid, angle, torch.zeros_like(angle))
        if zero_pixels == "zero":
            out = angle.mean(dim=(1, 2))
        else:
            count = valid.sum(dim=(1, 2))
            empty = (count == 0).nonzero()
            if empty.numel():
                raise InputError(
                    f"SAM is undefined for image {int(empty[0, 0])}: every pixel has a zero spectrum in the "
                    "reference or the estimate; use zero_pixels='zero' or 'eps' to score such pixels explicitly"
                )
            out = (angle * valid).sum(dim=(1, 2)) / count
    else:
        e = _positive_float(eps, "eps")
        if zero_pixels == "eps":
            cos = (dot + e) / ((nr + e) * (ne + e))
        else:
            cos = dot / (nr * ne + e)
        out = torch.acos(cos.clamp(-1.0, 1.0)).mean(dim=(1, 2))
    return torch.rad2deg(out) if unit == "degrees" else out


# ----------------------------------------------------------------------------------------- ERGAS, RMSE, CC
def ergas(
    reference: Any,
    estimate: Any,
    *,
    ratio: int,
    mean_of: Literal["reference", "estimate"] = "reference",
) -> torch.Tensor:
    """Erreur relative globale adimensionnelle de synthèse (Wald 2000).

    ``ERGAS = (100 / r) sqrt(mean_b (RMSE_b / mu_b)^2)`` where ``r`` is the resolution ratio (the "h / l" term of
    Wald's definition is ``1 / r``), ``RMSE_b`` the RMSE of band ``b`` and ``mu_b`` its mean in the reference
    (Wald; DHSIS/HySure ``quality_assessment.m``, UDALN) or in the estimate (DBIN's Python test; Yokoya's
    ``QualityIndices.m``, which passes the fused image as the first argument of ``ERGAS.m``).

    Args:
        ratio: the integer resolution ratio ``r`` (8 for CAVE at 8x), not ``1 / r``.
        mean_of: which image's band means normalise the errors.

    Returns:
        ``(N,)`` float64. A band whose mean is exactly 0 raises :class:`InputError` (ERGAS is undefined there).
    """
    ref, est = _pair(reference, estimate)
    r = check_ratio(ratio)
    mean_of = _choice(mean_of, "mean_of", ("reference", "estimate"))
    mse = ((ref - est) ** 2).mean(dim=(2, 3))
    mu = (ref if mean_of == "reference" else est).mean(dim=(2, 3))
    zero = (mu == 0).nonzero()
    if zero.numel():
        n = int(zero[0, 0])
        bands = [int(b) for b in zero[zero[:, 0] == n, 1]]
        raise InputError(
            f"ERGAS divides each band's RMSE by the band mean of the {mean_of}, but band(s) {bands} of image {n} "
            "have mean 0; drop those bands (or report RMSE instead)"
        )
    return 100.0 / r * torch.sqrt((mse / mu**2).mean(dim=1))


def rmse(reference: Any, estimate: Any) -> torch.Tensor:
    """Root mean squared error over all bands and pixels: ``sqrt(mean_{b,p} (x - y)^2)``; ``(N,)`` float64."""
    ref, est = _pair(reference, estimate)
    return torch.sqrt(((ref - est) ** 2).mean(dim=(1, 2, 3)))


def cc(
    reference: Any,
    estimate: Any,
    *,
    constant_bands: Literal["exclude", "zero", "raise"] = "exclude",
) -> torch.Tensor:
    """Cross-correlation: the Pearson correlation of each band, averaged over bands (UDALN, HySure, UBF).

    ``CC = mean_b sum_p (x - x̄_b)(y - ȳ_b) / sqrt(sum_p (x - x̄_b)^2 sum_p (y - ȳ_b)^2)``.

    A band that is constant (all pixels equal) in the reference or the estimate has no correlation. Policy
    ``constant_bands``: ``"exclude"`` averages over the other bands (an image whose bands are all such raises
    :class:`InputError`), ``"zero"`` counts them as 0, ``"raise"`` raises :class:`InputError`.

    Returns:
        ``(N,)`` float64.
    """
    ref, est = _pair(reference, estimate)
    policy = _choice(constant_bands, "constant_bands", ("exclude", "zero", "raise"))
    const = (ref.amax(dim=(2, 3)) == ref.amin(dim=(2, 3))) | (est.amax(dim=(2, 3)) == est.amin(dim=(2, 3)))
    rc = ref - ref.mean(dim=(2, 3), keepdim=True)
    ec = est - est.mean(dim=(2, 3), keepdim=True)
    den = torch.sqrt((rc * rc).sum(dim=(2, 3)) * (ec * ec).sum(dim=(2, 3)))
    corr = torch.where(const, torch.zeros_like(den), (rc * ec).sum(dim=(2, 3)) / torch.where(const, 1.0, den))
    if policy == "zero":
        return corr.mean(dim=1)
    if policy == "raise" and bool(const.any()):
        n, b = (int(v) for v in const.nonzero()[0])
        raise InputError(
            f"band {b} of image {n} is constant in the reference or the estimate, so its correlation is "
            "undefined; use constant_bands='exclude' or 'zero'"
        )
    count = (~const).sum(dim=1)
    if bool((count == 0).any()):
        n = int((count == 0).nonzero()[0, 0])
        raise InputError(f"every band of image {n} is constant; CC is undefined (use constant_bands='zero')")
    return corr.sum(dim=1) / count


# ------------------------------------------------------------------------------------------- UIQI (Q index)
def _q_from_moments(
    mx: torch.Tensor, my: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, cxy: torch.Tensor
) -> torch.Tensor:
    """Wang-Bovik Q from local moments with the fallbacks of ``img_qi.m`` (Wang 2001).

    ``Q = 4 cxy mx my / ((vx + vy)(mx^2 + my^2))``; where ``vx + vy = 0`` but ``mx^2 + my^2 != 0``:
    ``2 mx my / (mx^2 + my^2)``; where both are 0: 1.
    """
    den1 = vx + vy
    msq = mx * mx + my * my
    den = den1 * msq
    ok = den != 0
    q = 4.0 * cxy * mx * my / torch.where(ok, den, torch.ones_like(den))
    flat = (den1 == 0) & (msq != 0)
    q_flat = 2.0 * mx * my / torch.where(flat, msq, torch.ones_like(msq))
    return torch.where(ok, q, torch.where(flat, q_flat, torch.ones_like(q)))


def _box_sum(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Sum over every ``kh x kw`` window, step 1, 'valid' region (running sums along each axis)."""
    c = torch.cumsum(F.pad(x, (1, 0)), dim=-1)
    x = c[..., kw:] - c[..., :-kw]
    c = torch.cumsum(F.pad(x, (0, 0, 1, 0)), dim=-2)
    return c[..., kh:, :] - c[..., :-kh, :]


def _box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over every ``k x k`` window, step 1, 'valid' region: ``(..., H, W) -> (..., H-k+1, W-k+1)``."""
    return _box_sum(x, k, k) / (k * k)


def _box_constant(x: torch.Tensor, k: int) -> torch.Tensor:
    """``True`` where a ``k x k`` window (step 1, valid) holds one value only.

    Exact: a window is constant iff no two horizontally or vertically adjacent pixels inside it differ, and
    those counts are sums of 0/1 values (exact in float64).
    """
    dx = (x[..., :, 1:] != x[..., :, :-1]).to(x.dtype)
    dy = (x[..., 1:, :] != x[..., :-1, :]).to(x.dtype)
    return (_box_sum(dx, k, k - 1) + _box_sum(dy, k - 1, k)) == 0


def uiqi(reference: Any, estimate: Any, *, block_size: int = 32) -> torch.Tensor:
    """Universal image quality index (Wang & Bovik, IEEE SPL 2002) per band, averaged over bands.

    ``Q = 4 s_xy mu_x mu_y / ((s_x^2 + s_y^2)(mu_x^2 + mu_y^2))`` in every ``block_size x block_size`` window
    sliding with step 1 over the 'valid' region; the band's Q is the mean of that map. This follows Wang's
    MATLAB ``img_qi.m`` (called with block 32 by HySure/DHSIS ``quality_assessment.m`` and Vivone's ``Q.m``),
    including its rules for flat windows: where both windows are constant, ``Q = 2 mu_x mu_y / (mu_x^2 +
    mu_y^2)`` (1 for identical flat windows); where the means are both 0, ``Q = 1``. Constancy is tested exactly
    (window max == min), so float rounding never turns a flat window into noise; no NaN is possible.

    Returns:
        ``(N,)`` float64. Images smaller than ``block_size`` raise :class:`InputError`.
    """
    ref, est = _pair(reference, estimate)
    k = check_positive_int(block_size, "block_size", minimum=2)
    H, W = ref.shape[-2:]
    if H < k or W < k:
        raise InputError(f"UIQI block {k}x{k} is larger than the {H}x{W} image; use a smaller block_size")
    # Shift both images by one per-band constant: variances/covariance are shift invariant and the sums lose
    # less precision; floor() keeps integer data exactly integer.
    shift = torch.floor(ref.mean(dim=(2, 3), keepdim=True))
    x, y = ref - shift, est - shift
    mx, my = _box_mean(x, k), _box_mean(y, k)
    cx, cy = _box_constant(ref, k), _box_constant(est, k)
    vx = torch.where(cx, 0.0, (_box_mean(x * x, k) - mx * mx).clamp_min(0.0))
    vy = torch.where(cy, 0.0, (_box_mean(y * y, k) - my * my).clamp_min(0.0))
    cxy = torch.where(cx | cy, 0.0, _box_mean(x * y, k) - mx * my)
    q = _q_from_moments(mx + shift, my + shift, vx, vy, cxy)
    return q.mean(dim=(2, 3)).mean(dim=1)


# ------------------------------------------------------------------------------------------------------ Q2^n
@lru_cache(maxsize=16)
def _cayley_dickson_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index/sign tables of the ``n``-component product used by ``onion_mult.m`` (Vivone's toolbox).

    ``(x y)_k = sum_{i,j: K[i,j] = k} S[i,j] x_i y_j``. Built from the toolbox recursion: with ``x = (a, b)``,
    ``y = (c, d)`` and ``conj`` negating all but the first component,
    ``x y = (a c - conj(d) b, conj(a) conj(d) + c conj(b))``. For ``n = 2`` it is the complex product; for
    ``n = 4`` the Hamilton quaternion product with its last component negated (same modulus).
    """
    if n == 1:
        return np.zeros((1, 1), dtype=np.int64), np.ones((1, 1))
    half = n // 2
    k0, s0 = _cayley_dickson_table(half)
    conj = np.ones(half)
    conj[1:] = -1.0
    K = np.empty((n, n), dtype=np.int64)
    S = np.empty((n, n))
    K[:half, :half], S[:half, :half] = k0, s0  # a c
    K[half:, half:], S[half:, half:] = k0.T, -s0.T * conj[None, :]  # - conj(d) b
    K[:half, half:], S[:half, half:] = half + k0, s0 * conj[:, None] * conj[None, :]  # conj(a) conj(d)
    K[half:, :half], S[half:, :half] = half + k0.T, s0.T * conj[:, None]  # c conj(b)
    return K, S


def _hypercomplex_contract(m: torch.Tensor) -> torch.Tensor:
    """``(..., n, n)`` moments ``E[x_i y_j]`` -> ``(..., n)`` hypercomplex ``E[x y]`` (bilinearity)."""
    n = m.shape[-1]
    K, S = _cayley_dickson_table(n)
    idx = torch.from_numpy(K.reshape(-1)).to(m.device)
    sgn = torch.from_numpy(S.reshape(-1)).to(device=m.device, dtype=m.dtype)
    flat = m.reshape(*m.shape[:-2], n * n) * sgn
    out = torch.zeros((*m.shape[:-2], n), dtype=m.dtype, device=m.device)
    return out.index_add_(out.ndim - 1, idx, flat)


def _onion_quality(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|Q2^n| of blocks ``(..., n, P)`` (``n`` a power of two, ``P`` pixels), as ``onions_quality.m``.

    Per band, both blocks are normalised with the reference block's mean ``mu`` and sample std ``sd``:
    ``x' = (x - mu) / sd + 1``, ``y' = (y - mu) / sd + 1`` (``sd = 0`` -> MATLAB ``eps``; where ``mu = 0`` the
    toolbox only shifts: ``y' = y + 1``). With ``z = x'`` and ``w = conj(y')`` as hypercomplex pixels:
    ``Q = |cov(z, w)| * 2 / (var z + var w) * 2 |E z| |E w| / (|E z|^2 + |E w|^2)`` (sample moments), or the
    last factor alone when both blocks are constant.
    """
    P = x.shape[-1]
    hi, lo = x.amax(dim=-1, keepdim=True), x.amin(dim=-1, keepdim=True)
    flat = hi == lo
    mu = torch.where(flat, hi, x.mean(dim=-1, keepdim=True))
    sd = torch.where(flat, 0.0, x.std(dim=-1, keepdim=True))
    scale = torch.where(sd == 0, MATLAB_EPS, sd)
    z = torch.where(flat, 1.0, (x - mu) / scale + 1.0)
    w = torch.where(mu == 0, y + 1.0, (y - mu) / scale + 1.0)
    sign = torch.ones(x.shape[-2], 1, dtype=x.dtype, device=x.device)
    sign[1:] = -1.0
    w = w * sign  # conjugate
    mz, mw = z.mean(dim=-1), w.mean(dim=-1)
    nz2, nw2 = (mz * mz).sum(dim=-1), (mw * mw).sum(dim=-1)
    mean_bias = 2.0 * torch.sqrt(nz2 * nw2) / (nz2 + nw2)
    # Centred data; bands that are exactly flat contribute exactly nothing.
    zc = torch.where(z.amax(dim=-1, keepdim=True) == z.amin(dim=-1, keepdim=True), 0.0, z - mz[..., None])
    wc = torch.where(w.amax(dim=-1, keepdim=True) == w.amin(dim=-1, keepdim=True), 0.0, w - mw[..., None])
    var_sum = ((zc * zc).sum(dim=(-2, -1)) + (wc * wc).sum(dim=(-2, -1))) / (P - 1)
    cov = _hypercomplex_contract(torch.einsum("...ip,...jp->...ij", zc, wc) / (P - 1))
    ok = var_sum > 0
    q = torch.linalg.vector_norm(cov, dim=-1) * 2.0 / torch.where(ok, var_sum, torch.ones_like(var_sum))
    return torch.where(ok, q * mean_bias, mean_bias)


def q2n(reference: Any, estimate: Any, *, block_size: int = 32, shift: int = 32) -> torch.Tensor:
    """Q2^n, the hypercomplex quality index (Garzelli & Nencini, IEEE GRSL 2009; Q4 of Alparone et al. 2004).

    Each pixel's spectrum is one hypercomplex number with ``2^k >= C`` components (bands zero-padded, Cayley-
    Dickson algebra); in every ``block_size x block_size`` block (blocks start every ``shift`` pixels):
    ``Q = |s_zw| / (s_z s_w) * 2 s_z s_w / (s_z^2 + s_w^2) * 2 |z̄| |w̄| / (|z̄|^2 + |w̄|^2)``, after the
    per-block, per-band normalisation of ``onions_quality.m``; the index is the mean of the block map.
    Follows ``q2n.m`` of Vivone's pansharpening toolbox (vendored by Yokoya's HS-MS fusion toolbox): the image
    is extended by mirroring its last rows/columns (edge included) to ``(ceil(H/shift) - 1) * shift +
    block_size`` pixels. That code casts its inputs to ``uint16`` first; here the values are used as given (the
    ``yokoya_toolbox`` preset applies the cast, see :func:`quantize_uint16`).

    Flat (constant) blocks are detected exactly; no NaN is possible.

    Args:
        block_size: block side (``Q_blocks_size``), at least 2.
        shift: step between blocks (``Q_shift``), ``1 <= shift <= block_size``.

    Returns:
        ``(N,)`` float64 in ``[0, 1]``; 1 for identical images.
    """
    ref, est = _pair(reference, estimate)
    b = check_positive_int(block_size, "block_size", minimum=2)
    s = check_positive_int(shift, "shift")
    if s > b:
        raise InputError(f"shift ({s}) must not exceed block_size ({b}): blocks would skip pixels")
    N, C, H, W = ref.shape
    ny, nx = math.ceil(H / s), math.ceil(W / s)
    ph, pw = (ny - 1) * s + b - H, (nx - 1) * s + b - W
    if ph > H or pw > W:
        raise InputError(
            f"the {H}x{W} image is too small for Q2n blocks of {b} (it would need {ph}x{pw} mirrored rows/columns); "
            "use a smaller block_size"
        )
    rows = torch.cat([torch.arange(H), H - 1 - torch.arange(ph)]).to(ref.device)
    cols = torch.cat([torch.arange(W), W - 1 - torch.arange(pw)]).to(ref.device)
    n = 1 << max(0, math.ceil(math.log2(C)))
    pad = (0, 0, 0, 0, 0, n - C)

    def blocks(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t[:, :, rows][:, :, :, cols], pad)
        t = t.unfold(2, b, s).unfold(3, b, s)  # (N, n, ny, nx, b, b)
        return t.permute(0, 2, 3, 1, 4, 5).reshape(N, ny, nx, n, b * b)

    return _onion_quality(blocks(ref), blocks(est)).mean(dim=(1, 2))


# ------------------------------------------------------------------------------------------ preprocessing
def crop_border(x: Any, pixels: int) -> torch.Tensor:
    """Drop ``pixels`` rows/columns on every side: ``(..., H, W) -> (..., H - 2p, W - 2p)``.

    As ``I(p+1:end-p, p+1:end-p, :)`` in HySure's ``quality_assessment.m`` (``ignore_edges``) or Yokoya's
    ``QualityIndices.m`` (``p = ratio``). Accepts ``(N, C, H, W)`` or ``(C, H, W)``.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise InputError(f"crop_border needs an image tensor (..., H, W), got {type(x).__name__}")
    p = check_positive_int(pixels, "pixels", minimum=0)
    H, W = x.shape[-2:]
    if 2 * p >= min(H, W):
        raise InputError(f"cropping {p} pixels from each side of a {H}x{W} image leaves nothing; crop less")
    return x[..., p : H - p, p : W - p] if p else x


def _as_values(x: Any, name: str) -> torch.Tensor:
    """Any-shaped real tensor/array as float64, NaN/inf rejected (for the element-wise helpers)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or x.is_complex():
        raise InputError(f"{name} must be a real torch.Tensor or numpy array, got {type(x).__name__}")
    x = x.to(torch.float64)
    check_finite(x, name)
    return x


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def quantize_uint8(x: Any) -> torch.Tensor:
    """MATLAB ``double(im2uint8(x))`` of data on [0, 1]: ``round(255 x)`` (half away from zero), saturated to
    ``[0, 255]``. Any shape; returns float64 with integer values (the DHSIS ``tf_quali.m`` preprocessing).

    Example:
        >>> quantize_uint8(torch.tensor([-0.1, 0.5, 1.2])).tolist()
        [0.0, 128.0, 255.0]
    """
    return _round_half_away(_as_values(x, "image") * 255.0).clamp(0.0, 255.0)


def quantize_uint16(x: Any, *, scale: float = 1.0) -> torch.Tensor:
    """MATLAB ``double(uint16(scale * x))``: round half away from zero, saturate to ``[0, 65535]``; float64.

    ``q2n.m`` applies this cast (``scale = 1``); Yokoya-toolbox variants pass normalised data times ``umax``.
    """
    return _round_half_away(_as_values(x, "image") * _positive_float(scale, "scale")).clamp(0.0, 65535.0)


def clip(x: Any, lo: float, hi: float) -> torch.Tensor:
    """Clamp values to ``[lo, hi]`` (DHIF-Net and DBIN clamp the network output to [0, 1] before scoring)."""
    t = _as_values(x, "image")
    lo_f, hi_f = float(lo), float(hi)
    if not (math.isfinite(lo_f) and math.isfinite(hi_f) and lo_f < hi_f):
        raise InputError(f"clip needs finite lo < hi, got lo={lo!r}, hi={hi!r}")
    return t.clamp(lo_f, hi_f)
