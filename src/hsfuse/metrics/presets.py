"""Named metric presets: every scoring convention fixed at once, reproducing a given code base's numbers.

A :class:`MetricPreset` records all the choices that change a reported number (quantisation, clipping, border
crop, PSNR peak and reduction, SSIM window and range, SAM zero-pixel policy, ERGAS mean, block sizes);
:func:`evaluate` applies one to a single image. The registry :data:`PRESETS` is a plain dict filled below.

How the presets were verified: each convention was read from the cited source file (MATLAB/Python code of
the code base, via public code search) and is implemented by the functions in
:mod:`hsfuse.metrics.functional`, which the test suite checks against independent implementations
(scikit-image, torchmetrics, NumPy transcriptions of the MATLAB formulas, hand computations). None was checked
against numbers printed by the original MATLAB code (no MATLAB here).

Undefined values: where a metric is undefined on the input (a zero band mean in ERGAS, a non-positive PSNR band
peak, no pixel with two non-zero spectra in SAM, every band constant in CC), the ``hsfuse`` preset raises
:class:`~hsfuse.errors.InputError`. Presets with ``degenerate="original"`` (each says so) return instead what the
reproduced code returns there (``inf`` or ``nan``, by the same division), with a :func:`warnings.warn` naming
the band(s); every other metric of the call is computed as usual.

Example:
    >>> import torch
    >>> ref = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    >>> out = evaluate(ref, ref, preset="hsfuse", ratio=4)
    >>> out["rmse"], out["sam"], out["psnr"]
    (0.0, 0.0, inf)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._checks import check_positive_int, check_ratio
from ..errors import InputError
from . import functional as fm

__all__ = ["METRIC_NAMES", "PRESETS", "Q2N_UNIT_SCALE", "MetricPreset", "evaluate", "get_preset"]

MetricName = Literal["psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n"]
METRIC_NAMES: tuple[str, ...] = ("psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n")

Q2N_UNIT_SCALE = 65535.0
"""Factor applied to data on [0, 1] before ``q2n.m``'s ``uint16`` cast when a preset's ``q2n_scale`` is left at 1:
the full ``uint16`` range, as MATLAB's ``im2uint16`` maps [0, 1] (``round(65535 x)``)."""


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
        q2n_quantize, q2n_scale: ``"uint16"`` applies ``q2n.m``'s ``uint16(scale * x)`` cast before Q2n. With
            ``q2n_scale = 1`` and a reference on [0, 1] (which the cast would turn into 0/1), :func:`evaluate`
            uses ``scale = Q2N_UNIT_SCALE`` (65535) instead and says so in a warning.
        degenerate: ``"raise"`` (hsfuse): a metric undefined on the input raises :class:`InputError`;
            ``"original"``: it takes the value the reproduced code returns (``inf``/``nan``) with a warning, the
            other metrics being computed as usual. Covered: ERGAS with a zero band mean; PSNR with a
            ``band_max``/``image_max`` peak <= 0 (the code squares the peak: ``10 log10(max^2 / MSE)``); SAM
            ``"exclude"`` with no valid pixel (0/0 = NaN); CC ``"exclude"`` with every band constant (NaN, as
            ``corrcoef``). With only some bands constant, CC keeps averaging the other bands and warns that the
            original's ``corrcoef`` gives NaN there.
        ergas_division: where the reproduced code divides by the (squared) band mean, which decides ``inf`` or
            ``nan`` for a zero mean: ``"band"`` ``mean(err^2) / mu^2`` (MATLAB ``ERGAS.m``/``quality_assessment.m``:
            ``inf``, or ``nan`` if that band's error is 0 everywhere) or ``"pixel"`` ``mean(err^2 / mu^2)``
            (UDALN: ``nan`` if any pixel's error is 0, else ``inf``). Equal whenever no mean is 0.
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
    degenerate: Literal["raise", "original"] = "raise"
    ergas_division: Literal["band", "pixel"] = "band"

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
            ("degenerate", ("raise", "original")),
            ("ergas_division", ("band", "pixel")),
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
            how = "mean(err^2) / mean^2 per band" if self.ergas_division == "band" else "mean(err^2 / mean^2)"
            lines.append(f"  ERGAS: 100 / ratio, band RMSE over the band mean of the {self.ergas_mean_of} ({how})")
        if "rmse" in m:
            lines.append("  RMSE: over all bands and pixels")
        if "cc" in m:
            lines.append(f"  CC: per-band Pearson, band mean; constant bands: {self.cc_constant_bands}")
        if "uiqi" in m:
            lines.append(f"  UIQI: img_qi sliding {self.uiqi_block}x{self.uiqi_block} window, band mean")
        if "q2n" in m:
            cast = f", inputs cast with uint16({self.q2n_scale:g} x)" if self.q2n_quantize else ""
            if self.q2n_quantize and self.q2n_scale == 1.0:
                cast += f" (data on [0, 1]: uint16({Q2N_UNIT_SCALE:g} x))"
            lines.append(f"  Q2n: blocks {self.q2n_block}, shift {self.q2n_shift}{cast}")
        if self.degenerate == "original":
            lines.append("  undefined values (zero band mean, ...): Inf/NaN as the original returns, with a warning")
        else:
            lines.append("  undefined values (zero band mean, ...): refused (InputError)")
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
        "RMSE and img_qi UIQI (block 32) on 0..255, CC (per-band corrcoef, mean). Read from the code; formulas "
        "tested independently. Undefined values as the original (degenerate='original'): a GT band with mean 0 "
        "(all 0 after im2uint8) makes ERGAS Inf, as rmse_per_band ./ mean_y does there (NaN if that band's error "
        "is 0 too), with a warning; CC is NaN only when every band is constant (corrcoef NaN); with some constant "
        "bands hsfuse averages the others and warns that the original's CC is NaN. PSNR (fixed peak) and SAM "
        "(eps) have no undefined case."
    ),
    metrics=("psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi"),
    quantize="uint8",
    psnr_data_range=255.0,
    ssim_data_range=255.0,
    sam_zero_pixels="eps",
    sam_eps=fm.MATLAB_EPS,
    degenerate="original",
)

