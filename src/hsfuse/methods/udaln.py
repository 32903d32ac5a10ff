"""UDALN: unsupervised, blind fusion of one image pair with learned PSF, SRF and spectral upsampling.

Li, Zheng, Yao, Gao, Hong, "Deep unsupervised blind hyperspectral and multispectral data fusion", IEEE GRSL 19,
2022, art. 6007305; code JiaxinLiCAS/UDALN_GRSL (``train_all_special.py``, ``model/*.py``, ``config.py``).

Three networks, learned from the pair ``(Y, Z)`` = (LR HSI ``(1, L, h, w)``, HR MSI ``(1, m, H, W)``) alone:

* SpaDnet, the PSF: ``A_s(x)`` = blur with a ``r x r`` kernel and decimate by ``r`` (disjoint blocks), one
  kernel for all bands -> :class:`~hsfuse.physics.LearnableSpatialDegradation`.
* SpeDnet, the SRF: ``A_r(x) = R x`` with each MSI band a weighting of the HSI bands in its wavelength support
  -> :class:`~hsfuse.physics.LearnableSpectralResponse`.
* SpeUnet, the spectral upsampling ``g``: per-pixel layers (the code's ``1 x 1`` convolutions)
  ``m -> 2m -> ... -> 2^n m -> L``
  (``n = floor(log2(L / m))``) with LeakyReLU(0.2) after each layer including the last
  (:class:`SpectralUpsampler`). The fused image is ``X = g(Z)``.

Training, all losses mean absolute errors with weight 1 (paper Alg. 1, code ``train_all_special.py``):

1. ``|A_r(Y) - A_s(Z)|``: the two ways of reaching the LR MSI must agree (PSF and SRF).
2. ``|g(A_s(Z)) - Y|`` with ``A_s(Z)`` from stage 1, frozen (SpeUnet at low resolution).
3. ``stage1 + stage2 + |A_r(g(Z)) - Z| + |A_s(g(Z)) - Y|``, all three networks.

Each stage uses Adam and UDALN's learning-rate rule: constant, then a linear decay to ``lr / (n - d + 1)`` at
the stage's last iteration (:class:`Stage`). The paper's schedule (:data:`SCHEDULES` ``"paper"``) is
20,000 / 30,000 / 15,000 iterations at 1e-3 / 1e-3 / 6e-5, decay from 10,000 / 20,000 / 5,000 (the released
Houston run; ``config.py``'s later default ``lr_stage3=6e-7`` is not what produced the published numbers).

Deviations from the authors' code, all deliberate:

* The PSF is projected onto the simplex after every step: always a valid blur (non-negative, sums to one).
  The code's PSF is an unconstrained convolution; the paper describes it as a PSF.
* The SRF is non-negative and zero outside each band's support (projection after every step). The code
  divides by the (detached) sum of unconstrained weights and learns negative lobes (its ``precision.txt``).
  ``srf_normalize="sum"`` keeps each row on the simplex (sums to one, UDALN's normalisation);
  ``"none"`` leaves the gain free (real pairs whose two sensors have different radiometric scales).
* Optional no-data mask (``valid``): every loss is averaged over usable pixels only.
* Convergence monitoring (``monitor_every``, ``tol_db``) and a progress callback (``progress(done, total,
  info=...)``, :mod:`hsfuse.progress`); neither changes the result when ``tol_db=None`` (the default runs the
  whole schedule).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_pair, check_positive_int
from ..errors import InputError
from ..estimation.operators import EstimatedOperators, check_measurement_type, check_valid_mask, lowres_valid
from ..physics import FusionObservation, SpatialDegradation, SpectralResponse
from ..physics.learnable import LearnableSpatialDegradation, LearnableSpectralResponse, support_from_srf
from ..physics.spectral import SrfNormalization, apply_srf
from ..progress import ProgressFn, ProgressWithInfo, reporter
from ..types import FusionMeasurement
from .options import MethodOptions, option

__all__ = [
    "Stage",
    "UdalnSchedule",
    "SCHEDULES",
    "SpectralUpsampler",
    "UdalnModel",
    "UdalnResult",
    "UdalnOptions",
    "fit_udaln_pair",
    "fit_udaln",
    "fuse_udaln",
    "estimate_udaln",
    "gaussian_srf_init",
]


# --------------------------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Stage:
    """One training stage: ``iterations`` Adam steps at ``lr``, linear decay from iteration ``decay_start``.

    UDALN's rule (``train_all_special.py``): the learning rate of iteration ``i`` (1-based) is
    ``lr - lr * max(0, i - d) / (n - d + 1)`` with ``n = iterations`` and ``d = decay_start``.
    """

    iterations: int
    lr: float
    decay_start: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "iterations", check_positive_int(self.iterations, "stage iterations", minimum=0))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"stage learning rate must be positive, got {self.lr!r}")
        object.__setattr__(self, "decay_start", check_positive_int(self.decay_start, "decay_start", minimum=0))
        if self.decay_start > self.iterations:
            raise InputError(f"decay_start must be in [0, iterations={self.iterations}], got {self.decay_start!r}")

    def lr_at(self, i: int) -> float:
        """Learning rate of iteration ``i`` (1-based)."""
        n, d = self.iterations, self.decay_start
        return self.lr - self.lr * max(0, i - d) / (n - d + 1)


@dataclass(frozen=True)
class UdalnSchedule:
    """The three stages' iterations and learning rates."""

    name: str
    stage1: Stage
    stage2: Stage
    stage3: Stage
    description: str = ""

    @property
    def stages(self) -> tuple[Stage, Stage, Stage]:
        return (self.stage1, self.stage2, self.stage3)

    @property
    def iterations(self) -> int:
        return sum(s.iterations for s in self.stages)


