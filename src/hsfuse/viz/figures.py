"""Figures for fusion results: false-colour composites, spectra at pixels, per-pixel error maps.

All plotting goes through :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no pyplot
state, no backend switch, and style settings only inside a :func:`matplotlib.rc_context`, so nothing global
changes. Every writer produces a PNG, refuses to overwrite an existing file unless ``overwrite=True``
(:class:`~hsfuse.errors.OutputExistsError`) and writes to a temporary file in the target folder that is then
moved into place (``os.replace``), so a crash never leaves half a figure.

Layout: cubes are :class:`~hsfuse.types.Cube` (``H x W x B``); plain ``H x W x B`` arrays are accepted too
(with no wavelengths). Pixels are ``(row, col)``.

Example:
    >>> from hsfuse.data.synthetic import synthetic_scene
    >>> ref = synthetic_scene(height=16, width=16, seed=0)
    >>> false_colour(ref).shape
    (16, 16, 3)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingDependencyError
from ..io.atomic import atomic_output, check_output_path
from ..types import Cube, infer_ratio

__all__ = [
    "DEFAULT_RGB_NM",
    "COLOUR_INFRARED_NM",
    "composite_bands",
    "display_bands",
    "stretch_limits",
    "apply_stretch",
    "false_colour",
    "error_maps",
    "plot_composites",
    "plot_spectra",
    "plot_error_maps",
    "demo_figure",
]

#: Band centres (nm) shown as red, green, blue by default.
DEFAULT_RGB_NM: tuple[float, float, float] = (640.0, 550.0, 460.0)
#: the standard colour-infrared (false-colour) composite: NIR, red, green (nm)
COLOUR_INFRARED_NM: tuple[float, float, float] = (860.0, 650.0, 550.0)
#: a band farther than this from a target wavelength does not stand for it in :func:`display_bands` (nm)
BAND_TOLERANCE_NM = 30.0

_STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7}


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _as_cube(x: Any, name: str) -> Cube:
    if isinstance(x, Cube):
        return x
    if isinstance(x, np.ndarray):
        if x.ndim != 3:
            raise InputError(f"{name} must be a Cube or an H x W x B array, got an array of shape {x.shape}")
        return Cube(x)
    raise InputError(f"{name} must be a hsfuse Cube (or an H x W x B NumPy array), got {type(x).__name__}")


def _as_cubes(cubes: Any, name: str) -> dict[str, Cube]:
    if not isinstance(cubes, Mapping):
        raise InputError(f"{name} must be a dict mapping a label to a Cube, got {type(cubes).__name__}")
    if len(cubes) == 0:
        raise InputError(f"{name} is empty; give at least one labelled cube")
    return {str(k): _as_cube(v, f"{name}[{k!r}]") for k, v in cubes.items()}


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (checks the Agg-capable figure API)
    except ImportError as exc:  # pragma: no cover - matplotlib is a declared dependency
        raise MissingDependencyError("figures need matplotlib; install it with `pip install matplotlib`") from exc
    return matplotlib


def _check_output(path: Any, overwrite: Any) -> Path:
    """Fail fast, before any drawing: a non-PNG name, a missing folder, or an existing file."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path must be a file path (str or pathlib.Path), got {type(path).__name__}")
    if Path(path).suffix.lower() != ".png":
        raise InputError(f"figures are written as PNG; give a path ending in .png, got {str(path)!r}")
    if not isinstance(overwrite, bool):
        raise InputError(f"overwrite must be True or False, got {overwrite!r}")
    return check_output_path(path, overwrite=overwrite)


def _save(fig: Any, path: Path, *, overwrite: bool, dpi: float) -> Path:
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _new_figure(figsize: tuple[float, float], dpi: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi, layout="constrained")


