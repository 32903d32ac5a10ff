"""Denoising diffusion (DDPM) with continuous noise-level conditioning: schedule, forward process, samplers.

Notation (Ho, Jain, Abbeel, NeurIPS 2020), ``t = 1..T``::

    beta_t           linear from beta_1 to beta_T          alpha_t = 1 - beta_t
    abar_t = prod_{s <= t} alpha_s,  abar_0 = 1             gamma_t = sqrt(abar_t)  (the "noise level")
    q(x_t | x_0)      = N(gamma_t x_0, (1 - abar_t) I)
    q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, var_t I)
        c0_t  = beta_t sqrt(abar_{t-1}) / (1 - abar_t)
        ct_t  = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)
        var_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
    x_0 = (x_t - sqrt(1 - abar_t) eps) / gamma_t

"Unmixing Before Fusion" uses the SR3 formulation (Saharia et al., 2021): the denoiser ``eps_theta(x, gamma)`` is
conditioned on the continuous noise level ``gamma`` instead of the step index; in training ``t`` is drawn
uniformly from ``1..T`` and ``gamma`` uniformly between ``gamma_t`` and ``gamma_{t-1}``
(:func:`training_noise_levels`), the loss is ``L1(eps_theta(gamma x_0 + sqrt(1 - gamma^2) eps, gamma), eps)``.
The authors' schedule (``config/Chikusei_256_DDPM.json``): linear, ``beta`` from ``1e-6`` to ``1e-2``,
``T = 2000`` for both training and sampling.

Because the denoiser sees ``gamma``, not ``t``, any subsequence of the schedule can be sampled:
:func:`ancestral_sample` runs all ``T`` steps (the paper's sampler); :func:`ddim_sample` (Song, Meng, Ermon,
ICLR 2021) runs ``steps`` evenly spaced ones, deterministic for ``eta = 0``. Both predict ``x_0``, clip it to
``[-1, 1]`` (the data range) and draw their noise from a seeded CPU generator, so a seed gives the same samples
on any device (up to floating-point differences of the network).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_positive_int
from ..errors import InputError

__all__ = [
    "NoiseSchedule",
    "linear_schedule",
    "q_sample",
    "training_noise_levels",
    "predict_x0",
    "ancestral_sample",
    "ddim_sample",
    "ddim_timesteps",
    "Denoiser",
]

#: ``eps_theta(x, gamma)``: ``(N, K, H, W)``, ``(N,)`` -> ``(N, K, H, W)``
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete variance schedule; arrays are float64, index ``t - 1`` holds step ``t``.

    Attributes:
        betas: ``(T,)`` values in ``(0, 1)``.
    """

    betas: np.ndarray

    def __post_init__(self) -> None:
        b = np.asarray(self.betas, dtype=np.float64)
        if b.ndim != 1 or b.size < 1 or not np.all((b > 0) & (b < 1)):
            raise InputError("betas must be a non-empty 1-D array of values in (0, 1)")
        object.__setattr__(self, "betas", b)

    @property
    def T(self) -> int:
        return int(self.betas.size)

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def abar(self) -> np.ndarray:
        """``(T + 1,)``: ``abar_0 = 1, abar_1, ..., abar_T``."""
        return np.concatenate([[1.0], np.cumprod(self.alphas)])

    @property
    def gammas(self) -> np.ndarray:
        """``(T + 1,)``: ``gamma_t = sqrt(abar_t)``, ``gamma_0 = 1``."""
        return np.sqrt(self.abar)

    def q_moments(self, t: int) -> tuple[float, float]:
        """Mean coefficient and variance of ``q(x_t | x_0)``: ``(sqrt(abar_t), 1 - abar_t)``."""
        self._check_t(t)
        a = self.abar[t]
        return float(np.sqrt(a)), float(1.0 - a)

    def posterior(self, t: int) -> tuple[float, float, float]:
        """``(c0_t, ct_t, var_t)`` of ``q(x_{t-1} | x_t, x_0)`` (module docstring)."""
        self._check_t(t)
        abar, abar_prev, beta = self.abar[t], self.abar[t - 1], self.betas[t - 1]
        c0 = beta * np.sqrt(abar_prev) / (1.0 - abar)
        ct = np.sqrt(1.0 - beta) * (1.0 - abar_prev) / (1.0 - abar)
        var = beta * (1.0 - abar_prev) / (1.0 - abar)
        return float(c0), float(ct), float(var)

    def _check_t(self, t: int) -> None:
        if not 1 <= t <= self.T:
            raise InputError(f"step t must be in 1..{self.T}, got {t}")


def linear_schedule(T: int = 2000, *, beta_start: float = 1e-6, beta_end: float = 1e-2) -> NoiseSchedule:
    """Linear ``beta`` from ``beta_start`` to ``beta_end`` over ``T`` steps (the paper: 1e-6, 1e-2, 2000)."""
    T = check_positive_int(T, "T")
    if not 0 < beta_start <= beta_end < 1:
        raise InputError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return NoiseSchedule(np.linspace(beta_start, beta_end, T, dtype=np.float64))