SCHEDULES: dict[str, UdalnSchedule] = {
    "paper": UdalnSchedule(
        name="paper",
        stage1=Stage(iterations=20_000, lr=1e-3, decay_start=10_000),
        stage2=Stage(iterations=30_000, lr=1e-3, decay_start=20_000),
        stage3=Stage(iterations=15_000, lr=6e-5, decay_start=5_000),
        description="the released Houston run of JiaxinLiCAS/UDALN_GRSL (65,000 iterations)",
    ),
    "fast": UdalnSchedule(
        name="fast",
        stage1=Stage(iterations=3_000, lr=1e-3, decay_start=1_500),
        stage2=Stage(iterations=20_000, lr=3e-3, decay_start=13_000),
        stage3=Stage(iterations=500, lr=6e-5, decay_start=200),
        description="23,500 iterations, stage 2 at 3x the learning rate, a short stage 3: about a tenth of the "
        "paper schedule's time at equal or better PSNR (benchmarks/bench_udaln.py)",
    ),
}


def get_schedule(schedule: str | UdalnSchedule) -> UdalnSchedule:
    if isinstance(schedule, UdalnSchedule):
        return schedule
    if schedule not in SCHEDULES:
        raise InputError(f"unknown UDALN schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule]


# --------------------------------------------------------------------------------------------- networks


class SpectralUpsampler(nn.Module):
    """SpeUnet: per-pixel layers ``m -> 2m -> ... -> 2^n m -> L``, LeakyReLU(0.2) after each.

    ``n = floor(log2(L / m))`` (0 when ``L < 2m``). The authors' ``1 x 1`` convolutions are written as
    :class:`~torch.nn.Linear` layers over the channel axis (the same map and the same default initialisation,
    which the code keeps: ``initializer=False``); on CPU this runs about 1.7x faster. Input ``(N, m, H, W)``,
    output ``(N, L, H, W)``.
    """

    def __init__(self, *, msi_bands: int, hsi_bands: int) -> None:
        super().__init__()
        n = max(0, int(math.floor(math.log2(hsi_bands / msi_bands)))) if hsi_bands >= msi_bands else 0
        layers: list[nn.Module] = []
        width = msi_bands
        for _ in range(n):
            layers += [nn.Linear(width, 2 * width), nn.LeakyReLU(0.2)]
            width *= 2
        layers += [nn.Linear(width, hsi_bands), nn.LeakyReLU(0.2)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def gaussian_srf_init(support: torch.Tensor, *, sigma_bands: float = 3.5) -> torch.Tensor:
    """UDALN's SRF start: per MSI band a Gaussian (``sigma = 3.5`` bands) centred on its support range.

    ``support`` is ``(m, L)`` boolean; each row's Gaussian spans its first to last supported band, is zero
    outside the support and sums to one. Returns ``(m, L)`` float64.
    """
    m, L = support.shape
    out = torch.zeros(m, L, dtype=torch.float64)
    for j in range(m):
        idx = torch.nonzero(support[j]).reshape(-1)
        lo, hi = int(idx[0]), int(idx[-1])
        t = torch.arange(lo, hi + 1, dtype=torch.float64) - (lo + hi) / 2.0
        g = torch.exp(-(t**2) / (2.0 * sigma_bands**2))
        out[j, lo : hi + 1] = g
        out[j] = out[j] * support[j]
        out[j] = out[j] / out[j].sum()
    return out


class UdalnModel(nn.Module):
    """The three UDALN networks. ``spatial`` and ``spectral`` may be fixed operators (known PSF / SRF)."""

    def __init__(self, spatial: SpatialDegradation, spectral: SpectralResponse, upsampler: SpectralUpsampler) -> None:
        super().__init__()
        self.spatial = spatial
        self.spectral = spectral
        self.upsampler = upsampler

    def forward(self, msi: torch.Tensor) -> torch.Tensor:
        """The fused image ``X = g(Z)``."""
        return self.upsampler(msi)

    def observation(self) -> FusionObservation:
        return FusionObservation(self.spatial, self.spectral)

    @torch.no_grad()
    def project_grad_(self) -> None:
        """Project the learnable PSF / SRF gradients onto their constraint sets' tangent (before each step)."""
        for op in (self.spatial, self.spectral):
            if callable(getattr(op, "project_grad_", None)):
                op.project_grad_()

    @torch.no_grad()
    def project_(self) -> None:
        """Keep the learnable PSF / SRF feasible (non-negative, on the simplex); called after every step."""
        for op in (self.spatial, self.spectral):
            if callable(getattr(op, "project_", None)):
                op.project_()


# --------------------------------------------------------------------------------------------- fitting


@dataclass
class UdalnResult:
    """What :func:`fit_udaln` returns.

    Attributes:
        estimate: the fused HSI ``(1, L, H, W)`` on the input's device and dtype.
        operators: the learned (or given) PSF and SRF.
        history: one record per monitoring point: ``stage``, ``iteration`` (over all stages), ``seconds``,
            ``lr``, ``loss`` (the stage's total loss) and ``fit_db`` (see :func:`fit_udaln`), plus anything the
            callback added.
        seconds: wall time of the optimisation.
        iterations: iterations run (fewer than the schedule's when stopped early).
        stopped: ``None``, ``"converged"`` (a stage ended early by ``tol_db``) or ``"callback"``.
        model: the trained networks.
    """

    estimate: torch.Tensor
    operators: EstimatedOperators
    history: list[dict[str, Any]]
    seconds: float
    iterations: int
    stopped: str | None
    model: UdalnModel
    schedule: dict[str, Any] = field(default_factory=dict)


def _masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return (a - b).abs().mean()
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1])


