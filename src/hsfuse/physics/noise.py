"""Additive white Gaussian noise at a prescribed signal-to-noise ratio.

``SNR_dB = 10 log10( mean(x^2) / sigma^2 )``, so ``sigma = sqrt(mean(x^2) / 10^(SNR_dB / 10))``, with the
mean taken over each image (``per_band=False``, the usual "SNR per branch") or over each band of each image
(``per_band=True``, as in HySure's and several MATLAB simulations).
"""

from __future__ import annotations

import math

import torch

from .._checks import check_image_tensor
from ..errors import InputError

__all__ = ["noise_sigma", "add_noise"]


def noise_sigma(x: torch.Tensor, *, snr_db: float, per_band: bool = False) -> torch.Tensor:
    """Noise standard deviation giving ``snr_db`` for ``x`` ``(N, C, H, W)``; shape ``(N, 1|C, 1, 1)``."""
    if not math.isfinite(float(snr_db)):
        raise InputError(f"snr_db must be a finite number of decibels, got {snr_db!r}")
    dims = (2, 3) if per_band else (1, 2, 3)
    power = x.pow(2).mean(dim=dims, keepdim=True)
    return torch.sqrt(power / 10.0 ** (float(snr_db) / 10.0))


def add_noise(
    x: torch.Tensor,
    *,
    snr_db: float | None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    per_band: bool = False,
) -> torch.Tensor:
    """Return ``x + n`` with ``n ~ N(0, sigma^2)`` at ``snr_db``; ``snr_db=None`` returns ``x`` unchanged.

    The noise is drawn on the CPU from ``generator`` (or a fresh one seeded with ``seed``), so a given seed
    gives the same noise on every device.
    """
    if snr_db is None:
        return x
    x = check_image_tensor(x, "image")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    n = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    return x + n * noise_sigma(x, snr_db=snr_db, per_band=per_band)
