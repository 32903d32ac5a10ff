"""DHIF-Net: unfolded gradient descent with a learned, spatially adaptive separable 3-D filter prior.

T. Huang, W. Dong, J. Wu, L. Li, X. Li, G. Shi, "Deep hyperspectral image fusion network with iterative
spatio-spectral regularization", IEEE Transactions on Computational Imaging 8:201-214, 2022. Authors' code:
``TaoHuang95/DHIF-Net`` ``CAVE/Model.py`` (read, not copied).

The math lives in two plain functions, :func:`normalize_taps` and :func:`adaptive_separable_filter`; the
module :class:`DHIFNet` holds the learned operators, the filter generator and the step sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..errors import InputError
from ..physics.interpolation import upsample_cubic
from .base import FusionNet
from .blocks import strided_geometry

__all__ = ["DHIFNetConfig", "DHIFNet", "normalize_taps", "adaptive_separable_filter", "split_ratio"]


# --------------------------------------------------------------------------------------------------------------
# the math


def normalize_taps(raw: torch.Tensor, *, taps: int) -> torch.Tensor:
    """Per-pixel, per-band filter taps with unit L2 norm: ``(N, T*L, H, W) -> (N, T, L, H, W)``.

    ``k[n, :, b, y, x] = raw[n, :, b, y, x] / max(||raw[n, :, b, y, x]||_2, 1e-12)`` where channel
    ``t * L + b`` of ``raw`` is tap ``t`` of band ``b`` (the authors' ``view(N, T, L, H, W)`` then
    ``F.normalize(dim=1)``). The taps may be negative (no softmax); their squares sum to one.
    """
    if raw.ndim != 4 or raw.shape[1] % taps:
        raise InputError(f"raw taps must have shape (N, {taps}*L, H, W), got {tuple(raw.shape)}")
    n, c, h, w = raw.shape
    return F.normalize(raw.reshape(n, taps, c // taps, h, w), dim=1)


def _filter_axis(z: torch.Tensor, k: torch.Tensor, *, dim: int, replicate: bool) -> torch.Tensor:
    """``out[..., i, ...] = sum_t k[:, t][..., i, ...] * zpad[..., i + t, ...]`` along ``dim`` of ``(N, L, H, W)``.

    Shifted-slice accumulation: no ``T``-fold stack is ever built, and under autograd only the padded input
    and the taps are kept (slices are views).
    """
    taps = k.shape[1]
    half = taps // 2
    size = z.shape[dim]
    if dim == 1:  # spectral: zero padding ("constant" works on any dimension)
        zp = F.pad(z, (0, 0, 0, 0, half, half))
    elif replicate:
        pad = (half, half, 0, 0) if dim == 3 else (0, 0, half, half)
        zp = F.pad(z, pad, mode="replicate")
    else:  # pragma: no cover - not used
        raise ValueError("spatial axes are replicate-padded")
    out = k[:, 0] * zp.narrow(dim, 0, size)
    for t in range(1, taps):
        out = out.addcmul_(k[:, t], zp.narrow(dim, t, size))
    return out


def adaptive_separable_filter(z: torch.Tensor, k_h: torch.Tensor, k_v: torch.Tensor,
                              k_s: torch.Tensor) -> torch.Tensor:
    """Spatially adaptive separable 3-D filtering ``U = K_s *_band (K_v *_row (K_h *_col Z))``.

    With ``T = 2q + 1`` taps, for every batch item, band ``b`` and pixel ``(y, x)``::

        A[b, y, x] = sum_t k_h[t, b, y, x] Z[b, y, x + t - q]        (columns replicate-padded)
        V[b, y, x] = sum_t k_v[t, b, y, x] A[b, y + t - q, x]        (rows replicate-padded)
        U[b, y, x] = sum_t k_s[t, b, y, x] V[b + t - q, y, x]        (bands zero-padded)

    i.e. a correlation (tap ``t`` multiplies offset ``t - q``), in the authors' order horizontal, vertical,
    spectral (DHIF-Net Eq. 5 and ``kernel_pred_1/2/3`` of ``Model.py``).

    Args:
        z: ``(N, L, H, W)`` cube.
        k_h, k_v, k_s: ``(N, T, L, H, W)`` taps (``T`` odd), e.g. from :func:`normalize_taps`.

    Returns:
        ``(N, L, H, W)``. Cost ``3 T`` multiply-adds per voxel; peak extra memory one padded copy of ``z``.
    """
    if z.ndim != 4:
        raise InputError(f"z must have shape (N, L, H, W), got {tuple(z.shape)}")
    for name, k in (("k_h", k_h), ("k_v", k_v), ("k_s", k_s)):
        if k.ndim != 5 or k.shape[0] != z.shape[0] or k.shape[2:] != z.shape[1:]:
            raise InputError(f"{name} must have shape (N, T, L, H, W) = ({z.shape[0]}, T, "
                             f"{', '.join(map(str, z.shape[1:]))}), got {tuple(k.shape)}")
        if k.shape[1] % 2 == 0:
            raise InputError(f"{name} must have an odd number of taps, got {k.shape[1]}")
    u = _filter_axis(z, k_h, dim=3, replicate=True)
    u = _filter_axis(u, k_v, dim=2, replicate=True)
    return _filter_axis(u, k_s, dim=1, replicate=False)


def split_ratio(ratio: int, *, max_factor: int = 8) -> tuple[int, ...]:
    """Factor ``ratio`` into the fewest factors ``<= max_factor``, most balanced first, largest first.

    ``8 -> (8,)``, ``16 -> (4, 4)`` (the authors' x16 model), ``12 -> (4, 3)``, ``64 -> (8, 8)``. A ratio
    with a prime factor above ``max_factor`` (11, 13, 22, ...) is returned whole: ``(ratio,)``.
    """
    if ratio <= max_factor:
        return (ratio,)
    best: tuple[int, ...] | None = None

    def search(rest: int, upper: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if rest == 1:
            if best is None or (len(acc), acc[0]) < (len(best), best[0]):
                best = acc
            return
        if best is not None and len(acc) + 1 > len(best):
            return
        for f in range(min(upper, max_factor), 1, -1):
            if rest % f == 0:
                search(rest // f, f, acc + (f,))

    search(ratio, max_factor, ())
    return best if best is not None else (ratio,)


# --------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class DHIFNetConfig:
    """Architecture options of :class:`DHIFNet`; the defaults are the authors' CAVE model.

    Attributes:
        stages: unfolded iterations ``T`` (paper: 4).
        features: width of the shallow feature conv and of the dense-connection convs (64).
        encoder_widths: U-Net encoder widths, one per level, 2x average pooling between levels
            ((64, 128, 256, 512, 512)).
        decoder_widths: output widths of the decoder levels, deepest first, one fewer than the encoder
            ((512, 256, 128, 128): the authors' last level keeps 128 channels).
        taps: filter length of each of the three 1-D adaptive filters (7; odd).
        head_width: hidden width of the three kernel heads; ``None`` = ``hsi_bands * taps`` (the authors':
            217 for 31 bands). Set it for small test models.
        split_ratio: at ratios above 8, build B and B^T from one strided stage per factor of
            :func:`split_ratio` (x16: two x4 stages, as the authors' x16 model); otherwise one stage.
        leaky_slope: negative slope of the LeakyReLU after R, R^T, B, B^T (PyTorch's default 0.01).
    """

    stages: int = 4
    features: int = 64
    encoder_widths: tuple[int, ...] = (64, 128, 256, 512, 512)
    decoder_widths: tuple[int, ...] = (512, 256, 128, 128)
    taps: int = 7
    head_width: int | None = None
    split_ratio: bool = True
    leaky_slope: float = 0.01

    def __post_init__(self) -> None:
        for name in ("stages", "features", "taps"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), f"DHIFNetConfig.{name}"))
        if self.taps % 2 == 0:
            raise InputError(f"DHIFNetConfig.taps must be odd (centred filters), got {self.taps}")
        enc, dec = tuple(self.encoder_widths), tuple(self.decoder_widths)
        if not enc:
            raise InputError(f"DHIFNetConfig.encoder_widths must not be empty, got {self.encoder_widths!r}")
        enc = tuple(check_positive_int(v, f"DHIFNetConfig.encoder_widths[{i}]") for i, v in enumerate(enc))
        dec = tuple(check_positive_int(v, f"DHIFNetConfig.decoder_widths[{i}]") for i, v in enumerate(dec))
        if len(dec) != len(enc) - 1:
            raise InputError(f"DHIFNetConfig needs one decoder width per encoder level but the deepest: "
                             f"{len(enc)} encoder widths need {len(enc) - 1} decoder widths, got {len(dec)}")
        object.__setattr__(self, "encoder_widths", enc)
        object.__setattr__(self, "decoder_widths", dec)
        if self.head_width is not None:
            object.__setattr__(self, "head_width", check_positive_int(self.head_width, "DHIFNetConfig.head_width"))

    @classmethod
    def tiny(cls) -> DHIFNetConfig:
        """A small model for tests (3-level U-Net of widths 4/8/8, 2 stages, 8-channel heads)."""
        return cls(stages=2, features=4, encoder_widths=(4, 8, 8), decoder_widths=(8, 8), head_width=8)


# --------------------------------------------------------------------------------------------------------------
# layers


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class _FilterGenerator(nn.Module):
    """U-Net (average-pool down, bicubic x2 up, skip concatenation) and three kernel heads.

    ``(N, features, H, W) -> 3 x (N, T*L, H, W)`` raw taps; ``H, W`` divisible by ``2^(levels-1)``.
    """

    def __init__(self, *, features: int, encoder_widths: tuple[int, ...], decoder_widths: tuple[int, ...],
                 head_width: int, out_channels: int) -> None:
        super().__init__()
        widths = (features,) + tuple(encoder_widths)
        self.encoder = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(len(encoder_widths)))
        dec = []
        below = encoder_widths[-1]
        for j, width in enumerate(decoder_widths):
            skip = encoder_widths[len(encoder_widths) - 2 - j]
            dec.append(_double_conv(skip + below, width))
            below = width
        self.decoder = nn.ModuleList(dec)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(below, head_width, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(head_width, head_width, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(head_width, out_channels, 1))
            for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            up = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
            x = block(torch.cat([skips.pop(), up], dim=1))
        return [head(x) for head in self.heads]


class DHIFNet(FusionNet):
    """DHIF-Net (Huang et al., IEEE TCI 2022): unfolded gradient descent with an adaptive 3-D filter prior.

    The network minimises ``1/2 ||R Z - Y_m||^2 + 1/2 ||B Z - Y_h||^2 + lambda/2 ||Z - U||^2`` by ``T``
    unfolded gradient steps, starting from the cubic upsampling ``Z^0`` of ``Y_h``::

        Res1 = R^T(R(Z^t) - Y_m),    Res2 = B^T(B(Z^t) - Y_h)             (learned data-term gradients)
        F_t  = conv3x3([Z^t, Y_m]),  G_t = conv3x3([F_0, ..., F_t])        (dense feature connection)
        K_h, K_v, K_s = normalize_taps(UNet(G_t))                          (T taps per pixel and band)
        U^t  = adaptive_separable_filter(Z^t, K_h, K_v, K_s)
        Z^{t+1} = Z^t - 2 eta_t (Res1 + Res2 + lambda_t (Z^t - U^t))        (DHIF-Net Eq. 6)

    Learned operators, shared by all stages: ``R = LeakyReLU(conv3x3 L->m)``, ``R^T = LeakyReLU(conv3x3 m->L)``,
    ``B = LeakyReLU(Conv2d L->L, k, stride r, pad p)``, ``B^T = LeakyReLU(ConvTranspose2d L->L, k, r, p)``
    with ``(k, r, p) = strided_geometry(r)`` ((12, 8, 2) at ratio 8, the authors'). The U-Net filter
    generator and its three heads (conv3x3 -> ReLU -> conv3x3 -> ReLU -> conv1x1, ``L * taps`` channels)
    are shared by all stages; ``eta_t`` (init N(0.1, 0.01)) and ``lambda_t`` (init N(1, 0.01)) are per stage.

    Shapes: ``hsi (N, L, h, w)``, ``msi (N, m, r h, r w)`` -> ``(N, L, r h, r w)``, any ``h, w >= 1``.

    Followed the authors' code on: the tap layout (channel ``t * L + b``), L2 (not softmax) normalisation of
    the taps, the filter order and padding (columns, rows: replicate; bands: zero), bicubic x2 upsampling in
    the U-Net decoder (``F.interpolate``, ``align_corners=False``), the decoder's last level keeping 128
    channels, the initialisation (Xavier-uniform conv weights, zero conv biases, PyTorch's default bias for
    the transposed convolution) and the LeakyReLU after every learned operator.

    Deviations (and why):

    - ``Z^0`` is :func:`hsfuse.physics.interpolation.upsample_cubic` (Keys ``a = -0.5`` aligned to the decimation
      grid ``(r-1)//2::r``) instead of ``F.interpolate(mode="bicubic")`` (``a = -0.75``, pixel-centre grid),
      which is half a HR pixel off the authors' own decimation offset ``r/2 - 1`` at even ratios. For even
      ``r`` our offset ``(r-1)//2`` equals theirs.
    - Any ratio ``>= 2``: B/B^T use :func:`hsfuse.models.blocks.strided_geometry`. Above 8, with
      ``split_ratio`` (default) one strided stage (each followed by LeakyReLU) per factor of
      :func:`split_ratio` — at x16 exactly the authors' two x4 stages; B^T applies the factors in reverse
      order. The authors only support 8 and 16.
    - Any ``H, W``: the U-Net needs sides divisible by ``2^(levels-1)`` (16 in the paper config); the
      U-Net input is replicate-padded at the bottom/right to the next multiple and the taps cropped back.
      At divisible sizes (the authors' 96x96 patches, 512x512 images) the result is unchanged.
    - The filtering accumulates shifted slices instead of stacking ``T`` shifted copies (same values, ``T``
      times less memory).
    - Any number of stages, widths and taps (the authors hard-code four stages and four dense convs).

    Parameters: paper config, 31 bands, RGB, ratio 8: 22,669,489 = :attr:`AUTHORS_PARAMETERS`, counted by
    hand from ``Model.py`` (R^T 868, R 840, B and B^T 138,415 each, shallow conv 19,648, dense convs
    368,896, encoder 9,440,128, decoder 10,397,696, three heads 2,164,575, eta/lambda 8). A third-party
    comparison table quotes 57.04 M for DHIF-Net; that does not match the released code at x8 or x16.

    Example:
        >>> net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=4, config=DHIFNetConfig.tiny())
        >>> net(torch.rand(1, 5, 3, 5), torch.rand(1, 3, 12, 20)).shape
        torch.Size([1, 5, 12, 20])
    """

    config_class: ClassVar[type] = DHIFNetConfig
    RATIOS: ClassVar[str] = ("any integer >= 2 (above 8 the learned B/B^T use one strided stage per factor "
                             "<= 8 where the ratio factors so, e.g. x16 = two x4 stages as the authors')")
    AUTHORS_PARAMETERS: ClassVar[tuple[int, str] | None] = (22_669_489, "31 bands, RGB (3), ratio 8")

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, config: DHIFNetConfig) -> None:
        super().__init__(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio, config=config)
        c = config
        L, m = hsi_bands, msi_bands
        slope = c.leaky_slope
        self.R = nn.Sequential(nn.Conv2d(L, m, 3, padding=1), nn.LeakyReLU(slope))
        self.RT = nn.Sequential(nn.Conv2d(m, L, 3, padding=1), nn.LeakyReLU(slope))
        factors = split_ratio(self.ratio) if c.split_ratio else (self.ratio,)
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for f in factors:
            k, s, p = strided_geometry(f)
            down += [nn.Conv2d(L, L, k, stride=s, padding=p), nn.LeakyReLU(slope)]
        for f in reversed(factors):
            k, s, p = strided_geometry(f)
            up += [nn.ConvTranspose2d(L, L, k, stride=s, padding=p), nn.LeakyReLU(slope)]
        self.B = nn.Sequential(*down)
        self.BT = nn.Sequential(*up)
        self.shallow = nn.Conv2d(L + m, c.features, 3, padding=1)
        self.dense = nn.ModuleList(nn.Conv2d(c.features * (t + 1), c.features, 3, padding=1)
                                   for t in range(c.stages))
        self.generator = _FilterGenerator(
            features=c.features, encoder_widths=tuple(c.encoder_widths), decoder_widths=tuple(c.decoder_widths),
            head_width=c.head_width if c.head_width is not None else L * c.taps, out_channels=L * c.taps)
        self.eta = nn.Parameter(torch.empty(c.stages))
        self.lam = nn.Parameter(torch.empty(c.stages))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (``Model.py`` then ``Train.py``)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.ConvTranspose2d):
                nn.init.xavier_uniform_(module.weight)
        with torch.no_grad():
            self.eta.normal_(0.1, 0.01)
            self.lam.normal_(1.0, 0.01)

    @property
    def unet_multiple(self) -> int:
        """The U-Net's side divisor ``2^(levels-1)``; other sizes are padded internally."""
        return 2 ** (len(self.config.encoder_widths) - 1)

    def filter_taps(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised taps ``3 x (N, T, L, H, W)`` from dense features ``g (N, features, H, W)``."""
        h, w = g.shape[-2:]
        q = self.unet_multiple
        ph, pw = -h % q, -w % q
        if ph or pw:
            g = F.pad(g, (0, pw, 0, ph), mode="replicate")
        raws = self.generator(g)
        taps = []
        while raws:  # pop each raw head output as soon as it is normalised (frees memory under no_grad)
            taps.append(normalize_taps(raws.pop(0)[..., :h, :w], taps=self.config.taps))
        return taps[0], taps[1], taps[2]

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        hsi, msi = self.check_inputs(hsi, msi)
        z = upsample_cubic(hsi, ratio=self.ratio)
        feats: list[torch.Tensor] = []
        for t in range(self.config.stages):
            res = self.RT(self.R(z) - msi)
            res = res + self.BT(self.B(z) - hsi)
            feats.append(self.shallow(torch.cat([z, msi], dim=1)))
            g = self.dense[t](torch.cat(feats, dim=1) if t else feats[0])
            u = adaptive_separable_filter(z, *self.filter_taps(g))
            z = z - 2.0 * self.eta[t] * (res + self.lam[t] * (z - u))
        return z