PRESETS["yokoya_toolbox"] = MetricPreset(
    name="yokoya_toolbox",
    reproduces=(
        "Yokoya's HS-MS fusion toolbox QualityIndices.m, PSNR/SAM/ERGAS/Q2n version (no border crop): PSNR.m "
        "10 log10(max(ref)^2 / MSE) per band, band mean; SAM.m drops zero-norm pixels (degrees); ERGAS(I_HS, "
        "I_REF, ratio) normalises by the fused image's band means (its first argument); q2n(I_REF, I_HS, 32, 32), "
        "which casts to uint16: give data on its integer DN scale, or data on [0, 1], which hsfuse scales by "
        "65535 (im2uint16's full range) before the cast and says so in a warning (set q2n_scale to use another "
        "factor, as variants passing I*umax do). The CC/SAM/RMSE/ERGAS version with a `ratio` border crop is "
        "'hsmsfusion_toolbox'. Undefined values as the original (degenerate='original'): a fused band with mean "
        "0 makes ERGAS Inf (NaN if its error is 0 too), a reference band maximum <= 0 gives PSNR.m's value "
        "(-Inf for max 0), SAM with no non-zero pixel pair is NaN (0/0), each with a warning. Read from the "
        "code; formulas tested independently."
    ),
    metrics=("psnr", "sam", "ergas", "q2n"),
    psnr_data_range="band_max",
    sam_zero_pixels="exclude",
    ergas_mean_of="estimate",
    q2n_quantize="uint16",
    q2n_scale=1.0,
    degenerate="original",
)

