"""Building blocks shared by several networks.

The learned observation operators of DBIN/EDBIN/DHIF-Net use a strided convolution (PSF + decimation) and a
transposed convolution (its learned adjoint). The authors' code hard-codes them for ratio 8 as
``kernel 12, stride 8, padding 2``; :func:`strided_geometry` generalises that rule to any integer ratio.

Also here: the authors' TF initialisation (:func:`variance_scaling_init_`), EDBIN's scaled spectral
normalisation (:func:`scaled_spectral_norm`), squeeze-and-excitation, and CARAFE upsampling.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .._checks import check_positive_int

__all__ = [
    "strided_geometry",
    "LearnedObservation",
    "back_projection",
    "variance_scaling_init_",
    "scaled_spectral_norm",
    "SqueezeExcitation",
    "CarafePadding",
    "prime_factors",
    "carafe_reassemble",
    "CARAFEStage",
]


def strided_geometry(ratio: int) -> tuple[int, int, int]:
    """``(kernel, stride, padding)`` of a convolution mapping an ``rH x rW`` grid to ``H x W`` (and back).

    ``padding = max(1, r // 4)``, ``kernel = r + 2 * padding``, ``stride = r``: the
    output of ``Conv2d(k, stride=r, padding=p)`` on ``rH`` rows has ``(rH + 2p - k) / r + 1 = H`` rows and
    ``ConvTranspose2d(k, stride=r, padding=p)`` maps ``H`` back to ``(H - 1) r - 2p + k = rH``. At r = 8 this is
    the authors' ``(12, 8, 2)``; at r = 4 it is ``(6, 4, 1)`` (the per-stage setting of DHIF-Net's x16 model);
    at r = 2 it is ``(4, 2, 1)``.
    """
    if ratio < 2:
        raise ValueError(f"strided_geometry needs a ratio >= 2, got {ratio}")
    padding = max(1, ratio // 4)
    return ratio + 2 * padding, ratio, padding


# --------------------------------------------------------------------------------------------------------------
# Initialisation used by the authors' TensorFlow code (DBIN / EDBIN)
# --------------------------------------------------------------------------------------------------------------

def variance_scaling_init_(module: nn.Module, *, factor: float = 2.0) -> nn.Module:
    """Initialise every conv / transposed conv of ``module`` as ``tf.contrib.layers.variance_scaling_initializer()``.

    TF1's default (``factor=2, mode='FAN_IN', uniform=False``) draws ``w ~ N(0, s^2)`` truncated at ``2 s`` with
    ``s = sqrt(1.3 * factor / fan_in)`` (the 1.3 undoes the variance lost by truncation: He initialisation);
    biases start at zero. ``fan_in = weight.shape[1] * kh * kw``: input channels for ``Conv2d``, and for
    ``ConvTranspose2d`` its *output* channels, which is also what TF computes from a ``[kh, kw, out, in]``
    transposed kernel. Returns ``module``.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = _original_weight(sub)
            fan_in = weight.shape[1] * math.prod(weight.shape[2:])
            std = math.sqrt(1.3 * factor / fan_in)
            with torch.no_grad():
                nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
    return module


def _original_weight(module: nn.Module) -> torch.Tensor:
    """The trainable weight tensor of ``module`` (the unnormalised one when a parametrisation is registered)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    return module.weight  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# Scaled spectral normalisation (EDBIN)
# --------------------------------------------------------------------------------------------------------------

class _Scale(nn.Module):
    """Parametrisation ``W -> c W`` (chained after spectral normalisation)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def scaled_spectral_norm(module: nn.Module, *, scale: float = 0.7, n_power_iterations: int = 1) -> nn.Module:
    """Register ``W_eff = scale * W / sigma(W)`` on ``module.weight`` (EDBIN's modified spectral normalisation).

    ``sigma(W)`` is the largest singular value of the weight reshaped to a matrix (``(out, in*kh*kw)`` for
    ``Conv2d``), estimated by :func:`torch.nn.utils.parametrizations.spectral_norm` with ``n_power_iterations``
    power iterations per training-mode evaluation (u and v are buffers, no gradient flows through them, as in
    the TF code's ``u.assign``/SN-GAN scheme). The ``scale`` factor is a second, chained parametrisation, so
    ``sigma(W_eff) ~= scale`` (0.7 in Wang et al., TNNLS 2023: it keeps each normalised layer a contraction,
    which their invertibility argument needs). Parameter count is unchanged. Returns ``module``.
    """
    if not 0.0 < scale:
        raise ValueError(f"spectral-norm scale must be positive, got {scale}")
    spectral_norm(module, n_power_iterations=n_power_iterations)
    parametrize.register_parametrization(module, "weight", _Scale(scale))
    return module


# --------------------------------------------------------------------------------------------------------------
# Squeeze-and-excitation (EDBIN's SE-ResBlock)
# --------------------------------------------------------------------------------------------------------------

