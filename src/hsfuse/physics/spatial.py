"""Spatial degradation: PSF blur followed by decimation, ``Y_h = S(B * Z)``.

Conventions (all explicit keyword options of :class:`SpatialDegradation`):

* **Convolution, not correlation.** ``(B * x)[p] = sum_j k[j] x[p - j + c]`` with the kernel centre
  ``c = k // 2`` (zero-based, per axis). This is the convention of MATLAB's ``psf2otf`` and hence of every
  FFT-based fusion code (FUSE, HySure, NSSR, DHIF-Net); for even sizes the centre is the lower-right of the
  middle four taps.
* **Boundary**: ``"circular"`` (periodic, what FFT solvers assume), ``"reflect"`` (mirror without repeating
  the edge pixel, ``numpy.pad(mode="reflect")``) or ``"zero"`` (zero-filled outside the image: the ``'same'``
  part of the full convolution, i.e. ``scipy.signal.convolve2d(x, k, mode="same", boundary="fill")`` for odd
  kernels, the simulation of HyperBench and other harnesses; for even kernels SciPy centres ``'same'`` at
  ``(k - 1) // 2``, one pixel before our ``k // 2``, so ``blur(...)[p] == convolve2d(...)[p + 1]``). Its adjoint
  is the correlation with the kernel, zero-padded the same way (exact).
* **Decimation** keeps rows/columns ``offset, offset + r, offset + 2r, ...`` (zero-based). The default offset
  ``(r - 1) // 2`` makes an ``r x r`` kernel average exactly the disjoint ``r x r`` blocks (UDALN's
  simulation) and, for an odd ``r``, samples the block centre. DHIF-Net's ``sf/2 - 1`` equals it for even
  ``r``.
* Image height and width must be multiples of ``r``.

Tensors are ``(N, C, H, W)``; PSFs are ``(k, k)`` (shared by all bands) or ``(C, k, k)`` (one per band).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_image_tensor, check_positive_int, check_ratio
from ..errors import InputError

__all__ = [
    "Boundary",
    "gaussian_psf",
    "fwhm_to_sigma",
    "check_psf",
    "blur",
    "blur_adjoint",
    "decimate",
    "blur_decimate",
    "decimate_adjoint",
    "zero_border_gain",
    "psf_to_otf",
    "SpatialDegradation",
]

Boundary = Literal["circular", "reflect", "zero"]
_BOUNDARIES = ("circular", "reflect", "zero")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.35482...


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian standard deviation from its full width at half maximum: ``sigma = fwhm / (2 sqrt(2 ln 2))``."""
    return float(fwhm) / _FWHM_PER_SIGMA


def gaussian_psf(
    size: int, *, sigma: float | None = None, fwhm: float | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """A normalised ``size x size`` isotropic Gaussian kernel.

    ``k[i, j] ∝ exp(-((i - m)^2 + (j - m)^2) / (2 sigma^2))`` with ``m = (size - 1) / 2``, scaled to sum to
    one (MATLAB ``fspecial('gaussian')`` and OpenCV ``getGaussianKernel`` outer products give the same
    numbers). Give exactly one of ``sigma`` or ``fwhm`` (pixels).

    Example:
        >>> k = gaussian_psf(5, fwhm=5.0)
        >>> tuple(k.shape), round(float(k.sum()), 12)
        ((5, 5), 1.0)
    """
    if (sigma is None) == (fwhm is None):
        raise InputError("gaussian_psf needs exactly one of sigma= or fwhm=")
    s = fwhm_to_sigma(fwhm) if fwhm is not None else float(sigma)  # type: ignore[arg-type]
    size = check_positive_int(size, "PSF size")
    if not (math.isfinite(s) and s > 0):
        raise InputError(f"PSF sigma/fwhm must be positive and finite, got {sigma if fwhm is None else fwhm!r}")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(t**2) / (2.0 * s * s))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).to(dtype)