PRESETS["hsmsfusion_toolbox"] = MetricPreset(
    name="hsmsfusion_toolbox",
    reproduces=(
        "the HSMSFusionToolbox quality indices CC, SAM, RMSE and ERGAS with a ratio-pixel border crop, as shipped "
        "with the classical methods (Yokoya's toolbox, CNMF code, hif-benchmarking) in QualityIndices.m(I_HS, "
        "I_REF, ratio): ratio pixels cut from each border of both images (I(ratio+1:rows-ratio, "
        "ratio+1:cols-ratio, :)), then CC = mean_b corrcoef(I_HS_b(:), I_REF_b(:)); SAM.m "
        "= real(sum_p acos(<x_p, y_p> / sqrt(|x_p|^2 |y_p|^2)) / P') * 180 / pi over the P' pixels whose norm "
        "product is non-zero (zero-norm pixels dropped; real(acos) = acos of the cosine clipped to [-1, 1]); "
        "RMSE.m = sqrt(sum (I_HS - I_REF)^2 / (rows cols bands)); ERGAS.m(I_HS, I_REF, ratio) = 100 / ratio * "
        "sqrt(1/bands sum_b mean2((I_HS_b - I_REF_b)^2) / mean2(I_HS_b)^2), normalised by the ESTIMATE's band "
        "means (I_HS is the first argument). Differs from 'yokoya_toolbox' (the PSNR/SAM/ERGAS/Q2n version): "
        "crop, CC and RMSE instead of PSNR and Q2n, no uint16 cast; SAM and ERGAS are the same formulas. "
        "Undefined values as the original (degenerate='original'): a fused band with mean 0 makes ERGAS Inf "
        "(NaN if its error is 0 too), SAM with no non-zero pixel pair is NaN, CC with every band constant is "
        "NaN, each with a warning; with some constant bands hsfuse averages the other bands' CC and warns that "
        "corrcoef gives NaN there (so the original's CC is NaN). Uncertain detail: QualityIndices.m copies differ "
        "in their CC helper (per-band vector then mean, or the mean inside CC.m); the value is the same. "
        "Read from the code; tested against a NumPy transcription."
    ),
    metrics=("cc", "sam", "rmse", "ergas"),
    border="ratio",
    # PSNR.m's peak, should a user add "psnr"; being no fixed number, it also tells `hsfuse evaluate` that this
    # preset assumes no data scale (CC, SAM and ERGAS are scale-free; RMSE is in the data's units).
    psnr_data_range="band_max",
    sam_unit="degrees",
    sam_zero_pixels="exclude",
    ergas_mean_of="estimate",
    cc_constant_bands="exclude",
    degenerate="original",
)

PRESETS["udaln"] = MetricPreset(
    name="udaln",
    reproduces=(
        "UDALN evaluation.py: PSNR peak = each band's reference max, band mean; SAM arccos(<x,y>/(|x||y| + 1e-7)) "
        "in degrees (clipped to [-1, 1] here: the original can give NaN); ERGAS 100/r with reference means; "
        "per-band Pearson CC (constant bands excluded here, NaN there); global RMSE. No preprocessing. "
        "Undefined values as the NumPy original (degenerate='original', with a warning): a reference band with "
        "mean 0 makes ERGAS Inf, or NaN as soon as one pixel of that band has zero error (the code divides each "
        "pixel's squared error by the squared mean: ergas_division='pixel'); a band maximum <= 0 gives "
        "10 log10(max^2 / MSE) (-Inf for max 0); CC with every band constant is NaN."
    ),
    metrics=("psnr", "sam", "ergas", "rmse", "cc"),
    psnr_data_range="band_max",
    sam_zero_pixels="eps_denominator",
    sam_eps=1e-7,
    degenerate="original",
    ergas_division="pixel",
)

PRESETS["dhifnet_test"] = MetricPreset(
    name="dhifnet_test",
    reproduces=(
        "DHIF-Net Test.py: the output clamped to [0, 1], one PSNR over the whole cube (global MSE) with peak 1. "
        "No undefined case (a perfect reconstruction gives +inf, as there)."
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
        ``rmse``, ``cc``, ``uiqi``, ``q2n``). A perfect reconstruction gives ``psnr = inf``. Under a preset with
        ``degenerate="original"`` a metric the reproduced code returns as Inf/NaN (e.g. ERGAS with a zero band
        mean) is ``inf``/``nan`` here too, and a :class:`UserWarning` names the cause; so does the automatic
        [0, 1] -> ``uint16`` scaling of Q2n (``q2n_scale`` 1, see :data:`Q2N_UNIT_SCALE`). Warnings are issued
        after every metric has been computed.
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
            f"preset {p.name!r} needs the resolution ratio (for ERGAS or the border crop): pass the HSI/MSI "
            "pixel-size ratio (ratio=8 in Python, --ratio 8 on the command line)"
        )
    if p.clip is not None:
        est = fm.clip(est, *p.clip)
    if p.quantize == "uint8":
        ref, est = fm.quantize_uint8(ref), fm.quantize_uint8(est)
    border = r if p.border == "ratio" else p.border
    if border:
        ref, est = fm.crop_border(ref, border), fm.crop_border(est, border)

    notes: list[str] = []
    compute = {
        "psnr": lambda: _psnr(ref, est, p, notes),
        "ssim": lambda: fm.ssim(
            ref, est, data_range=p.ssim_data_range, window=p.ssim_window,
            window_size=p.ssim_window_size, sigma=p.ssim_sigma,
        ),
        "sam": lambda: _sam(ref, est, p, notes),
        "ergas": lambda: _ergas(ref, est, r, p, notes),  # type: ignore[arg-type]
        "rmse": lambda: fm.rmse(ref, est),
        "cc": lambda: _cc(ref, est, p, notes),
        "uiqi": lambda: _blocked("UIQI", p.uiqi_block, _uiqi_fits(ref, p), ref, p, notes,
                                 lambda: fm.uiqi(ref, est, block_size=p.uiqi_block)),
        "q2n": lambda: _blocked("Q2n", p.q2n_block, _q2n_fits(ref, p), ref, p, notes,
                                lambda: _q2n(ref, est, p, notes)),
    }
    out = {name: float(compute[name]()[0]) for name in p.metrics}
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return out


