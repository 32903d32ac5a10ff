"""Training the fusion networks: simulate, step, validate, checkpoint, resume.

One optimiser step ``s`` (0-based) of a run with ``K`` processes and per-process batch ``b``:

1. process ``k`` builds samples ``s*K*b + k*b ... s*K*b + (k+1)*b - 1`` (:class:`~hsfuse.data.patches.PatchSampler`,
   a pure function of the index), so no data-loader state exists;
2. loss (L1 or L2, mean) -> backward (DDP averages gradients) -> optional gradient clipping -> optimiser step at
   the learning rate of the recipe's piecewise-constant schedule, rescaled to the run's length; with
   ``ema > 0`` the exponential moving average of the weights is then updated;
3. every ``val_every`` steps (and at the last): the held-out pairs are fused whole and scored with the toolkit's
   metrics (``hsfuse`` preset's PSNR, SSIM, SAM, ERGAS, RMSE; data range 1 in scene units); a new best PSNR
   writes a checkpoint at that step and repoints ``best.json`` at it (without validation pairs every
   checkpoint is the best);
4. every ``ckpt_every`` steps (and at the last): a checkpoint folder (weights + card + optimiser, AMP scaler,
   best-so-far and RNG state, + the averaged weights with ``ema``) is written atomically, then ``last.json``
   (and ``best.json``) are atomically repointed; the ``keep_last`` newest step checkpoints and the best are kept.

The mechanics (run folder, checkpoints, pointers, RNG state, history, pruning, progress, distributed
bookkeeping) are those of :func:`hsfuse.training.engine.run_step_loop`, on which :func:`train` runs: a run killed
at any moment resumes from ``last.json`` and reproduces the uninterrupted run bit for bit (weights, averaged
weights, optimiser moments, scaler, step counter and RNG state come from the checkpoint, samples from their
indices, the learning rate from the step). Run folder layout::

    run.json          options and data description (checked on resume)
    checkpoints/step_0000100/{model.safetensors, model.json, state.pt}   (+ averaged.safetensors with ema)
    last.json, best.json
    history.jsonl     the engine's rule: one line per ``log_every`` steps and at the last step with the
                      means of ``loss`` and ``lr`` since the previous line, and the validation metrics
                      (``psnr``, ``ssim``, ...) merged into the line of each step where validation ran
    summary.json      written when the run finishes (steps, seconds, parameters, best checkpoint and metrics)
    tb/               TensorBoard events (losses, learning rate, metrics, preview images)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_device, check_positive_int
from ..data.patches import PatchSampler, ValidationPair
from ..errors import InputError
from ..metrics.presets import evaluate, get_preset
from ..models.base import count_parameters
from ..models.catalog import build_model, get_model_spec, resolve_config
from ..models.checkpoint import ModelCard, read_card
from ..models.inference import run_network
from ..progress import ProgressFn, ProgressWithInfo
from . import distributed
from .distributed import DistInfo
from .engine import StepLoopOptions, StepOutcome, run_step_loop

__all__ = ["TrainOptions", "TrainResult", "train"]


@dataclass(frozen=True)
class TrainOptions:
    """Options of a training run (anything ``None`` takes the paper recipe's value).

    Attributes:
        method: network name in :data:`hsfuse.models.catalog.MODELS`.
        config: architecture configuration name (``"paper"``, ``"tiny"``) or a dict of options.
        steps: optimiser steps of this run.
        batch_size: samples per step per process.
        lr: base learning rate; the recipe's schedule is scaled by ``lr / recipe base``.
        loss, optimizer: override the recipe's.
        schedule: ``"recipe"`` (the paper's milestones rescaled to ``steps``) or ``"constant"``.
        seed: initialisation and data seed.
        val_every, ckpt_every, log_every: in steps (validation, checkpoints and history lines also at the last
            step).
        keep_last: step checkpoints kept besides the best.
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        deterministic: ``torch.use_deterministic_algorithms`` (needed for bit-exact resume on GPU).
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        init_from: start from these weights (a checkpoint or run folder of the same method, bands and ratio)
            instead of a random initialisation: fine-tuning, e.g. after pre-training on synthetic data. The
            optimiser state and step counter start fresh; ignored when resuming (the checkpoint wins).
        ema: decay ``d`` in ``[0, 1)`` of an exponential moving average of the weights,
            ``theta_ema <- d theta_ema + (1 - d) theta`` after every optimiser step (the first copies
            ``theta``); saved as ``averaged.safetensors`` in each checkpoint
            (:func:`hsfuse.training.engine.load_averaged` reads it) and resumed with the run. ``0``: none.
            Validation and ``model.safetensors`` use the raw weights.
    """

    method: str
    config: str | dict[str, Any] = "paper"
    steps: int = 1000
    batch_size: int | None = None
    lr: float | None = None
    loss: Literal["l1", "l2"] | None = None
    optimizer: Literal["adam", "sgd"] | None = None
    schedule: Literal["recipe", "constant"] = "recipe"
    seed: int = 0
    val_every: int = 200
    ckpt_every: int = 200
    log_every: int = 10
    keep_last: int = 2
    amp: bool = False
    device: str = "cpu"
    deterministic: bool = True
    grad_clip: float | None = None
    init_from: str | None = None
    ema: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "val_every", "ckpt_every", "log_every", "keep_last"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_positive_int(self.batch_size, "batch_size"))
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr must be a positive number, got {self.lr}")
        if isinstance(self.ema, bool) or not isinstance(self.ema, (int, float, np.floating)) or not 0 <= self.ema < 1:
            raise InputError(f"ema (the moving-average decay) must lie in [0, 1), got {self.ema!r}; 0 turns it off")

    def loop_options(self) -> StepLoopOptions:
        """The step engine's schedule of this run."""
        return StepLoopOptions(steps=self.steps, ckpt_every=self.ckpt_every, log_every=self.log_every,
                               keep_last=self.keep_last)


@dataclass
class TrainResult:
    """What a run produced (``history``: the lines of ``history.jsonl``, module docstring)."""

    run_dir: Path
    steps_done: int
    last: Path
    best: Path | None
    best_metrics: dict[str, float] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _loss_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "l1":
        return F.l1_loss
    if kind == "l2":
        return F.mse_loss
    raise InputError(f"loss must be 'l1' or 'l2', got {kind!r}")


def _make_optimizer(kind: str, params: Any, *, lr: float, recipe: Any) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    raise InputError(f"optimizer must be 'adam' or 'sgd', got {kind!r}")


class _Logger:
    """TensorBoard scalars/images on the main process; silently absent if tensorboard is not installed."""

    def __init__(self, folder: Path, *, enabled: bool, purge_step: int | None) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=3)
            return
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                if math.isfinite(v):
                    self.writer.add_scalar(k, v, step)

    def image(self, step: int, tag: str, cube: torch.Tensor) -> None:
        if self.writer is None:
            return
        L = cube.shape[0]
        bands = [int(round(f * (L - 1))) for f in (0.8, 0.5, 0.2)] if L >= 3 else [0] * 3
        rgb = cube[bands].float()
        rgb = (rgb / rgb.amax().clamp_min(1e-8)).clamp(0, 1)
        self.writer.add_image(tag, rgb, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def _card(net: Any, *, options: TrainOptions, sampler: PatchSampler, data: dict[str, Any], step: int,
          metrics: dict[str, float] | None) -> ModelCard:
    fam = sampler.family
    preset = asdict(fam.preset)
    return ModelCard(
        method=options.method, config=net.config_dict(), hsi_bands=net.hsi_bands, msi_bands=net.msi_bands,
        ratio=net.ratio, band_scaling=sampler.band_scaling,
        wavelengths_nm=data.get("wavelengths_nm"), msi_band_names=data.get("msi_band_names"),
        srf=fam.nominal().spectral.matrix.tolist(), preset=preset,
        training={"step": step, "metrics": metrics, "seed": options.seed, "data": data.get("description"),
                  "psf_fwhm_range": list(fam.psf_fwhm_range) if fam.psf_fwhm_range else None,
                  "srf_family_size": len(fam.srfs), "ema": options.ema},
    )


# run.json entries that must agree when a run is resumed ("ema" is stored only when non-zero, so runs made
# before the option existed resume as runs without an average)
_RESUME_KEYS = ("method", "config", "batch_size", "patch_size", "seed", "steps", "world_size", "loss", "optimizer",
                "lr", "schedule", "data", "ema")

# the hsfuse preset restricted to metrics defined on any image size (UIQI/Q2n need 32x32 blocks)
_VAL_METRICS = ("psnr", "ssim", "sam", "ergas", "rmse")


def _validate(net: Any, pairs: Sequence[ValidationPair], *, ratio: int, band_scaling: str, device: str
              ) -> tuple[dict[str, float], torch.Tensor | None]:
    preset = dataclasses.replace(get_preset("hsfuse"), metrics=_VAL_METRICS)
    rows = []
    first = None
    for pair in pairs:
        h, w = pair.hsi.shape[-2:]
        tile = 48 if max(h, w) > 96 else None
        est = run_network(net, pair.hsi, pair.msi, band_scaling=band_scaling, tile=tile,  # type: ignore[arg-type]
                          overlap=4, device=device)
        rows.append(evaluate(pair.reference, est.clamp_min(0), preset=preset, ratio=ratio))
        if first is None:
            first = est[0]
    metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
    return metrics, first


def _init_source(net: Any, source: str, *, method: str, config: dict[str, Any]) -> Path:
    """The checkpoint folder of ``init_from`` after checking it holds the same network and layout as ``net``
    (called before the run folder is made, so a bad ``init_from`` leaves nothing behind)."""
    card, folder = read_card(source)
    if card.method != method or card.config != json.loads(json.dumps(config)):
        raise InputError(f"init_from {source} holds a {card.method} network with config {card.config}; this run "
                         f"trains {method} with {config}: pre-train with the same method and config")
    if (card.hsi_bands, card.msi_bands, card.ratio) != (net.hsi_bands, net.msi_bands, net.ratio):
        raise InputError(f"init_from {source} was trained for {card.hsi_bands} HSI bands, {card.msi_bands} MSI bands, "
                         f"ratio {card.ratio}; this run has {net.hsi_bands}, {net.msi_bands}, {net.ratio}")
    return Path(folder)


def _init_weights(net: Any, source: str, *, method: str, config: dict[str, Any]) -> None:
    """Load pre-trained weights into ``net`` after checking they are for the same network and layout."""
    from safetensors.torch import load_file

    folder = _init_source(net, source, method=method, config=config)
    net.load_state_dict(load_file(str(folder / "model.safetensors")))


def _device(requested: str, dist_info: DistInfo) -> str:
    """The device of this process: ``cuda`` becomes ``cuda:<local rank>`` in a distributed job."""
    device = requested
    if device.startswith("cuda") and dist_info.enabled:
        device = f"cuda:{dist_info.local_rank}"
    check_device(device)
    return device


def _set_determinism(deterministic: bool, device: str) -> None:
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.startswith("cuda"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False


def _lr_schedule(options: TrainOptions, recipe: Any) -> tuple[float, Callable[[int], float]]:
    """The base learning rate and that of step ``s``: the recipe's (rescaled to the run's length) or
    constant, times ``options.lr / recipe base``."""
    base = recipe.lr_schedule[0][1]
    scale = (options.lr / base) if options.lr is not None else 1.0
    if options.schedule == "constant":
        return base * scale, lambda step: base * scale
    return base * scale, lambda step: recipe.lr_at(step, total_steps=options.steps) * scale


def _weight_average(net: torch.nn.Module, decay: float) -> torch.nn.Module | None:
    """An exponential moving average of ``net``'s weights (and buffers) with ``decay``, or ``None`` for 0."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@dataclass
class _Step:
    """One optimiser step of a fusion network (module docstring, steps 1-2); returns ``loss`` and ``lr``.

    A non-finite loss returns before the optimiser step, so the weights stay those of the last good step and
    the engine stops the run with a message.
    """

    model: torch.nn.Module  # the network, or its DistributedDataParallel wrapper
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: PatchSampler
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lr_at: Callable[[int], float]
    batch: int
    dist_info: DistInfo
    device: str
    amp_dtype: torch.dtype
    use_amp: bool
    grad_clip: float | None
    averaged: torch.nn.Module | None

    def __call__(self, step: int) -> dict[str, float]:
        first = step * self.batch * self.dist_info.world_size + self.dist_info.rank * self.batch
        hsi, msi, target = (t.to(self.device, non_blocking=True)
                            for t in self.sampler.batch(range(first, first + self.batch)))
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type="cuda", dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.model(hsi, msi)
        loss = self.loss_fn(out.float(), target)
        if not torch.isfinite(loss):
            return {"loss": float(loss.detach()), "lr": lr}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.averaged is not None:
            self.averaged.update_parameters(self.net)
        return {"loss": float(loss.detach()), "lr": lr}


class _FusionRun:
    """The fusion-specific parts of a run on the step engine: ``init_from``, validation and the best PSNR, the
    AMP scaler and best-so-far in each checkpoint's state, the checkpoint card, TensorBoard."""

    def __init__(self, *, net: Any, scaler: torch.amp.GradScaler, options: TrainOptions, sampler: PatchSampler,
                 validation: Sequence[ValidationPair], data: dict[str, Any], config: Any, run: Path, device: str,
                 dist_info: DistInfo) -> None:
        self.net, self.scaler, self.options, self.sampler = net, scaler, options, sampler
        self.validation, self.data, self.config = validation, data, config
        self.run, self.device, self.dist_info = run, device, dist_info
        self.schedule = options.loop_options()
        self.best_psnr = -math.inf
        self.best_metrics: dict[str, float] | None = None
        self.validated: tuple[int, dict[str, float]] | None = None  # the last validation's step and metrics
        self.logger: _Logger | None = None

    def extra_state(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "best_psnr": self.best_psnr, "best_metrics": self.best_metrics}

    def on_start(self, state: dict[str, Any] | None) -> None:
        """Restore the scaler and best-so-far of a resumed run, or apply ``init_from`` to a new one."""
        if state is None:
            if self.options.init_from is not None:
                _init_weights(self.net, self.options.init_from, method=self.options.method,
                              config=asdict(self.config))
        else:
            self.scaler.load_state_dict(state["scaler"])
            self.best_psnr = float(state.get("best_psnr", -math.inf))
            self.best_metrics = state.get("best_metrics")
        done = int(state["step"]) if state is not None else 0
        self.logger = _Logger(self.run / "tb", enabled=self.dist_info.is_main, purge_step=done or None)

    def after_step(self, done: int) -> StepOutcome | None:
        """Validate on schedule; a new best PSNR marks this step's checkpoint as the best. Without validation
        pairs every scheduled checkpoint is the best."""
        if not self.validation:
            return StepOutcome(best={"metrics": None}) if self.schedule.is_checkpoint_step(done) else None
        if not (done % self.options.val_every == 0 or done == self.options.steps):
            return None
        metrics, preview = _validate(self.net, self.validation, ratio=self.sampler.family.ratio,
                                     band_scaling=self.sampler.band_scaling, device=self.device)
        self.net.train()
        self._log_validation(done, metrics, preview)
        self.validated = (done, metrics)
        if metrics.get("psnr", -math.inf) > self.best_psnr:
            self.best_psnr, self.best_metrics = metrics["psnr"], metrics
            return StepOutcome(values=metrics, best={"metrics": metrics})
        return StepOutcome(values=metrics)

    def _log_validation(self, done: int, metrics: dict[str, float], preview: torch.Tensor | None) -> None:
        if self.logger is None:
            return
        self.logger.scalars(done, {f"val/{k}": v for k, v in metrics.items()})
        if preview is not None:
            self.logger.image(done, "val/estimate", preview)
            if self.best_metrics is None:  # the run's first validation
                self.logger.image(done, "val/reference", self.validation[0].reference[0])

    def on_log(self, row: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.scalars(row["step"], {f"train/{k}": row[k] for k in ("loss", "lr") if k in row})

    def on_close(self) -> None:
        if self.logger is not None:
            self.logger.close()

    def card(self, step: int) -> str:
        """The checkpoint card at ``step`` (with the metrics of a validation at that step)."""
        metrics = self.validated[1] if self.validated is not None and self.validated[0] == step else None
        return _card(self.net, options=self.options, sampler=self.sampler, data=self.data, step=step,
                     metrics=metrics).to_json()


def _description(options: TrainOptions, sampler: PatchSampler, *, config: Any, batch: int, loss: str,
                 optimizer: str, world_size: int, data: dict[str, Any]) -> dict[str, Any]:
    """What ``run.json`` stores (the entries of ``_RESUME_KEYS`` must agree on resume), options included."""
    fam = sampler.family
    description = {"method": options.method, "config": asdict(config), "batch_size": batch,
                   "patch_size": sampler.patch_size, "seed": options.seed, "steps": options.steps,
                   "world_size": world_size, "loss": loss, "optimizer": optimizer, "lr": options.lr,
                   "schedule": options.schedule, "data": data.get("description"), "ratio": fam.ratio,
                   "hsi_bands": fam.hsi_bands, "msi_bands": fam.msi_bands}
    if options.ema:
        description["ema"] = options.ema
    return {**description, "options": asdict(options)}


def train(options: TrainOptions, sampler: PatchSampler, *, run_dir: str | os.PathLike[str],
          validation: Sequence[ValidationPair] = (), data: dict[str, Any] | None = None, resume: bool = True,
          progress: ProgressFn | ProgressWithInfo | None = None, stop_after: int | None = None) -> TrainResult:
    """Train ``options.method`` on samples from ``sampler``; write checkpoints and logs under ``run_dir``.

    Runs on :func:`hsfuse.training.engine.run_step_loop` (module docstring); under ``torchrun`` each process
    takes its slice of every global batch (:mod:`hsfuse.training.distributed`).

    Args:
        options: see :class:`TrainOptions`.
        sampler: training samples (patches, degradations, band scaling).
        run_dir: the run folder (created; an existing run is resumed when ``resume``).
        validation: held-out pairs scored every ``val_every`` steps; the best PSNR marks ``best.json``.
        data: description stored in checkpoints (``wavelengths_nm``, ``msi_band_names``, ``description``).
        resume: continue an existing run in ``run_dir`` from its last checkpoint.
        progress: ``progress(done, total)`` after every step (main process only); a callback with an ``info``
            keyword also gets ``"loss 0.0123  lr 0.0001"`` (:mod:`hsfuse.progress`).
        stop_after: stop (as if killed) once this many steps are done, without a final checkpoint; for tests.

    Returns:
        A :class:`TrainResult`.
    """
    data = dict(data or {})
    spec = get_model_spec(options.method)
    recipe = spec.recipe
    config = resolve_config(spec, options.config)
    fam = sampler.family
    dist_info = distributed.setup(options.device)
    device = _device(options.device, dist_info)
    batch = options.batch_size or recipe.batch_size
    loss_kind = options.loss or recipe.loss
    opt_kind = options.optimizer or recipe.optimizer
    description = _description(options, sampler, config=config, batch=batch, loss=loss_kind, optimizer=opt_kind,
                               world_size=dist_info.world_size, data=data)
    _set_determinism(options.deterministic, device)
    torch.manual_seed(options.seed)
    net = build_model(options.method, hsi_bands=fam.hsi_bands, msi_bands=fam.msi_bands, ratio=fam.ratio,
                      config=config).to(device)
    base_lr, lr_at = _lr_schedule(options, recipe)
    optimizer = _make_optimizer(opt_kind, net.parameters(), lr=base_lr, recipe=recipe)
    use_amp = options.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    averaged = _weight_average(net, options.ema)
    model: torch.nn.Module = net
    if dist_info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[dist_info.local_rank] if device.startswith("cuda") else None)
    if options.init_from is not None:  # checked now; loaded by on_start into a new run
        _init_source(net, options.init_from, method=options.method, config=asdict(config))
    run = Path(run_dir)
    fusion = _FusionRun(net=net, scaler=scaler, options=options, sampler=sampler, validation=validation, data=data,
                        config=config, run=run, device=device, dist_info=dist_info)
    step = _Step(model=model, net=net, optimizer=optimizer, scaler=scaler, sampler=sampler,
                 loss_fn=_loss_fn(loss_kind), lr_at=lr_at, batch=batch, dist_info=dist_info, device=device,
                 amp_dtype=amp_dtype, use_amp=use_amp, grad_clip=options.grad_clip, averaged=averaged)
    result = run_step_loop(run_dir=run, description=description, keys=_RESUME_KEYS, command="hsfuse train",
                           module=net, optimizer=optimizer, step_fn=step, card=fusion.card, method=options.method,
                           options=options.loop_options(), device=device, resume=resume, progress=progress,
                           stop_after=stop_after, averaged=averaged, extra_state=fusion.extra_state,
                           on_start=fusion.on_start, after_step=fusion.after_step, on_log=fusion.on_log,
                           on_close=fusion.on_close, dist=dist_info)
    if dist_info.is_main and result.steps_done == options.steps:
        summary = {"steps": result.steps_done, "seconds": result.seconds, "parameters": count_parameters(net),
                   "best": str(result.best) if result.best else None, "best_metrics": fusion.best_metrics}
        (run / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return TrainResult(run_dir=run, steps_done=result.steps_done, last=result.last or run, best=result.best,
                       best_metrics=fusion.best_metrics, history=result.history, seconds=result.seconds)
