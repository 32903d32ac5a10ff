"""Stage 2 of "Unmixing Before Fusion": a DDPM over abundance maps; training and sampling.

Data: abundance maps ``A`` ``(H, W, K)`` on the simplex (from :func:`hsfuse.synthesis.unmixing.infer_abundances`),
mapped to ``[-1, 1]`` by ``x = 2 A - 1`` as the authors do. Training crops ``crop x crop`` windows (a random
image in proportion to its area, a random position, one of the 8 flips/rotations: abundance maps of overhead
scenes have no preferred orientation; the authors train on whole 256 x 256 maps without augmentation) and
minimises SR3's L1 noise loss (:mod:`hsfuse.models.diffusion`). Paper: Adam lr ``1e-4``, batch 8, ``T = 2000``,
``beta`` linear ``1e-6 .. 1e-2``.
By default no exponential moving average (EMA) of the weights: the authors' config defines one but their code
does not use it ("not used now"), so samples come from the raw weights, whose quality moves from checkpoint to
checkpoint (``benchmarks/results/synth_16k``). ``DiffusionTrainOptions(ema=0.999)`` (a deviation, as in DDPM and
most diffusion code) also keeps ``theta_ema <- d theta_ema + (1 - d) theta`` after every step (the first step
copies ``theta``), checkpointed and resumed with the run; :func:`load_diffusion` then samples with it.

Sampling maps a sample back with ``A = (x + 1) / 2`` and then projects each pixel onto the simplex
(:func:`hsfuse.physics.learnable.project_simplex`) so every generated abundance is valid; the authors use
``(x + 1) / 2`` without the projection. The samplers clip their ``x_0`` estimate to ``[-1, 1]``, so each raw
abundance already lies in ``[0, 1]``; what the projection corrects is the sum-to-one error, which
:func:`sample_abundances` reports (largest ``|sum_k A_k - 1|`` and the share of pixels off by more than 0.01)
so the projection hides nothing.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from ..errors import InputError
from ..models.base import config_from_dict
from ..models.ddpm_unet import DENOISER_CONFIGS, DenoiserConfig, SR3UNet
from ..models.diffusion import (NoiseSchedule, ancestral_sample, ddim_sample, ddim_timesteps, linear_schedule,
                                q_sample, training_noise_levels)
from ..physics.learnable import project_simplex
from ..progress import ProgressFn, ProgressWithInfo, reporter
from ..training.engine import (StepLoopOptions, StepLoopResult, load_averaged, load_weights, read_checkpoint_card,
                               run_step_loop)

__all__ = [
    "DiffusionTrainOptions",
    "check_abundances",
    "train_diffusion",
    "AbundanceDiffusion",
    "load_diffusion",
    "sample_abundances",
    "SampleResult",
]

DIFFUSION_KIND = "hsfuse-abundance-ddpm"
#: options that may change when a run is resumed (how long it runs, how often it logs and checkpoints)
_RUN_LENGTH = ("steps", "ckpt_every", "log_every")


def check_abundances(maps: Sequence[np.ndarray], *, tol: float = 1e-3) -> list[np.ndarray]:
    """Check abundance maps ``(H, W, K)`` (same ``K``, finite, non-negative, sum to one within ``tol``)."""
    if not maps:
        raise InputError("no abundance maps given")
    out = []
    ks = set()
    for i, m in enumerate(maps):
        a = np.asarray(m, dtype=np.float32)
        if a.ndim != 3:
            raise InputError(f"abundance map {i} must be H x W x K, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise InputError(f"abundance map {i} holds NaN/inf")
        err = float(np.abs(a.sum(-1) - 1).max())
        if a.min() < -tol or err > tol:
            raise InputError(f"abundance map {i} is not on the simplex (min {a.min():.3g}, max |sum - 1| {err:.3g}); "
                             "abundances must be non-negative and sum to one per pixel")
        ks.add(a.shape[-1])
        out.append(a)
    if len(ks) != 1:
        raise InputError(f"abundance maps have different numbers of endmembers {sorted(ks)}")
    return out


@dataclass(frozen=True)
class DiffusionTrainOptions:
    """Options of :func:`train_diffusion` (see the module docstring for the paper's values).

    Attributes:
        config: denoiser configuration name (:data:`hsfuse.models.ddpm_unet.DENOISER_CONFIGS`).
        steps, batch_size, crop: optimiser steps, crops per step, crop side (a multiple of the U-Net's
            ``multiple``; at most the smallest map side).
        lr: Adam learning rate (constant, as in the paper).
        T, beta_start, beta_end: the linear noise schedule.
        loss: ``"l1"`` (paper) or ``"l2"``.
        ema: decay ``d`` of an exponential moving average of the weights, in ``[0, 1)``; ``0`` (the paper): none.
        seed, device, ckpt_every, log_every.
    """

    config: str = "small"
    steps: int = 5000
    batch_size: int = 8
    crop: int = 64
    lr: float = 1e-4
    T: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 1e-2
    loss: Literal["l1", "l2"] = "l1"
    ema: float = 0.0
    seed: int = 0
    device: str = "cpu"
    ckpt_every: int = 500
    log_every: int = 20

    def __post_init__(self) -> None:
        if self.config not in DENOISER_CONFIGS:
            raise InputError(f"unknown denoiser config {self.config!r}; choose one of {', '.join(DENOISER_CONFIGS)}")
        if self.loss not in ("l1", "l2"):
            raise InputError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        for name in ("steps", "batch_size", "crop", "T", "ckpt_every", "log_every"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        object.__setattr__(self, "seed", check_positive_int(self.seed, "seed", minimum=0))
        m = DENOISER_CONFIGS[self.config].multiple
        if self.crop % m:
            raise InputError(f"crop {self.crop} must be a multiple of {m} for the {self.config!r} denoiser")
        if not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"ema (the moving-average decay) must lie in [0, 1), got {self.ema}; 0 turns it off")

    def schedule(self) -> NoiseSchedule:
        """The noise schedule; warns when it does not reach noise (``abar_T > 0.01``): the samplers start
        from ``N(0, I)``, which such a forward process never produces."""
        schedule = linear_schedule(self.T, beta_start=self.beta_start, beta_end=self.beta_end)
        if schedule.abar[-1] > 0.01:
            warnings.warn(f"the noise schedule ends at abar_T = {schedule.abar[-1]:.3g} (T = {self.T}, beta "
                          f"{self.beta_start:g}..{self.beta_end:g}): x_T is not close to N(0, I), so sampling "
                          "starts from the wrong distribution; raise T or beta_end", stacklevel=2)
        return schedule


def _crop_batch(maps: Sequence[np.ndarray], *, step: int, seed: int, batch: int, crop: int) -> torch.Tensor:
    """``(batch, K, crop, crop)`` in ``[-1, 1]``, a pure function of ``(seed, step)``."""
    rng = np.random.default_rng([seed, step])
    areas = np.array([m.shape[0] * m.shape[1] for m in maps], dtype=np.float64)
    out = []
    for _ in range(batch):
        m = maps[int(rng.choice(len(maps), p=areas / areas.sum()))]
        top = int(rng.integers(0, m.shape[0] - crop + 1))
        left = int(rng.integers(0, m.shape[1] - crop + 1))
        w = m[top:top + crop, left:left + crop]
        w = np.rot90(w, k=int(rng.integers(0, 4)))
        if rng.integers(0, 2):
            w = w[:, ::-1]
        out.append(np.ascontiguousarray(w))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
    return 2.0 * x - 1.0


def train_diffusion(maps: Sequence[np.ndarray], *, run_dir: str | os.PathLike[str],
                    options: DiffusionTrainOptions = DiffusionTrainOptions(), description: dict[str, Any] | None = None,
                    resume: bool = True, progress: ProgressFn | ProgressWithInfo | None = None,
                    stop_after: int | None = None) -> StepLoopResult:
    """Train the abundance denoiser on ``maps`` (``(H, W, K)`` on the simplex); resumable (training engine).

    A run resumed with a larger ``options.steps`` continues where it stopped and gives the weights of one run
    of that length (the authors train "until stopped"); every other option must match the run's.

    ``description`` (e.g. where the maps came from) is stored in ``run.json`` and the checkpoints' card.
    ``progress(done, total)`` is called after every step (with ``info="loss ..."`` when it takes that
    keyword); ``stop_after``: stop (as if killed) after that many steps, for tests.
    """
    maps = check_abundances(maps)
    small = min(min(m.shape[:2]) for m in maps)
    if options.crop > small:
        raise InputError(f"crop {options.crop} is larger than the smallest abundance map side ({small}); "
                         "use a smaller --crop or larger maps")
    K = maps[0].shape[-1]
    schedule = options.schedule()
    config = DENOISER_CONFIGS[options.config]
    torch.manual_seed(options.seed)
    net = SR3UNet(channels=K, config=config).to(options.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
    loss_fn = F.l1_loss if options.loss == "l1" else F.mse_loss
    averaged = None
    if options.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(options.ema), use_buffers=True)
    data = dict(description or {})
    data.setdefault("maps", len(maps))
    # the run length is left out of what a resume must match: the learning rate is constant and step s's crops
    # and noise depend on (seed, s) alone, so resuming a finished run with more steps equals a longer run
    fixed = {k: v for k, v in asdict(options).items() if k not in _RUN_LENGTH}
    info = {"kind": DIFFUSION_KIND, "options": fixed, "channels": K, "data": data}

    def step_fn(step: int) -> dict[str, float]:
        x0 = _crop_batch(maps, step=step, seed=options.seed, batch=options.batch_size, crop=options.crop)
        gen = torch.Generator().manual_seed(options.seed * 1_000_003 + step)
        gamma = training_noise_levels(schedule, x0.shape[0], generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        x0, gamma, noise = x0.to(options.device), gamma.to(options.device), noise.to(options.device)
        loss = loss_fn(net(q_sample(x0, gamma, noise), gamma), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(net)
        return {"loss": loss.item()}

    def card(step: int) -> str:
        return json.dumps({"kind": DIFFUSION_KIND, "config": asdict(config), "channels": K,
                           "schedule": {"kind": "linear", "T": options.T, "beta_start": options.beta_start,
                                        "beta_end": options.beta_end},
                           "crop": options.crop, "training": {"step": step, "options": asdict(options), "data": data}},
                          indent=2)

    return run_step_loop(run_dir=run_dir, description=info, keys=("kind", "options", "channels", "data"),
                         command="hsfuse synth train-diffusion", module=net, optimizer=optimizer, step_fn=step_fn,
                         card=card, method="abundance-ddpm",
                         options=StepLoopOptions(steps=options.steps, ckpt_every=options.ckpt_every,
                                                 log_every=options.log_every),
                         device=options.device, resume=resume, progress=progress, stop_after=stop_after,
                         averaged=averaged)


@dataclass
class AbundanceDiffusion:
    """A trained denoiser, its noise schedule and card."""

    net: SR3UNet
    schedule: NoiseSchedule
    card: dict[str, Any]
    path: Path


def load_diffusion(path: str | os.PathLike[str], *, device: str = "cpu", averaged: bool = True) -> AbundanceDiffusion:
    """Load a checkpoint or run folder written by :func:`train_diffusion` (its last checkpoint).

    A run trained with ``ema > 0`` gives its moving-average weights unless ``averaged=False`` (the raw ones).
    """
    folder, card = read_checkpoint_card(path, kind=DIFFUSION_KIND, what="an abundance diffusion",
                                        command="hsfuse synth train-diffusion")
    config = config_from_dict(DenoiserConfig, card["config"])
    net = SR3UNet(channels=int(card["channels"]), config=config)
    if averaged and float(card.get("training", {}).get("options", {}).get("ema", 0.0)) > 0:
        net.load_state_dict(load_averaged(folder))
    else:
        load_weights(net, folder)
    s = card["schedule"]
    schedule = linear_schedule(int(s["T"]), beta_start=float(s["beta_start"]), beta_end=float(s["beta_end"]))
    return AbundanceDiffusion(net=net.to(device).eval(), schedule=schedule, card=card, path=folder)


@dataclass
class SampleResult:
    """Generated abundances ``(n, H, W, K)`` on the simplex and the raw samples' distance from it."""

    abundances: np.ndarray
    raw_min: float
    raw_max_sum_error: float
    raw_fraction_invalid: float
    seconds: float


@torch.no_grad()
def sample_abundances(model: AbundanceDiffusion, *, n: int, size: int, sampler: Literal["ddim", "ancestral"] = "ddim",
                      steps: int = 50, eta: float = 0.0, seed: int = 0, batch: int = 8, device: str = "cpu",
                      progress: ProgressFn | ProgressWithInfo | None = None) -> SampleResult:
    """Draw ``n`` abundance maps ``size x size`` (``sampler``: DDIM with ``steps`` or the full ancestral chain).

    Sample ``i`` uses seed ``seed + i // batch`` for its batch, so the same ``(seed, batch)`` gives the same
    maps. ``progress(done, total)`` counts denoiser evaluations over all batches.
    """
    import time

    if sampler not in ("ddim", "ancestral"):
        raise InputError(f"sampler must be 'ddim' or 'ancestral', got {sampler!r}")
    n = check_positive_int(n, "n")
    batch = check_positive_int(batch, "batch")
    size = check_positive_int(size, "size")
    m = model.net.config.multiple
    if size < m or size % m:
        raise InputError(f"size must be a positive multiple of {m} for this denoiser, got {size}")
    net = model.net.to(device).eval()
    K = model.net.channels
    per = model.schedule.T if sampler == "ancestral" else len(ddim_timesteps(model.schedule.T, steps))
    batches = [min(batch, n - s) for s in range(0, n, batch)]
    total = per * len(batches)
    out = []
    t0 = time.perf_counter()
    outer = reporter(progress)
    for b, count in enumerate(batches):
        def report(i: int, _total: int, b: int = b) -> None:
            outer(b * per + i, total)
        shape = (count, K, size, size)
        if sampler == "ddim":
            x = ddim_sample(net, shape, model.schedule, steps=steps, eta=eta, seed=seed + b, device=device,
                            progress=report)
        else:
            x = ancestral_sample(net, shape, model.schedule, seed=seed + b, device=device, progress=report)
        out.append(x.float().cpu())
    x = torch.cat(out).permute(0, 2, 3, 1)
    raw = (x + 1.0) / 2.0
    sums = raw.sum(-1)
    invalid = ((raw < -1e-3).any(-1) | ((sums - 1).abs() > 1e-2))
    a = project_simplex(raw)
    return SampleResult(abundances=a.numpy(), raw_min=float(raw.min()), raw_max_sum_error=float((sums - 1).abs().max()),
                        raw_fraction_invalid=float(invalid.float().mean()), seconds=time.perf_counter() - t0)