def _check_size(figsize: Any, dpi: Any) -> None:
    if figsize is not None:
        ok = isinstance(figsize, Sequence) and len(figsize) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in figsize
        )
        if not ok:
            raise InputError(f"figsize must be (width, height) in inches, both > 0, got {figsize!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or dpi <= 0:
        raise InputError(f"dpi must be a positive number, got {dpi!r}")


def _check_stretch(stretch: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in stretch)
    except (TypeError, ValueError):
        raise InputError(f"stretch must be two percentiles (low, high), got {stretch!r}") from None
    if not (0.0 <= lo < hi <= 100.0):
        raise InputError(f"stretch percentiles must satisfy 0 <= low < high <= 100, got {stretch!r}")
    return lo, hi


# --------------------------------------------------------------------------------------------------------
# False colour
# --------------------------------------------------------------------------------------------------------


def composite_bands(
    cube: Cube,
    *,
    wavelengths_nm: Sequence[float] = DEFAULT_RGB_NM,
    bands: Sequence[int] | None = None,
) -> tuple[int, int, int]:
    """Indices of the bands shown as red, green, blue.

    ``bands`` (three indices) wins when given; otherwise, for each requested wavelength ``w``, the band
    ``argmin_b |lambda_b - w|`` (the lower index on a tie). A cube without wavelengths needs ``bands``.
    """
    cube = _as_cube(cube, "cube")
    if bands is not None:
        try:
            idx = tuple(int(b) for b in bands)
        except (TypeError, ValueError):
            raise InputError(f"bands must be three band indices (red, green, blue), got {bands!r}") from None
        if len(idx) != 3 or any(isinstance(b, bool) for b in bands):
            raise InputError(f"bands must be three band indices (red, green, blue), got {bands!r}")
        for b in idx:
            if not -cube.bands <= b < cube.bands:
                raise InputError(f"band index {b} out of range for a cube with {cube.bands} bands")
        return tuple(b % cube.bands for b in idx)  # type: ignore[return-value]
    if cube.wavelengths is None:
        raise InputError(
            "the cube has no wavelengths, so bands cannot be chosen by wavelength; pass bands=(r, g, b) "
            "band indices or set cube.wavelengths"
        )
    try:
        targets = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"wavelengths_nm must be three numbers in nm, got {wavelengths_nm!r}") from None
    if targets.size != 3 or not np.all(np.isfinite(targets)):
        raise InputError(f"wavelengths_nm must be three finite wavelengths in nm (red, green, blue), got {wavelengths_nm!r}")
    return tuple(int(np.argmin(np.abs(cube.wavelengths - t))) for t in targets)  # type: ignore[return-value]


def display_bands(wavelengths: np.ndarray | None, bands: int) -> tuple[tuple[int, int, int], str]:
    """Red, green, blue band indices of a cube's default composite, and the composite's name.

    True colour (:data:`DEFAULT_RGB_NM`) when the nearest band to each target lies within
    :data:`BAND_TOLERANCE_NM`; else the standard colour-infrared composite (:data:`COLOUR_INFRARED_NM`: NIR, red,
    green) under the same rule; else (or without wavelengths) the bands at 3/4, 1/2 and 1/4 of the band range,
    longest wavelength as red. Fewer than three bands: band 1 as grey.
    """
    if wavelengths is not None and bands >= 3:
        wl = np.asarray(wavelengths, dtype=np.float64)
        for targets, name in ((DEFAULT_RGB_NM, "true colour"), (COLOUR_INFRARED_NM, "colour infrared")):
            idx = [int(np.argmin(np.abs(wl - t))) for t in targets]
            if all(abs(wl[i] - t) <= BAND_TOLERANCE_NM for i, t in zip(idx, targets)):
                label = ", ".join(f"{wl[i]:.0f}" for i in idx)
                return (idx[0], idx[1], idx[2]), f"{name} ({label} nm)"
    if bands < 3:
        return (0, 0, 0), "band 1 (grey)"
    last = bands - 1
    idx = (round(0.75 * last), round(0.5 * last), round(0.25 * last))
    return idx, f"bands {idx[0] + 1}, {idx[1] + 1}, {idx[2] + 1}"


