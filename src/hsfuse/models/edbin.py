"""EDBIN: enhanced deep blind fusion (Wang, Fu, Zeng, Sun, Zhan, Huang, Ding, IEEE TNNLS 34(3), 2023).

The unrolled scheme of :mod:`hsfuse.models.dbin` with four changes (authors' ``train_cave_edbin.py`` and
``utils3.py``; ``Y``: LR-HSI, ``Z``: HR-MSI)::

    X_0     = F(Z, Y);   X_{k+1} = X_k + F(Z - g_R(X_k), Y - g_B(X_k));   X_hat = conv3x3([X_0..X_K])  (no bias)

    F(Z, Y):  U = CARAFE_{p_1} o ... o CARAFE_{p_n}(Y)      one x p stage per prime factor p of the ratio
              T = lrelu(SN conv3x3([U, Z]))
              T = T + SE(SN conv3x3(lrelu(SN conv3x3(T))))   x n_resblocks (SE-ResBlocks)
              F = SN conv3x3(T)                              (no output activation, unlike DBIN)
    g_R(X) = lrelu(SN conv3x3(X)),   g_B(X) = lrelu(SN conv_{k,r,p}(X))

    SN W = 0.7 * W / sigma_max(W)    (1 power iteration per forward pass; the paper's modified SN)
    SE(x) = x * sigmoid(W2 relu(W1 GAP(x)))                  (C -> C/16 -> C: 64 -> 4 -> 64)
    CARAFE_p(x): K = softmax_taps(shuffle_p(conv3x3(relu(conv3x3(x))))); out = reassemble_{k_up x k_up}(x, K)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .._checks import check_positive_int
from ..errors import InputError
from .base import FusionNet
from .blocks import (
    CARAFEStage,
    LearnedObservation,
    back_projection,
    SqueezeExcitation,
    prime_factors,
    scaled_spectral_norm,
    strided_geometry,
    variance_scaling_init_,
)

__all__ = ["EDBINConfig", "EDBIN", "edbin_authors_parameters"]


@dataclass(frozen=True)
class EDBINConfig:
    """Architecture options of :class:`EDBIN`; the defaults are the authors' CAVE setting.

    Attributes:
        width: feature channels ``C`` of the fusion block (64).
        resblocks: SE-ResBlocks in the fusion block (4).
        iterations: back-projection iterations ``K`` after the initial estimate (8, ``num_ite``).
        se_reduction: SE bottleneck ``C -> max(1, C // se_reduction)`` (16: 64 -> 4).
        k_up: CARAFE reassembly kernel size (5).
        carafe_padding: border handling of the reassembly: ``"zeros"`` (the authors' ``'SAME'`` patches) or
            ``"replicate"``.
        spectral_norm: apply the scaled spectral normalisation to the fusion, g and final convs (True).
        sn_scale: the scale of the modified spectral normalisation (0.7).
        negative_slope: LeakyReLU slope (``utils3.lrelu``: 0.2).
    """

    width: int = 64
    resblocks: int = 4
    iterations: int = 8
    se_reduction: int = 16
    k_up: int = 5
    carafe_padding: Literal["zeros", "replicate"] = "zeros"
    spectral_norm: bool = True
    sn_scale: float = 0.7
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name, minimum in (("width", 1), ("resblocks", 0), ("iterations", 0), ("se_reduction", 1), ("k_up", 1)):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), f"EDBINConfig.{name}",
                                                              minimum=minimum))
        if self.k_up % 2 == 0:
            raise InputError(f"k_up must be a positive odd integer, got {self.k_up}")
        if self.carafe_padding not in ("zeros", "replicate"):
            raise InputError(f"carafe_padding must be 'zeros' or 'replicate', got {self.carafe_padding!r}")
        if not self.sn_scale > 0.0:
            raise InputError(f"sn_scale must be positive, got {self.sn_scale}")
        if not 0.0 <= self.negative_slope < 1.0:
            raise InputError(f"negative_slope must be in [0, 1), got {self.negative_slope}")

    @classmethod
    def tiny(cls) -> EDBINConfig:
        """A small version for tests (width 12, 1 SE-ResBlock with 12 -> 12 -> 12, 2 iterations, k_up 3).

        The SE bottleneck keeps all 12 units: with a few ReLU units, all can be inactive on a small input
        (the pooled features of every call are alike), leaving the SE weights without gradient.
        """
        return cls(width=12, resblocks=1, iterations=2, se_reduction=1, k_up=3)


def edbin_authors_parameters(*, hsi_bands: int, msi_bands: int, ratio: int, width: int = 64, resblocks: int = 4,
                             iterations: int = 8, se_reduction: int = 16, k_up: int = 5) -> int:
    """Parameter count of the authors' graph, summed layer by layer (trainable weights that are used).

    Per CARAFE stage of factor ``p``: ``conv3 L->L`` + ``conv3 L->(p k_up)^2``; fusion block: ``conv3 (L+m)->C``
    + per SE-ResBlock ``2 conv3 C->C`` + dense ``C->C/16`` + dense ``C/16->C``, + ``conv3 C->L``; g:
    ``conv3 L->m`` + ``conv k L->L`` (only when ``K > 0``); final ``conv3 (K+1)L -> L`` without bias.
    """
    L, m, C = hsi_bands, msi_bands, width
    hidden = max(1, C // se_reduction)
    k = strided_geometry(ratio)[0]

    def conv(cin: int, cout: int, ks: int, bias: bool = True) -> int:
        return cin * cout * ks * ks + (cout if bias else 0)

    carafe = sum(conv(L, L, 3) + conv(L, (p * k_up) ** 2, 3) for p in prime_factors(ratio))
    se = (C * hidden + hidden) + (hidden * C + C)
    fusion = carafe + conv(L + m, C, 3) + resblocks * (2 * conv(C, C, 3) + se) + conv(C, L, 3)
    observe = conv(L, m, 3) + conv(L, L, k) if iterations else 0
    final = conv((iterations + 1) * L, L, 3, bias=False)
    return fusion + observe + final


class EDBINFusion(nn.Module):
    """The fusion block ``F(Z, Y)``: ``(N, m, rH, rW), (N, L, H, W) -> (N, L, rH, rW)`` (module docstring)."""

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, config: EDBINConfig) -> None:
        super().__init__()
        c = config
        self.slope = c.negative_slope
        self.upsample = nn.Sequential(*(CARAFEStage(hsi_bands, scale=p, k_up=c.k_up, padding=c.carafe_padding)
                                        for p in prime_factors(ratio)))
        self.head = nn.Conv2d(hsi_bands + msi_bands, c.width, 3, padding=1)
        self.body = nn.ModuleList(
            nn.ModuleDict({"conv1": nn.Conv2d(c.width, c.width, 3, padding=1),
                           "conv2": nn.Conv2d(c.width, c.width, 3, padding=1),
                           "se": SqueezeExcitation(c.width, max(1, c.width // c.se_reduction))})
            for _ in range(c.resblocks))
        self.tail = nn.Conv2d(c.width, hsi_bands, 3, padding=1)

    def forward(self, msi: torch.Tensor, hsi: torch.Tensor) -> torch.Tensor:
        a = self.slope
        t = F.leaky_relu(self.head(torch.cat([self.upsample(hsi), msi], dim=1)), a)
        for block in self.body:
            t = t + block["se"](block["conv2"](F.leaky_relu(block["conv1"](t), a)))  # type: ignore[index]
        return self.tail(t)


class EDBIN(FusionNet):
    """EDBIN (Wang et al., "Enhanced deep blind hyperspectral image fusion", IEEE TNNLS 2023).

    Equations: see :mod:`hsfuse.models.edbin`. ``forward(hsi (N, L, h, w), msi (N, m, r h, r w)) ->
    (N, L, r h, r w)``. Submodules ``fusion``, ``observe`` (``None`` when ``iterations == 0``), ``final``.

    Followed the authors' code (``train_cave_edbin.py``, ``utils3.py``) where the paper is ambiguous:
    * Spectral normalisation on every ``utils3.conv`` layer: the fusion block's convs, both g convs and the
      final conv; not on the CARAFE kernel predictors (``ly.conv2d``) nor the SE dense layers
      (``tf.layers.dense``). ``W_sn = 0.7 W / sigma(W)`` with one power iteration per forward pass
      (:func:`scaled_spectral_norm`; the forward runs under ``parametrize.cached()`` so a weight shared by
      all iterations is normalised once per pass).
    * The fusion block's output conv has no activation (DBIN's has one); the final conv has no bias.
    * CARAFE (k_up 5, encoder conv C -> C with ReLU, then C -> (s k_up)^2, depth-to-space, softmax over the
      taps), one stage per prime factor of the ratio: 8 = 2 x 2 x 2 is the authors' three x2 stages; other
      ratios (e.g. 12 = 2 x 2 x 3) are a generalisation. The stages act on the L-band LR-HSI (or its
      residual) and, like all layers, are shared by every call of the fusion block.
    * Reassembly border: zero padding (TF ``extract_image_patches(padding='SAME')``); ``carafe_padding=
      "replicate"`` is offered as an option.
    * LeakyReLU slope 0.2; conv/CARAFE weights initialised like TF's ``variance_scaling_initializer()``,
      SE dense layers Glorot-uniform (TF ``dense`` default), biases zero.

    Parameter count: ``AUTHORS_PARAMETERS`` counts the weights the authors' graph uses. A third-party port of
    ``utils3.conv`` notes that it creates a bias variable even when ``use_bias=False``; if so, TF's trainable
    count of the final conv is ``L`` (31) larger, an unused variable we do not create. The spectral-norm
    vectors u, v are buffers (TF: non-trainable variables), not parameters.

    Example:
        >>> net = EDBIN(hsi_bands=5, msi_bands=3, ratio=4, config=EDBINConfig.tiny())
        >>> tuple(net(torch.rand(1, 5, 3, 4), torch.rand(1, 3, 12, 16)).shape)
        (1, 5, 12, 16)
    """

    config_class: ClassVar[type] = EDBINConfig
    RATIOS: ClassVar[str] = ("any integer ratio >= 2 (one CARAFE stage per prime factor, 8 = 2 x 2 x 2 as in "
                             "the paper; learned PSF conv of kernel r + 2p, stride r, padding max(1, r // 4))")
    AUTHORS_PARAMETERS: ClassVar[tuple[int, str] | None] = (
        edbin_authors_parameters(hsi_bands=31, msi_bands=3, ratio=8),
        "31 bands, RGB (3), ratio 8, width 64, 4 SE-ResBlocks, 8 iterations, CARAFE 3 x2 stages "
        "(train_cave_edbin.py)")

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, config: EDBINConfig | None = None) -> None:
        super().__init__(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio,
                         config=EDBINConfig() if config is None else config)
        c: EDBINConfig = self.config
        self.fusion = EDBINFusion(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=self.ratio, config=c)
        self.observe = (LearnedObservation(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=self.ratio,
                                         negative_slope=c.negative_slope) if c.iterations else None)
        self.final = nn.Conv2d((c.iterations + 1) * hsi_bands, hsi_bands, 3, padding=1, bias=False)
        variance_scaling_init_(self)
        if c.spectral_norm:
            for layer in self.normalized_layers():
                scaled_spectral_norm(layer, scale=c.sn_scale, n_power_iterations=1)

    def normalized_layers(self) -> list[nn.Conv2d]:
        """The convolutions that carry the scaled spectral normalisation (when ``config.spectral_norm``)."""
        f = self.fusion
        layers: list[nn.Conv2d] = [f.head, f.tail]
        for block in f.body:
            layers += [block["conv1"], block["conv2"]]  # type: ignore[index,list-item]
        if self.observe is not None:
            layers += [self.observe.spectral, self.observe.spatial]
        return layers + [self.final]

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        hsi, msi = self.check_inputs(hsi, msi)
        with parametrize.cached():
            return back_projection(self.fusion, self.observe, self.final, hsi, msi,
                                   iterations=self.config.iterations)
