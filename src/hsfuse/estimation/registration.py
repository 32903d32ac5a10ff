"""Is an HSI/MSI pair co-registered? A sub-pixel shift estimate between the two on the HSI grid.

Fusion methods assume ``Y_h = S(B * Z)`` and ``Y_m = R Z`` for the *same* scene ``Z``; a real pair that is
misregistered by a fraction of an HSI pixel already breaks that. :func:`check_coregistration` brings both
images to a common form, band by band of the MSI,

    a = R Y_h                         (the HSI seen through the SRF: ``(m, h, w)``)
    b = S(G * Y_m)                    (the MSI blurred by a symmetric Gaussian ``G`` of FWHM ``r``, decimated)

and measures the translation of ``b`` relative to ``a`` (:func:`estimate_shift`: a windowed cross-correlation
for the coarse shift, then a Lucas-Kanade least-squares refinement to a small fraction of a pixel).

Why ``G`` and not the estimated PSF: a blind estimator fits the PSF to the pair, and a ``k x k`` kernel can
absorb part of a shift by becoming asymmetric (its centroid moves), so degrading with it would hide the very
misregistration we look for. A symmetric kernel has a real, non-negative transfer function: it blurs but
moves nothing, and a blur mismatch does not bias a phase correlation. It is centred where the model's PSF
support is centred (``offset + r i`` for an odd support; half a pixel further for an even one, see
:mod:`hsfuse.physics.spatial`), so an aligned pair measures zero. The SRF is used only to make ``a``
spectrally comparable with ``b``; each band is then reduced to zero mean and unit variance, so gain and
offset differences between the sensors do not matter.

Where one translation does not register the pair (terrain, attitude, band-to-band distortions),
:func:`estimate_shift_field` makes the same comparison per window of a grid of tie points and returns a smooth
field of shifts (:class:`ShiftField`); :func:`hsfuse.geo.local.warp_with_field` removes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import check_pair, check_positive_int
from ..errors import InputError
from ..physics import FusionObservation, SpatialDegradation, gaussian_psf
from ..types import FusionMeasurement
from .operators import EstimatedOperators, check_measurement_type, check_valid_mask, lowres_valid

__all__ = ["RegistrationCheck", "estimate_shift", "check_coregistration", "ShiftField", "estimate_shift_field"]

_TAPER = 0.25  # fraction of the length tapered by the cosine (Tukey) window, half on each side
_WHITEN = 0.1  # cross-power spectrum divided by |X| + 0.1 max |X|
_LK_ITERATIONS = 20
_LOW_CONFIDENCE = 0.5  # check_coregistration flags a correlation below this


@dataclass(frozen=True)
class RegistrationCheck:
    """The outcome of :func:`check_coregistration`.

    Attributes:
        shift_lr_px: ``(dy, dx)``, the MSI's translation relative to the HSI in HSI pixels (``+dy``: the MSI
            content sits ``dy`` pixels further down).
        shift_hr_px: the same in MSI pixels (``r`` times larger).
        magnitude_lr_px: ``hypot(dy, dx)`` in HSI pixels.
        threshold_lr_px: the tolerance the check used.
        ok: ``magnitude_lr_px <= threshold_lr_px``.
        peak: the normalised correlation of ``R Y_h`` and the re-aligned, degraded MSI at the estimated
            shift, in ``[0, 1]`` (1: identical up to the shift and a gain per band); a confidence, low
            (< 0.5) when the two images share little structure or the SRF does not fit.
        message: one line for a user, saying what to do when not ok.
    """

    shift_lr_px: tuple[float, float]
    shift_hr_px: tuple[float, float]
    magnitude_lr_px: float
    threshold_lr_px: float
    ok: bool
    peak: float
    message: str


def _as_stack(x: Any, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise InputError(f"{name} must be an (H, W) image or a (C, H, W) stack, got shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise InputError(f"{name} must hold real numbers, got {arr.dtype}")
    return arr.astype(np.float64)


def _tukey(n: int, alpha: float = _TAPER) -> np.ndarray:
    """Cosine-tapered window: flat in the middle, ``alpha / 2`` of the length tapered to zero on each side."""
    if n < 3 or alpha <= 0:
        return np.ones(n)
    t = np.arange(n) / (n - 1)
    w = np.ones(n)
    edge = alpha / 2
    lo, hi = t < edge, t > 1 - edge
    w[lo] = 0.5 * (1 - np.cos(np.pi * t[lo] / edge))
    w[hi] = 0.5 * (1 - np.cos(np.pi * (1 - t[hi]) / edge))
    return w


def _standardise(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per channel: remove the weighted mean and divide by the weighted standard deviation; zero where
    ``weight`` is zero."""
    wsum = weight.sum()
    mean = (x * weight).sum(axis=(1, 2), keepdims=True) / wsum
    x = x - mean
    std = np.sqrt((x * x * weight).sum(axis=(1, 2), keepdims=True) / wsum)
    return np.where(weight > 0, x / np.where(std > 0, std, 1.0), 0.0)


