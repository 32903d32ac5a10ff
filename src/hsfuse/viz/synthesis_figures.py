"""Figures for synthetic HSI datasets: the realism report, abundance maps, false-colour previews.

Same machinery as :mod:`hsfuse.viz.figures`: :class:`matplotlib.figure.Figure` objects on the Agg canvas (no
pyplot state), style only inside :func:`matplotlib.rc_context`, PNG output written atomically, an existing
file refused unless ``overwrite=True`` (:class:`~hsfuse.errors.OutputExistsError`), and the PNG exactly
``figsize * dpi`` pixels. Each writer returns the path written.

Layout: cubes are ``H x W x B`` NumPy arrays (or :class:`~hsfuse.types.Cube`), abundances ``H x W x K``.

Example:
    >>> import tempfile, pathlib
    >>> a = np.random.default_rng(0).dirichlet(np.ones(3), size=(8, 8))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "abundances.png"
    >>> plot_abundances(a, out, names=["soil", "grass", "water"]).name
    'abundances.png'
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_positive_int
from ..errors import InputError
from ..metrics.realism import RealismReport
from ..types import Cube
from .blind_figures import _hsi_rgb_bands
from .figures import _check_output, _check_size, _check_stretch, _matplotlib, _new_figure, _save, false_colour

__all__ = ["plot_realism", "plot_abundances", "plot_previews"]

_STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7}
_REAL, _SYN = "black", "tab:orange"


# --------------------------------------------------------------------------------------------------------
# Realism report
# --------------------------------------------------------------------------------------------------------


def plot_realism(
    report: RealismReport,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    overwrite: bool = False,
    dpi: float = 100,
) -> Path:
    """Write the three-panel summary of a :class:`~hsfuse.metrics.realism.RealismReport`.

    (1) Per-band mean of the real pixels (black line, mean +- std shaded grey) and of the synthetic pixels
    (orange line, mean +- std dashed), against ``report.wavelengths_nm`` when known, else the band index.
    (2) Explained-variance ratio of each principal component, real vs synthetic (bars), titled with the
    principal angles and the captured variance. (3) Density of the spectral angle from each synthetic
    spectrum to its nearest real spectrum (orange) and the real-to-real baseline (black outline), with their
    medians as dashed lines.
    Default size ``(11, 3.2)`` inches. Returns the path written.
    """
    out = _check_output(path, overwrite)
    if not isinstance(report, RealismReport):
        raise InputError(
            f"report must be a RealismReport (from hsfuse.metrics.realism_report), got {type(report).__name__}"
        )
    if title is not None and not isinstance(title, str):
        raise InputError(f"title must be a string or None, got {title!r}")
    _check_size(figsize, dpi)
    if figsize is None:
        figsize = (11.0, 3.2 + (0.3 if title else 0.0))
    use_nm = report.wavelengths_nm is not None
    x = np.asarray(report.wavelengths_nm if use_nm else np.arange(report.bands), dtype=np.float64)
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        ax_b, ax_p, ax_s = fig.subplots(1, 3, squeeze=True)
        m, s = np.asarray(report.real_mean), np.asarray(report.real_std)
        ax_b.fill_between(x, m - s, m + s, color="grey", alpha=0.3, linewidth=0, label="real mean \u00b1 std")
        ax_b.plot(x, m, color=_REAL, linewidth=1.4, label="real mean")
        m, s = np.asarray(report.synthetic_mean), np.asarray(report.synthetic_std)
        ax_b.plot(x, m, color=_SYN, linewidth=1.2, label="synthetic mean")
        ax_b.plot(x, m - s, color=_SYN, linewidth=0.9, linestyle="--", label="synthetic mean \u00b1 std")
        ax_b.plot(x, m + s, color=_SYN, linewidth=0.9, linestyle="--")
        ax_b.set_xlabel("wavelength (nm)" if use_nm else "band index")
        ax_b.set_ylabel("value")
        ax_b.set_title(f"per-band mean \u00b1 std (mean gap {report.mean_gap:.3g})")
        ax_b.legend(loc="best", frameon=False)
        ax_b.grid(True, linewidth=0.3, alpha=0.5)

        k = len(report.real_explained)
        pcs = np.arange(1, k + 1)
        ax_p.bar(pcs - 0.2, report.real_explained, width=0.4, color=_REAL, label="real")
        ax_p.bar(pcs + 0.2, report.synthetic_explained, width=0.4, color=_SYN, label="synthetic")
        ax_p.set_xticks(pcs)
        ax_p.set_xlabel("principal component")
        ax_p.set_ylabel("explained variance ratio")
        angles = ", ".join(f"{a:.1f}" for a in report.principal_angles_deg)
        ax_p.set_title(f"PCs: angles [{angles}] deg\ncaptured variance {report.captured_variance:.3f}")
        ax_p.legend(loc="best", frameon=False)
        ax_p.grid(True, axis="y", linewidth=0.3, alpha=0.5)

        h = report.sam_hist
        edges = np.asarray(h["edges"], dtype=np.float64)
        ax_s.stairs(h["synthetic"], edges, fill=True, color=_SYN, alpha=0.6, label="synthetic to nearest real")
        ax_s.axvline(report.sam_to_real_deg["p50"], color=_SYN, linestyle="--", linewidth=1.0)
        if report.sam_real_baseline_deg is not None and len(h["baseline"]) == len(edges) - 1:
            ax_s.stairs(h["baseline"], edges, color=_REAL, linewidth=1.2, label="real to real (baseline)")
            ax_s.axvline(report.sam_real_baseline_deg["p50"], color=_REAL, linestyle="--", linewidth=1.0)
        ax_s.set_xlabel("spectral angle to nearest real spectrum (degrees)")
        ax_s.set_ylabel("density")
        ax_s.set_title("spectral shapes (dashed: medians)")
        ax_s.legend(loc="best", frameon=False)
        ax_s.grid(True, linewidth=0.3, alpha=0.5)
        if title:
            fig.suptitle(title)
        return _save(fig, out, overwrite=overwrite, dpi=dpi)


# --------------------------------------------------------------------------------------------------------
# Abundances
# --------------------------------------------------------------------------------------------------------


def _as_cube_array(x: Any, name: str) -> np.ndarray:
    """A finite float64 ``H x W x C`` array from an array or a Cube."""
    if isinstance(x, Cube):
        x = x.data
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be an H x W x C NumPy array, got {type(x).__name__}")
    if x.ndim != 3 or x.size == 0:
        raise InputError(f"{name} must be a non-empty H x W x C array (channels last), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains NaN or inf; fill those pixels before plotting")
    return x


def _grid(n: int, columns: Any) -> tuple[int, int]:
    ncols = min(n, check_positive_int(columns, "columns"))
    return math.ceil(n / ncols), ncols


def plot_abundances(
    abundances: np.ndarray,
    path: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    columns: int = 6,
    cmap: str = "viridis",
    figsize: tuple[float, float] | None = None,
    overwrite: bool = False,
    dpi: float = 100,
) -> Path:
    """Write one panel per abundance map of an ``(H, W, K)`` array, all on one 0..1 colour scale.

    Panels are titled ``names[k]`` (default ``"a1" .. "aK"``) with the map's minimum and maximum, laid out in
    rows of ``columns``. Values outside 0..1 saturate at the ends of the colour bar (marked by its arrows when
    present). Default size ``(2.2 * columns + 0.8, 2.2 * rows)`` inches. Returns the path written.
    """
    out = _check_output(path, overwrite)
    a = _as_cube_array(abundances, "abundances")
    k = a.shape[2]
    if names is None:
        labels = [f"a{i + 1}" for i in range(k)]
    else:
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or len(names) != k:
            raise InputError(f"names must be a list of {k} labels (one per abundance map), got {names!r}")
        labels = [str(n) for n in names]
    nrows, ncols = _grid(k, columns)
    _check_size(figsize, dpi)
    if figsize is None:
        figsize = (2.2 * ncols + 0.8, 2.2 * nrows)
    below, above = bool(a.min() < 0.0), bool(a.max() > 1.0)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        im = None
        for i, (ax, label) in enumerate(zip(axes, labels)):
            m = a[:, :, i]
            im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap=cmap, interpolation="nearest")
            ax.set_title(f"{label}\n[{m.min():.3g}, {m.max():.3g}]")
            ax.set_axis_off()
        for ax in axes[k:]:
            ax.set_axis_off()
        fig.colorbar(im, ax=list(axes), shrink=0.85, label="abundance", extend=extend[(below, above)])
        return _save(fig, out, overwrite=overwrite, dpi=dpi)


# --------------------------------------------------------------------------------------------------------
# Previews
# --------------------------------------------------------------------------------------------------------


def plot_previews(
    cubes: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    wavelengths_nm: Sequence[float] | None = None,
    columns: int = 4,
    stretch: Sequence[float] = (2.0, 98.0),
    figsize: tuple[float, float] | None = None,
    overwrite: bool = False,
    dpi: float = 100,
) -> Path:
    """Write false-colour previews of synthetic cubes in a grid, titled ``#i HxW``.

    Bands: with ``wavelengths_nm`` (``B`` band centres, shared by all cubes) the bands nearest 640/550/460 nm
    (:func:`~hsfuse.viz.figures.composite_bands`); otherwise a Cube's own wavelengths when it has them, else
    the bands at 3/4, 1/2 and 1/4 of the band range. Each preview is stretched on its own between the
    ``stretch`` percentiles (:func:`~hsfuse.viz.figures.false_colour`). Cubes may differ in size. Default
    size ``(2.4 * columns, 2.5 * rows)`` inches. Returns the path written.
    """
    out = _check_output(path, overwrite)
    if isinstance(cubes, (np.ndarray, Cube, str, bytes)) or not isinstance(cubes, Sequence):
        raise InputError("cubes must be a list of H x W x B arrays (wrap a single cube as [cube])")
    if len(cubes) == 0:
        raise InputError("cubes is empty; give at least one H x W x B array")
    st = _check_stretch(stretch)
    wl = None
    if wavelengths_nm is not None:
        try:
            wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"wavelengths_nm must be numbers (nm, one per band), got {wavelengths_nm!r}") from None
    images = []
    for i, c in enumerate(cubes):
        own_wl = c.wavelengths if isinstance(c, Cube) else None
        data = _as_cube_array(c, f"cubes[{i}]")
        if wl is not None and wl.size != data.shape[2]:
            raise InputError(
                f"cubes[{i}] has {data.shape[2]} bands but wavelengths_nm has {wl.size} values; give one per band"
            )
        cube = Cube(data, wavelengths=wl if wl is not None else own_wl)
        bands = None if cube.wavelengths is not None else _hsi_rgb_bands(cube)
        images.append(false_colour(cube, bands=bands, stretch=st))
    nrows, ncols = _grid(len(images), columns)
    _check_size(figsize, dpi)
    if figsize is None:
        figsize = (2.4 * ncols, 2.5 * nrows)
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, (ax, img) in enumerate(zip(axes, images)):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(f"#{i} {img.shape[0]}x{img.shape[1]}")
            ax.set_axis_off()
        for ax in axes[len(images):]:
            ax.set_axis_off()
        return _save(fig, out, overwrite=overwrite, dpi=dpi)
