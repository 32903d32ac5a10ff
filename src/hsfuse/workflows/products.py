"""Real satellite pairs as they come: products, their own grids, co-registration, masks, fusion, quality summary.

:func:`fuse_products` is what ``hsfuse fuse --hsi ENMAP_DIR --msi S2_SAFE ...`` runs (and the Python entry for a
pair of products or georeferenced rasters on different grids):

1. **Open** both lazily: a product through its reader (:func:`hsfuse.io.products.open_product`: reflectance with
   wavelengths/FWHM, no-data as NaN, masks), a plain raster through :func:`hsfuse.io.lazy.open_lazy`.
2. **Grids** (:func:`hsfuse.geo.plan_grids`): the fused grid refines the HSI grid by an integer ratio in the HSI's
   CRS, cropped to the common footprint; the MSI is warped onto it (cubic for reflectance, nearest for masks).
3. **Spectral responses**: the HSI's bands from their centres and FWHM (Gaussians), the MSI's from the SRF library
   (the product's sensor, e.g. ``sentinel2a``, and its band names), or ``srf=`` as given.
4. **Co-registration** (``coregister="global"``, default): the translation between the warped MSI and the HSI is
   measured on a central window (:func:`hsfuse.estimation.registration.check_coregistration`, sub-pixel) and
   removed by warping the MSI again with the opposite shift; the residual is measured and reported.
   ``coregister="local"`` then measures a field of local shifts (tie points) on the whole globally corrected pair
   (:func:`hsfuse.estimation.registration.estimate_shift_field`) and removes it by resampling the MSI and its masks
   along that field (:func:`hsfuse.geo.warp_with_field`); the field is measured again to report the residual.
5. **Masks**: every mask of both products (or the chosen ``mask_reasons``), the user's ``mask=`` raster, and the
   pixels outside either footprint make one unusable-pixel mask on the fused grid (an HSI pixel marks its ``r x r``
   block); fusion ignores them when fitting and writes no-data (NaN) there.
6. **Fuse** with the large-scene engine (:func:`hsfuse.chunked.fuse_chunked`), streaming to ``output`` (zarr or
   a georeferenced tiled GeoTIFF/COG with the HSI's wavelengths and FWHM).
7. **Judge without a reference** on a central window: QNR, D_lambda, D_s and consistency with both inputs
   (:func:`hsfuse.workflows.real_pair.no_reference_scores`), written with the grid and registration numbers to
   ``<output>.report.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import InputError
from ..geo import GridPlan, plan_grids, warp_to_grid, warp_with_field
from ..io.atomic import atomic_output
from ..methods.options import MethodOptions
from ..methods.registry import get_method
from ..physics.specs import PsfSpec, SrfSpec, build_observation
from ..progress import ProgressFn

__all__ = ["fuse_products", "ProductsResult", "open_input", "OpenedInput", "Coregister"]

Coregister = Literal["global", "local", "none"]
Say = Callable[[str], None]

#: how the MSI's reflectance is resampled onto the fused grid (masks: nearest)
MSI_RESAMPLING = "cubic"

#: the largest window (HSI pixels per side) used to measure the shift and to score without a reference
WINDOW_LR = 128


@dataclass
class OpenedInput:
    """One input: its image (``(band, y, x)`` DataArray, lazy), masks (``True`` = unusable), sensor and origin."""

    image: Any
    masks: dict[str, Any]
    sensor: str | None
    description: str
    product: bool


def open_input(path: str | os.PathLike[str] | Any, *, label: str, variable: str | None = None,
               layout: str = "auto") -> OpenedInput:
    """A product folder/file through its reader, a plain raster through :func:`hsfuse.io.lazy.open_lazy`, or a
    DataArray as given."""
    from ..io.lazy import open_lazy
    from ..io.products import open_product, product_type

    if hasattr(path, "dims"):
        return OpenedInput(path, {}, path.attrs.get("srf_sensor"), f"{label}: DataArray {tuple(path.shape)}", False)
    kind = product_type(path)
    if kind is not None:
        product = open_product(path)
        sensor = product.sensor if product.kind == "msi" else None
        return OpenedInput(product.image, dict(product.masks), sensor or product.image.attrs.get("srf_sensor"),
                           f"{label}: {product.sensor} {product.level} ({Path(path).name})", True)
    image = open_lazy(path, variable=variable, layout=layout)
    return OpenedInput(image, {}, image.attrs.get("srf_sensor"), f"{label}: {Path(path).name}", False)


@dataclass
class ProductsResult:
    """What :func:`fuse_products` produced: the output path, the grid plan, the registration and the report."""

    output: Path
    plan: GridPlan
    report: dict[str, Any] = field(default_factory=dict)


def _wavelengths(da: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    if da.attrs.get("wavelength_units") != "nm":
        return None, None
    fwhm = np.asarray(da.coords["fwhm"].values, np.float64) if "fwhm" in da.coords else None
    return np.asarray(da.coords["band"].values, np.float64), fwhm


def _window(plan: GridPlan) -> tuple[slice, slice]:
    """A central window of the HSI crop, at most ``WINDOW_LR`` pixels per side (LR slices)."""
    h = plan.hsi_window[1] - plan.hsi_window[0]
    w = plan.hsi_window[3] - plan.hsi_window[2]
    nh, nw = min(h, WINDOW_LR) // 2 * 2, min(w, WINDOW_LR) // 2 * 2  # even: QNR blocks of 2r always fit
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    return slice(y0, y0 + nh), slice(x0, x0 + nw)


def _pair_window(hsi: Any, msi: Any, unusable: Any, plan: GridPlan) -> tuple[Any, Any, Any]:
    """The central window of the (cropped) HSI, the warped MSI and the unusable mask, as tensors."""
    from ..types import FusionMeasurement

    r = plan.ratio
    ys, xs = _window(plan)
    h = np.asarray(hsi[:, ys, xs].values, np.float64)
    m = np.asarray(msi[:, r * ys.start:r * ys.stop, r * xs.start:r * xs.stop].values, np.float64)
    bad = np.asarray(unusable[r * ys.start:r * ys.stop, r * xs.start:r * xs.stop].values, bool)
    bad |= ~np.isfinite(m).all(axis=0)
    bad |= np.repeat(np.repeat(~np.isfinite(h).all(axis=0), r, 0), r, 1)
    h = np.nan_to_num(h, nan=float(np.nanmean(h)) if np.isfinite(h).any() else 0.0)
    m = np.nan_to_num(m, nan=float(np.nanmean(m)) if np.isfinite(m).any() else 0.0)
    y = FusionMeasurement(torch.from_numpy(h)[None], torch.from_numpy(m)[None])
    return y, torch.from_numpy(~bad), (ys, xs)


def _measure_shift(hsi: Any, msi: Any, unusable: Any, plan: GridPlan, physics: Any) -> Any:
    from ..estimation.registration import check_coregistration

    y, valid, _ = _pair_window(hsi, msi, unusable, plan)
    if not bool(valid.any()):
        raise InputError("no usable pixel in the central window to measure the co-registration (clouds, no-data); "
                         "pass coregister='none' (CLI: --coregister none)")
    return check_coregistration(y, physics.double(), valid=valid if not bool(valid.all()) else None)


def _upsampled_mask(mask: Any, ratio: int) -> Any:
    import dask.array as da

    data = mask.data if hasattr(mask, "data") else mask
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data, bool))
    return da.repeat(da.repeat(data, ratio, axis=0), ratio, axis=1)


#: at most this many measure-and-correct rounds; stop when the residual is below COREGISTER_DONE_PX (HSI pixels)
COREGISTER_ROUNDS, COREGISTER_DONE_PX = 3, 0.02

#: local co-registration (``coregister="local"``): tie-point windows of LOCAL_WINDOW_LR HSI pixels every
#: LOCAL_STEP_LR (images under 4 windows a side: smaller windows, at least LOCAL_MIN_WINDOW_LR), the step grown so
#: that there are at most LOCAL_MAX_TIE_POINTS
LOCAL_WINDOW_LR, LOCAL_STEP_LR, LOCAL_MIN_WINDOW_LR, LOCAL_MAX_TIE_POINTS = 24, 12, 16, 2000

#: the product masks used by default: what makes a pixel's value wrong for fusion (water, dark or snow pixels are
#: valid reflectance and stay)
DEFAULT_MASK_REASONS = ("nodata", "cloud", "cirrus", "shadow", "haze", "saturated", "defective", "dilated_cloud")


def _masks_of(a: OpenedInput, b: OpenedInput, plan: GridPlan, shift: tuple[float, float],
              reasons: Callable[[dict[str, Any]], list[str]], window: tuple[int, int, int, int],
              local: Any = None) -> tuple[Any, list[str]]:
    """The unusable mask on the fused grid: HSI masks (each pixel its r x r block) and the MSI masks warped with the
    co-registration ``shift`` (HSI pixels) and, if given, the local field ``local`` (a ShiftField); and what was
    used."""
    r0, r1, c0, c1 = window
    r = plan.ratio
    out, used = None, []
    for name in reasons(a.masks):
        m = _upsampled_mask(a.masks[name].isel(y=slice(r0, r1), x=slice(c0, c1)), r)
        out = m if out is None else out | m
        used.append(f"HSI {name}")
    for name in reasons(b.masks):
        m = warp_to_grid(b.masks[name], plan.target, resampling="nearest", shift=(-shift[0] * r, -shift[1] * r))
        if local is not None:
            m = warp_with_field(m, local.at_hr, order=0, max_displacement=_largest_hr(local))
        out = m.data if out is None else out | m.data
        used.append(f"MSI {name}")
    return out, used


def _corrected(a: OpenedInput, b: OpenedInput, plan: GridPlan, shift: tuple[float, float], reasons: Any,
               r0: int, r1: int, c0: int, c1: int, local: Any = None) -> tuple[Any, Any]:
    import dask.array as da
    import xarray as xr

    r = plan.ratio
    msi = warp_to_grid(b.image, plan.target, resampling=MSI_RESAMPLING, shift=(-shift[0] * r, -shift[1] * r))
    if local is not None:  # the tie-point field measured on the globally corrected MSI, removed from it
        msi = warp_with_field(msi, local.at_hr, order=3, max_displacement=_largest_hr(local))
    masks, _ = _masks_of(a, b, plan, shift, reasons, (r0, r1, c0, c1), local)
    if masks is None:
        masks = da.zeros(plan.target.shape, dtype=bool, chunks=512)
    return msi, xr.DataArray(masks, dims=("y", "x"))


def _largest_hr(field: Any) -> float:
    """The largest displacement component of a ShiftField in MSI pixels (bilinear: reached at a tie point)."""
    return float(field.ratio * max(np.abs(field.dy).max(), np.abs(field.dx).max()))


def _local_windows(h: int, w: int) -> tuple[int, int]:
    """``(window, step)`` in HSI pixels for the tie points over an ``h x w`` HSI crop (see LOCAL_WINDOW_LR)."""
    import math

    side = min(h, w)
    window = LOCAL_WINDOW_LR if side >= 4 * LOCAL_WINDOW_LR else max(LOCAL_MIN_WINDOW_LR, side // 4)
    window = min(window, side)
    step = max(window * LOCAL_STEP_LR // LOCAL_WINDOW_LR, math.ceil(math.sqrt(h * w / LOCAL_MAX_TIE_POINTS)))

    def count(s: int) -> int:
        return ((h - window) // s + 1) * ((w - window) // s + 1)

    while count(step) > LOCAL_MAX_TIE_POINTS:
        step += 1
    return max(window, min(step, side)), step  # sparse tie points: windows as wide as the step, no gaps


def _measure_field(hsi: Any, msi: Any, unusable: Any, plan: GridPlan, physics: Any) -> Any:
    """The tie-point field (:func:`hsfuse.estimation.registration.estimate_shift_field`) over the whole crop: the
    HSI is projected through the SRF lazily first (``m`` bands), so only ``R Y_h`` and the MSI are held in memory."""
    import dask.array as da

    from ..estimation.operators import EstimatedOperators
    from ..estimation.registration import estimate_shift_field
    from ..types import FusionMeasurement

    r = plan.ratio
    srf = physics.spectral.matrix.detach().cpu().double().numpy()
    data = hsi.data if isinstance(hsi.data, da.Array) else da.from_array(np.asarray(hsi.data))
    projected = np.asarray(da.tensordot(srf, data.astype(np.float64), axes=(1, 0)).compute(), np.float64)
    m = np.asarray(msi.values, np.float64)
    bad = np.asarray(unusable.values, bool) | ~np.isfinite(m).all(axis=0)
    bad |= np.repeat(np.repeat(~np.isfinite(projected).all(axis=0), r, 0), r, 1)
    if bad.all():
        raise InputError("no usable pixel to measure a local co-registration (clouds, no-data); pass "
                         "coregister='global' (CLI: --coregister global)")
    projected = np.nan_to_num(projected, nan=0.0)
    m = np.nan_to_num(m, nan=0.0)
    ops = EstimatedOperators(psf=physics.spatial.psf.detach().cpu().double(),
                             srf=torch.eye(srf.shape[0], dtype=torch.float64), ratio=r, offset=physics.spatial.offset,
                             method="given")
    window, step = _local_windows(*projected.shape[1:])
    y = FusionMeasurement(torch.from_numpy(projected)[None], torch.from_numpy(m)[None])
    return estimate_shift_field(y, ops, window=window, step=step, valid=None if not bad.any() else ~bad)


def fuse_products(hsi: Any, msi: Any, output: str | os.PathLike[str], *, method: str,
                  options: Mapping[str, Any] | MethodOptions | None = None, srf: SrfSpec | None = None,
                  bands: Sequence[str] | None = None, psf: PsfSpec = None, ratio: int | None = None,
                  coregister: Coregister = "global", shift: tuple[float, float] | None = None, mask: Any = None,
                  mask_reasons: Sequence[str] | None = None, weights: str | os.PathLike[str] | None = None,
                  memory_gb: float | None = None, chunk: int | None = None, workers: int | None = None,
                  scheduler: str | None = None, threads: int | None = None, overwrite: bool = False,
                  resume: bool = False, cog: bool = False, progress: ProgressFn | None = None,
                  say: Say = lambda _m: None) -> ProductsResult:
    """A real pair on its own grids, fused onto the HSI grid refined by an integer ratio (module docstring).

    Args:
        hsi, msi: product folders/files (EnMAP, PRISMA, EMIT, DESIS; Sentinel-2, Landsat), georeferenced rasters,
            or lazy DataArrays.
        output: ``.zarr`` or ``.tif`` (written chunk by chunk, atomically); ``<output>.report.json`` beside it.
        method, options, weights: the fusion method (``hsfuse methods``).
        srf: the MSI's response (default: the product's sensor and band names); bands: the MSI bands to use (by
            name, e.g. the 10 m bands of Sentinel-2); psf: default Gaussian FWHM r.
        ratio: force the ratio (default: from the pixel sizes, see :func:`hsfuse.geo.plan_grids`).
        coregister: ``"global"`` measures and removes a global translation; ``"local"`` removes the global
            translation, then a field of local shifts (tie points over the whole crop; at most
            :data:`LOCAL_MAX_TIE_POINTS`), reported under ``"registration_local"``; ``"none"`` only measures it.
        shift: a known translation ``(dy, dx)`` of the MSI in HSI pixels (``+dy``: its content sits further down)
            to remove instead of measuring one.
        mask: a raster of unusable pixels (non-zero = unusable) on either input's grid, or ``None``.
        mask_reasons: which product masks to use (default :data:`DEFAULT_MASK_REASONS`; ``["all"]``: every mask).
        memory_gb, chunk, workers, scheduler, threads, overwrite, resume, cog, progress: the large-scene engine's.
    """
    from ..chunked import fuse_chunked

    spec = get_method(method)
    opts = spec.make_options(options)
    spec.check_runtime(weights=weights)
    t0 = time.perf_counter()
    a = open_input(hsi, label="HSI")
    b = open_input(msi, label="MSI")
    say(f"{a.description}; {b.description}")
    plan = plan_grids(a.image, b.image, ratio=ratio)
    say("grids: " + plan.reason)
    r0, r1, c0, c1 = plan.hsi_window
    h = a.image.isel(y=slice(r0, r1), x=slice(c0, c1))
    r = plan.ratio

    wanted = DEFAULT_MASK_REASONS if mask_reasons is None else tuple(mask_reasons)

    def reasons(masks: dict[str, Any]) -> list[str]:
        return list(masks) if "all" in wanted else [n for n in wanted if n in masks]

    unusable, used = _masks_of(a, b, plan, (0.0, 0.0), reasons, plan.hsi_window)
    import xarray as xr

    if mask is not None:
        extra = open_input(mask, label="mask").image
        extra = extra[0] if extra.ndim == 3 else extra
        user = warp_to_grid(extra.astype(bool), plan.target, resampling="nearest").data
        unusable = user if unusable is None else unusable | user
        used.append("user mask")
    else:
        user = None
    if unusable is None:
        import dask.array as da

        unusable = da.zeros(plan.target.shape, dtype=bool, chunks=512)
    unusable_da = xr.DataArray(unusable, dims=("y", "x"))
    if bands is not None and "band_name" in b.image.coords:  # the MSI bands to fuse with (by name)
        present = [str(n) for n in b.image.coords["band_name"].values]
        missing = [n for n in bands if n not in present]
        if missing:
            raise InputError(f"the MSI has no band(s) {', '.join(missing)}; it has: {', '.join(present)}")
        b.image = b.image.isel(band=[present.index(n) for n in bands])
    wavelengths, fwhm = _wavelengths(h)
    names = [str(n) for n in b.image.coords["band_name"].values] if "band_name" in b.image.coords else None
    srf_spec = srf if srf is not None else b.sensor
    if srf_spec is None and spec.needs_srf:
        raise InputError(f"the MSI's sensor is not known ({b.description}); pass srf= (CLI: --srf SENSOR) and bands=")
    if coregister == "local" and srf_spec is None:
        raise InputError("coregister='local' compares the MSI with the HSI seen through the MSI's spectral response: "
                         "pass srf= (CLI: --srf SENSOR)")
    physics = build_observation(hsi_bands=h.shape[0], msi_bands=b.image.shape[0], ratio=r, wavelengths=wavelengths,
                                fwhm=fwhm, srf=srf_spec, psf=psf, bands=bands if bands is not None else
                                (names if srf is None else None), needs_srf=spec.needs_srf)
    msi_warped = warp_to_grid(b.image, plan.target, resampling=MSI_RESAMPLING)
    report: dict[str, Any] = {"hsi": a.description, "msi": b.description, "grids": plan.reason, "ratio": r,
                              "fused_grid": {"crs": plan.target.crs, "transform": list(plan.target.transform),
                                             "shape": list(plan.target.shape)}, "masks": used, "method": spec.name}
    if shift is not None or (srf_spec is not None and coregister != "skip"):
        dy, dx = (0.0, 0.0) if shift is None else (float(shift[0]), float(shift[1]))
        if shift is None:
            before = _measure_shift(h, msi_warped, unusable_da, plan, physics)
            report["registration_before"] = {"shift_hsi_px": list(before.shift_lr_px), "peak": before.peak}
            say(f"co-registration: measured shift (dy, dx) = ({before.shift_lr_px[0]:+.3f}, "
                f"{before.shift_lr_px[1]:+.3f}) HSI pixels (correlation {before.peak:.2f})")
            dy, dx = before.shift_lr_px
        if shift is not None or coregister in ("global", "local"):
            for round_ in range(COREGISTER_ROUNDS):  # correct, measure the residual, correct it too
                msi_warped, unusable_da = _corrected(a, b, plan, (dy, dx), reasons, r0, r1, c0, c1)
                after = _measure_shift(h, msi_warped, unusable_da, plan, physics)
                if shift is not None or after.magnitude_lr_px < COREGISTER_DONE_PX or round_ == COREGISTER_ROUNDS - 1:
                    break
                dy, dx = dy + after.shift_lr_px[0], dx + after.shift_lr_px[1]
            report["registration_correction"] = {"shift_hsi_px": [dy, dx], "source": "given" if shift else "measured"}
            report["registration_after"] = {"shift_hsi_px": list(after.shift_lr_px), "peak": after.peak}
            say(f"co-registration: corrected by ({-dy:+.3f}, {-dx:+.3f}); residual ({after.shift_lr_px[0]:+.3f}, "
                f"{after.shift_lr_px[1]:+.3f}) HSI pixels")
            if coregister == "local":
                msi_warped, unusable_da = _local_correction(a, b, plan, (dy, dx), reasons, h, msi_warped, unusable_da,
                                                            user, physics, report, say)
            unusable = unusable_da.data if user is None else unusable_da.data | user
    # pixels outside the MSI footprint (NaN after warping) are unusable too
    import dask.array as da

    outside = ~da.isfinite(msi_warped.data).all(axis=0)
    unusable = unusable | outside
    result = fuse_chunked(h, msi_warped, method=spec.name, physics=physics, options=opts, weights=weights,
                          mask=unusable, chunk=chunk, memory_gb=4.0 if memory_gb is None else memory_gb,
                          workers=workers, scheduler=scheduler, threads=threads, output=output, overwrite=overwrite,
                          resume=resume, cog=cog, progress=progress,
                          settings={"hsi": str(hsi), "msi": str(msi), "grids": plan.reason, "coregister": coregister,
                                    "masks": used})
    report["engine"] = {"chunks": len(result.grid), "chunk_hr": result.grid.chunk_hr, "scheduler": result.scheduler,
                        "seconds": result.seconds}
    report["quality"] = _quality(Path(result.output), h, msi_warped, xr.DataArray(unusable, dims=("y", "x")), plan,
                                 physics)
    report["seconds"] = time.perf_counter() - t0
    q = report["quality"]
    say(f"quality (central window, no reference): QNR {q['qnr']:.4f}, consistency HSI {q['hsi_psnr']:.2f} dB, "
        f"MSI {q['msi_psnr']:.2f} dB")
    path = Path(str(result.output) + ".report.json")
    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return ProductsResult(Path(result.output), plan, report)


def _local_correction(a: OpenedInput, b: OpenedInput, plan: GridPlan, shift: tuple[float, float], reasons: Any,
                      h: Any, msi: Any, unusable: Any, user: Any, physics: Any, report: dict[str, Any],
                      say: Say) -> tuple[Any, Any]:
    """Measure the tie-point field on the globally corrected pair, remove it, measure it again; report both.
    Returns the corrected MSI and the product masks (without the ``user`` mask, which is used to measure)."""
    import xarray as xr

    def measure(msi: Any, unusable: Any) -> Any:
        bad = unusable if user is None else xr.DataArray(unusable.data | user, dims=("y", "x"))
        return _measure_field(h, msi, bad, plan, physics)

    before = measure(msi, unusable)
    entry: dict[str, Any] = {"window_hsi_px": before.window, "step_hsi_px": before.step,
                             "tie_points": {"accepted": before.n_accepted, "total": before.n_total,
                                            "rejected": dict(before.rejected)},
                             "before": before.stats()}
    largest = _largest_hr(before) / plan.ratio
    if before.n_accepted == 0 or largest < COREGISTER_DONE_PX:
        entry["applied"] = False
        report["registration_local"] = entry
        if before.n_accepted == 0:
            say(f"local co-registration: no tie point accepted of {before.n_total} ({before.rejected}); not applied")
        else:  # one more resampling would cost more than it gains
            say(f"local co-registration: {before.n_accepted}/{before.n_total} tie points, largest shift {largest:.3f} "
                f"< {COREGISTER_DONE_PX} HSI pixels: already registered, not applied")
        return msi, unusable
    r0, r1, c0, c1 = plan.hsi_window
    msi, unusable = _corrected(a, b, plan, shift, reasons, r0, r1, c0, c1, local=before)
    after = measure(msi, unusable)
    entry.update(applied=True, after=after.stats(),
                 field={"dy_hsi_px": [float(before.dy.min()), float(before.dy.max())],
                        "dx_hsi_px": [float(before.dx.min()), float(before.dx.max())]})
    report["registration_local"] = entry
    b_, a_ = entry["before"], entry["after"]
    say(f"local co-registration: {before.n_accepted}/{before.n_total} tie points ({before.window} px windows every "
        f"{before.step}); residual median {b_['median']:.3f}, max {b_['max']:.3f} HSI pixels before, median "
        + (f"{a_['median']:.3f}, max {a_['max']:.3f} after" if a_["median"] is not None else "- after"))
    return msi, unusable


def _quality(output: Path, hsi: Any, msi: Any, unusable: Any, plan: GridPlan, physics: Any) -> dict[str, Any]:
    """No-reference scores of the fused product on the central window (both images scaled by their maxima)."""
    from ..estimation.operators import EstimatedOperators
    from ..io.lazy import open_lazy
    from .real_pair import default_q_block, no_reference_scores

    y, valid, (ys, xs) = _pair_window(hsi, msi, unusable, plan)
    r = plan.ratio
    fused = np.asarray(open_lazy(output)[:, r * ys.start:r * ys.stop, r * xs.start:r * xs.stop].values, np.float64)
    fused = np.nan_to_num(fused, nan=0.0)
    s_h = float(y.hsi.abs().amax()) or 1.0
    s_m = float(y.msi.abs().amax()) or 1.0
    from ..types import FusionMeasurement

    scaled = FusionMeasurement(y.hsi / s_h, y.msi / s_m)
    ops = EstimatedOperators(psf=physics.spatial.psf.detach().double(),
                             srf=physics.spectral.matrix.detach().double() * s_h / s_m, ratio=r,
                             offset=physics.spatial.offset, method="given")
    H, W = y.msi.shape[-2:]
    scores = no_reference_scores(torch.from_numpy(fused)[None] / s_h, scaled, ops,
                                 None if bool(valid.all()) else valid, q_block=default_q_block(H, W, r))
    return {**scores, "window_hr": [r * ys.start, r * ys.stop, r * xs.start, r * xs.stop]}