def check_psf(psf: torch.Tensor, *, channels: int | None = None) -> torch.Tensor:
    """Validate a PSF: ``(k, k)`` or ``(C, k, k)``, finite, odd or even square support."""
    if not isinstance(psf, torch.Tensor):
        psf = torch.as_tensor(psf)
    if psf.ndim not in (2, 3) or psf.shape[-1] != psf.shape[-2]:
        raise InputError(f"PSF must be a square (k, k) kernel or (C, k, k) per-band kernels, got {tuple(psf.shape)}")
    if not torch.all(torch.isfinite(psf)):
        raise InputError("PSF contains NaN or inf")
    if psf.ndim == 3 and channels is not None and psf.shape[0] != channels:
        raise InputError(f"per-band PSF has {psf.shape[0]} kernels but the image has {channels} bands")
    return psf


def _pads(k: int) -> tuple[int, int]:
    c = k // 2
    return k - 1 - c, c  # (before, after) for a true convolution centred at c


def _depthwise_weight(psf: torch.Tensor, channels: int, *, flip: bool, like: torch.Tensor) -> torch.Tensor:
    w = psf.to(dtype=like.dtype, device=like.device)
    if flip:
        w = torch.flip(w, dims=(-2, -1))
    if w.ndim == 2:
        return w.expand(channels, 1, *w.shape)
    return w[:, None]


def _pad(x: torch.Tensor, before: int, after: int, boundary: str) -> torch.Tensor:
    if before == 0 and after == 0:
        return x
    if boundary == "zero":
        return F.pad(x, (before, after, before, after), mode="constant", value=0.0)
    mode = "circular" if boundary == "circular" else "reflect"
    return F.pad(x, (before, after, before, after), mode=mode)


def _pad_adjoint(y: torch.Tensor, before: int, after: int, boundary: str) -> torch.Tensor:
    """Adjoint of :func:`_pad`: fold the padded margins back onto the pixels they were copied from."""
    if before == 0 and after == 0:
        return y
    if boundary == "zero":  # the adjoint of zero padding is the crop
        return y[..., before : y.shape[-2] - after, before : y.shape[-1] - after]
    shape = (*y.shape[:-2], y.shape[-2] - before - after, y.shape[-1] - before - after)
    with torch.enable_grad():
        x0 = torch.zeros(shape, dtype=y.dtype, device=y.device, requires_grad=True)
        (g,) = torch.autograd.grad(_pad(x0, before, after, boundary), x0, grad_outputs=y, create_graph=y.requires_grad)
    return g


def _check_boundary(boundary: str, x: torch.Tensor, k: int) -> None:
    if boundary not in _BOUNDARIES:
        raise InputError(f"boundary must be one of {_BOUNDARIES}, got {boundary!r}")
    before, after = _pads(k)
    limit = min(x.shape[-2], x.shape[-1])
    if boundary == "reflect" and max(before, after) >= limit:
        raise InputError(f"a {k}x{k} PSF needs images larger than {max(before, after)} pixels for reflect padding")
    if boundary == "circular" and k > limit:
        raise InputError(f"a {k}x{k} PSF is larger than the {x.shape[-2]}x{x.shape[-1]} image")


def blur(x: torch.Tensor, psf: torch.Tensor, *, boundary: Boundary = "circular") -> torch.Tensor:
    """Convolve every band of ``x`` ``(N, C, H, W)`` with ``psf`` (``(k, k)`` or ``(C, k, k)``); same size out."""
    psf = check_psf(psf, channels=x.shape[1])
    k = psf.shape[-1]
    _check_boundary(boundary, x, k)
    before, after = _pads(k)
    w = _depthwise_weight(psf, x.shape[1], flip=True, like=x)
    return F.conv2d(_pad(x, before, after, boundary), w, groups=x.shape[1])


