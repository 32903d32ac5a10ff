"""Additive white Gaussian noise: simulated at a prescribed signal-to-noise ratio, and estimated from data.

``SNR_dB = 10 log10( mean(x^2) / sigma^2 )``, so ``sigma = sqrt(mean(x^2) / 10^(SNR_dB / 10))``, with the
mean taken over each image (``per_band=False``, the usual "SNR per branch") or over each band of each image
(``per_band=True``, as in HySure's and several MATLAB simulations).

Estimation (:func:`estimate_noise_sigma`) is the multiple-regression estimator of HySime (Bioucas-Dias,
Nascimento, "Hyperspectral subspace identification", IEEE TGRS 46(8), 2008, ``estNoise.m``, "additive"): each
band is regressed on the others over all pixels, and the residual is the noise. Signal is highly correlated
across bands, white noise is not, so the residual variance estimates the noise variance. For a regression of
feature ``t`` on the other rows of a feature matrix ``F`` (``P x n``), the residual sum of squares is
``1 / (G^-1)_tt`` with ``G = F F^T`` (the Schur complement), so every band's estimate comes from one ``P x P``
inverse — and from streamed sums of ``G`` for the large-scene engine (:func:`noise_from_gram`). Deviations from
``estNoise.m``: a constant row is added to ``F`` (an intercept: offsets are not noise), and the residual sum is
divided by ``n - (P - 1)`` (the degrees of freedom; ``estNoise`` divides by ``n``, which underestimates the noise
when bands are many and pixels few: by 30 % for 198 bands on 625 pixels). Images with few bands (a
multispectral image: the other bands predict a band poorly) add the 8 neighbours of every band as predictors
(``neighbours=True``, default below :data:`NEIGHBOUR_BANDS` bands): white noise at a pixel is unpredictable from
its neighbours, image structure largely is. Measured on the shared scenes at 30 dB SNR (``benchmarks/
bench_classical.py``'s simulation): HSI estimates within 5 % of the true sigma on Pavia U, Indian Pines and
Jasper Ridge; MSI estimates 0-70 % above it (texture the neighbours cannot predict); on clean data the
estimates are the model error, 1e-4 to 1e-3 of a unit-peak image for the HSI. Known bias: the predictors are
noisy too (errors in variables), so part of their noise enters the residual; with equal noise in every band this
is small (median within a few per cent, single bands up to 15 % high on a rank-4 synthetic cube in
``tests/test_noise_aware.py``), with very different noise per band the quietest bands read high.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_image_tensor
from ..errors import InputError

__all__ = ["noise_sigma", "add_noise", "estimate_noise_sigma", "noise_features", "noise_from_gram", "spectral_window",
           "neighbours_default", "NEIGHBOUR_BANDS"]


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


#: below this many bands, :func:`estimate_noise_sigma` adds each band's 8 neighbours as predictors
NEIGHBOUR_BANDS = 16
#: the largest float64 feature matrix :func:`estimate_noise_sigma` builds at once (the rest is accumulated by slabs)
GRAM_SLAB_BYTES = 64 * 2**20
#: ridge added to the feature Gram matrix, relative to its mean diagonal (keeps collinear bands invertible)
GRAM_RIDGE = 1e-10


def noise_features(x: torch.Tensor, *, neighbours: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The regression features of each image of ``x`` ``(N, C, H, W)``: ``(F, targets)``.

    ``F`` is ``(N, P, n)`` float64: the ``C`` bands (``neighbours=False``, ``P = C + 1``, ``n = H W``) or every
    band at each of the 3 x 3 offsets of the interior pixels (``neighbours=True``, ``P = 9 C + 1``,
    ``n = (H - 2)(W - 2)``), and a row of ones last. ``targets`` ``(C,)`` are the rows of the bands themselves
    (the centre offsets).
    """
    n_img, bands, h, w = x.shape
    x64 = x.to(torch.float64)
    if neighbours:
        if h < 3 or w < 3:
            raise InputError(f"noise estimation with neighbours needs at least 3x3 pixels, got {h}x{w}")
        shifts = [x64[..., 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        feats = torch.stack(shifts, dim=2).reshape(n_img, bands * 9, -1)
        targets = torch.arange(bands, device=x.device) * 9 + 4
    else:
        feats = x64.reshape(n_img, bands, h * w)
        targets = torch.arange(bands, device=x.device)
    ones = torch.ones(n_img, 1, feats.shape[-1], dtype=torch.float64, device=x.device)
    return torch.cat([feats, ones], dim=1), targets


def spectral_window(bands: int, count: int) -> int | None:
    """Half-width of the band window each band is regressed on: ``None`` (all other bands) when there are at least
    twice as many samples as predictors, else the widest ``q`` with ``2 q + 2 <= count / 2`` (its ``2 q``
    nearest bands). Raises :class:`InputError` below 8 samples."""
    if count >= 2 * (bands + 1):
        return None
    q = (count // 2 - 2) // 2
    if q < 1:
        raise InputError(f"noise estimation needs at least 8 pixels, got {count}; give sigma_hsi / sigma_msi "
                         "explicitly")
    return q


def noise_from_gram(gram: torch.Tensor, count: int | torch.Tensor, targets: torch.Tensor, *,
                    window: int | None = None) -> torch.Tensor:
    """Per-target noise sigma from the feature Gram matrix ``G = F F^T`` ``(P, P)`` over ``count`` samples.

    ``sigma_t^2 = 1 / ((G_S + eps I)^-1)_tt / (count - (|S| - 1))``: the residual variance of regressing feature
    ``t`` on the features ``S`` (module docstring): all of them, or with ``window`` (spectral features only: band
    ``t`` is feature ``t``, the constant is the last) the bands within ``window`` of ``t`` and the constant.
    Returns ``(len(targets),)`` float64.
    """
    gram = gram.to(torch.float64)
    size = gram.shape[-1]
    ridge = GRAM_RIDGE * torch.diagonal(gram).mean().clamp_min(1e-300)
    n = float(count)
    if window is None:
        if n - (size - 1) < 1:
            raise InputError(
                f"noise estimation needs more samples than predictors: {int(n)} pixels for {size - 1} predictors; "
                "give a larger image or sigma_hsi / sigma_msi explicitly"
            )
        inv = torch.linalg.inv(gram + ridge * torch.eye(size, dtype=torch.float64, device=gram.device))
        rss = 1.0 / torch.diagonal(inv)[targets]
        return torch.sqrt(rss.clamp_min(0.0) / (n - (size - 1)))
    out = []
    for t in targets.tolist():
        idx = [*range(max(0, t - window), min(size - 1, t + window + 1)), size - 1]
        sub = gram[idx][:, idx] + ridge * torch.eye(len(idx), dtype=torch.float64, device=gram.device)
        inv = torch.linalg.inv(sub)
        rss = 1.0 / inv[idx.index(t), idx.index(t)]
        out.append(torch.sqrt(rss.clamp_min(0.0) / (n - (len(idx) - 1))))
    return torch.stack(out)


def estimate_noise_sigma(x: torch.Tensor, *, neighbours: bool | None = None) -> torch.Tensor:
    """Per-band white-noise standard deviation of each image of ``x`` ``(N, C, H, W)``: ``(N, C)`` float64.

    HySime's multiple regression (module docstring): band ``c`` regressed on the other bands (and, with
    ``neighbours``, on every band's 8 neighbours; default: when ``C <`` :data:`NEIGHBOUR_BANDS` and the interior
    has at least twice as many pixels as predictors) plus a constant; ``sigma_c^2`` is the residual variance with
    its degrees of freedom. With fewer than twice as many pixels as bands, each band is regressed on its nearest
    bands only (:func:`spectral_window`).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> clean = torch.rand(1, 3, 40, 40, generator=g)
        >>> x = torch.cat([clean, clean.mean(1, keepdim=True).expand(1, 30, 40, 40)], 1)  # 33 correlated bands
        >>> noisy = x + 0.01 * torch.randn(x.shape, generator=g)
        >>> round(float(estimate_noise_sigma(noisy).median()), 3)
        0.01
    """
    x = check_image_tensor(x, "image")
    if not bool(torch.isfinite(x).all()):
        raise InputError("noise estimation needs finite pixels: mask or fill NaN/inf first")
    n_img, bands, h, w = x.shape
    use = neighbours_default(bands, h, w) if neighbours is None else bool(neighbours)
    if use and (h < 3 or w < 3):
        raise InputError(f"noise estimation with neighbours needs at least 3x3 pixels, got {h}x{w}")
    window = None if use else spectral_window(bands, h * w)
    # the Gram matrix accumulated over slabs of rows (each with its 1-row halo for the neighbours), so the float64
    # feature matrix never exceeds GRAM_SLAB_BYTES however large the image
    size = 9 * bands + 1 if use else bands + 1
    rows = max(1, GRAM_SLAB_BYTES // (8 * size * w))
    inner = (1, h - 1) if use else (0, h)
    grams, count, targets = None, 0, None
    for r0 in range(inner[0], inner[1], rows):
        r1 = min(r0 + rows, inner[1])
        slab = x[..., r0 - 1:r1 + 1, :] if use else x[..., r0:r1, :]
        feats, targets = noise_features(slab, neighbours=use)
        g = feats @ feats.transpose(1, 2)
        grams = g if grams is None else grams + g
        count += feats.shape[-1]
    return torch.stack([noise_from_gram(g, count, targets, window=window) for g in grams])


def neighbours_default(bands: int, height: int, width: int) -> bool:
    """The default of ``neighbours``: few bands (``<`` :data:`NEIGHBOUR_BANDS`) and at least twice as many interior
    pixels as the ``9 C + 1`` predictors."""
    return bands < NEIGHBOUR_BANDS and (height - 2) * (width - 2) >= 2 * (9 * bands + 1)