def stretch_limits(rgb: np.ndarray, valid: np.ndarray | None = None,
                   stretch: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """``(3, 2)`` low/high ``stretch`` percentiles of each channel of ``rgb`` ``(H, W, 3)`` over the ``valid``
    pixels (default: those finite in every channel); ``[0, 1]`` when there are none."""
    if valid is None:
        valid = np.all(np.isfinite(rgb), axis=2)
    pix = rgb[valid]
    if pix.shape[0] == 0:
        return np.tile([0.0, 1.0], (3, 1))
    return np.stack([np.percentile(pix[:, c], stretch) for c in range(3)])


def apply_stretch(rgb: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """``clip((x_c - lo_c) / (hi_c - lo_c), 0, 1)`` per channel, ``limits`` ``(3, 2)``; a flat channel (``hi <=
    lo``) and non-finite values map to 0 (``+inf`` to 1)."""
    lo, hi = limits[:, 0], limits[:, 1]
    span = hi - lo
    out = np.where(span > 0, (rgb - lo) / np.where(span > 0, span, 1.0), 0.0)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def false_colour(
    cube: Cube,
    *,
    wavelengths_nm: Sequence[float] = DEFAULT_RGB_NM,
    bands: Sequence[int] | None = None,
    stretch: Sequence[float] = (2.0, 98.0),
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """An ``(H, W, 3)`` float64 false-colour image in ``[0, 1]`` from three bands, percentile-stretched.

    ``out[..., c] = clip((x_c - lo_c) / (hi_c - lo_c), 0, 1)`` where ``x_c`` is band
    :func:`composite_bands` ``[c]`` and ``lo_c, hi_c`` are the ``stretch`` percentiles of that channel over
    the valid pixels (each channel stretched on its own, as ENVI's "linear 2 %"), or the rows of
    ``limits`` (shape ``(3, 2)``) when given, so several images can share one stretch. Invalid pixels
    (non-finite or ``nodata``) are black. A flat channel (``hi <= lo``) maps to 0.
    """
    cube = _as_cube(cube, "cube")
    idx = composite_bands(cube, wavelengths_nm=wavelengths_nm, bands=bands)
    rgb = np.asarray(cube.data[:, :, list(idx)], dtype=np.float64)
    valid = cube.valid_mask()
    if limits is None:
        lim = stretch_limits(rgb, valid, _check_stretch(stretch))
    else:
        lim = np.asarray(limits, dtype=np.float64)
        if lim.shape != (3, 2) or not np.all(np.isfinite(lim)):
            raise InputError(f"limits must be a finite (3, 2) array of (low, high) per channel, got shape {lim.shape}")
    out = apply_stretch(rgb, lim)
    out[~valid] = 0.0
    return out


def _shared_limits(cubes: dict[str, Cube], wavelengths_nm: Any, bands: Any, stretch: Any) -> np.ndarray:
    first = next(iter(cubes.values()))
    idx = composite_bands(first, wavelengths_nm=wavelengths_nm, bands=bands)
    rgb = np.asarray(first.data[:, :, list(idx)], dtype=np.float64)
    return stretch_limits(rgb, first.valid_mask(), _check_stretch(stretch))


# --------------------------------------------------------------------------------------------------------
# Error maps
# --------------------------------------------------------------------------------------------------------


def error_maps(reference: Cube, estimate: Cube) -> dict[str, np.ndarray]:
    """Per-pixel errors between two cubes of the same shape, as ``(H, W)`` float64 maps.

    * ``"rmse"``: ``sqrt(mean_b (x_b - y_b)^2)`` (root mean square over bands, the data's units).
    * ``"sam_deg"``: spectral angle ``arccos(<x, y> / (|x| |y|))`` in degrees, evaluated as
      ``2 atan2(|u - v|, |u + v|)`` on the unit vectors ``u = x/|x|``, ``v = y/|y|`` (the same angle, but
      accurate near 0 where arccos loses about half the digits); a pixel where either spectrum has zero
      norm gets 0 (no eps smoothing, unlike the DHSIS MATLAB ``SpectAngMapper``).

    ``x`` is the reference and ``y`` the estimate spectrum at a pixel. Raises :class:`InputError` on shape
    mismatch or NaN/inf.
    """
    ref = _as_cube(reference, "reference")
    est = _as_cube(estimate, "estimate")
    if ref.shape != est.shape:
        raise InputError(
            f"reference shape {ref.shape} and estimate shape {est.shape} differ; error maps compare cubes on "
            "the same grid (upsample or crop first)"
        )
    x = np.asarray(ref.data, dtype=np.float64)
    y = np.asarray(est.data, dtype=np.float64)
    for arr, name in ((x, "reference"), (y, "estimate")):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN or inf; mask or fill those pixels before computing error maps")
    rmse = np.sqrt(np.mean((x - y) ** 2, axis=2))
    nx = np.linalg.norm(x, axis=2, keepdims=True)
    ny = np.linalg.norm(y, axis=2, keepdims=True)
    ok = (nx > 0) & (ny > 0)
    u = np.where(ok, x / np.where(ok, nx, 1.0), 0.0)
    v = np.where(ok, y / np.where(ok, ny, 1.0), 0.0)
    sam = np.degrees(2.0 * np.arctan2(np.linalg.norm(u - v, axis=2), np.linalg.norm(u + v, axis=2)))
    sam[~ok[..., 0]] = 0.0
    return {"rmse": rmse, "sam_deg": sam}


def _all_error_maps(reference: Cube, estimates: dict[str, Cube]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, est in estimates.items():
        if est.shape != reference.shape:
            raise InputError(
                f"estimate {name!r} has shape {est.shape} but the reference is {reference.shape}; "
                "error maps need cubes on the reference grid"
            )
        out[name] = error_maps(reference, est)
    return out


def _shared_vmax(maps: dict[str, dict[str, np.ndarray]], key: str, given: float | None) -> float:
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not given > 0:
            raise InputError(f"the colour scale maximum for {key} must be a positive number, got {given!r}")
        return float(given)
    vmax = max(float(np.percentile(m[key], 99.0)) for m in maps.values())
    return vmax if vmax > 0 else 1.0


# --------------------------------------------------------------------------------------------------------
# Plot writers
# --------------------------------------------------------------------------------------------------------


def plot_composites(
    cubes: dict[str, Cube],
    path: str | os.PathLike[str],
    *,
    wavelengths_nm: Sequence[float] = DEFAULT_RGB_NM,
    bands: Sequence[int] | None = None,
    stretch: Sequence[float] = (2.0, 98.0),
    shared_stretch: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    overwrite: bool = False,
) -> Path:
    """Write a row of false-colour composites (one panel per cube, titled by its key) to a PNG.

    With ``shared_stretch`` (default) every panel uses the percentile limits of the first cube (the
    reference), so brightness and colour differences between panels are real; otherwise each panel is
    stretched on its own. Cubes may differ in size (e.g. a low-resolution HSI, drawn with nearest
    interpolation). Default size: ``(2.6 * n, 2.9)`` inches (``+0.3`` in height with a title) at ``dpi``;
    the PNG is exactly ``figsize * dpi`` pixels. Returns the path written.
    """
    path = _check_output(path, overwrite)
    cubes = _as_cubes(cubes, "cubes")
    _check_size(figsize, dpi)
    limits = _shared_limits(cubes, wavelengths_nm, bands, stretch) if shared_stretch else None
    images = {k: false_colour(c, wavelengths_nm=wavelengths_nm, bands=bands, stretch=stretch, limits=limits)
              for k, c in cubes.items()}
    n = len(images)
    if figsize is None:
        figsize = (2.6 * n, 2.9 + (0.3 if title else 0.0))
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, (name, img) in zip(axes, images.items()):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name)
            ax.set_axis_off()
        if title:
            fig.suptitle(title)
        return _save(fig, path, overwrite=overwrite, dpi=dpi)


def _check_pixels(pixels: Any, shape: tuple[int, ...], grid: str = "reference image") -> list[tuple[int, int]]:
    if pixels is None or isinstance(pixels, (str, bytes)) or not isinstance(pixels, Sequence) or len(pixels) == 0:
        raise InputError(f"pixels must be a non-empty list of (row, col) pairs, got {pixels!r}")
    out = []
    for p in pixels:
        try:
            r, c = (int(v) for v in p)
        except (TypeError, ValueError):
            raise InputError(f"each pixel must be a (row, col) pair of integers, got {p!r}") from None
        if not (0 <= r < shape[0] and 0 <= c < shape[1]):
            raise InputError(f"pixel (row={r}, col={c}) is outside the {shape[0]} x {shape[1]} {grid}")
        out.append((r, c))
    return out


def _spectrum_at(cube: Cube, pixel: tuple[int, int], ref_hw: tuple[int, int]) -> np.ndarray:
    """The spectrum of ``cube`` at the pixel covering ``pixel`` of the reference grid (row * h // H)."""
    r = pixel[0] * cube.shape[0] // ref_hw[0]
    c = pixel[1] * cube.shape[1] // ref_hw[1]
    return np.asarray(cube.data[r, c, :], dtype=np.float64)


def _draw_spectra(fig: Any, axes: Sequence[Any], cubes: dict[str, Cube], pixels: list[tuple[int, int]]) -> None:
    ref_hw = next(iter(cubes.values())).shape[:2]
    use_nm = all(c.wavelengths is not None for c in cubes.values())
    for i, (ax, pix) in enumerate(zip(axes, pixels)):
        for j, (name, cube) in enumerate(cubes.items()):
            x = cube.wavelengths if use_nm else np.arange(cube.bands)
            style = dict(color="black", linewidth=1.6) if j == 0 else dict(linewidth=1.0)
            ax.plot(x, _spectrum_at(cube, pix, ref_hw), label=name, **style)
        ax.set_title(f"pixel {i + 1}: row {pix[0]}, col {pix[1]}")
        ax.set_xlabel("wavelength (nm)" if use_nm else "band index")
        ax.grid(True, linewidth=0.3, alpha=0.5)
    axes[0].set_ylabel("value")
    axes[0].legend(loc="best", frameon=False)


def plot_spectra(
    cubes: dict[str, Cube],
    pixels: list[tuple[int, int]],
    path: str | os.PathLike[str],
    *,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    overwrite: bool = False,
) -> Path:
    """Write the spectra of every cube at chosen pixels: one subplot per pixel, one line per cube.

    ``pixels`` are ``(row, col)`` on the grid of the first cube (the reference, drawn in black); a cube of
    another size is sampled at the pixel covering the same place (``row * h // H``, ``col * w // W``). The
    x axis is wavelength in nm when every cube has wavelengths, else the band index. Default size
    ``(3.2 * n_pixels, 2.8)`` inches; the PNG is exactly ``figsize * dpi`` pixels. Returns the path written.
    """
    path = _check_output(path, overwrite)
    cubes = _as_cubes(cubes, "cubes")
    pix = _check_pixels(pixels, next(iter(cubes.values())).shape)
    _check_size(figsize, dpi)
    if figsize is None:
        figsize = (3.2 * len(pix), 2.8)
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(1, len(pix), squeeze=False)[0]
        _draw_spectra(fig, axes, cubes, pix)
        return _save(fig, path, overwrite=overwrite, dpi=dpi)


def _draw_error_row(
    fig: Any, axes: Sequence[Any], maps: dict[str, dict[str, np.ndarray]], key: str, vmax: float, cmap: str, label: str
) -> None:
    im = None
    for ax, (name, m) in zip(axes, maps.items()):
        im = ax.imshow(m[key], vmin=0.0, vmax=vmax, cmap=cmap, interpolation="nearest")
        unit = "\N{DEGREE SIGN}" if key == "sam_deg" else ""
        ax.set_title(f"{name}\nmean {label} {float(np.mean(m[key])):.4g}{unit}")
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.85, label=label + (" (degrees)" if key == "sam_deg" else ""))


def plot_error_maps(
    reference: Cube,
    estimates: dict[str, Cube],
    path: str | os.PathLike[str],
    *,
    rmse_max: float | None = None,
    sam_max: float | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    overwrite: bool = False,
) -> Path:
    """Write per-pixel RMSE (top row) and SAM (bottom row) maps of each estimate (one column each).

    Maps are :func:`error_maps`. Each row shares one colour scale from 0 to ``rmse_max`` / ``sam_max``
    (default: the largest 99th percentile of that map over the methods, so one outlier pixel does not wash
    out the rest) and one colourbar. Default size ``(2.4 * n + 0.8, 5.4)`` inches; the PNG is exactly
    ``figsize * dpi`` pixels. Returns the path written.
    """
    path = _check_output(path, overwrite)
    ref = _as_cube(reference, "reference")
    ests = _as_cubes(estimates, "estimates")
    _check_size(figsize, dpi)
    maps = _all_error_maps(ref, ests)
    vr, vs = _shared_vmax(maps, "rmse", rmse_max), _shared_vmax(maps, "sam_deg", sam_max)
    n = len(maps)
    if figsize is None:
        figsize = (2.4 * n + 0.8, 5.4)
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(2, n, squeeze=False)
        _draw_error_row(fig, axes[0], maps, "rmse", vr, "viridis", "RMSE")
        _draw_error_row(fig, axes[1], maps, "sam_deg", vs, "inferno", "SAM")
        return _save(fig, path, overwrite=overwrite, dpi=dpi)


def _default_pixels(maps: dict[str, dict[str, np.ndarray]], hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Worst pixel (largest RMSE averaged over methods), a median-error pixel, and the image centre."""
    mean_rmse = np.mean([m["rmse"] for m in maps.values()], axis=0)
    flat = mean_rmse.ravel()
    worst = int(np.argmax(flat))
    median = int(np.argsort(flat, kind="stable")[flat.size // 2])
    centre = (hw[0] // 2, hw[1] // 2)
    out: list[tuple[int, int]] = []
    for p in (divmod(worst, hw[1]), divmod(median, hw[1]), centre):
        p = (int(p[0]), int(p[1]))
        if p not in out:
            out.append(p)
    return out


def _upsample_nearest(cube: Cube, hw: tuple[int, int]) -> Cube:
    r = infer_ratio(cube.shape[:2], hw)
    data = np.repeat(np.repeat(cube.data, r, axis=0), r, axis=1)
    return cube.replace(data=data, geo=None)


def demo_figure(
    reference: Cube,
    estimates: dict[str, Cube],
    path: str | os.PathLike[str],
    *,
    lr_hsi: Cube | None = None,
    pixels: list[tuple[int, int]] | None = None,
    wavelengths_nm: Sequence[float] = DEFAULT_RGB_NM,
    stretch: Sequence[float] = (2.0, 98.0),
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    overwrite: bool = False,
) -> Path:
    """Write the one-page summary of a fusion experiment to a PNG.

    Rows: (1) false-colour composites of the reference, the low-resolution HSI ``lr_hsi`` upsampled by
    nearest neighbour (when given; its size must be the reference's divided by an integer ratio) and each
    estimate, all with the reference's stretch, the chosen pixels marked 1, 2, 3 on the reference;
    (2) per-pixel RMSE and (3) SAM maps of each estimate with one shared colour scale per row
    (:func:`plot_error_maps`); (4) spectra at the pixels (:func:`plot_spectra`). ``pixels`` default to the
    pixel with the largest RMSE averaged over estimates, a median-error pixel, and the centre. Every
    estimate must be on the reference grid. Default size ``(2.3 * columns + 0.9, 10.4)`` inches; the PNG is
    exactly ``figsize * dpi`` pixels. Returns the path written.
    """
    path = _check_output(path, overwrite)
    ref = _as_cube(reference, "reference")
    ests = _as_cubes(estimates, "estimates")
    _check_size(figsize, dpi)
    maps = _all_error_maps(ref, ests)
    hw = ref.shape[:2]
    pix = _default_pixels(maps, hw) if pixels is None else _check_pixels(pixels, ref.shape)
    shown: dict[str, Cube] = {"reference": ref}
    spectra_cubes: dict[str, Cube] = {"reference": ref}
    if lr_hsi is not None:
        lr = _as_cube(lr_hsi, "lr_hsi")
        shown["LR HSI (nearest)"] = _upsample_nearest(lr, hw)
        spectra_cubes["LR HSI"] = lr
    spectra_cubes.update(ests)
    offset = len(shown)
    for name in ests:
        if name in shown:
            raise InputError(f"an estimate is labelled {name!r}, which names another panel; rename it")
    shown.update(ests)
    limits = _shared_limits(shown, wavelengths_nm, None, stretch)
    images = {k: false_colour(c, wavelengths_nm=wavelengths_nm, limits=limits) for k, c in shown.items()}
    vr, vs = _shared_vmax(maps, "rmse", None), _shared_vmax(maps, "sam_deg", None)
    ncols = len(shown)
    if figsize is None:
        figsize = (2.3 * ncols + 0.9, 10.4)
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        gs = fig.add_gridspec(4, ncols, height_ratios=[1.0, 1.0, 1.0, 1.15])
        for j, (name, img) in enumerate(images.items()):
            ax = fig.add_subplot(gs[0, j])
            ax.imshow(img, interpolation="nearest")
            ax.set_title(name)
            ax.set_axis_off()
            if j == 0:
                for i, (r, c) in enumerate(pix):
                    ax.plot(c, r, marker="o", markersize=7, markerfacecolor="none", markeredgecolor="white")
                    ax.annotate(str(i + 1), (c, r), xytext=(4, 4), textcoords="offset points", color="white",
                                fontsize=8, fontweight="bold")
        for row, key, cmap, label, vmax in ((1, "rmse", "viridis", "RMSE", vr), (2, "sam_deg", "inferno", "SAM", vs)):
            note = fig.add_subplot(gs[row, 0])
            note.set_axis_off()
            note.text(0.5, 0.5, "per-pixel\n" + ("RMSE over bands" if key == "rmse" else "spectral angle"),
                      ha="center", va="center", transform=note.transAxes)
            axes = [fig.add_subplot(gs[row, offset + j]) for j in range(len(ests))]
            _draw_error_row(fig, axes, maps, key, vmax, cmap, label)
        sub = gs[3, :].subgridspec(1, len(pix))
        spec_axes = [fig.add_subplot(sub[0, i]) for i in range(len(pix))]
        _draw_spectra(fig, spec_axes, spectra_cubes, pix)
        return _save(fig, path, overwrite=overwrite, dpi=dpi)