def blur_adjoint(y: torch.Tensor, psf: torch.Tensor, *, boundary: Boundary = "circular") -> torch.Tensor:
    """Adjoint of :func:`blur`: correlation with ``psf`` followed by the adjoint of the boundary padding."""
    psf = check_psf(psf, channels=y.shape[1])
    k = psf.shape[-1]
    _check_boundary(boundary, y, k)
    before, after = _pads(k)
    w = _depthwise_weight(psf, y.shape[1], flip=False, like=y)
    # Correlating the zero-padded y gives the adjoint of "conv over the padded image"; the padding's own
    # adjoint then folds the contributions of the margin back.
    full = F.conv_transpose2d(y, torch.flip(w, dims=(-2, -1)), groups=y.shape[1])
    return _pad_adjoint(full, before, after, boundary)


def _check_offset(offset: int, ratio: int) -> int:
    o = check_positive_int(offset, "decimation offset", minimum=0)
    if o >= ratio:
        raise InputError(f"decimation offset must be an integer in [0, ratio={ratio}), got {offset!r}")
    return o


def decimate(x: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """Keep every ``ratio``-th row and column starting at ``offset``: ``(N, C, H, W) -> (N, C, H/r, W/r)``."""
    r = check_ratio(ratio)
    offset = _check_offset(offset, r)
    H, W = x.shape[-2:]
    if H % r or W % r:
        raise InputError(f"image size {H}x{W} is not a multiple of the ratio {r}; crop it to a multiple first")
    return x[..., offset::r, offset::r]


def blur_decimate(x: torch.Tensor, psf: torch.Tensor, *, ratio: int, offset: int,
                  boundary: Boundary = "circular") -> torch.Tensor:
    """``decimate(blur(x, psf), ratio, offset)`` computed only at the kept pixels (a strided convolution).

    Exactly equal to the two-step form, ``r^2`` times fewer multiply-adds; ``(N, C, H, W) -> (N, C, H/r, W/r)``.
    """
    r = check_ratio(ratio)
    offset = _check_offset(offset, r)
    psf = check_psf(psf, channels=x.shape[1])
    k = psf.shape[-1]
    _check_boundary(boundary, x, k)
    H, W = x.shape[-2:]
    if H % r or W % r:
        raise InputError(f"image size {H}x{W} is not a multiple of the ratio {r}; crop it to a multiple first")
    before, after = _pads(k)
    w = _depthwise_weight(psf, x.shape[1], flip=True, like=x)
    padded = _pad(x, before, after, boundary)[..., offset:, offset:]
    return F.conv2d(padded, w, stride=r, groups=x.shape[1])[..., : H // r, : W // r]


def zero_border_gain(psf: torch.Tensor, hr_shape: tuple[int, int], *, ratio: int, offset: int,
                     rows: slice = slice(None), cols: slice = slice(None)) -> torch.Tensor:
    """The PSF mass inside the image seen by each LR pixel under ``boundary="zero"``: ``S B 1``, ``(h, w)`` float64.

    A zero-filled border darkens the LR pixels within a PSF radius of the edge by exactly this factor (for a locally
    flat scene); dividing them by it ("normalised convolution") makes them what a non-darkening model predicts,
    which the periodic-extension solvers need (FUSE ``border="pad"``). Equals
    ``blur_decimate(ones, psf, boundary="zero")`` (tested), computed from per-axis validity masks:
    ``G = V_r psf' V_c^T`` (``psf'``: the flipped kernel, as the convolution reads it) with ``V_r[i, a] = 1`` when
    tap ``a`` of LR row ``i`` lies inside the image.
    ``psf``: one ``(k, k)`` kernel. ``rows``, ``cols``: the LR rows and columns wanted (a tile of a large image),
    default all.
    """
    r = check_ratio(ratio)
    offset = _check_offset(offset, r)
    psf = check_psf(psf).to(torch.float64)
    if psf.ndim != 2:
        raise InputError("zero_border_gain needs one (k, k) PSF")
    k = psf.shape[-1]
    before, _ = _pads(k)
    H, W = hr_shape

    def valid(n: int) -> torch.Tensor:
        centre = offset + r * torch.arange(n // r, device=psf.device)
        pos = centre[:, None] + torch.arange(k, device=psf.device)[None] - before
        return ((pos >= 0) & (pos < n)).to(torch.float64)

    return valid(H)[rows] @ psf.flip(0, 1) @ valid(W)[cols].T


def decimate_adjoint(y: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """Adjoint of :func:`decimate`: zero-filled upsampling ``(N, C, h, w) -> (N, C, r h, r w)``."""
    r = check_ratio(ratio)
    offset = _check_offset(offset, r)
    out = y.new_zeros((*y.shape[:-2], y.shape[-2] * r, y.shape[-1] * r))
    out[..., offset::r, offset::r] = y
    return out


def psf_to_otf(psf: torch.Tensor, shape: tuple[int, int], *, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Optical transfer function: the 2-D DFT of the PSF zero-padded to ``shape`` with its centre at (0, 0).

    Equals MATLAB ``psf2otf(psf, shape)``; ``ifft2(fft2(x) * otf)`` is :func:`blur` with circular boundary.
    Returns ``(H, W)`` or ``(C, H, W)`` complex.
    """
    psf = check_psf(psf)
    H, W = shape
    k = psf.shape[-1]
    if k > min(H, W):
        raise InputError(f"a {k}x{k} PSF does not fit a {H}x{W} image")
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    pad = psf.new_zeros((*psf.shape[:-2], H, W), dtype=real)
    pad[..., :k, :k] = psf.to(real)
    c = k // 2
    pad = torch.roll(pad, shifts=(-c, -c), dims=(-2, -1))
    return torch.fft.fft2(pad).to(dtype)


class SpatialDegradation(nn.Module):
    """The spatial branch of the observation model, ``A = S B`` (blur then decimate), with its adjoint.

    ``A(x)``: ``(N, C, H, W) -> (N, C, H/r, W/r)``; ``A_adjoint(y)``: ``(N, C, h, w) -> (N, C, r h, r w)``.

    Args:
        ratio: integer decimation factor ``r``.
        psf: ``(k, k)`` kernel shared by all bands, or ``(C, k, k)`` per band; ``None`` means no blur
            (a single tap).
        offset: decimation offset in ``[0, r)``; default ``(r - 1) // 2`` (see the module docstring).
        boundary: ``"circular"``, ``"reflect"`` or ``"zero"`` (module docstring).

    Example:
        >>> op = SpatialDegradation(ratio=4, psf=gaussian_psf(7, fwhm=4.0))
        >>> tuple(op.A(torch.rand(1, 3, 16, 12)).shape)
        (1, 3, 4, 3)
    """

    def __init__(
        self,
        *,
        ratio: int,
        psf: torch.Tensor | None = None,
        offset: int | None = None,
        boundary: Boundary = "circular",
    ) -> None:
        super().__init__()
        self.ratio = check_ratio(ratio)
        self.offset = _check_offset((self.ratio - 1) // 2 if offset is None else offset, self.ratio)
        if boundary not in _BOUNDARIES:
            raise InputError(f"boundary must be one of {_BOUNDARIES}, got {boundary!r}")
        self.boundary: Boundary = boundary
        kernel = torch.ones(1, 1, dtype=torch.float64) if psf is None else check_psf(torch.as_tensor(psf))
        self.register_buffer("_psf", kernel.clone())

    @property
    def psf(self) -> torch.Tensor:
        """The current PSF, ``(k, k)`` or ``(C, k, k)``."""
        return self._psf

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        return blur(x, self.psf, boundary=self.boundary)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """``S(B * x)``."""
        x = check_image_tensor(x, "image")
        return blur_decimate(x, self.psf, ratio=self.ratio, offset=self.offset, boundary=self.boundary)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``B^T S^T y``."""
        y = check_image_tensor(y, "low-resolution image")
        return blur_adjoint(decimate_adjoint(y, ratio=self.ratio, offset=self.offset), self.psf, boundary=self.boundary)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, offset={self.offset}, boundary={self.boundary!r}, psf={tuple(self.psf.shape)}"
