"""Named metric presets: every scoring convention fixed at once, reproducing a given code base's numbers.

A :class:`MetricPreset` records all the choices that change a reported number (quantisation, clipping, border
crop, PSNR peak and reduction, SSIM window and range, SAM zero-pixel policy, ERGAS mean, block sizes);
:func:`evaluate` applies one to a single image. The registry :data:`PRESETS` is a plain dict filled below.

How the presets were verified: each convention was read from the cited source file (MATLAB/Python code of
the code base, via public code search) and is implemented by the functions in
:mod:`hsfuse.metrics.functional`, which the test suite checks against independent implementations
(scikit-image, torchmetrics, NumPy transcriptions of the MATLAB formulas, hand computations). None was checked
against numbers printed by the original MATLAB code (no MATLAB here).

Example:
    >>> import torch
    >>> ref = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    >>> out = evaluate(ref, ref, preset="hsfuse", ratio=4)
    >>> out["rmse"], out["sam"], out["psnr"]
    (0.0, 0.0, inf)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._checks import check_positive_int, check_ratio
from ..errors import InputError
from . import functional as fm

__all__ = ["METRIC_NAMES", "PRESETS", "MetricPreset", "evaluate", "get_preset"]

MetricName = Literal["psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n"]
METRIC_NAMES: tuple[str, ...] = ("psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n")


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


@dataclass(frozen=True)
class MetricPreset:
    """All conventions of one way of scoring a fused image against its reference.

    Processing order in :func:`evaluate`: clip the estimate (``clip``), quantise both images (``quantize``),
    crop ``border`` pixels from both, then compute ``metrics`` in order.

    Attributes:
        name: registry key.
        reproduces: which code base (and file) this reproduces, and how it was verified.
        metrics: metric names, a subset of :data:`METRIC_NAMES`, in output order.
        quantize: ``None`` or ``"uint8"`` (MATLAB ``im2uint8`` of [0, 1] data, both images).
        clip: ``(lo, hi)`` applied to the estimate only, or ``None``.
        border: pixels cropped from every side, or ``"ratio"`` (the resolution ratio).
        psnr_data_range, psnr_reduction: see :func:`~hsfuse.metrics.functional.psnr`.
        ssim_window, ssim_window_size, ssim_sigma, ssim_data_range: see :func:`~hsfuse.metrics.functional.ssim`.
        sam_unit, sam_zero_pixels, sam_eps: see :func:`~hsfuse.metrics.functional.sam`.
        ergas_mean_of: see :func:`~hsfuse.metrics.functional.ergas`.
        cc_constant_bands: see :func:`~hsfuse.metrics.functional.cc`.
        uiqi_block: block of :func:`~hsfuse.metrics.functional.uiqi`.
        q2n_block, q2n_shift: see :func:`~hsfuse.metrics.functional.q2n`.
        q2n_quantize, q2n_scale: ``"uint16"`` applies ``q2n.m``'s ``uint16(scale * x)`` cast before Q2n.
    """

    name: str
    reproduces: str
    metrics: tuple[str, ...] = METRIC_NAMES
    quantize: Literal["uint8"] | None = None
    clip: tuple[float, float] | None = None
    border: int | Literal["ratio"] = 0
    psnr_data_range: float | Literal["band_max", "image_max"] = 1.0
    psnr_reduction: Literal["band_mean", "global"] = "band_mean"
    ssim_window: Literal["gaussian", "uniform"] = "gaussian"
    ssim_window_size: int = 11
    ssim_sigma: float = 1.5
    ssim_data_range: float = 1.0
    sam_unit: Literal["degrees", "radians"] = "degrees"
    sam_zero_pixels: Literal["exclude", "zero", "eps", "eps_denominator"] = "exclude"
    sam_eps: float = fm.MATLAB_EPS
    ergas_mean_of: Literal["reference", "estimate"] = "reference"
    cc_constant_bands: Literal["exclude", "zero", "raise"] = "exclude"
    uiqi_block: int = 32
    q2n_block: int = 32
    q2n_shift: int = 32
    q2n_quantize: Literal["uint16"] | None = None
    q2n_scale: float = 1.0

    def __post_init__(self) -> None:
        where = f"metric preset {self.name!r}"
        metrics = tuple(self.metrics)
        object.__setattr__(self, "metrics", metrics)
        unknown = [m for m in metrics if m not in METRIC_NAMES]
        _need(bool(metrics) and not unknown, f"{where}: metrics must be among {METRIC_NAMES}, got {metrics}")
        _need(len(set(metrics)) == len(metrics), f"{where}: metric names repeat in {metrics}")
        for field, options in (
            ("quantize", (None, "uint8")),
            ("q2n_quantize", (None, "uint16")),
            ("psnr_reduction", ("band_mean", "global")),
            ("ssim_window", ("gaussian", "uniform")),
            ("sam_unit", ("degrees", "radians")),
            ("sam_zero_pixels", ("exclude", "zero", "eps", "eps_denominator")),
            ("ergas_mean_of", ("reference", "estimate")),
            ("cc_constant_bands", ("exclude", "zero", "raise")),
        ):
            value = getattr(self, field)
            _need(value in options, f"{where}: {field} must be one of {options}, got {value!r}")
        if self.clip is not None:
            lo, hi = (float(v) for v in self.clip)
            _need(lo < hi, f"{where}: clip must be (lo, hi) with lo < hi, got {self.clip!r}")
            object.__setattr__(self, "clip", (lo, hi))
        if isinstance(self.border, str):
            _need(self.border == "ratio", f"{where}: border must be an integer >= 0 or 'ratio', got {self.border!r}")
        else:
            object.__setattr__(self, "border", check_positive_int(self.border, f"{where}: border", minimum=0))
        if isinstance(self.psnr_data_range, str):
            _need(
                self.psnr_data_range in ("band_max", "image_max"),
                f"{where}: psnr_data_range must be a positive number, 'band_max' or 'image_max', "
                f"got {self.psnr_data_range!r}",
            )
        else:
            fm._positive_float(self.psnr_data_range, f"{where}: psnr_data_range")
        for field in ("ssim_data_range", "ssim_sigma", "sam_eps", "q2n_scale"):
            fm._positive_float(getattr(self, field), f"{where}: {field}")
        for field in ("ssim_window_size", "uiqi_block", "q2n_block", "q2n_shift"):
            check_positive_int(getattr(self, field), f"{where}: {field}")

    def describe(self) -> str:
        """A human-readable account of every convention (for reports and ``hsfuse metrics --describe``)."""
        m = set(self.metrics)
        lines = [f"metric preset {self.name!r}: {self.reproduces}", f"  metrics: {', '.join(self.metrics)}"]
        prep = []
        if self.clip is not None:
            prep.append(f"estimate clipped to [{self.clip[0]:g}, {self.clip[1]:g}]")
        if self.quantize == "uint8":
            prep.append("both images quantised with MATLAB im2uint8 (round(255 x), saturated to 0..255)")
        prep.append("border: ratio px on each side" if self.border == "ratio" else f"border: {self.border} px")
        lines.append("  preprocessing: " + "; ".join(prep))
        if "psnr" in m:
            peak = (
                {"band_max": "each band's reference max", "image_max": "the reference max"}[self.psnr_data_range]
                if isinstance(self.psnr_data_range, str)
                else f"{self.psnr_data_range:g}"
            )
            how = "per band, averaged" if self.psnr_reduction == "band_mean" else "one MSE over the whole cube"
            lines.append(f"  PSNR: peak = {peak}; {how}")
        if "ssim" in m:
            win = (
                f"{self.ssim_window_size}x{self.ssim_window_size} Gaussian sigma {self.ssim_sigma:g}"
                if self.ssim_window == "gaussian"
                else f"{self.ssim_window_size}x{self.ssim_window_size} uniform, sample covariance"
            )
            lines.append(f"  SSIM: per band, {win}, L = {self.ssim_data_range:g}, valid region, band mean")
        if "sam" in m:
            eps = f" (eps {self.sam_eps:g})" if self.sam_zero_pixels.startswith("eps") else ""
            lines.append(f"  SAM: {self.sam_unit}, zero-norm pixels: {self.sam_zero_pixels}{eps}")
        if "ergas" in m:
            lines.append(f"  ERGAS: 100 / ratio, band RMSE over the band mean of the {self.ergas_mean_of}")
        if "rmse" in m:
            lines.append("  RMSE: over all bands and pixels")
        if "cc" in m:
            lines.append(f"  CC: per-band Pearson, band mean; constant bands: {self.cc_constant_bands}")
        if "uiqi" in m:
            lines.append(f"  UIQI: img_qi sliding {self.uiqi_block}x{self.uiqi_block} window, band mean")
        if "q2n" in m:
            cast = f", inputs cast with uint16({self.q2n_scale:g} x)" if self.q2n_quantize else ""
            lines.append(f"  Q2n: blocks {self.q2n_block}, shift {self.q2n_shift}{cast}")
        return "\n".join(lines)


PRESETS: dict[str, MetricPreset] = {}

PRESETS["hsfuse"] = MetricPreset(
    name="hsfuse",
    reproduces=(
        "hsfuse's default: data on [0, 1] (data_range 1.0); Wald-style ERGAS with reference means; no "
        "quantisation, clipping or crop. Each metric is tested against an independent implementation."
    ),
)

PRESETS["dhsis_matlab"] = MetricPreset(
    name="dhsis_matlab",
    reproduces=(
        "the DHSIS MATLAB evaluation used by DBIN/EDBIN (quality_mesure/tf_quali.m -> quality_assessment.m(gt, "
        "out, 0, 1/sf)): im2uint8 of both images, csnr.m PSNR (peak 255, band mean), cal_ssim.m / ssim_index.m "
        "(11x11 Gaussian 1.5, L=255), SpectAngMapper.m SAM (MATLAB eps, degrees), ERGAS 100/sf with GT means, "
        "RMSE and img_qi UIQI (block 32) on 0..255, CC. Read from the code; formulas tested independently."
    ),
    metrics=("psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi"),
    quantize="uint8",
    psnr_data_range=255.0,
    ssim_data_range=255.0,
    sam_zero_pixels="eps",
    sam_eps=fm.MATLAB_EPS,
)

PRESETS["yokoya_toolbox"] = MetricPreset(
    name="yokoya_toolbox",
    reproduces=(
        "Yokoya's HS-MS fusion toolbox QualityIndices.m (PSNR, SAM, ERGAS, Q2n version): PSNR.m peak = each band's "
        "reference max, band mean; SAM.m drops zero-norm pixels (degrees); ERGAS(I_HS, I_REF, ratio) normalises by "
        "the fused image's band means (its first argument); q2n(I_REF, I_HS, 32, 32), which casts to uint16, so "
        "give data on its integer DN scale (or set q2n_scale, as variants passing I*umax do). No border crop in "
        "this version (the CNMF-era QualityIndices.m with CC/SAM/RMSE/ERGAS crops `ratio` pixels: border='ratio'). "
        "Read from the code; formulas tested independently."
    ),
    metrics=("psnr", "sam", "ergas", "q2n"),
    psnr_data_range="band_max",
    sam_zero_pixels="exclude",
    ergas_mean_of="estimate",
    q2n_quantize="uint16",
    q2n_scale=1.0,
)

PRESETS["udaln"] = MetricPreset(
    name="udaln",
    reproduces=(
        "UDALN evaluation.py: PSNR peak = each band's reference max, band mean; SAM arccos(<x,y>/(|x||y| + 1e-7)) "
        "in degrees (clipped to [-1, 1] here: the original can give NaN); ERGAS 100/r with reference means; "
        "per-band Pearson CC (constant bands excluded here, NaN there); global RMSE. No preprocessing."
    ),
    metrics=("psnr", "sam", "ergas", "rmse", "cc"),
    psnr_data_range="band_max",
    sam_zero_pixels="eps_denominator",
    sam_eps=1e-7,
)

PRESETS["dhifnet_test"] = MetricPreset(
    name="dhifnet_test",
    reproduces=(
        "DHIF-Net Test.py: the output clamped to [0, 1], one PSNR over the whole cube (global MSE) with peak 1."
    ),
    metrics=("psnr",),
    clip=(0.0, 1.0),
    psnr_data_range=1.0,
    psnr_reduction="global",
)


def get_preset(preset: str | MetricPreset) -> MetricPreset:
    """The preset itself, or the registered one named ``preset``; unknown names raise :class:`InputError`."""
    if isinstance(preset, MetricPreset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise InputError(f"unknown metric preset {preset!r}; choose one of {sorted(PRESETS)} or pass a MetricPreset")


def evaluate(
    reference: Any,
    estimate: Any,
    *,
    preset: str | MetricPreset = "hsfuse",
    ratio: int | None = None,
    data_range: float | None = None,
) -> dict[str, float]:
    """Score ONE fused image against its reference with every convention of ``preset``.

    Args:
        reference, estimate: one image, ``(C, H, W)`` or ``(1, C, H, W)``, any real dtype.
        preset: a name in :data:`PRESETS` or a :class:`MetricPreset`.
        ratio: the integer resolution ratio; required when the preset computes ERGAS or crops ``"ratio"``.
        data_range: overrides the preset's PSNR and SSIM data range (e.g. 4095 for 12-bit data).

    Returns:
        ``{metric name: value}`` in the preset's order (lower-case keys: ``psnr``, ``ssim``, ``sam``, ``ergas``,
        ``rmse``, ``cc``, ``uiqi``, ``q2n``). A perfect reconstruction gives ``psnr = inf``.
    """
    p = get_preset(preset)
    ref = fm.as_image_batch(reference, "reference")
    est = fm.as_image_batch(estimate, "estimate")
    if ref.shape[0] != 1 or est.shape[0] != 1:
        raise InputError(
            f"evaluate scores one image, got batches of {ref.shape[0]} and {est.shape[0]}; loop over the images or "
            "call the functions of hsfuse.metrics.functional, which return one value per image"
        )
    if ref.shape != est.shape:
        raise InputError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape")
    if data_range is not None:
        value = fm._positive_float(data_range, "data_range")
        p = dataclasses.replace(p, psnr_data_range=value, ssim_data_range=value)
    r = check_ratio(ratio) if ratio is not None else None
    if r is None and ("ergas" in p.metrics or p.border == "ratio"):
        raise InputError(
            f"preset {p.name!r} needs the resolution ratio (for ERGAS or the border crop): pass ratio=<HSI/MSI "
            "pixel-size ratio>, e.g. ratio=8"
        )
    if p.clip is not None:
        est = fm.clip(est, *p.clip)
    if p.quantize == "uint8":
        ref, est = fm.quantize_uint8(ref), fm.quantize_uint8(est)
    border = r if p.border == "ratio" else p.border
    if border:
        ref, est = fm.crop_border(ref, border), fm.crop_border(est, border)

    compute = {
        "psnr": lambda: fm.psnr(ref, est, data_range=p.psnr_data_range, reduction=p.psnr_reduction),
        "ssim": lambda: fm.ssim(
            ref, est, data_range=p.ssim_data_range, window=p.ssim_window,
            window_size=p.ssim_window_size, sigma=p.ssim_sigma,
        ),
        "sam": lambda: fm.sam(ref, est, unit=p.sam_unit, zero_pixels=p.sam_zero_pixels, eps=p.sam_eps),
        "ergas": lambda: fm.ergas(ref, est, ratio=r, mean_of=p.ergas_mean_of),  # type: ignore[arg-type]
        "rmse": lambda: fm.rmse(ref, est),
        "cc": lambda: fm.cc(ref, est, constant_bands=p.cc_constant_bands),
        "uiqi": lambda: fm.uiqi(ref, est, block_size=p.uiqi_block),
        "q2n": lambda: _q2n(ref, est, p),
    }
    return {name: float(compute[name]()[0]) for name in p.metrics}


def _q2n(ref: torch.Tensor, est: torch.Tensor, p: MetricPreset) -> torch.Tensor:
    if p.q2n_quantize == "uint16":
        if float(ref.amax()) * p.q2n_scale <= 1.0:
            raise InputError(
                f"preset {p.name!r} casts Q2n inputs to uint16 like q2n.m, which would turn data on [0, 1] into 0/1; "
                "pass the data on its integer (DN) scale or use a preset with q2n_scale set, e.g. "
                "dataclasses.replace(PRESETS['yokoya_toolbox'], q2n_scale=10000)"
            )
        ref, est = fm.quantize_uint16(ref, scale=p.q2n_scale), fm.quantize_uint16(est, scale=p.q2n_scale)
    return fm.q2n(ref, est, block_size=p.q2n_block, shift=p.q2n_shift)