def _uiqi_fits(ref: torch.Tensor, p: MetricPreset) -> bool:
    """UIQI's blocks lie inside the image (:func:`hsfuse.metrics.functional.uiqi` refuses larger ones)."""
    return p.uiqi_block <= min(ref.shape[-2:])


def _q2n_fits(ref: torch.Tensor, p: MetricPreset) -> bool:
    """Q2n's mirrored padding to whole blocks is at most the image (:func:`hsfuse.metrics.functional.q2n`)."""
    H, W = ref.shape[-2:]
    b, s = p.q2n_block, p.q2n_shift
    return all((math.ceil(n / s) - 1) * s + b - n <= n for n in (H, W))


def _blocked(name: str, block: int, fits: bool, ref: torch.Tensor, p: MetricPreset, notes: list[str],
             compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A block-wise index, or NaN with a note when its blocks do not fit the image (the other metrics still count)."""
    H, W = ref.shape[-2:]
    if not fits:
        notes.append(f"{name} is NaN under preset {p.name!r}: its {block}x{block} blocks are larger than the {H}x{W} "
                     "image (after the preset's border crop); the other metrics are computed as usual")
        return torch.full((1,), math.nan, dtype=ref.dtype)
    return compute()


def _bands(mask: torch.Tensor) -> list[int]:
    return [int(b) for b in mask.nonzero().flatten()]


def _word(value: float) -> str:
    """MATLAB's spelling of a value: NaN, Inf, -Inf or the number."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return f"{value:g}"


def _psnr(ref: torch.Tensor, est: torch.Tensor, p: MetricPreset, notes: list[str]) -> torch.Tensor:
    dr = p.psnr_data_range
    if p.degenerate == "original" and isinstance(dr, str) and not (dr == "band_max" and p.psnr_reduction == "global"):
        peak = ref[0].amax(dim=(1, 2)) if dr == "band_max" else ref.amax()[None]  # (C,) or (1,)
        bad = peak <= 0
        if bool(bad.any()):
            # As PSNR.m / evaluation.py: 10 log10(max^2 / MSE); IEEE division gives the same -Inf/NaN as the code.
            if p.psnr_reduction == "band_mean":
                value = (10.0 * torch.log10(peak**2 / ((ref - est)[0] ** 2).mean(dim=(1, 2)))).mean()
            else:
                value = 10.0 * torch.log10(peak[0] ** 2 / ((ref - est) ** 2).mean())
            where = f"band(s) {_bands(bad)} have" if dr == "band_max" else "the whole image has"
            notes.append(
                f"PSNR is {_word(float(value))} under preset {p.name!r}: {where} a reference maximum <= 0, the peak "
                f"the original code squares in max^2 / MSE, so it returns {_word(float(value))} too; the other "
                "metrics are computed as usual."
            )
            return value.reshape(1)
    return fm.psnr(ref, est, data_range=dr, reduction=p.psnr_reduction)


def _sam(ref: torch.Tensor, est: torch.Tensor, p: MetricPreset, notes: list[str]) -> torch.Tensor:
    if p.degenerate == "original" and p.sam_zero_pixels == "exclude":
        nr, ne = torch.sqrt((ref * ref).sum(dim=1)), torch.sqrt((est * est).sum(dim=1))
        if not bool(((nr * ne) > 0).any()):
            notes.append(
                f"SAM is NaN under preset {p.name!r}: every pixel has a zero spectrum in the reference or the "
                "estimate, and the original code drops those pixels and divides the empty sum by 0 pixels, "
                "returning NaN too; the other metrics are computed as usual."
            )
            return torch.full((1,), math.nan, dtype=ref.dtype)
    return fm.sam(ref, est, unit=p.sam_unit, zero_pixels=p.sam_zero_pixels, eps=p.sam_eps)


def _ergas(ref: torch.Tensor, est: torch.Tensor, r: int, p: MetricPreset, notes: list[str]) -> torch.Tensor:
    mu = (ref if p.ergas_mean_of == "reference" else est)[0].mean(dim=(1, 2))  # (C,)
    zero = mu == 0
    if p.degenerate == "raise" or not bool(zero.any()):
        return fm.ergas(ref, est, ratio=r, mean_of=p.ergas_mean_of)
    err2 = ((ref - est)[0]) ** 2  # (C, H, W)
    # The division of the reproduced code, in IEEE arithmetic like MATLAB/NumPy: x / 0 = Inf, 0 / 0 = NaN.
    if p.ergas_division == "band":
        terms = err2.mean(dim=(1, 2)) / mu**2
    else:
        terms = (err2 / (mu**2)[:, None, None]).mean(dim=(1, 2))
    value = 100.0 / r * torch.sqrt(terms.mean())
    word = _word(float(value))
    why = "" if word == "Inf" else " (0 / 0 where the error is 0 as well)"
    notes.append(
        f"ERGAS is {word} under preset {p.name!r}: band(s) {_bands(zero)} of the {p.ergas_mean_of} have mean 0 and "
        f"ERGAS divides each band's error by that mean{why}, so the original code returns {word} too; the other "
        "metrics are computed as usual."
    )
    return value.reshape(1)


def _cc(ref: torch.Tensor, est: torch.Tensor, p: MetricPreset, notes: list[str]) -> torch.Tensor:
    if p.degenerate == "original" and p.cc_constant_bands == "exclude":
        const = (ref[0].amax(dim=(1, 2)) == ref[0].amin(dim=(1, 2))) | (
            est[0].amax(dim=(1, 2)) == est[0].amin(dim=(1, 2))
        )
        if bool(const.all()):
            notes.append(
                f"CC is NaN under preset {p.name!r}: every band is constant in the reference or the estimate, where "
                "the original's correlation coefficient is 0 / 0, so it returns NaN too; the other metrics are "
                "computed as usual."
            )
            return torch.full((1,), math.nan, dtype=ref.dtype)
        if bool(const.any()):
            notes.append(
                f"CC averages the correlation of the non-constant bands only under preset {p.name!r}: band(s) "
                f"{_bands(const)} are constant in the reference or the estimate, where the original's correlation "
                "coefficient is 0 / 0 (NaN), so the original code returns NaN for CC."
            )
    if p.cc_constant_bands != "zero":
        const = (ref[0].amax(dim=(1, 2)) == ref[0].amin(dim=(1, 2))) | (
            est[0].amax(dim=(1, 2)) == est[0].amin(dim=(1, 2)))
        if bool(const.all()):  # no band has a correlation: NaN (with a note), not a refusal of the whole evaluation
            notes.append(f"CC is NaN under preset {p.name!r}: every band is constant in the reference or the estimate "
                         "(an empty or failed estimate?), so no correlation is defined; the other metrics are computed "
                         "as usual")
            return torch.full((1,), math.nan, dtype=ref.dtype)
    return fm.cc(ref, est, constant_bands=p.cc_constant_bands)


def _q2n(ref: torch.Tensor, est: torch.Tensor, p: MetricPreset, notes: list[str]) -> torch.Tensor:
    if p.q2n_quantize == "uint16":
        scale = p.q2n_scale
        lo, hi = float(ref.amin()), float(ref.amax())
        if scale == 1.0 and 0.0 <= lo and hi <= 1.0:
            scale = Q2N_UNIT_SCALE
            notes.append(
                f"Q2n under preset {p.name!r}: the reference lies in [0, 1], which the original q2n.m's uint16 cast "
                f"would turn into 0/1, so both images are scaled by {Q2N_UNIT_SCALE:g} (uint16({Q2N_UNIT_SCALE:g} x), "
                "the full uint16 range as im2uint16) before the cast; pass data on its integer scale or set "
                "q2n_scale to use another factor."
            )
        elif hi * scale <= 1.0:
            raise InputError(
                f"preset {p.name!r} casts Q2n inputs to uint16 like q2n.m, and uint16({scale:g} x) of this reference "
                f"(values {lo:g} .. {hi:g}) keeps at most the levels 0 and 1; pass the data on its integer (DN) "
                "scale, data on [0, 1] (scaled by 65535 automatically), or set q2n_scale, e.g. "
                f"dataclasses.replace(PRESETS[{p.name!r}], q2n_scale=10000)"
            )
        ref, est = fm.quantize_uint16(ref, scale=scale), fm.quantize_uint16(est, scale=scale)
    return fm.q2n(ref, est, block_size=p.q2n_block, shift=p.q2n_shift)