def _fit_db(target: torch.Tensor, estimate: torch.Tensor, weight: torch.Tensor | None) -> float:
    """``10 log10(peak^2 / MSE)`` over usable pixels, ``peak`` = the target's maximum (global PSNR)."""
    err = (target - estimate).detach().double() ** 2
    if weight is None:
        mse = float(err.mean())
        peak = float(target.detach().max())
    else:
        w = weight.double()
        mse = float((err * w).sum() / (w.sum() * err.shape[1]))
        peak = float((target.detach().double() * w).max())
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _build_model(y: FusionMeasurement, *, ratio: int, support: torch.Tensor, srf_normalize: SrfNormalization,
                 spatial: SpatialDegradation | None, spectral: SpectralResponse | None,
                 lr_valid: torch.Tensor | None) -> UdalnModel:
    L, m = y.hsi.shape[1], y.msi.shape[1]
    if spatial is None:
        spatial = LearnableSpatialDegradation(ratio=ratio, kernel_size=ratio)
    if spectral is None:
        start = gaussian_srf_init(support)
        if srf_normalize == "none":  # free gain: start from the gain that matches the band means
            w = None if lr_valid is None else lr_valid.to(y.hsi)[None, None]
            y_proj = apply_srf(y.hsi, start)
            z_low = F.avg_pool2d(y.msi, ratio)
            num = z_low.mean(dim=(0, 2, 3)) if w is None else (z_low * w).sum(dim=(0, 2, 3)) / w.sum()
            den = y_proj.mean(dim=(0, 2, 3)) if w is None else (y_proj * w).sum(dim=(0, 2, 3)) / w.sum()
            gain = (num / den.clamp_min(1e-12)).clamp_min(1e-6).double().cpu()
            start = start * gain[:, None]
        spectral = LearnableSpectralResponse(msi_bands=m, hsi_bands=L, init=start, support=support,
                                             normalize=srf_normalize)
    return UdalnModel(spatial, spectral, SpectralUpsampler(msi_bands=m, hsi_bands=L))