class SqueezeExcitation(nn.Module):
    """Channel attention ``x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)`` (Hu et al., CVPR 2018).

    ``(N, C, H, W) -> (N, C, H, W)``; ``W1: C -> hidden``, ``W2: hidden -> C`` are dense layers with bias
    (``tf.layers.dense`` in EDBIN's code, Glorot-uniform initialised like TF's default).
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)
        for layer in (self.squeeze, self.excite):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean(dim=(-2, -1))))))
        return x * gate[:, :, None, None]


# --------------------------------------------------------------------------------------------------------------
# CARAFE: content-aware reassembly of features (Wang et al., ICCV 2019), as used in EDBIN
# --------------------------------------------------------------------------------------------------------------

CarafePadding = Literal["zeros", "replicate"]


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n >= 2`` in ascending order with multiplicity (``12 -> [2, 2, 3]``)."""
    n = check_positive_int(n, "prime_factors: n", minimum=2)
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def carafe_reassemble(x: torch.Tensor, kernels: torch.Tensor, *, scale: int,
                      padding: CarafePadding = "zeros") -> torch.Tensor:
    """Upsample ``x`` by ``scale`` with one ``k x k`` reassembly kernel per output pixel.

    ``out[c, s*i + a, s*j + b] = sum_{dy, dx} K[(dy, dx), s*i + a, s*j + b] * x[c, i + dy, j + dx]``,
    ``dy, dx in -k//2 .. k//2``: every output pixel is a weighted sum of the ``k x k`` neighbourhood of the
    low-resolution pixel it falls in. This equals the TF code's nearest upsampling followed by
    ``extract_image_patches(ksize=k, rate=scale, padding='SAME')`` and a weighted sum over the taps.

    Args:
        x: features ``(N, C, h, w)``.
        kernels: ``(N, k*k, s*h, s*w)``, taps in row-major ``(dy, dx)`` order (normally softmax-normalised).
        scale: integer upsampling factor ``s``.
        padding: ``"zeros"`` (the authors' ``'SAME'`` patches) or ``"replicate"`` (a constant map stays
            constant up to the border).

    Returns:
        ``(N, C, s*h, s*w)``.
    """
    n, c, h, w = x.shape
    taps = kernels.shape[1]
    k = math.isqrt(taps)
    if k * k != taps or k % 2 == 0:
        raise ValueError(f"kernels must have an odd square number of taps (dim 1), got {taps}")
    if kernels.shape != (n, taps, scale * h, scale * w):
        raise ValueError(f"kernels must have shape {(n, taps, scale * h, scale * w)}, got {tuple(kernels.shape)}")
    half = k // 2
    if padding == "zeros":
        patches = F.unfold(x, k, padding=half)
    elif padding == "replicate":
        patches = F.unfold(F.pad(x, (half, half, half, half), mode="replicate"), k)
    else:
        raise ValueError(f"padding must be 'zeros' or 'replicate', got {padding!r}")
    patches = patches.view(n, c, taps, h, w)
    weights = kernels.view(n, taps, h, scale, w, scale)
    out = torch.einsum("ntiajb,nctij->nciajb", weights, patches)
    return out.reshape(n, c, scale * h, scale * w)


class CARAFEStage(nn.Module):
    """One CARAFE upsampling stage by a factor ``s``: kernel prediction, softmax, reassembly.

    Kernel predictor (EDBIN code, ``carafe`` in ``train_cave_edbin.py``)::

        K = softmax_taps( pixel_shuffle_s( conv3x3( relu( conv3x3(x) ) ) ) )     C -> C -> (s k)^2 -> k^2

    so each output pixel gets ``k^2`` non-negative taps that sum to one, then :func:`carafe_reassemble`.
    ``(N, C, h, w) -> (N, C, s*h, s*w)``. Both convs are plain (not spectrally normalised) with bias.
    """

    def __init__(self, channels: int, *, scale: int, k_up: int = 5, padding: CarafePadding = "zeros") -> None:
        super().__init__()
        k_up = check_positive_int(k_up, "k_up")
        if k_up % 2 == 0:
            raise ValueError(f"k_up must be a positive odd integer, got {k_up}")
        self.scale = scale
        self.k_up = k_up
        self.padding = padding
        self.encode = nn.Conv2d(channels, channels, 3, padding=1)
        self.predict = nn.Conv2d(channels, (scale * k_up) ** 2, 3, padding=1)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """Reassembly kernels ``(N, k_up^2, s*h, s*w)``: non-negative, summing to one over dim 1."""
        logits = F.pixel_shuffle(self.predict(F.relu(self.encode(x))), self.scale)
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return carafe_reassemble(x, self.kernels(x), scale=self.scale, padding=self.padding)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, k_up={self.k_up}, padding={self.padding!r}"


class LearnedObservation(nn.Module):
    """DBIN/EDBIN's learned observation ``g``: ``X (N, L, rH, rW) -> (g_R(X) (N, m, rH, rW), g_B(X) (N, L, H, W))``.

    ``g_R = lrelu(conv3x3_{L->m})`` (the SRF), ``g_B = lrelu(conv_{k x k, stride r}, L->L)`` (PSF + decimation,
    geometry :func:`strided_geometry`); unconstrained, learned with the fusion network (Wang et al. 2019).
    """

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, negative_slope: float) -> None:
        super().__init__()
        k, s, p = strided_geometry(ratio)
        self.slope = negative_slope
        self.spectral = nn.Conv2d(hsi_bands, msi_bands, 3, padding=1)
        self.spatial = nn.Conv2d(hsi_bands, hsi_bands, k, stride=s, padding=p)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (F.leaky_relu(self.spectral(x), self.slope), F.leaky_relu(self.spatial(x), self.slope))


def back_projection(fusion: nn.Module, observe: nn.Module | None, final: nn.Module, hsi: torch.Tensor,
                    msi: torch.Tensor, *, iterations: int) -> torch.Tensor:
    """DBIN's unrolled iterative back-projection with shared weights (Wang et al., ICCV 2019, Eq. 6-8)::

        X_0 = F(Y_m, Y_h);   X_{k+1} = X_k + F(Y_m - g_R(X_k), Y_h - g_B(X_k));   Z = final([X_0, ..., X_K])
    """
    x = fusion(msi, hsi)
    iterates = [x]
    for _ in range(iterations):
        msi_hat, hsi_hat = observe(x)  # type: ignore[misc]
        x = x + fusion(msi - msi_hat, hsi - hsi_hat)
        iterates.append(x)
    return final(torch.cat(iterates, dim=1))
