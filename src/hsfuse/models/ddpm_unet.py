"""The SR3 U-Net denoiser ``eps_theta(x, gamma)`` used by "Unmixing Before Fusion" for abundance maps.

Architecture (Saharia et al. 2021, as configured in the authors' ``config/Chikusei_256_DDPM.json``): a
``3x3`` input conv to ``inner`` channels; per resolution level ``l`` (channel multiplier ``mults[l]``)
``res_blocks`` residual blocks (GroupNorm-Swish-Dropout-Conv3x3 twice, the noise-level embedding added in
between), with single-head self-attention after each block at the resolutions in ``attn_res``, and a stride-2
conv between levels; a middle (res-attn, res) pair; the mirrored decoder with ``res_blocks + 1`` blocks per
level over the concatenated skips and nearest x2 + conv3x3 upsampling; GroupNorm-Swish-Conv3x3 to the output.
The noise level ``gamma`` enters through a sinusoidal encoding ``[sin(gamma w), cos(gamma w)]``,
``w_i = 10^(-4 i / (d/2))`` followed by ``Linear(d, 4d)-Swish-Linear(4d, d)``.

Paper configuration: 5 input/output channels, ``inner = 64``, ``mults = (1, 2, 4, 8, 8)``, attention at
resolution 16 (of 256), 2 blocks per level, dropout 0.2, 32 groups. Deviation: PyTorch's default initialisation
instead of SR3's orthogonal one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..errors import InputError

__all__ = ["DenoiserConfig", "SR3UNet", "DENOISER_CONFIGS"]


@dataclass(frozen=True)
class DenoiserConfig:
    """U-Net options (see the module docstring); ``image_size`` places the attention layers."""

    inner: int = 64
    mults: tuple[int, ...] = (1, 2, 4, 8, 8)
    attn_res: tuple[int, ...] = (16,)
    res_blocks: int = 2
    dropout: float = 0.2
    groups: int = 32
    image_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "inner", check_positive_int(self.inner, "DenoiserConfig.inner"))
        object.__setattr__(self, "res_blocks", check_positive_int(self.res_blocks, "DenoiserConfig.res_blocks"))
        if not self.mults:
            raise InputError(f"invalid denoiser config {self!r}: mults must not be empty")
        object.__setattr__(self, "mults", tuple(check_positive_int(m, f"DenoiserConfig.mults[{i}]")
                                                for i, m in enumerate(self.mults)))
        for m in set(self.mults) | {1}:
            if (self.inner * m) % self.groups:
                raise InputError(f"inner * mult ({self.inner * m}) must be divisible by groups ({self.groups})")
        if self.image_size % (2 ** (len(self.mults) - 1)):
            raise InputError(f"image_size {self.image_size} must be divisible by 2^(levels - 1) = "
                             f"{2 ** (len(self.mults) - 1)}")

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** (len(self.mults) - 1)


#: ``paper``: the authors' 256 x 256 configuration; ``small``: a CPU-sized one for 64 x 64 crops (the
#: benchmarks'); ``tiny``: for tests.
DENOISER_CONFIGS: dict[str, DenoiserConfig] = {
    "paper": DenoiserConfig(),
    "small": DenoiserConfig(inner=32, mults=(1, 2, 2, 4), attn_res=(8,), res_blocks=1, dropout=0.1, groups=8,
                            image_size=64),
    "tiny": DenoiserConfig(inner=8, mults=(1, 2), attn_res=(8,), res_blocks=1, dropout=0.0, groups=4,
                           image_size=16),
}


class _NoiseEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freq = torch.exp(-math.log(1e4) * torch.arange(half, device=gamma.device, dtype=torch.float32) / half)
        arg = gamma.float()[:, None] * freq[None]
        return self.mlp(torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1))


def _block(cin: int, cout: int, groups: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(), nn.Dropout(dropout) if dropout else nn.Identity(),
                         nn.Conv2d(cin, cout, 3, padding=1))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, emb: int, groups: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.block1 = _block(cin, cout, groups, 0.0)
        self.noise = nn.Linear(emb, cout)
        self.block2 = _block(cout, cout, groups, dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attention = _SelfAttention(cout, groups) if attention else None

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.noise(e)[:, :, None, None]
        h = self.block2(h) + self.skip(x)
        return self.attention(h) if self.attention is not None else h


class _SelfAttention(nn.Module):
    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        att = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                             v.transpose(1, 2)[:, None])
        return x + self.out(att[:, 0].transpose(1, 2).reshape(n, c, h, w))


class SR3UNet(nn.Module):
    """``eps_theta(x, gamma)``: ``(N, K, H, W)``, ``(N,)`` -> ``(N, K, H, W)``; ``H, W`` multiples of
    ``config.multiple``.

    Args:
        channels: ``K`` (abundance maps).
        config: :class:`DenoiserConfig` or a name in :data:`DENOISER_CONFIGS`.
    """

    def __init__(self, *, channels: int, config: DenoiserConfig | str = "paper") -> None:
        super().__init__()
        if isinstance(config, str):
            if config not in DENOISER_CONFIGS:
                raise InputError(f"unknown denoiser config {config!r}; choose one of {', '.join(DENOISER_CONFIGS)}")
            config = DENOISER_CONFIGS[config]
        channels = check_positive_int(channels, "channels")
        self.config = config
        self.channels = channels
        c, g, d = config.inner, config.groups, config.dropout
        self.embed = _NoiseEmbedding(c)
        self.head = nn.Conv2d(channels, c, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [c]
        now, res = c, config.image_size
        levels = len(config.mults)
        for level, m in enumerate(config.mults):
            for _ in range(config.res_blocks):
                self.down.append(_ResBlock(now, c * m, emb=c, groups=g, dropout=d, attention=res in config.attn_res))
                now = c * m
                skips.append(now)
            if level != levels - 1:
                self.down.append(nn.Conv2d(now, now, 3, stride=2, padding=1))
                skips.append(now)
                res //= 2
        self.mid = nn.ModuleList([_ResBlock(now, now, emb=c, groups=g, dropout=d, attention=True),
                                  _ResBlock(now, now, emb=c, groups=g, dropout=d, attention=False)])
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(config.mults))):
            for _ in range(config.res_blocks + 1):
                self.up.append(_ResBlock(now + skips.pop(), c * m, emb=c, groups=g, dropout=d,
                                         attention=res in config.attn_res))
                now = c * m
            if level != 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(now, now, 3, padding=1)))
                res *= 2
        self.tail = nn.Sequential(nn.GroupNorm(g, now), nn.SiLU(), nn.Conv2d(now, channels, 3, padding=1))

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputError(f"expected an (N, {self.channels}, H, W) input, got {tuple(x.shape)}")
        m = self.config.multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise InputError(f"image sides must be multiples of {m} for this denoiser, got {tuple(x.shape[-2:])}")
        e = self.embed(gamma.reshape(-1).expand(x.shape[0]) if gamma.numel() == 1 else gamma.reshape(-1))
        h = self.head(x)
        feats = [h]
        for layer in self.down:
            h = layer(h, e) if isinstance(layer, _ResBlock) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, e)
        for layer in self.up:
            if isinstance(layer, _ResBlock):
                h = layer(torch.cat([h, feats.pop()], dim=1), e)
            else:
                h = layer(h)
        return self.tail(h)