def _upsampled_correlation(cross: np.ndarray, centre: tuple[float, float], upsample: int,
                           half_width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``c(y, x) = (1/N) sum_uv X[u, v] exp(2 pi i (u y / H + v x / W))`` on a grid of step ``1 / upsample``
    around ``centre``, by two matrix products (Guizar-Sicairos, Thurman, Fienup, Opt. Lett. 33(2), 2008)."""
    H, W = cross.shape
    n = int(math.ceil(half_width * upsample))
    offsets = np.arange(-n, n + 1) / upsample
    ys, xs = centre[0] + offsets, centre[1] + offsets
    u = np.fft.fftfreq(H) * H  # signed integer frequencies
    v = np.fft.fftfreq(W) * W
    Ey = np.exp(2j * np.pi * np.outer(ys, u) / H)  # (n_y, H)
    Ex = np.exp(2j * np.pi * np.outer(v, xs) / W)  # (W, n_x)
    return (Ey @ cross @ Ex).real / (H * W), ys, xs


def _coarse_shift(A: np.ndarray, B: np.ndarray, mask: np.ndarray, upsample: int) -> tuple[float, float]:
    """Windowed, partially whitened cross-correlation: the peak, refined on a ``1 / upsample`` grid."""
    H, W = mask.shape
    window = mask * np.outer(_tukey(H), _tukey(W))
    cross = (np.fft.fft2(B * window) * np.conj(np.fft.fft2(A * window))).sum(axis=0)
    magnitude = np.abs(cross)
    # partial whitening: frequencies weaker than 10 % of the strongest are not amplified to full weight
    # (pure phase correlation lets noise and window edges dominate on smooth images)
    cross = cross / (magnitude + _WHITEN * magnitude.max())
    surface = np.fft.ifft2(cross).real
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    py = iy - H if iy > H // 2 else iy  # signed integer peak
    px = ix - W if ix > W // 2 else ix
    fine, ys, xs = _upsampled_correlation(cross, (float(py), float(px)), upsample, 0.75)
    jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return float(ys[jy]), float(xs[jx])


def _aligned(B: np.ndarray, mask: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``B(x + d)`` (cubic spline) and the pixels where it and ``mask`` are trustworthy."""
    from scipy import ndimage

    Bd = np.stack([ndimage.shift(c, -d, order=3, mode="nearest") for c in B])
    # valid after the shift, and far enough (3 px) from any excluded pixel or the image edge that neither the
    # zero fill nor the edge extension reaches the spline
    ok = ndimage.shift(mask.astype(np.float64), -d, order=1, mode="constant", cval=0.0) > 1 - 1e-9
    ok &= mask > 0
    ok = ndimage.binary_erosion(ok, structure=np.ones((7, 7), bool), border_value=0)
    return Bd, ok


def _refine_shift(A: np.ndarray, B: np.ndarray, mask: np.ndarray, d0: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Gauss-Newton (Lucas-Kanade) minimisation of ``sum_x w (B(x + d) - A(x))^2`` from ``d0``; returns ``d``
    and the correlation coefficient of ``A`` and ``B(x + d)`` over the pixels used."""
    d = np.array(d0, dtype=np.float64)
    for _ in range(_LK_ITERATIONS):
        Bd, ok = _aligned(B, mask, d)
        if ok.sum() < 16:
            break
        gy, gx = np.gradient(Bd, axis=(1, 2))
        res = (Bd - A)[:, ok]
        gy, gx = gy[:, ok], gx[:, ok]
        J = np.array([[np.sum(gy * gy), np.sum(gy * gx)], [np.sum(gy * gx), np.sum(gx * gx)]])
        g = np.array([np.sum(gy * res), np.sum(gx * res)])
        try:
            step = -np.linalg.solve(J, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.abs(step).max() > 2.0:  # left the basin: keep the last estimate
            break
        d = d + step
        if np.abs(step).max() < 1e-4:
            break
    Bd, ok = _aligned(B, mask, d)
    if ok.sum() < 16:
        return np.array(d0, dtype=np.float64), 0.0
    a, b = A[:, ok], Bd[:, ok]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    corr = float(np.sum(a * b) / max(math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b))), 1e-300))
    return d, corr


def estimate_shift(a: Any, b: Any, *, valid: Any = None, upsample: int = 20) -> tuple[float, float, float]:
    """Sub-pixel translation ``(dy, dx)`` of ``b`` relative to ``a``, and a confidence in ``[0, 1]``.

    Convention: if ``b[y, x] = a[y - dy, x - dx]`` (``b`` is ``a`` moved ``dy`` down and ``dx`` right), the
    result is ``(dy, dx)``; e.g. ``b[y, x] = a[y - 2, x + 1]`` gives ``(2.0, -1.0)``.

    Method: each channel of each image is reduced to zero mean and unit variance over the valid pixels
    (gains and offsets do not matter). A coarse estimate is the peak of the cross-correlation of the
    images under a cosine-tapered (Tukey, 25 %) window, partially whitened and summed over channels, located
    on a ``1 / upsample`` grid by a matrix DFT (Guizar-Sicairos et al., Opt. Lett. 2008). A window that does
    not move with the image pulls that peak towards zero on non-periodic images (by 10-25 % of the shift on
    32 x 32 crops), so the estimate is then refined by Gauss-Newton (Lucas-Kanade) on
    ``sum_x (B(x + d) - A(x))^2`` over the valid overlap, ``B`` resampled by cubic splines, which has no such
    bias. The search covers shifts up to about a quarter of the image.

    Args:
        a, b: ``(H, W)`` images or ``(C, H, W)`` stacks of the same shape (tensors or arrays); channels are
            summed in both stages.
        valid: optional ``(H, W)`` boolean mask, ``True`` = usable in both images; excluded pixels (which may
            hold NaN) and a 3-pixel margin around them are ignored.
        upsample: resolution of the coarse peak search, ``1 / upsample`` pixel.

    Returns:
        ``(dy, dx, peak)``: ``peak`` is the correlation coefficient of ``a`` and the re-aligned ``b`` over the
        pixels used, clipped to ``[0, 1]`` (1: identical up to the shift and a gain).

    Example:
        >>> import numpy as np
        >>> a = np.random.default_rng(0).random((32, 32))
        >>> dy, dx, peak = estimate_shift(a, np.roll(a, (2, -1), axis=(0, 1)))
        >>> round(dy, 3), round(dx, 3)
        (2.0, -1.0)
    """
    A, B = _as_stack(a, "a"), _as_stack(b, "b")
    if A.shape != B.shape:
        raise InputError(f"a and b must have the same shape, got {A.shape} and {B.shape} (as (C, H, W))")
    upsample = check_positive_int(upsample, "upsample")
    _, H, W = A.shape
    if H < 8 or W < 8:
        raise InputError(f"images of {H}x{W} pixels are too small to measure a shift (need at least 8x8)")
    mask_t = check_valid_mask(valid, (H, W))
    mask = np.ones((H, W)) if mask_t is None else mask_t.cpu().numpy().astype(np.float64)
    if not (np.isfinite(A[:, mask > 0]).all() and np.isfinite(B[:, mask > 0]).all()):
        raise InputError("a or b contains NaN/inf in usable pixels; mark them False in valid")
    A, B = _standardise(np.where(mask > 0, A, 0.0), mask), _standardise(np.where(mask > 0, B, 0.0), mask)
    if not (np.abs(A).max() > 0 and np.abs(B).max() > 0):
        raise InputError("a or b is constant over the usable pixels: no structure to correlate")
    d0 = _coarse_shift(A, B, mask, upsample)
    d, corr = _refine_shift(A, B, mask, d0)
    return float(d[0]), float(d[1]), float(np.clip(corr, 0.0, 1.0))


def _operators(operators: EstimatedOperators | FusionObservation) -> tuple[int, int, int, torch.Tensor]:
    """``(ratio, offset, psf support k, srf (m, L))`` of either kind of operator."""
    if isinstance(operators, EstimatedOperators):
        return operators.ratio, operators.offset, int(operators.psf.shape[-1]), operators.srf
    if isinstance(operators, FusionObservation):
        spatial = operators.spatial
        return spatial.ratio, spatial.offset, int(spatial.psf.shape[-1]), operators.spectral.matrix
    raise InputError(f"operators must be EstimatedOperators or a FusionObservation, got {type(operators).__name__}")


def _checked_pair(y: FusionMeasurement, operators: EstimatedOperators | FusionObservation,
                  who: str) -> tuple[torch.Tensor, torch.Tensor, int, int, int, torch.Tensor]:
    """The pair's ``hsi``, ``msi`` and the operators' ``(ratio, offset, psf support, srf)``, checked to match."""
    check_measurement_type(y, who)
    hsi, msi, r_images = check_pair(y.hsi, y.msi, single=True, who=who)
    r, off, k, srf = _operators(operators)
    L, h, w = hsi.shape[1:]
    m, H, W = msi.shape[1:]
    if r_images != r:
        raise InputError(f"HSI {h}x{w} and MSI {H}x{W} do not match the operators' ratio {r}")
    if tuple(srf.shape) != (m, L):
        raise InputError(f"the operators' SRF is {tuple(srf.shape)} but the pair has {m} MSI and {L} HSI bands "
                         f"(expected ({m}, {L}))")
    return hsi, msi, r, off, k, srf


def _common_form(hsi: torch.Tensor, msi: torch.Tensor, r: int, off: int, k: int, srf: torch.Tensor, valid: Any, *,
                 exclude_edges: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``R Y_h`` and ``S(G * Y_m)`` (module docstring), ``(m, h, w)`` float64, and the HSI pixels usable in both
    (``None``: all); ``exclude_edges`` also drops the HSI pixels whose Gaussian footprint leaves the image (where
    the reflected boundary, not the MSI, fills ``G * Y_m``)."""
    H, W = msi.shape[-2:]
    # symmetric Gaussian, FWHM = r, wide enough for +-3 sigma, with the parity of the model's PSF support
    kg = 2 * math.ceil(1.5 * r) + 1 + (1 - k % 2)
    gauss = gaussian_psf(kg, fwhm=float(r))
    hr_ok = check_valid_mask(valid, (H, W))
    ym = msi[0].detach().cpu().to(torch.float64)
    if hr_ok is None and not (bool(torch.isfinite(ym).all()) and bool(torch.isfinite(hsi).all())):
        raise InputError("the HSI or the MSI contains NaN/inf; pass valid= with those MSI pixels marked False")
    if hr_ok is not None:
        ym = torch.where(hr_ok.cpu(), ym, torch.zeros((), dtype=torch.float64))
    with torch.no_grad():
        degraded = SpatialDegradation(ratio=r, psf=gauss, offset=off, boundary="reflect").A(ym[None])[0]
        projected = torch.einsum("ml,lhw->mhw", srf.to(torch.float64).cpu(), hsi[0].detach().cpu().to(torch.float64))
    lr_ok = None
    if hr_ok is None and exclude_edges:
        hr_ok = torch.ones((H, W), dtype=torch.bool)
    if hr_ok is not None:
        lr_ok = lowres_valid(hr_ok.cpu(), ratio=r, kernel_size=gauss.shape[-1], offset=off) & lowres_valid(
            hr_ok.cpu(), ratio=r, kernel_size=k, offset=off)
        if int(lr_ok.sum()) < 16:
            raise InputError(f"only {int(lr_ok.sum())} HSI pixels have a fully valid footprint; too few to measure "
                             "a shift")
        projected = torch.where(lr_ok, projected, torch.zeros((), dtype=torch.float64))
    return projected, degraded, lr_ok


def check_coregistration(
    y: FusionMeasurement,
    operators: EstimatedOperators | FusionObservation,
    *,
    threshold_lr_px: float = 0.5,
    valid: Any = None,
) -> RegistrationCheck:
    """Measure the translation between the MSI and the HSI of a pair, in HSI pixels, and judge it.

    ``R Y_h`` is compared with ``S(G * Y_m)`` (``G``: symmetric Gaussian of FWHM ``r``, not the estimated PSF,
    which can absorb part of a shift; see the module docstring) by :func:`estimate_shift` summed over the MSI
    bands.

    Args:
        y: ``hsi`` ``(1, L, h, w)``, ``msi`` ``(1, m, r h, r w)``.
        operators: the pair's operators (ratio, decimation offset, PSF support, SRF), estimated
            (:class:`EstimatedOperators`) or known (:class:`~hsfuse.physics.FusionObservation`).
        threshold_lr_px: the largest acceptable shift, in HSI pixels.
        valid: optional ``(r h, r w)`` boolean mask on the MSI grid (``True`` = usable); HSI pixels whose
            footprint touches an excluded pixel are ignored too.

    Returns:
        A :class:`RegistrationCheck`.

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
        >>> z = torch.nn.functional.avg_pool2d(torch.rand(1, 4, 68, 68, generator=torch.Generator().manual_seed(0),
        ...                                               dtype=torch.float64), 5, 1)
        >>> obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0), boundary="reflect"),
        ...                         SpectralResponse(torch.ones(2, 4) / 4))
        >>> check_coregistration(obs.A(z), obs).ok
        True
    """
    hsi, msi, r, off, k, srf = _checked_pair(y, operators, "check_coregistration")
    if isinstance(threshold_lr_px, bool) or not isinstance(threshold_lr_px, (int, float)) or not (
            math.isfinite(threshold_lr_px) and threshold_lr_px > 0):
        raise InputError(f"threshold_lr_px must be a positive number of HSI pixels, got {threshold_lr_px!r}")
    projected, degraded, lr_ok = _common_form(hsi, msi, r, off, k, srf, valid)
    dy, dx, peak = estimate_shift(projected, degraded, valid=lr_ok)
    mag = math.hypot(dy, dx)
    ok = mag <= threshold_lr_px
    hr = (dy * r, dx * r)
    where = (f"MSI shifted by (dy, dx) = ({dy:+.2f}, {dx:+.2f}) HSI pixels = ({hr[0]:+.1f}, {hr[1]:+.1f}) MSI "
             f"pixels relative to the HSI, |shift| {mag:.2f}")
    if ok:
        message = f"{where} <= {threshold_lr_px:g} HSI pixels: co-registered"
    else:
        message = (f"{where} > {threshold_lr_px:g} HSI pixels: NOT co-registered; co-register the pair before "
                   f"fusion (e.g. move the MSI by ({-hr[0]:+.1f}, {-hr[1]:+.1f}) MSI pixels) and re-estimate the "
                   "PSF/SRF")
    if peak < _LOW_CONFIDENCE:
        message += f" (low confidence: correlation {peak:.2f} at that shift)"
    return RegistrationCheck(shift_lr_px=(dy, dx), shift_hr_px=hr, magnitude_lr_px=mag,
                             threshold_lr_px=float(threshold_lr_px), ok=ok, peak=peak, message=message)


# ----------------------------------------------------------------------------------------------------------
# local co-registration: a field of tie points


@dataclass(frozen=True)
class ShiftField:
    """The outcome of :func:`estimate_shift_field`: a grid of tie points and the smooth displacement they define.

    Every displacement is the MSI's translation relative to the HSI in HSI pixels, with the convention of
    :class:`RegistrationCheck` (``+dy``: the MSI content sits ``dy`` pixels further down); arrays are indexed
    ``[i, j]`` = tie point of row ``rows[i]``, column ``cols[j]``.

    Attributes:
        rows, cols: ``(ny,)`` and ``(nx,)`` tie-point centres in HSI (LR) pixel coordinates (pixel ``i``'s
            centre is ``i``), increasing.
        dy_raw, dx_raw: ``(ny, nx)`` the shift measured in each window (NaN where it could not be measured).
        dy, dx: ``(ny, nx)`` the cleaned field: the raw shift where accepted, else the field's affine trend plus
            the median departure from it of the accepted 3 x 3 neighbours (or of all accepted tie points); 0
            everywhere when none is accepted.
        peak: ``(ny, nx)`` correlation at the measured shift (:func:`estimate_shift`), 0 where not measured.
        valid_fraction: ``(ny, nx)`` the fraction of the window's HSI pixels usable in both images.
        accepted: ``(ny, nx)`` boolean.
        rejected: how many tie points each test rejected: ``"valid"`` (too few usable pixels), ``"failed"`` (no
            structure, or a shift beyond the search range), ``"peak"`` (correlation below ``min_peak``),
            ``"outlier"`` (far from its neighbours).
        window, step: the windows' side and spacing in HSI pixels.
        ratio: ``r``; hr_origin: the MSI (HR) coordinate of HSI pixel 0's centre, ``offset`` (``+ 1/2`` for an
            even PSF support), as in :func:`check_coregistration`: HSI pixel ``i`` is centred on MSI pixel
            ``hr_origin + r i``.
    """

    rows: np.ndarray
    cols: np.ndarray
    dy_raw: np.ndarray
    dx_raw: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    peak: np.ndarray
    valid_fraction: np.ndarray
    accepted: np.ndarray
    rejected: dict[str, int]
    window: int
    step: int
    ratio: int
    hr_origin: float

    @property
    def n_total(self) -> int:
        return int(self.accepted.size)

    @property
    def n_accepted(self) -> int:
        return int(self.accepted.sum())

    def at(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        """The displacement ``(dy, dx)`` (HSI pixels) at HSI coordinates ``rows``, ``cols`` (arrays broadcast
        against each other, e.g. ``(n, 1)`` and ``(1, m)``): bilinear between the tie points of the cleaned field,
        constant beyond the outer ones."""
        y, x = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
        i0, ty = _cell(y, self.rows)
        j0, tx = _cell(x, self.cols)
        i1 = np.minimum(i0 + 1, len(self.rows) - 1)
        j1 = np.minimum(j0 + 1, len(self.cols) - 1)
        out = []
        for f in (self.dy, self.dx):
            out.append((1 - ty) * ((1 - tx) * f[i0, j0] + tx * f[i0, j1]) + ty * ((1 - tx) * f[i1, j0] + tx * f[i1, j1]))
        return out[0], out[1]

    def at_hr(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        """The displacement in MSI (HR) pixels at MSI pixel coordinates: :meth:`at` of
        ``(p - hr_origin) / r``, times ``r``. The callable :func:`hsfuse.geo.local.warp_with_field` takes."""
        r = self.ratio
        lr_y = (np.asarray(rows, np.float64) - self.hr_origin) / r
        lr_x = (np.asarray(cols, np.float64) - self.hr_origin) / r
        dy, dx = self.at(lr_y, lr_x)
        return r * dy, r * dx

    def magnitude(self, *, accepted_only: bool = True) -> np.ndarray:
        """``hypot(dy, dx)`` of the cleaned field at the (accepted) tie points, HSI pixels, flat."""
        mag = np.hypot(self.dy, self.dx)
        return mag[self.accepted] if accepted_only else mag.ravel()

    def stats(self) -> dict[str, Any]:
        """Counts and the median / max / RMS displacement of the accepted tie points (HSI pixels), JSON-ready."""
        mag = self.magnitude()
        out: dict[str, Any] = {"accepted": self.n_accepted, "total": self.n_total, "rejected": dict(self.rejected)}
        if mag.size:
            out.update(median=float(np.median(mag)), max=float(mag.max()), rms=float(np.sqrt(np.mean(mag ** 2))))
        else:
            out.update(median=None, max=None, rms=None)
        return out


def _cell(v: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each coordinate, the index of the tie point at or before it and the fraction towards the next one
    (clamped: 0 before the first, 1 after the last)."""
    n = len(centres)
    if n == 1:
        return np.zeros(v.shape, dtype=np.intp), np.zeros(v.shape)
    f = np.interp(v, centres, np.arange(n, dtype=np.float64))  # clamps at both ends
    i0 = np.minimum(np.floor(f).astype(np.intp), n - 2)
    return i0, f - i0


def _starts(n: int, window: int, step: int) -> np.ndarray:
    """Window starts every ``step`` pixels, the set centred on ``[0, n)``."""
    starts = np.arange(0, n - window + 1, step)
    return starts + (n - window - starts[-1]) // 2


def _neighbours(i: int, j: int, shape: tuple[int, int]) -> list[tuple[int, int]]:
    return [(a, b) for a in range(max(0, i - 1), min(shape[0], i + 2)) for b in range(max(0, j - 1), min(shape[1], j + 2))
            if (a, b) != (i, j)]


def _affine_trend(raw: np.ndarray, candidate: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  floor: float) -> np.ndarray:
    """``(2, ny, nx)``: the affine field ``c0 + c1 row + c2 col`` fitted by least squares to the candidates, the fit
    repeated without those farther than 3 spreads (1.4826 MAD, at least ``floor``) from it; zero with fewer than
    four candidates."""
    pts = np.argwhere(candidate)
    if len(pts) < 4:
        return np.zeros_like(raw)
    A = np.stack([np.ones(len(pts)), rows[pts[:, 0]], cols[pts[:, 1]]], axis=1)
    V = raw[:, pts[:, 0], pts[:, 1]].T  # (n, 2)
    keep = np.ones(len(pts), bool)
    for _ in range(5):
        coef = np.linalg.lstsq(A[keep], V[keep], rcond=None)[0]  # (3, 2)
        res = np.hypot(*(V - A @ coef).T)
        new = res <= 3 * max(1.4826 * float(np.median(res[keep])), floor)
        if new.sum() < 4 or (new == keep).all():
            break
        keep = new
    return np.stack([coef[0, c] + coef[1, c] * rows[:, None] + coef[2, c] * cols[None, :] for c in range(2)])


def _outliers_removed(raw: np.ndarray, candidate: np.ndarray, rows: np.ndarray, cols: np.ndarray, mads: float,
                      floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The candidates that are not outliers, and the cleaned field (:func:`estimate_shift_field`, steps 3-4)."""
    shape = candidate.shape
    trend = _affine_trend(raw, candidate, rows, cols, floor)
    res = raw - trend  # the field without its affine part: no gradient for the neighbour medians to lag
    accepted = candidate.copy()
    isolated = []
    for i in range(shape[0]):
        for j in range(shape[1]):
            if not candidate[i, j]:
                continue
            near = [q for q in _neighbours(i, j, shape) if candidate[q]]
            if len(near) < 2:
                isolated.append((i, j))
                continue
            vals = np.array([res[:, a, b] for a, b in near])  # (n, 2)
            centre = np.median(vals, axis=0)
            spread = 1.4826 * float(np.median(np.hypot(*(vals - centre).T)))
            accepted[i, j] = math.hypot(*(res[:, i, j] - centre)) <= mads * max(spread, floor)
    checked = np.array([res[:, a, b] for a, b in zip(*np.nonzero(accepted)) if (a, b) not in isolated])
    if len(checked) >= 4:  # an isolated tie point: against the trend, with the spread of the others about it
        spread = 1.4826 * float(np.median(np.hypot(*checked.T)))
        for i, j in isolated:
            accepted[i, j] = math.hypot(*res[:, i, j]) <= mads * max(spread, floor)
    clean = raw.copy()
    overall = np.median(res[:, accepted], axis=1) if accepted.any() else np.zeros(2)
    for i in range(shape[0]):
        for j in range(shape[1]):
            if not accepted[i, j]:
                near = [q for q in _neighbours(i, j, shape) if accepted[q]]
                fill = np.median(np.array([res[:, a, b] for a, b in near]), axis=0) if near else overall
                clean[:, i, j] = trend[:, i, j] + fill
    if not accepted.any():
        clean[:] = 0.0
    return accepted, clean


def estimate_shift_field(
    y: FusionMeasurement,
    operators: EstimatedOperators | FusionObservation,
    *,
    window: int = 24,
    step: int = 12,
    valid: Any = None,
    min_peak: float = _LOW_CONFIDENCE,
    min_valid: float = 0.5,
    outlier_mads: float = 3.0,
    min_spread: float = 0.1,
) -> ShiftField:
    """A field of local shifts between the MSI and the HSI (tie points), for pairs that one translation does not
    register (terrain, attitude or band-to-band distortions).

    Algorithm:

    1. The pair in a common form, as :func:`check_coregistration`: ``a = R Y_h`` and ``b = S(G * Y_m)`` on the
       HSI grid (the same code), over the whole image; HSI pixels whose footprint touches an excluded MSI pixel
       or leaves the image are unusable.
    2. Tie points: square windows of ``window`` HSI pixels every ``step`` pixels (overlapping for the defaults,
       24 and 12), the grid centred on the image. In each window, :func:`estimate_shift` (a windowed, partially
       whitened phase correlation, refined by Lucas-Kanade) gives the shift and its correlation ``peak``.
    3. Rejection: a tie point is rejected when fewer than ``min_valid`` of its window's pixels are usable, when
       the window has no structure or the shift is beyond the search range (a quarter of the window), when
       ``peak < min_peak``, or when it is an outlier. For the outlier test the field's affine trend (least squares
       in the tie-point coordinates over the tie points that passed the other tests, refitted without those
       beyond 3 spreads of it) is removed first, so that a field with a gradient does not make its edge tie
       points look like outliers; then a tie point is an outlier when its departure from the trend is farther from
       the median departure of its 3 x 3 neighbours (those that passed the other tests; at least two) than
       ``outlier_mads`` times their spread (1.4826 MAD of their distances to that median, at least
       ``min_spread`` HSI pixels, so that a smooth field does not reject measurement noise). A tie point with
       fewer than two such neighbours is judged against the trend itself, with the spread of the tie points that
       passed the neighbour test (at least four; else it is kept). One pass: a tie point is judged against its
       neighbours' measurements, before any of them is rejected.
    4. A rejected tie point gets the trend plus the median departure of its accepted neighbours (of all accepted
       tie points when it has none); for an affine field, the trend itself.
    5. :meth:`ShiftField.at` interpolates the cleaned field bilinearly between tie-point centres (constant
       beyond the outer ones).

    Limits: a window must hold structure shared by both images (water, cloud-free flat fields, or a window mostly
    masked give no tie point, and its neighbours' shift is used); each tie point is the shift averaged over its
    window (weighted by the taper and by the image's gradients), so the field is smooth at the tie-point spacing:
    displacements that vary faster than ``step`` (sharp relief, moving objects) are smoothed, not resolved; and
    shifts larger than about a quarter of the window are not measured (correct a global shift first).

    Compared with AROSICS (Scheffler et al., Remote Sens. 9(7), 2017), on which it is modelled (a grid of tie
    points, a phase correlation per window, outlier rejection, correction by the tie-point field): the two
    images are first brought to one form through the pair's SRF and a symmetric Gaussian on the HSI grid (not
    one band of each image at its own resolution); the sub-pixel shift is refined by least squares (Lucas-Kanade)
    rather than by a peak fit; the filters are the correlation, the usable pixels and a local median/MAD test on
    the field less its robust affine trend (not AROSICS's reliability score, SSIM gain and RANSAC affine
    consistency test); rejected tie points are replaced (AROSICS drops them); and the field is applied by
    bilinear interpolation of the displacement between tie points and a spline resampling
    (:func:`hsfuse.geo.local.warp_with_field`), not by a GDAL warp through the tie points. It runs one
    :func:`estimate_shift` per tie point (about 5 ms each for four bands).

    Args:
        y: ``hsi`` ``(1, L, h, w)``, ``msi`` ``(1, m, r h, r w)``.
        operators: the pair's operators (as :func:`check_coregistration`).
        window, step: window side and spacing in HSI pixels (a window is cut to the image when larger).
        valid: optional ``(r h, r w)`` boolean mask on the MSI grid (``True`` = usable).
        min_peak: the lowest correlation accepted.
        min_valid: the lowest fraction of usable HSI pixels in a window.
        outlier_mads, min_spread: the outlier test (step 3).

    Returns:
        A :class:`ShiftField`.
    """
    hsi, msi, r, off, k, srf = _checked_pair(y, operators, "estimate_shift_field")
    window = check_positive_int(window, "window")
    step = check_positive_int(step, "step")
    for name, value in (("min_peak", min_peak), ("min_valid", min_valid), ("outlier_mads", outlier_mads),
                        ("min_spread", min_spread)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a non-negative number, got {value!r}")
    h, w = hsi.shape[-2:]
    wy, wx = min(window, h), min(window, w)
    if wy < 8 or wx < 8:
        raise InputError(f"windows of {wy}x{wx} HSI pixels are too small to measure a shift (need at least 8x8)")
    projected, degraded, lr_ok_t = _common_form(hsi, msi, r, off, k, srf, valid, exclude_edges=True)
    a, b = projected.numpy(), degraded.numpy()
    lr_ok = lr_ok_t.numpy() if lr_ok_t is not None else np.ones((h, w), bool)
    ys, xs = _starts(h, wy, step), _starts(w, wx, step)
    shape = (len(ys), len(xs))
    raw = np.full((2, *shape), np.nan)
    peak = np.zeros(shape)
    frac = np.zeros(shape)
    rejected = {"valid": 0, "failed": 0, "peak": 0, "outlier": 0}
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            ok = lr_ok[y0:y0 + wy, x0:x0 + wx]
            frac[i, j] = float(ok.mean())
            if frac[i, j] < min_valid:
                rejected["valid"] += 1
                continue
            try:
                dy, dx, p = estimate_shift(a[:, y0:y0 + wy, x0:x0 + wx], b[:, y0:y0 + wy, x0:x0 + wx],
                                           valid=None if ok.all() else ok)
            except InputError:  # no structure in the window
                rejected["failed"] += 1
                continue
            if not (math.isfinite(dy) and math.isfinite(dx)) or abs(dy) > wy / 4 or abs(dx) > wx / 4:
                rejected["failed"] += 1
                continue
            raw[:, i, j], peak[i, j] = (dy, dx), p
            if p < min_peak:
                rejected["peak"] += 1
    candidate = np.isfinite(raw[0]) & (peak >= min_peak)
    accepted, clean = _outliers_removed(raw, candidate, ys + (wy - 1) / 2, xs + (wx - 1) / 2, outlier_mads,
                                        min_spread)
    rejected["outlier"] = int((candidate & ~accepted).sum())
    return ShiftField(rows=ys + (wy - 1) / 2, cols=xs + (wx - 1) / 2, dy_raw=raw[0], dx_raw=raw[1], dy=clean[0],
                      dx=clean[1], peak=peak, valid_fraction=frac, accepted=accepted, rejected=rejected, window=window,
                      step=step, ratio=r, hr_origin=off + 0.5 * (1 - k % 2))
