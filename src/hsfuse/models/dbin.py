"""DBIN: the deep blind iterative fusion network (Wang, Zeng, Huang, Ding, Paisley, ICCV 2019).

Structure (authors' TF1 code, ``train_boost_res.py``; ``Y``: LR-HSI, ``Z``: HR-MSI, ``X``: HR-HSI estimate)::

    X_0     = F(Z, Y)                                          fusion block, weights shared by every call
    X_{k+1} = X_k + F(Z - g_R(X_k), Y - g_B(X_k))              k = 0 .. K-1 (learned back-projection)
    X_hat   = conv3x3( concat[X_0, ..., X_K] )                 -> L bands, no activation

    F(Z, Y):  U = ConvT_{k,r,p}(Y)            (learned upsampling, L -> L, no activation)
              T = lrelu(conv3x3([U, Z]))      (L + m -> C)
              T = T + lrelu(conv3x3(lrelu(conv3x3(T))))     x n_resblocks
              F = lrelu(conv3x3(T))           (C -> L; note the output activation)
    g_R(X) = lrelu(conv3x3(X))                (L -> m: learned spectral response)
    g_B(X) = lrelu(conv_{k,r,p}(X))           (L -> L, stride r: learned PSF + decimation)

with ``(k, r, p) = strided_geometry(ratio)`` (``(12, 8, 2)`` at ratio 8, the TF ``'SAME'`` geometry of the
authors' 12x12 stride-8 kernels). The g-network and F are shared across iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..errors import InputError
from .base import FusionNet
from .blocks import LearnedObservation, back_projection, strided_geometry, variance_scaling_init_

__all__ = ["DBINConfig", "DBIN", "dbin_authors_parameters"]


@dataclass(frozen=True)
class DBINConfig:
    """Architecture options of :class:`DBIN`; the defaults are the paper's CAVE setting.

    Attributes:
        width: feature channels ``C`` of the fusion block (128).
        resblocks: residual blocks in the fusion block (4).
        iterations: back-projection iterations ``K`` after the initial estimate (5 for CAVE; the authors'
            Harvard script uses 3).
        negative_slope: LeakyReLU slope; the code passes ``tf.nn.leaky_relu`` whose default ``alpha`` is 0.2.
    """

    width: int = 128
    resblocks: int = 4
    iterations: int = 5
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name, minimum in (("width", 1), ("resblocks", 0), ("iterations", 0)):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), f"DBINConfig.{name}",
                                                              minimum=minimum))
        if not 0.0 <= self.negative_slope < 1.0:
            raise InputError(f"negative_slope must be in [0, 1), got {self.negative_slope}")

    @classmethod
    def tiny(cls) -> DBINConfig:
        """A few-thousand-parameter version for tests (width 8, 1 residual block, 2 iterations)."""
        return cls(width=8, resblocks=1, iterations=2)


def dbin_authors_parameters(*, hsi_bands: int, msi_bands: int, ratio: int, width: int = 128, resblocks: int = 4,
                            iterations: int = 5) -> int:
    """Parameter count of the authors' graph, summed layer by layer (every ``tf.contrib`` layer has a bias).

    ``ConvT k x k L->L`` + ``conv3 (L+m)->C`` + ``2 n conv3 C->C`` + ``conv3 C->L`` (fusion block) +
    ``conv3 L->m`` + ``conv k x k L->L`` (g, only built when ``K > 0``) + ``conv3 (K+1) L -> L`` (final).
    """
    L, m, C = hsi_bands, msi_bands, width
    k = strided_geometry(ratio)[0]

    def conv(cin: int, cout: int, ks: int) -> int:
        return cin * cout * ks * ks + cout

    fusion = conv(L, L, k) + conv(L + m, C, 3) + 2 * resblocks * conv(C, C, 3) + conv(C, L, 3)
    observe = conv(L, m, 3) + conv(L, L, k) if iterations else 0
    final = conv((iterations + 1) * L, L, 3)
    return fusion + observe + final


class DBINFusion(nn.Module):
    """The fusion block ``F(Z, Y)``: ``(N, m, rH, rW), (N, L, H, W) -> (N, L, rH, rW)`` (see the module docstring)."""

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, width: int, resblocks: int,
                 negative_slope: float) -> None:
        super().__init__()
        k, s, p = strided_geometry(ratio)
        self.slope = negative_slope
        self.upsample = nn.ConvTranspose2d(hsi_bands, hsi_bands, k, stride=s, padding=p)
        self.head = nn.Conv2d(hsi_bands + msi_bands, width, 3, padding=1)
        self.body = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)])
            for _ in range(resblocks))
        self.tail = nn.Conv2d(width, hsi_bands, 3, padding=1)

    def forward(self, msi: torch.Tensor, hsi: torch.Tensor) -> torch.Tensor:
        a = self.slope
        t = F.leaky_relu(self.head(torch.cat([self.upsample(hsi), msi], dim=1)), a)
        for first, second in self.body:  # type: ignore[misc]
            t = t + F.leaky_relu(second(F.leaky_relu(first(t), a)), a)
        return F.leaky_relu(self.tail(t), a)


class DBIN(FusionNet):
    """DBIN (Wang et al., "Deep blind hyperspectral image fusion", ICCV 2019), as in the authors' TF code.

    Equations: see :mod:`hsfuse.models.dbin`. ``forward(hsi (N, L, h, w), msi (N, m, r h, r w)) ->
    (N, L, r h, r w)``. Submodules: ``fusion`` (F), ``observe`` (g_R, g_B; ``None`` when ``iterations == 0``),
    ``final`` (the conv over all iterates).

    Followed the authors' code (``train_boost_res.py``) where the paper is silent:
    * LeakyReLU slope 0.2 (``tf.nn.leaky_relu`` passed as ``activation_fn`` without ``alpha``), also on the
      fusion block's output and on both g convolutions; the final conv has no activation.
    * The residual unit is ``T + lrelu(conv(lrelu(conv(T))))`` (activation before the sum, none after it).
    * Every layer has a bias; weights initialised like ``tf.contrib.layers.variance_scaling_initializer()``
      (He, fan-in, truncated normal), biases zero (:func:`variance_scaling_init_`).
    * The declared L2 regulariser never enters the authors' loss, so none is implied here.

    Generalisations (the code hard-codes 31 bands, RGB and ratio 8): band counts come from the data, and the
    learned PSF/decimation conv and the upsampling transposed conv use :func:`strided_geometry` (the
    authors' ``12 x 12, stride 8, 'SAME'`` = padding 2 at ratio 8).

    Example:
        >>> net = DBIN(hsi_bands=5, msi_bands=3, ratio=2, config=DBINConfig.tiny())
        >>> tuple(net(torch.rand(1, 5, 4, 3), torch.rand(1, 3, 8, 6)).shape)
        (1, 5, 8, 6)
    """

    config_class: ClassVar[type] = DBINConfig
    RATIOS: ClassVar[str] = ("any integer ratio >= 2 (learned PSF conv and transposed conv of kernel r + 2p, "
                             "stride r, padding p = max(1, r // 4): the authors' 12/8/2 at r = 8)")
    AUTHORS_PARAMETERS: ClassVar[tuple[int, str] | None] = (
        dbin_authors_parameters(hsi_bands=31, msi_bands=3, ratio=8),
        "31 bands, RGB (3), ratio 8, width 128, 4 residual blocks, 5 iterations (train_boost_res.py)")

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, config: DBINConfig | None = None) -> None:
        super().__init__(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio,
                         config=DBINConfig() if config is None else config)
        c: DBINConfig = self.config
        self.fusion = DBINFusion(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=self.ratio, width=c.width,
                                 resblocks=c.resblocks, negative_slope=c.negative_slope)
        # g exists only when it is used (as in the TF graph, where boost_lap creates it on its first call)
        self.observe = (LearnedObservation(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=self.ratio,
                                        negative_slope=c.negative_slope) if c.iterations else None)
        self.final = nn.Conv2d((c.iterations + 1) * hsi_bands, hsi_bands, 3, padding=1)
        variance_scaling_init_(self)

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        hsi, msi = self.check_inputs(hsi, msi)
        return back_projection(self.fusion, self.observe, self.final, hsi, msi, iterations=self.config.iterations)
