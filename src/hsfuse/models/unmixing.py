"""Unmixing autoencoder of "Unmixing Before Fusion" (Yu, Pan, Wang et al., CVPR 2024).

A few-band image ``x`` ``(N, c, H, W)`` (RGB: ``c = 3``) is encoded into ``K`` abundance maps on the simplex and
decoded through the linear mixing model into a ``C``-band hyperspectral image::

    A = softmax_k(f_theta(x))            (N, K, H, W),  A >= 0,  sum_k A_k = 1
    Y_hat[n, :, i, j] = E A[n, :, i, j]   E: (C, K) endmember matrix, E >= 0

The encoder ``f_theta`` follows the authors' ``UnmixingAE`` (HSI-Synthesis/Unmixing-before-fusion and
yuyang95/UnmixingDM): ``conv3x3 c -> w0``, then five SSPN stages ``w0 -> w1 -> w2 -> w3 -> w4 -> K``; an SSPN of
width ``n`` is ``n_blocks`` SSBs with a global residual followed by ``conv3x3 n -> out``; an SSB is a residual
block (``conv3x3-ReLU-conv3x3``, scaled by ``res_scale``) then a residual attention block (``conv1x1-ReLU-conv1x1``,
channel attention with reduction 16, scaled by ``res_scale``). Paper widths ``(32, 64, 128, 96, 48)``, 3 blocks,
``res_scale = 0.1``, ``K = 5``.

Deviations from the released code, on purpose:

* the decoder (the endmembers) is kept **non-negative** by projection after every optimiser step
  (:meth:`UnmixingNet.project_`); the code leaves it free, so its endmembers can go negative;
* the endmember smoothness term differences **along the spectral axis**, as the paper describes; the released
  ``TVLossEndmembers`` differences the decoder weight ``(C, K, 1, 1)`` along dimension 1, i.e. between adjacent
  *endmembers*;
* the first layer takes the few-band image (the intended RGB -> HSI wiring of the third-party fork; the
  official ``train()`` feeds the HSI itself).

The losses (:func:`charbonnier`, :func:`spectral_angle_loss`, :func:`endmember_smoothness`,
:func:`unmixing_loss`) are plain functions below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..errors import InputError
from .blocks import SqueezeExcitation

__all__ = [
    "UnmixingConfig",
    "UnmixingNet",
    "charbonnier",
    "spectral_angle_loss",
    "endmember_smoothness",
    "unmixing_loss",
    "UNMIXING_CONFIGS",
]


@dataclass(frozen=True)
class UnmixingConfig:
    """Architecture of the unmixing encoder.

    Attributes:
        widths: feature widths ``(w0, w1, w2, w3, w4)`` of the first conv and the SSPN stages.
        n_blocks: SSBs per SSPN.
        res_scale: residual scaling inside the SSBs.
        reduction: channel-attention reduction.
        endmembers: ``K``, the number of abundance maps / endmembers.
    """

    widths: tuple[int, int, int, int, int] = (32, 64, 128, 96, 48)
    n_blocks: int = 3
    res_scale: float = 0.1
    reduction: int = 16
    endmembers: int = 5

    def __post_init__(self) -> None:
        if len(self.widths) != 5:
            raise InputError(f"widths must be five positive integers, got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(check_positive_int(w, f"UnmixingConfig.widths[{i}]")
                                                 for i, w in enumerate(self.widths)))
        object.__setattr__(self, "n_blocks", check_positive_int(self.n_blocks, "UnmixingConfig.n_blocks"))
        # K >= 2: the abundances live on a simplex
        object.__setattr__(self, "endmembers", check_positive_int(self.endmembers, "UnmixingConfig.endmembers",
                                                                  minimum=2))


#: ``paper``: the authors' widths and depth (2.25 M parameters for RGB input, 31 bands); ``small``: a CPU-sized version
#: (the benchmarks' default); ``tiny``: for tests.
UNMIXING_CONFIGS: dict[str, UnmixingConfig] = {
    "paper": UnmixingConfig(),
    "small": UnmixingConfig(widths=(16, 32, 32, 32, 16), n_blocks=1),
    "tiny": UnmixingConfig(widths=(4, 4, 4, 4, 4), n_blocks=1, reduction=2),
}


class _ResBlock(nn.Module):
    """``x + res_scale * conv(relu(conv(x)))`` with ``k x k`` convolutions."""

    def __init__(self, n: int, k: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, k, padding=k // 2), nn.ReLU(inplace=True),
                                  nn.Conv2d(n, n, k, padding=k // 2))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class _AttentionBlock(nn.Module):
    """``x + res_scale * CA(conv1x1(relu(conv1x1(x))))`` (the authors' ``ResAttentionBlock``)."""

    def __init__(self, n: int, reduction: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, 1), nn.ReLU(inplace=True), nn.Conv2d(n, n, 1))
        self.attention = SqueezeExcitation(n, max(1, n // reduction))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.attention(self.body(x))


class _SSPN(nn.Module):
    """Spatial-spectral stage: ``conv3x3(x + SSB^n(x))``, width ``n -> out``."""

    def __init__(self, n: int, out: int, config: UnmixingConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for _ in range(config.n_blocks):
            blocks += [_ResBlock(n, 3, config.res_scale), _AttentionBlock(n, config.reduction, config.res_scale)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(n, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.blocks(x))


class UnmixingNet(nn.Module):
    """Few-band image -> abundances on the simplex -> hyperspectral image through non-negative endmembers.

    Args:
        in_bands: ``c``, bands of the input image (3 for RGB).
        hsi_bands: ``C``, bands of the reconstructed hyperspectral image.
        config: :class:`UnmixingConfig` or a name in :data:`UNMIXING_CONFIGS`.
        endmembers: optional ``(C, K)`` non-negative initial endmember matrix (e.g. from
            :func:`hsfuse.synthesis.unmixing.initial_endmembers`); default: uniform in ``[0, 1)``.
    """

    def __init__(self, *, in_bands: int, hsi_bands: int, config: UnmixingConfig | str = "paper",
                 endmembers: torch.Tensor | None = None) -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in UNMIXING_CONFIGS:
                raise InputError(f"unknown unmixing config {config!r}; choose one of {', '.join(UNMIXING_CONFIGS)}")
            config = UNMIXING_CONFIGS[config]
        in_bands = check_positive_int(in_bands, "in_bands")
        hsi_bands = check_positive_int(hsi_bands, "hsi_bands", minimum=2)
        self.config = config
        self.in_bands = in_bands
        self.hsi_bands = hsi_bands
        w = config.widths
        K = config.endmembers
        self.head = nn.Conv2d(in_bands, w[0], 3, padding=1)
        outs = (w[1], w[2], w[3], w[4], K)
        self.stages = nn.Sequential(*[_SSPN(n, o, config) for n, o in zip(w, outs)])
        if endmembers is None:
            init = torch.rand(hsi_bands, K)
        else:
            init = torch.as_tensor(endmembers, dtype=torch.float32)
            if init.shape != (hsi_bands, K):
                raise InputError(f"initial endmembers must be ({hsi_bands}, {K}) (bands x endmembers), got "
                                 f"{tuple(init.shape)}")
            if not torch.isfinite(init).all() or (init < 0).any():
                raise InputError("initial endmembers must be finite and non-negative")
        self.endmembers = nn.Parameter(init.clone())

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def abundances(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, c, H, W) -> (N, K, H, W)``, softmax over ``K``."""
        if x.ndim != 4 or x.shape[1] != self.in_bands:
            raise InputError(f"expected an (N, {self.in_bands}, H, W) input, got {tuple(x.shape)}")
        return torch.softmax(self.stages(self.head(x)), dim=1)

    def decode(self, abundances: torch.Tensor) -> torch.Tensor:
        """``Y = E A``: ``(N, K, H, W) -> (N, C, H, W)``."""
        return torch.einsum("ck,nkhw->nchw", self.endmembers, abundances)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(abundances, reconstruction)``."""
        a = self.abundances(x)
        return a, self.decode(a)

    @torch.no_grad()
    def project_(self) -> None:
        """Keep the endmembers feasible (``E >= 0``); call after every optimiser step."""
        self.endmembers.clamp_(min=0.0)


# ----------------------------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------------------------

def charbonnier(x: torch.Tensor, y: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """``mean sqrt((x - y)^2 + eps^2)`` (the authors' ``CharbonnierLoss``, ``eps = 1e-3``)."""
    return torch.sqrt((x - y).square() + eps * eps).mean()


def spectral_angle_loss(x: torch.Tensor, y: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    """Mean spectral angle (radians) between ``x`` and ``y`` ``(N, C, H, W)`` over pixels.

    ``mean_p arccos(<x_p, y_p> / (|x_p| |y_p|))``; the cosine is clamped to ``[-1 + eps, 1 - eps]`` so the
    gradient of ``arccos`` stays finite at zero angle (the released code does not clamp).
    """
    cos = F.cosine_similarity(x, y, dim=1, eps=1e-8)
    return torch.acos(cos.clamp(-1 + eps, 1 - eps)).mean()


def endmember_smoothness(endmembers: torch.Tensor) -> torch.Tensor:
    """``2 / ((C - 1) K) * sum_{c, k} (E[c+1, k] - E[c, k])^2`` for ``E`` ``(C, K)``: squared first differences
    along the spectral axis (the authors' normalisation: twice the mean)."""
    d = endmembers[1:] - endmembers[:-1]
    return 2.0 * d.square().mean()


def unmixing_loss(reconstruction: torch.Tensor, target: torch.Tensor, endmembers: torch.Tensor, *,
                  sad_weight: float = 0.1, smooth_weight: float = 0.015) -> tuple[torch.Tensor, dict[str, float]]:
    """The paper's objective ``Charbonnier(Y_hat, Y) + 0.1 SAD(Y_hat, Y) + 0.015 TV(E)``.

    Returns the loss and its three terms (weighted) as floats for logging.
    """
    rec = charbonnier(reconstruction, target)
    sad = sad_weight * spectral_angle_loss(reconstruction, target)
    tv = smooth_weight * endmember_smoothness(endmembers)
    return rec + sad + tv, {"charbonnier": rec.item(), "sad": sad.item(), "smooth": tv.item()}