def _level(gamma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return gamma.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def q_sample(x0: torch.Tensor, gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``x = gamma x_0 + sqrt(1 - gamma^2) eps`` with one ``gamma`` per sample ``(N,)``."""
    g = _level(gamma, x0)
    return g * x0 + torch.sqrt((1.0 - g * g).clamp_min(0.0)) * noise


def training_noise_levels(schedule: NoiseSchedule, n: int, *, generator: torch.Generator) -> torch.Tensor:
    """SR3's training draw: ``t ~ U{1..T}``, ``gamma ~ U(gamma_t, gamma_{t-1})``; ``(n,)`` float32 on the CPU."""
    t = torch.randint(1, schedule.T + 1, (n,), generator=generator)
    g = torch.from_numpy(schedule.gammas)
    lo, hi = g[t], g[t - 1]
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (lo + u * (hi - lo)).float()


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``x_0 = (x_t - sqrt(1 - gamma^2) eps) / gamma``."""
    g = _level(gamma, x_t)
    return (x_t - torch.sqrt((1.0 - g * g).clamp_min(0.0)) * eps) / g


def _noise(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) != 4:
        raise InputError(f"sample shape must be (N, K, H, W) with positive sizes, got {shape}")
    return tuple(check_positive_int(s, f"sample shape[{i}]") for i, s in enumerate(shape))


@torch.no_grad()
def ancestral_sample(denoiser: Denoiser, shape: tuple[int, ...], schedule: NoiseSchedule, *, seed: int = 0,
                     device: str | torch.device = "cpu", clip: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The DDPM sampler: ``x_T ~ N(0, I)``, then for ``t = T..1`` ``x_{t-1} ~ q(x_{t-1} | x_t, x0_hat)``.

    ``x0_hat = predict_x0(x_t, eps_theta(x_t, gamma_t), gamma_t)``, clipped to ``[-1, 1]`` when ``clip``; no
    noise is added at the last step. ``progress(i, total)`` is called after each step.
    """
    shape = _check_shape(shape)
    gen = torch.Generator().manual_seed(int(seed))
    ref = torch.empty((), device=device)
    x = _noise(shape, gen, ref)
    gammas = schedule.gammas
    for i, t in enumerate(range(schedule.T, 0, -1)):
        gamma = torch.full((shape[0],), float(gammas[t]), device=device)
        x0 = predict_x0(x, denoiser(x, gamma), gamma)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        c0, ct, var = schedule.posterior(t)
        x = c0 * x0 + ct * x
        if t > 1:
            x = x + float(np.sqrt(var)) * _noise(shape, gen, ref)
        if progress is not None:
            progress(i + 1, schedule.T)
    return x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` evenly spaced steps in ``1..T``, descending, starting at ``T``."""
    if check_positive_int(steps, "DDIM steps") > T:
        raise InputError(f"DDIM steps must be an integer in 1..{T}, got {steps!r}")
    return sorted({int(round(v)) for v in np.linspace(T, 1, steps)}, reverse=True)


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, shape: tuple[int, ...], schedule: NoiseSchedule, *, steps: int = 50,
                eta: float = 0.0, seed: int = 0, device: str | torch.device = "cpu", clip: bool = True,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) on ``steps`` evenly spaced steps of ``schedule``.

    For consecutive chosen steps ``t > s`` (``abar_s = 1`` after the last)::

        x0_hat = clip(predict_x0(x_t, eps_hat, gamma_t));  eps_hat <- (x_t - gamma_t x0_hat) / sqrt(1 - abar_t)
        sigma  = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
        x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z

    ``eta = 0``: deterministic given ``x_T``; ``eta = 1`` with ``steps = T``: the ancestral sampler's variance.
    """
    shape = _check_shape(shape)
    if not 0.0 <= eta <= 1.0:
        raise InputError(f"eta must be in [0, 1], got {eta}")
    ts = ddim_timesteps(schedule.T, steps)
    gen = torch.Generator().manual_seed(int(seed))
    ref = torch.empty((), device=device)
    x = _noise(shape, gen, ref)
    abar = schedule.abar
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        gamma = torch.full((shape[0],), float(np.sqrt(abar[t])), device=device)
        eps = denoiser(x, gamma)
        x0 = predict_x0(x, eps, gamma)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - float(np.sqrt(abar[t])) * x0) / float(np.sqrt(1.0 - abar[t]))
        sigma = eta * np.sqrt((1.0 - abar[s]) / (1.0 - abar[t]) * (1.0 - abar[t] / abar[s]))
        x = float(np.sqrt(abar[s])) * x0 + float(np.sqrt(max(1.0 - abar[s] - sigma**2, 0.0))) * eps
        if sigma > 0 and s > 0:
            x = x + float(sigma) * _noise(shape, gen, ref)
        if progress is not None:
            progress(i + 1, len(ts))
    return x