def fit_udaln(
    y: FusionMeasurement,
    *,
    ratio: int | None = None,
    schedule: str | UdalnSchedule = "paper",
    support: torch.Tensor | None = None,
    srf_normalize: SrfNormalization = "sum",
    known_psf: SpatialDegradation | None = None,
    known_srf: SpectralResponse | None = None,
    valid: torch.Tensor | None = None,
    seed: int = 2,
    device: str | torch.device | None = None,
    monitor_every: int = 100,
    tol_db: float | None = None,
    patience: int = 10,
    callback: Callable[[dict[str, Any], UdalnModel], bool | None] | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> UdalnResult:
    """Learn the PSF, SRF and SpeUnet from one pair and return the fused image (the module docstring has
    the model and the losses).

    Args:
        y: LR HSI ``(1, L, h, w)`` and HR MSI ``(1, m, H, W)``, ``H = r h``; same (floating) dtype. The values
            are used as given (UDALN assumes reflectance-like data in about ``[0, 1]``).
        ratio: checked against the sizes when given.
        schedule: ``"paper"``, ``"fast"`` or an :class:`UdalnSchedule`.
        support: ``(m, L)`` boolean: the HSI bands each MSI band may respond to (e.g.
            :func:`~hsfuse.physics.support_from_srf` of a nominal SRF); default every band.
        srf_normalize: ``"sum"`` (each learned SRF row sums to one, UDALN) or ``"none"`` (free gain).
        known_psf / known_srf: fixed operators to use instead of learning them (UDALN's ``isCal_PSF/SRF="No"``).
        valid: ``(H, W)`` boolean, ``False`` on no-data MSI pixels; losses skip them (and the LR pixels whose
            ``r x r`` block touches them).
        seed: initialisation seed (2 in the authors' code).
        device: where to optimise (default: the input's device).
        monitor_every: record losses and ``fit_db`` every this many iterations. ``fit_db`` is a global PSNR
            (peak = the target's maximum) of the stage's fit: stage 1 ``A_s(Z)`` vs ``A_r(Y)``; stage 2
            ``g(A_s(Z))`` vs ``Y``; stage 3 the mean of ``A_s(X)`` vs ``Y`` and ``A_r(X)`` vs ``Z``
            (measurement consistency of the fused image through the learned operators).
        tol_db, patience: early stopping. When ``tol_db`` is given, a stage ends as soon as its best
            ``fit_db`` has improved by less than ``tol_db`` over the last ``patience`` records. ``None``
            (default) runs the schedule in full.
        callback: ``callback(record, model)`` at every record; returning ``True`` stops the fit. It may add
            keys to ``record``; its own run time is excluded from ``seconds``.
        progress: ``progress(done, total)`` after every iteration (``total``: the iterations of the stages that
            run; a stage that converges early jumps to its end, so a completed fit ends at ``(total, total)``).
            A callback with an ``info`` keyword also gets a status text, ``"stage 2/3  loss 0.0123  fit 41.2
            dB"``: loss and fit are those of the stage's last monitoring point (read only there, so the
            progress text costs no extra device synchronisation).

    Returns:
        :class:`UdalnResult`.
    """
    check_measurement_type(y, "UDALN")
    _, _, r = check_pair(y.hsi, y.msi, ratio=ratio, single=True, finite=True, who="UDALN")
    plan = get_schedule(schedule)
    if srf_normalize not in ("sum", "none"):
        raise InputError(f"srf_normalize must be 'sum' or 'none', got {srf_normalize!r}")
    monitor_every = check_positive_int(monitor_every, "monitor_every")
    if tol_db is not None and not (math.isfinite(tol_db) and tol_db >= 0):
        raise InputError(f"tol_db must be a non-negative number or None, got {tol_db!r}")
    patience = check_positive_int(patience, "patience")
    seed = check_positive_int(seed, "seed", minimum=0)
    report = reporter(progress)
    L, m = y.hsi.shape[1], y.msi.shape[1]
    H, W = y.msi.shape[-2:]
    if support is None:
        support = torch.ones(m, L, dtype=torch.bool)
    support = torch.as_tensor(support).cpu()
    if support.shape != (m, L) or support.dtype != torch.bool:
        raise InputError(f"support must be a boolean ({m}, {L}) mask (MSI bands x HSI bands), got "
                         f"{support.dtype} {tuple(support.shape)}")
    if not bool(support.any(dim=1).all()):
        raise InputError("every MSI band needs at least one HSI band in its support")
    for name, op, want in (("known_psf", known_psf, SpatialDegradation), ("known_srf", known_srf, SpectralResponse)):
        if op is not None and not isinstance(op, want):
            raise InputError(f"{name} must be a {want.__name__}, got {type(op).__name__}")
    if known_psf is not None and known_psf.ratio != r:
        raise InputError(f"known_psf has ratio {known_psf.ratio} but the images have ratio {r}")
    if known_srf is not None and tuple(known_srf.matrix.shape) != (m, L):
        raise InputError(f"known_srf is {tuple(known_srf.matrix.shape)}, the images need ({m}, {L})")
    hr_valid = check_valid_mask(valid, (H, W))
    lr_valid = None if hr_valid is None else lowres_valid(hr_valid, ratio=r, kernel_size=r)
    if lr_valid is not None and not bool(lr_valid.any()):
        raise InputError("no low-resolution pixel has a fully valid footprint; the no-data mask covers too much")

    out_device, out_dtype = y.msi.device, y.msi.dtype
    dev = torch.device(device) if device is not None else out_device
    dtype = torch.float32 if out_dtype not in (torch.float32, torch.float64) else out_dtype
    Y = y.hsi.to(dev, dtype)
    Z = y.msi.to(dev, dtype)
    w_hr = None if hr_valid is None else hr_valid.to(dev, dtype)[None, None]
    w_lr = None if lr_valid is None else lr_valid.to(dev, dtype)[None, None]

    torch.manual_seed(seed)
    model = _build_model(FusionMeasurement(Y, Z), ratio=r, support=support, srf_normalize=srf_normalize,
                         spatial=known_psf, spectral=known_srf, lr_valid=lr_valid).to(dev, dtype)
    learn_psf = known_psf is None
    learn_srf = known_srf is None
    groups = [{"params": list(model.upsampler.parameters()), "name": "up"}]
    if learn_psf:
        groups.append({"params": list(model.spatial.parameters()), "name": "psf"})
    if learn_srf:
        groups.append({"params": list(model.spectral.parameters()), "name": "srf"})
    optimizer = torch.optim.Adam(groups, lr=plan.stage1.lr)

    history: list[dict[str, Any]] = []
    stopped: str | None = None
    converged_early = False
    done = 0
    paused = 0.0
    start = time.perf_counter()
    # stage 1 has nothing to learn when both operators are known
    run_stages = [(number, stage) for number, stage in enumerate(plan.stages, start=1)
                  if number > 1 or learn_psf or learn_srf]
    total = sum(stage.iterations for _, stage in run_stages)
    finished = 0  # progress: iterations of the stages before this one (a converged stage counts in full)
    stage_inputs: dict[str, torch.Tensor] = {}
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(True)  # callers may hold no_grad (inference code paths); this is an optimisation
    try:
        for number, stage in run_stages:
            if number == 2:
                with torch.no_grad():
                    stage_inputs["z_low"] = model.spatial.A(Z)
            active = {1: {"psf", "srf"}, 2: {"up"}, 3: {"up", "psf", "srf"}}[number]
            recent: list[float] = []
            info = f"stage {number}/3"
            for i in range(1, stage.iterations + 1):
                lr = stage.lr_at(i)
                for g in optimizer.param_groups:
                    g["lr"] = lr if g["name"] in active else 0.0
                optimizer.zero_grad(set_to_none=True)
                loss, fit = _stage_loss(number, model, Y, Z, w_lr, w_hr, stage_inputs,
                                        want_fit=(i % monitor_every == 0 or i == stage.iterations))
                loss.backward()
                model.project_grad_()
                optimizer.step()
                model.project_()
                done += 1
                if fit is None:
                    report(finished + i, total, info=info)
                    continue
                record = {"stage": number, "iteration": done, "seconds": time.perf_counter() - start - paused,
                          "lr": lr, "loss": float(loss.detach()), "fit_db": fit}
                history.append(record)
                info = f"stage {number}/3  loss {record['loss']:.4g}  fit {fit:.1f} dB"
                report(finished + i, total, info=info)
                if callback is not None:
                    t0 = time.perf_counter()
                    halt = callback(record, model)
                    paused += time.perf_counter() - t0  # the callback's own time is not the fit's
                    if halt:
                        stopped = "callback"
                        break
                recent.append(fit)
                if tol_db is not None and len(recent) > patience:
                    if max(recent[-patience:]) - max(recent[:-patience]) < tol_db:
                        converged_early = True
                        report(finished + stage.iterations, total, info=info + "  (converged)")
                        break  # this stage has converged; go on with the next
            if stopped:
                break
            finished += stage.iterations
        if converged_early and stopped is None:
            stopped = "converged"
    finally:
        torch.set_grad_enabled(grad_mode)
    seconds = time.perf_counter() - start - paused
    with torch.no_grad():
        estimate = model(Z).to(out_device, out_dtype)
        operators = EstimatedOperators(
            psf=model.spatial.psf.detach().double().cpu(),
            srf=model.spectral.matrix.detach().double().cpu(),
            ratio=r, offset=model.spatial.offset, method="udaln",
            diagnostics={"iterations": done, "seconds": seconds, "schedule": plan.name,
                         "final_fit_db": history[-1]["fit_db"] if history else None},
        )
    return UdalnResult(estimate=estimate, operators=operators, history=history, seconds=seconds, iterations=done,
                       stopped=stopped, model=model, schedule=asdict(plan))


def _stage_loss(number: int, model: UdalnModel, Y: torch.Tensor, Z: torch.Tensor, w_lr: torch.Tensor | None,
                w_hr: torch.Tensor | None, inputs: dict[str, torch.Tensor],
                *, want_fit: bool) -> tuple[torch.Tensor, float | None]:
    """The loss of stage ``number`` (1, 2, 3) and, when asked, its ``fit_db``."""
    if number == 2:
        y_hat = model.upsampler(inputs["z_low"])
        loss = _masked_l1(y_hat, Y, w_lr)
        return loss, (_fit_db(Y, y_hat, w_lr) if want_fit else None)
    from_hsi = model.spectral.A(Y)  # A_r(Y): the LR MSI seen through the SRF
    from_msi = model.spatial.A(Z)  # A_s(Z): the LR MSI seen through the PSF
    loss1 = _masked_l1(from_hsi, from_msi, w_lr)
    if number == 1:
        return loss1, (_fit_db(from_msi, from_hsi, w_lr) if want_fit else None)
    loss2 = _masked_l1(model.upsampler(from_msi), Y, w_lr)
    x = model.upsampler(Z)
    msi_hat, hsi_hat = model.spectral.A(x), model.spatial.A(x)
    loss = loss1 + loss2 + _masked_l1(msi_hat, Z, w_hr) + _masked_l1(hsi_hat, Y, w_lr)
    if not want_fit:
        return loss, None
    return loss, 0.5 * (_fit_db(Y, hsi_hat, w_lr) + _fit_db(Z, msi_hat, w_hr))


# --------------------------------------------------------------------------------------------- entry points


def _support_from_physics(physics: FusionObservation | None, m: int, L: int) -> torch.Tensor | None:
    if physics is None:
        return None
    matrix = physics.spectral.matrix.detach().cpu()
    if tuple(matrix.shape) != (m, L):
        raise InputError(f"the physics' SRF is {tuple(matrix.shape)} but the images need ({m}, {L})")
    return support_from_srf(matrix)


@dataclass(frozen=True)
class UdalnOptions(MethodOptions):
    """Options of :func:`fuse_udaln` (defaults: the authors' released run; see the module docstring)."""

    schedule: Literal["paper", "fast"] | UdalnSchedule = option(
        "paper", "training schedule: paper (65,000 iterations, the released Houston run) or fast (23,500, about "
        "a tenth of the time at equal or better PSNR); from Python also an UdalnSchedule")
    learn_psf: bool = option(True, "learn the PSF from the pair; false: use the PSF of the given physics")
    learn_srf: bool = option(True, "learn the SRF from the pair (the physics' SRF only restricts each MSI band's "
                             "support); false: use the SRF of the given physics")
    srf_normalize: Literal["sum", "none"] = option(
        "sum", "learned SRF rows: sum (each sums to one, UDALN) or none (free gain, for two sensors with "
        "different radiometric scales)")
    seed: int = option(2, "initialisation seed (2 in the authors' code)", ge=0)
    tol_db: float | None = option(None, "early stopping: end a stage when its fit (dB) improved by less than this "
                                  "over the last patience records; none: run the whole schedule", ge=0)
    patience: int = option(10, "monitoring records over which tol_db is judged", ge=1)
    monitor_every: int = option(100, "record the losses and the fit every this many iterations", ge=1)


def fit_udaln_pair(
    y: FusionMeasurement,
    physics: FusionObservation | None = None,
    *,
    schedule: Literal["paper", "fast"] | UdalnSchedule = "paper",
    learn_psf: bool = True,
    learn_srf: bool = True,
    srf_normalize: SrfNormalization = "sum",
    support: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    seed: int = 2,
    device: str | torch.device | None = None,
    tol_db: float | None = None,
    patience: int = 10,
    monitor_every: int = 100,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> UdalnResult:
    """UDALN on one pair with the method's options (:class:`UdalnOptions`), returning the whole
    :class:`UdalnResult` (fused image, learned operators, history): the registry's ``fit`` of this blind method.

    ``physics`` is optional. Its SRF restricts each MSI band's support (the bands where it is positive, as UDALN's
    ``sp_range``; ``support`` given explicitly wins) unless ``learn_srf=False``, which uses it as is; its PSF is
    used only with ``learn_psf=False``. ``progress`` is called as in :func:`fit_udaln`.
    """
    check_measurement_type(y, "UDALN")
    m, L = y.msi.shape[1], y.hsi.shape[1]
    if (not learn_psf or not learn_srf) and physics is None:
        raise InputError("learn_psf=False / learn_srf=False use the physics' PSF / SRF: pass physics")
    return fit_udaln(
        y, schedule=schedule, support=support if support is not None else _support_from_physics(physics, m, L),
        srf_normalize=srf_normalize, known_psf=None if learn_psf else physics.spatial,  # type: ignore[union-attr]
        known_srf=None if learn_srf else physics.spectral,  # type: ignore[union-attr]
        valid=valid, seed=seed, device=device, tol_db=tol_db, patience=patience, monitor_every=monitor_every,
        progress=progress,
    )


def fuse_udaln(
    y: FusionMeasurement,
    physics: FusionObservation | None = None,
    *,
    schedule: Literal["paper", "fast"] | UdalnSchedule = "paper",
    learn_psf: bool = True,
    learn_srf: bool = True,
    srf_normalize: SrfNormalization = "sum",
    valid: torch.Tensor | None = None,
    seed: int = 2,
    device: str | torch.device | None = None,
    tol_db: float | None = None,
    patience: int = 10,
    monitor_every: int = 100,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> torch.Tensor:
    """Fuse one pair with UDALN (registry entry; :func:`fit_udaln_pair` without the history, and
    :class:`UdalnOptions` for the options). Returns ``(1, L, H, W)`` on the input's device and dtype."""
    return fit_udaln_pair(y, physics, schedule=schedule, learn_psf=learn_psf, learn_srf=learn_srf,
                          srf_normalize=srf_normalize, valid=valid, seed=seed, device=device, tol_db=tol_db,
                          patience=patience, monitor_every=monitor_every, progress=progress).estimate


def estimate_udaln(
    y: FusionMeasurement,
    *,
    support: torch.Tensor | None = None,
    srf_normalize: SrfNormalization = "none",
    iterations: int | None = None,
    valid: torch.Tensor | None = None,
    seed: int = 2,
    device: str | None = None,
    band_names: list[str] | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> EstimatedOperators:
    """UDALN's first stage alone as a PSF/SRF estimator: minimise ``|A_r(Y) - A_s(Z)|_1``.

    The PSF is ``r x r`` (disjoint blocks, UDALN's model); ``iterations`` defaults to the paper's 20,000 with
    its decay from half-way. ``srf_normalize="none"`` (default here) lets the SRF carry the gain between the two
    sensors, as :func:`~hsfuse.estimation.hysure.estimate_hysure` does. ``progress`` is called as in
    :func:`fit_udaln`. Returns :class:`EstimatedOperators`.
    """
    n = SCHEDULES["paper"].stage1.iterations if iterations is None else check_positive_int(iterations, "iterations")
    plan = UdalnSchedule(name=f"stage1-{n}", stage1=Stage(iterations=n, lr=1e-3, decay_start=n // 2),
                         stage2=Stage(iterations=0, lr=1e-3, decay_start=0),
                         stage3=Stage(iterations=0, lr=1e-3, decay_start=0))
    result = fit_udaln(y, schedule=plan, support=support, srf_normalize=srf_normalize, valid=valid, seed=seed,
                       device=device, monitor_every=max(1, n // 50), progress=progress)
    ops = result.operators
    return EstimatedOperators(psf=ops.psf, srf=ops.srf, ratio=ops.ratio, offset=ops.offset, method="udaln",
                              band_names=band_names, diagnostics={**ops.diagnostics, "history": result.history})
