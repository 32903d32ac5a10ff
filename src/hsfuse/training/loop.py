"""The training loop: simulate, step, validate, checkpoint, resume.

One optimiser step ``s`` (0-based) of a run with ``K`` processes and per-process batch ``b``:

1. process ``k`` builds samples ``s*K*b + k*b ... s*K*b + (k+1)*b - 1`` (:class:`~hsfuse.data.patches.PatchSampler`,
   a pure function of the index), so no data-loader state exists;
2. loss (L1 or L2, mean) -> backward (DDP averages gradients) -> optional gradient clipping -> optimiser step at
   the learning rate of the recipe's piecewise-constant schedule, rescaled to the run's length;
3. every ``val_every`` steps: the held-out pairs are fused whole and scored with the toolkit's metrics
   (``hsfuse`` preset's PSNR, SSIM, SAM, ERGAS, RMSE; data range 1 in scene units); the best PSNR is kept;
4. every ``ckpt_every`` steps: a checkpoint folder (weights + card + optimiser/scaler/RNG state) is written
   atomically, then ``last.json`` (and ``best.json``) are atomically repointed.

A run killed at any moment resumes from ``last.json`` and reproduces the uninterrupted run: weights,
optimiser moments, step counter and RNG state come from the checkpoint, samples from their indices, the
learning rate from the step. Run folder layout::

    run.json          options and data description (checked on resume)
    checkpoints/step_0000100/{model.safetensors, model.json, state.pt}
    last.json, best.json
    history.jsonl     one line per validation
    tb/               TensorBoard events (losses, learning rate, metrics, preview images)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..data.patches import PatchSampler, ValidationPair
from ..errors import InputError
from ..metrics.presets import evaluate, get_preset
from ..models.base import count_parameters
from ..models.checkpoint import ModelCard, read_card, resolve_checkpoint, save_model, write_pointer
from ..models.inference import run_network
from ..models.catalog import build_model, get_model_spec, resolve_config
from . import distributed
from .engine import check_run_dir, progress_bar, rng_state, set_rng_state

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
        val_every, ckpt_every, log_every: in steps (validation and checkpoints also at the last step).
        keep_last: step checkpoints kept besides the best.
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        deterministic: ``torch.use_deterministic_algorithms`` (needed for bit-exact resume on GPU).
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        init_from: start from these weights (a checkpoint or run folder of the same method, bands and ratio)
            instead of a random initialisation: fine-tuning, e.g. after pre-training on synthetic data. The
            optimiser state and step counter start fresh; ignored when resuming (the checkpoint wins).
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

    def __post_init__(self) -> None:
        for name in ("steps", "val_every", "ckpt_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch_size must be positive, got {self.batch_size}")
        if self.keep_last < 1:
            raise InputError(f"keep_last must be at least 1, got {self.keep_last}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr must be a positive number, got {self.lr}")


@dataclass
class TrainResult:
    """What a run produced."""

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
                  "srf_family_size": len(fam.srfs)},
    )


# run.json entries that must agree when a run is resumed
_RESUME_KEYS = ("method", "config", "batch_size", "patch_size", "seed", "steps", "world_size", "loss", "optimizer",
                "lr", "schedule", "data")

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


def _init_weights(net: Any, source: str, *, method: str, config: dict[str, Any]) -> None:
    """Load pre-trained weights into ``net`` after checking they are for the same network and layout."""
    from safetensors.torch import load_file

    card, folder = read_card(source)
    if card.method != method or card.config != json.loads(json.dumps(config)):
        raise InputError(f"init_from {source} holds a {card.method} network with config {card.config}; this run "
                         f"trains {method} with {config}: pre-train with the same method and config")
    if (card.hsi_bands, card.msi_bands, card.ratio) != (net.hsi_bands, net.msi_bands, net.ratio):
        raise InputError(f"init_from {source} was trained for {card.hsi_bands} HSI bands, {card.msi_bands} MSI bands, "
                         f"ratio {card.ratio}; this run has {net.hsi_bands}, {net.msi_bands}, {net.ratio}")
    net.load_state_dict(load_file(str(folder / "model.safetensors")))


def train(options: TrainOptions, sampler: PatchSampler, *, run_dir: str | os.PathLike[str],
          validation: Sequence[ValidationPair] = (), data: dict[str, Any] | None = None, resume: bool = True,
          progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train ``options.method`` on samples from ``sampler``; write checkpoints and logs under ``run_dir``.

    Args:
        options: see :class:`TrainOptions`.
        sampler: training samples (patches, degradations, band scaling).
        run_dir: the run folder (created; an existing run is resumed when ``resume``).
        validation: held-out pairs scored every ``val_every`` steps; the best PSNR marks ``best.json``.
        data: description stored in checkpoints (``wavelengths_nm``, ``msi_band_names``, ``description``).
        resume: continue an existing run in ``run_dir`` from its last checkpoint.
        progress: show a progress bar (main process only).
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
    device = options.device
    if device.startswith("cuda") and dist_info.enabled:
        device = f"cuda:{dist_info.local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    batch = options.batch_size or recipe.batch_size
    loss_kind = options.loss or recipe.loss
    opt_kind = options.optimizer or recipe.optimizer
    base_lr = recipe.lr_schedule[0][1]
    lr_scale = (options.lr / base_lr) if options.lr is not None else 1.0
    description = {"method": options.method, "config": asdict(config), "batch_size": batch,
                   "patch_size": sampler.patch_size, "seed": options.seed, "steps": options.steps,
                   "world_size": dist_info.world_size, "loss": loss_kind, "optimizer": opt_kind,
                   "lr": options.lr, "schedule": options.schedule, "data": data.get("description"),
                   "ratio": fam.ratio, "hsi_bands": fam.hsi_bands, "msi_bands": fam.msi_bands}
    run = Path(run_dir)
    resume_from = None
    problem: Exception | None = None
    if dist_info.is_main:
        try:
            resume_from = check_run_dir(run, description, resume=resume, keys=_RESUME_KEYS, command="hsfuse train")
            run.mkdir(parents=True, exist_ok=True)
            (run / "checkpoints").mkdir(exist_ok=True)
            if not (run / "run.json").is_file():
                (run / "run.json").write_text(json.dumps({**description, "options": asdict(options)}, indent=2,
                                                         default=str))
        except Exception as exc:  # every rank must stop, not only the main one
            problem = exc
    if distributed.broadcast_flag(dist_info, problem is not None):
        raise problem if problem is not None else InputError(f"the main process refused run folder {run}")
    if not dist_info.is_main and (run / "last.json").is_file():
        resume_from = resolve_checkpoint(run, prefer="last")

    if options.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.startswith("cuda"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
    torch.manual_seed(options.seed)
    net = build_model(options.method, hsi_bands=fam.hsi_bands, msi_bands=fam.msi_bands, ratio=fam.ratio,
                      config=config).to(device)
    optimizer = _make_optimizer(opt_kind, net.parameters(), lr=base_lr * lr_scale, recipe=recipe)
    use_amp = options.amp and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    done = 0
    best_psnr = -math.inf
    best_metrics: dict[str, float] | None = None
    if resume_from is None and options.init_from is not None:
        _init_weights(net, options.init_from, method=options.method, config=asdict(config))
    if resume_from is not None:
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(resume_from / "model.safetensors")))
        state = torch.load(resume_from / "state.pt", map_location=device, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        done = int(state["step"])
        best_psnr = float(state.get("best_psnr", -math.inf))
        best_metrics = state.get("best_metrics")
    model: Any = net
    if dist_info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[dist_info.local_rank] if device.startswith("cuda") else None)
    loss_fn = _loss_fn(loss_kind)
    history_path = run / "history.jsonl"
    history: list[dict[str, Any]] = []
    if dist_info.is_main and history_path.is_file():
        history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        history = [h for h in history if h["step"] <= done]
        history_path.write_text("".join(json.dumps(h) + "\n" for h in history))
    logger = _Logger(run / "tb", enabled=dist_info.is_main, purge_step=done if done else None)
    global_batch = batch * dist_info.world_size

    def lr_at(step: int) -> float:
        if options.schedule == "constant":
            return base_lr * lr_scale
        return recipe.lr_at(step, total_steps=options.steps) * lr_scale

    def checkpoint(step: int, metrics: dict[str, float] | None, is_best: bool) -> Path:
        folder = run / "checkpoints" / f"step_{step:07d}"
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                 "step": step, "best_psnr": best_psnr, "best_metrics": best_metrics}
        card = _card(net, options=options, sampler=sampler, data=data, step=step, metrics=metrics)
        save_model(net, card, folder, overwrite=True, extra={"state.pt": lambda p: torch.save(state, p)})
        write_pointer(run, "last.json", folder, {"step": step})
        if is_best:
            write_pointer(run, "best.json", folder, {"step": step, "metrics": metrics})
        keep = {resolve_checkpoint(run, prefer="best").name} if (run / "best.json").is_file() else set()
        steps = sorted(p for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
        for old in steps[:-options.keep_last]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    bar = task = None
    if progress and dist_info.is_main:
        bar, task = progress_bar(f"train {options.method}", total=options.steps, done=done)
    t0 = time.perf_counter()
    last_path = resume_from
    running = 0.0
    try:
        net.train()
        for step in range(done, options.steps):
            if stop_after is not None and step >= stop_after:
                break
            first = step * global_batch + dist_info.rank * batch
            hsi, msi, target = (t.to(device, non_blocking=True) for t in sampler.batch(range(first, first + batch)))
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
                out = model(hsi, msi)
            loss = loss_fn(out.float(), target)
            if not torch.isfinite(loss):
                raise InputError(f"training diverged at step {step} (loss {loss.item()}); lower --lr or check the "
                                 f"data; the last good checkpoint is {last_path}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if options.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), options.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            done = step + 1
            running += float(loss.detach())
            if dist_info.is_main and (done % options.log_every == 0 or done == options.steps):
                n = options.log_every if done % options.log_every == 0 else done % options.log_every
                logger.scalars(done, {"train/loss": running / n, "train/lr": lr_at(step)})
                if bar is not None:
                    bar.update(task, completed=done, info=f"loss {running / n:.4g}  lr {lr_at(step):.2g}")
                running = 0.0
            is_val = bool(validation) and (done % options.val_every == 0 or done == options.steps)
            is_ckpt = done % options.ckpt_every == 0 or done == options.steps
            metrics = None
            is_best = False
            if dist_info.is_main and is_val:
                metrics, preview = _validate(net, validation, ratio=fam.ratio, band_scaling=sampler.band_scaling,
                                             device=device)
                net.train()
                logger.scalars(done, {f"val/{k}": v for k, v in metrics.items()})
                if preview is not None:
                    logger.image(done, "val/estimate", preview)
                    if not history:
                        logger.image(done, "val/reference", validation[0].reference[0])
                row = {"step": done, "seconds": time.perf_counter() - t0, **metrics}
                history.append(row)
                with open(history_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if metrics.get("psnr", -math.inf) > best_psnr:
                    best_psnr, best_metrics, is_best = metrics["psnr"], metrics, True
                    is_ckpt = True
            elif not validation and is_ckpt:
                is_best = True
            if is_ckpt:
                if dist_info.is_main:
                    last_path = checkpoint(done, metrics, is_best)
                distributed.barrier(dist_info)
    finally:
        if bar is not None:
            bar.stop()
        logger.close()
    best = resolve_checkpoint(run, prefer="best") if (run / "best.json").is_file() else None
    if last_path is None:
        last_path = run
    if dist_info.is_main and done == options.steps:
        params = count_parameters(net)
        summary = {"steps": done, "seconds": time.perf_counter() - t0, "parameters": params,
                   "best": str(best) if best else None, "best_metrics": best_metrics}
        (run / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return TrainResult(run_dir=run, steps_done=done, last=Path(last_path), best=best, best_metrics=best_metrics,
                       history=history, seconds=time.perf_counter() - t0)
