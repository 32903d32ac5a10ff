"""Figures for blind operator estimation and real-pair fusion: PSF, SRF, convergence, the fused real pair.

Same machinery as :mod:`hsfuse.viz.figures`: :class:`matplotlib.figure.Figure` objects on the Agg canvas (no
pyplot state), style only inside :func:`matplotlib.rc_context`, PNG output written atomically, an existing
file refused unless ``overwrite=True`` (:class:`~hsfuse.errors.OutputExistsError`), and the PNG exactly
``figsize * dpi`` pixels. Each writer returns the path written.

Conventions: a PSF is ``(k, k)`` with its centre at ``k // 2`` (:mod:`hsfuse.physics.spatial`); an SRF is
``(m, L)``, MSI bands by HSI bands; cubes are :class:`~hsfuse.types.Cube` ``H x W x B`` (plain arrays are
accepted); pixels are ``(row, col)`` on the MSI/fused grid. PSFs and SRFs may be NumPy arrays or tensors
(e.g. :class:`~hsfuse.estimation.operators.EstimatedOperators` ``.psf`` / ``.srf``).

Example:
    >>> import tempfile, pathlib
    >>> from hsfuse.physics import gaussian_psf
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "psf.png"
    >>> plot_psf(gaussian_psf(5, sigma=1.0), path=out, true_psf=gaussian_psf(7, sigma=1.2)).name
    'psf.png'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..types import Cube, infer_ratio
from .figures import (
    _as_cube,
    _check_output,
    _check_pixels,
    _check_size,
    _check_stretch,
    _matplotlib,
    _new_figure,
    _save,
    composite_bands,
    display_bands,
    false_colour,
    stretch_limits,
)

__all__ = ["plot_psf", "plot_srf", "plot_convergence", "plot_real_pair", "pad_centred", "default_pixels"]

_STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "hatch.color": "red",
          "hatch.linewidth": 0.8}
_X_KEYS = ("iteration", "seconds", "stage")


# --------------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------------


def _as_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """A finite float64 NumPy array of ``ndim`` dimensions from an array, a tensor (detached, CPU) or a list."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    elif isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be numbers, got {x!r}") from None
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a NumPy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != ndim or x.size == 0:
        raise InputError(f"{name} must be a non-empty {ndim}-D array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} contains NaN or inf")
    return x


def _check_psf(psf: Any, name: str) -> np.ndarray:
    k = _as_array(psf, name, 2)
    if k.shape[0] != k.shape[1]:
        raise InputError(f"{name} must be a square (k, k) kernel, got shape {k.shape}")
    return k


def _check_title(title: Any) -> str | None:
    if title is not None and not isinstance(title, str):
        raise InputError(f"title must be a string or None, got {type(title).__name__}")
    return title


def pad_centred(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a ``(k, k)`` kernel to ``(size, size)`` keeping its centre ``k // 2`` at ``size // 2``.

    ``size >= k``: ``size // 2 - k // 2`` zero rows/columns before, ``size - k - before`` after, so the taps
    keep their offsets from the centre (the convention of :mod:`hsfuse.physics.spatial`).

    Example:
        >>> pad_centred(np.ones((2, 2)), 3)  # taps at offsets -1, 0 from the centre stay there
        array([[1., 1., 0.],
               [1., 1., 0.],
               [0., 0., 0.]])
    """
    k = kernel.shape[0]
    if size < k:
        raise InputError(f"cannot pad a {k}x{k} kernel to the smaller size {size}")
    before = size // 2 - k // 2
    after = size - k - before
    return np.pad(kernel, ((before, after), (before, after)))


# --------------------------------------------------------------------------------------------------------
# PSF
# --------------------------------------------------------------------------------------------------------


def _draw_kernel(fig: Any, ax: Any, k: np.ndarray, vmin: float, vmax: float, label: str, annotate: bool) -> Any:
    n = k.shape[0]
    c = n // 2
    im = ax.imshow(k, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest",
                   extent=(-c - 0.5, n - c - 0.5, n - c - 0.5, -c - 0.5))
    ax.set_title(f"{label} ({n}x{n}, sum {k.sum():.4g})")
    ax.set_xlabel("column offset from centre")
    ax.set_ylabel("row offset from centre")
    if annotate:
        mid = 0.5 * (vmin + vmax)
        for i in range(n):
            for j in range(n):
                ax.text(j - c, i - c, f"{k[i, j]:.3f}", ha="center", va="center", fontsize=6,
                        color="black" if k[i, j] > mid else "white")
    return im


def plot_psf(
    psf: Any,
    *,
    path: str | os.PathLike[str],
    true_psf: Any = None,
    title: str | None = None,
    overwrite: bool = False,
    dpi: float = 120,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Write a PSF as a heat map (taps annotated when ``k <= 9``) with its central row and column profiles.

    ``psf`` is ``(k, k)`` with centre ``c = k // 2``; axes show offsets from the centre. The profiles are
    ``psf[c, :]`` (row) and ``psf[:, c]`` (column) against the offset. With ``true_psf`` (any size ``k'``,
    centred the same way) both are zero-padded to ``max(k, k')`` keeping their centres aligned
    (:func:`pad_centred`), drawn side by side on one colour scale, and the profiles overlaid (true dashed).

    Default size ``(3.2 * panels, 3.2)`` inches, panels 2 (3 with ``true_psf``). Raises :class:`InputError`
    on a non-square, non-2-D or non-finite kernel.
    """
    out = _check_output(path, overwrite)
    est = _check_psf(psf, "psf")
    true = None if true_psf is None else _check_psf(true_psf, "true_psf")
    title = _check_title(title)
    _check_size(figsize, dpi)
    kernels = {"estimated" if true is not None else "PSF": est}
    if true is not None:
        size = max(est.shape[0], true.shape[0])
        kernels = {"estimated": pad_centred(est, size), "true": pad_centred(true, size)}
    vmin = min(0.0, min(float(k.min()) for k in kernels.values()))
    vmax = max(float(k.max()) for k in kernels.values())
    vmax = vmax if vmax > vmin else vmin + 1.0
    panels = len(kernels) + 1
    if figsize is None:
        figsize = (3.2 * panels, 3.2 + (0.3 if title else 0.0))
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        im = None
        for ax, (label, k) in zip(axes, kernels.items()):
            im = _draw_kernel(fig, ax, k, vmin, vmax, label, annotate=k.shape[0] <= 9)
        fig.colorbar(im, ax=list(axes[:-1]), shrink=0.8)
        prof = axes[-1]
        for (label, k), style in zip(kernels.items(), ("-", "--")):
            c = k.shape[0] // 2
            x = np.arange(k.shape[0]) - c
            prof.plot(x, k[c, :], style, marker="o", markersize=3, color="tab:blue", label=f"{label}: row")
            prof.plot(x, k[:, c], style, marker="s", markersize=3, color="tab:orange", label=f"{label}: column")
        prof.set_title("central profiles")
        prof.set_xlabel("offset from centre (pixels)")
        prof.grid(True, linewidth=0.3, alpha=0.5)
        prof.legend(loc="best", frameon=False)
        if title:
            fig.suptitle(title)
        return _save(fig, out, overwrite=overwrite, dpi=dpi)


# --------------------------------------------------------------------------------------------------------
# SRF
# --------------------------------------------------------------------------------------------------------


def plot_srf(
    srf: Any,
    *,
    path: str | os.PathLike[str],
    wavelengths_nm: Any = None,
    band_names: Sequence[str] | None = None,
    true_srf: Any = None,
    normalize: bool = False,
    title: str | None = None,
    overwrite: bool = False,
    dpi: float = 120,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Write an ``(m, L)`` SRF as one curve per MSI band against the HSI band centres.

    Curve ``j`` is row ``srf[j, :]`` against ``wavelengths_nm`` (``(L,)``, increasing, nm) or against the
    HSI band index when ``wavelengths_nm`` is None. ``true_srf`` (same shape) is drawn dashed in the same
    colour. With ``normalize`` each row (estimated and true) is divided by its sum first, to compare shapes
    when an estimate carries a radiometric gain (the estimators' convention); rows summing to 0 are left as
    they are. ``band_names`` (``m`` strings, default ``"band j"``) label the legend.

    Default size ``(6.0, 3.4)`` inches. Raises :class:`InputError` on mismatched shapes.
    """
    out = _check_output(path, overwrite)
    R = _as_array(srf, "srf", 2)
    m, L = R.shape
    T = None
    if true_srf is not None:
        T = _as_array(true_srf, "true_srf", 2)
        if T.shape != R.shape:
            raise InputError(f"true_srf {T.shape} and srf {R.shape} must have the same (m, L) shape")
    if wavelengths_nm is None:
        x, xlabel = np.arange(L, dtype=np.float64), "HSI band index"
    else:
        x = _as_array(wavelengths_nm, "wavelengths_nm", 1)
        if x.shape[0] != L:
            raise InputError(f"wavelengths_nm has {x.shape[0]} values but the SRF has {L} HSI bands (columns)")
        xlabel = "wavelength (nm)"
    if band_names is None:
        names = [f"band {j}" for j in range(m)]
    else:
        if isinstance(band_names, str) or not isinstance(band_names, Sequence) or len(band_names) != m:
            raise InputError(f"band_names must be {m} names (one per SRF row), got {band_names!r}")
        names = [str(n) for n in band_names]
    if not isinstance(normalize, bool):
        raise InputError(f"normalize must be True or False, got {normalize!r}")
    title = _check_title(title)
    _check_size(figsize, dpi)
    if normalize:
        R = _row_normalized(R)
        T = None if T is None else _row_normalized(T)
    if figsize is None:
        figsize = (6.0, 3.4 + (0.3 if title else 0.0))
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        ax = fig.subplots()
        cmap = matplotlib.colormaps["tab10" if m <= 10 else "turbo"]
        for j in range(m):
            colour = cmap(j) if m <= 10 else cmap(j / (m - 1))
            ax.plot(x, R[j], color=colour, linewidth=1.3, label=names[j])
            if T is not None:
                ax.plot(x, T[j], "--", color=colour, linewidth=1.0)
        if T is not None:
            ax.plot([], [], "k-", label="estimated")
            ax.plot([], [], "k--", label="true")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("weight / sum" if normalize else "weight")
        ax.grid(True, linewidth=0.3, alpha=0.5)
        ax.legend(loc="best", frameon=False, ncols=2 if m + 2 > 8 else 1)
        if title:
            ax.set_title(title)
        return _save(fig, out, overwrite=overwrite, dpi=dpi)


def _row_normalized(R: np.ndarray) -> np.ndarray:
    s = R.sum(axis=1, keepdims=True)
    return np.where(s != 0, R / np.where(s != 0, s, 1.0), R)


# --------------------------------------------------------------------------------------------------------
# Convergence
# --------------------------------------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a real number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    return float(v)


def _check_history(history: Any, x: str, keys: Any) -> tuple[np.ndarray, list[str], dict[str, np.ndarray], list]:
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence) or len(history) == 0:
        raise InputError("history must be a non-empty list of dicts (one record per logged step)")
    for i, rec in enumerate(history):
        if not isinstance(rec, Mapping):
            raise InputError(f"history[{i}] must be a dict, got {type(rec).__name__}")
    if x not in ("iteration", "seconds"):
        raise InputError(f"x must be 'iteration' or 'seconds', got {x!r}")
    xs = []
    for i, rec in enumerate(history):
        v = _number(rec.get(x))
        if v is None or not math.isfinite(v):
            raise InputError(f"history[{i}] has no finite number under {x!r}; every record needs one for x={x!r}")
        xs.append(v)
    if keys is None:
        found: list[str] = []
        for rec in history:
            for k, v in rec.items():
                if k not in _X_KEYS and k not in found and _number(v) is not None:
                    found.append(str(k))
        if not found:
            raise InputError("history holds no numeric key to plot besides iteration/seconds")
        keys = found
    elif isinstance(keys, str) or not isinstance(keys, Sequence) or len(keys) == 0:
        raise InputError(f"keys must be a non-empty list of record keys, got {keys!r}")
    series = {}
    for k in keys:
        vals = [_number(rec.get(k)) for rec in history]
        if all(v is None for v in vals):
            raise InputError(f"no record in history has a number under {k!r}")
        series[str(k)] = np.array([np.nan if v is None else v for v in vals])
    stages = [rec.get("stage") for rec in history]
    return np.asarray(xs), list(series), series, stages


def plot_convergence(
    history: Sequence[Mapping[str, Any]],
    *,
    path: str | os.PathLike[str],
    keys: Sequence[str] | None = None,
    x: Literal["iteration", "seconds"] = "iteration",
    logy: Sequence[str] = ("loss",),
    title: str | None = None,
    overwrite: bool = False,
    dpi: float = 120,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Write the optimisation history of an estimator or fusion: one subplot per key against ``x``.

    ``history`` is a list of records (dicts) such as ``{"iteration": 10, "seconds": 0.4, "stage": "psf",
    "loss": 0.02, "hsi_psnr": 41.3}``. Every record needs a number under ``x``; a record lacking a key leaves
    a gap in that key's curve. ``keys`` default to every numeric key other than ``iteration``, ``seconds``,
    ``stage``, in order of first appearance. Where ``stage`` changes between consecutive records a dotted
    vertical line is drawn at the first record of the new stage, labelled with its name. Keys listed in
    ``logy`` use a logarithmic y axis when all their values are positive.

    Layout: up to 3 subplots per row. Default size ``(3.2 * columns, 2.6 * rows)`` inches.
    """
    out = _check_output(path, overwrite)
    xs, names, series, stages = _check_history(history, x, keys)
    if isinstance(logy, str) or not isinstance(logy, Sequence):
        raise InputError(f"logy must be a list of keys, got {logy!r}")
    title = _check_title(title)
    _check_size(figsize, dpi)
    n = len(names)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    if figsize is None:
        figsize = (3.2 * ncols, 2.6 * nrows + (0.3 if title else 0.0))
    # (x, name) where a stage starts; drawn only when there is more than one stage
    bounds = [(xs[i], str(stages[i])) for i in range(len(stages)) if i == 0 or stages[i] != stages[i - 1]]
    if len(bounds) < 2:
        bounds = []
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, key in zip(axes, names):
            y = series[key]
            ok = np.isfinite(y)
            ax.plot(xs[ok], y[ok], marker="." if ok.sum() < 50 else None, linewidth=1.0)
            if key in logy and bool(np.all(y[ok] > 0)):
                ax.set_yscale("log")
            for i, (bx, name) in enumerate(bounds):
                if i > 0:
                    ax.axvline(bx, color="grey", linestyle=":", linewidth=0.9)
                ax.annotate(name, (bx, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2),
                            textcoords="offset points", va="top", fontsize=6, color="grey")
            ax.set_title(key)
            ax.set_xlabel("iteration" if x == "iteration" else "time (s)")
            ax.grid(True, linewidth=0.3, alpha=0.5)
        for ax in axes[n:]:
            ax.set_axis_off()
        if title:
            fig.suptitle(title)
        return _save(fig, out, overwrite=overwrite, dpi=dpi)


# --------------------------------------------------------------------------------------------------------
# Real pair
# --------------------------------------------------------------------------------------------------------

_RGB_NAMES = (("red", "r"), ("green", "g"), ("blue", "b"))


def _msi_rgb_bands(msi: Cube) -> tuple[int, int, int]:
    """RGB bands of the MSI: by band name (red/green/blue, r/g/b), else by wavelength, else the first three."""
    if msi.band_names is not None:
        lower = [n.strip().lower() for n in msi.band_names]
        idx = []
        for names in _RGB_NAMES:
            hit = [i for i, n in enumerate(lower) if n in names]
            idx.append(hit[0] if hit else None)
        if all(i is not None for i in idx):
            return tuple(idx)  # type: ignore[return-value]
    if msi.wavelengths is not None:
        return composite_bands(msi)
    b = msi.bands
    return (0, min(1, b - 1), min(2, b - 1))


def _hsi_rgb_bands(hsi: Cube) -> tuple[int, int, int]:
    """The cube's default composite (:func:`hsfuse.viz.figures.display_bands`)."""
    return display_bands(hsi.wavelengths, hsi.bands)[0]


def _check_mask(valid: Any, hw: tuple[int, int]) -> np.ndarray | None:
    if valid is None:
        return None
    if hasattr(valid, "detach") and hasattr(valid, "cpu"):
        valid = valid.detach().cpu().numpy()
    m = np.asarray(valid)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dtype != np.bool_ or m.shape != tuple(hw):
        raise InputError(f"valid must be a boolean {hw[0]}x{hw[1]} mask on the MSI grid (True = usable), got "
                         f"{m.dtype} {m.shape}")
    if not m.any():
        raise InputError("valid marks no pixel as usable")
    return m


def _block_all(mask: np.ndarray, r: int) -> np.ndarray:
    h, w = mask.shape[0] // r, mask.shape[1] // r
    return mask.reshape(h, r, w, r).all(axis=(1, 3))


def _repeat(x: np.ndarray, r: int) -> np.ndarray:
    return np.repeat(np.repeat(x, r, axis=0), r, axis=1)


def default_pixels(usable: np.ndarray, *, ratio: int = 1, count: int = 4) -> list[tuple[int, int]]:
    """``count`` pixels spread over the usable area: the usable pixels nearest the diagonal points.

    Targets are ``(f (H - 1), f (W - 1))`` for ``f = (i + 1) / (count + 1)``; each is moved to the nearest
    pixel (Euclidean; lowest row-major index on a tie) that is usable and, when some exist, whose whole
    ``ratio x ratio`` low-resolution block is usable (so the HSI spectrum shown is clean). Duplicates are
    dropped. ``usable`` is ``(H, W)`` boolean with at least one True.

    Example:
        >>> m = np.ones((8, 8), bool); m[:, :4] = False
        >>> default_pixels(m, count=2)
        [(2, 4), (5, 5)]
    """
    H, W = usable.shape
    cand = usable
    if ratio > 1 and H % ratio == 0 and W % ratio == 0:
        strict = _repeat(_block_all(usable, ratio), ratio)
        if strict.any():
            cand = strict
    rows, cols = np.nonzero(cand)
    out: list[tuple[int, int]] = []
    for i in range(count):
        f = (i + 1) / (count + 1)
        d = (rows - f * (H - 1)) ** 2 + (cols - f * (W - 1)) ** 2
        j = int(np.argmin(d))
        p = (int(rows[j]), int(cols[j]))
        if p not in out:
            out.append(p)
    return out


def _composite(cube: Cube, bands: tuple[int, int, int], mask: np.ndarray, stretch: tuple[float, float]) -> tuple:
    """False colour of ``cube`` with limits from the pixels in ``mask``; returns (image, limits)."""
    rgb = np.asarray(cube.data[:, :, list(bands)], dtype=np.float64)
    lim = stretch_limits(rgb, mask & np.all(np.isfinite(rgb), axis=2), stretch)
    return false_colour(cube, bands=bands, limits=lim), lim


def _outline(ax: Any, invalid: np.ndarray | None) -> None:
    """Hatch the invalid region and draw its outline (pixel centres at integer coordinates, as imshow)."""
    if invalid is None or not invalid.any():
        return
    z = invalid.astype(np.float64)
    ax.contourf(z, levels=[0.5, 1.5], colors="none", hatches=["////"])
    ax.contour(z, levels=[0.5], colors="red", linewidths=0.8)


def _mark(ax: Any, pixels: list[tuple[int, int]]) -> None:
    for i, (r, c) in enumerate(pixels):
        ax.plot(c, r, marker="o", markersize=7, markerfacecolor="none", markeredgecolor="white")
        ax.annotate(str(i + 1), (c, r), xytext=(4, 4), textcoords="offset points", color="white", fontsize=8,
                    fontweight="bold")


def plot_real_pair(
    hsi: Cube,
    msi: Cube,
    fused: Cube,
    *,
    path: str | os.PathLike[str],
    valid: Any = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    msi_bands: Sequence[int] | None = None,
    hsi_bands: Sequence[int] | None = None,
    stretch: Sequence[float] = (2.0, 98.0),
    title: str | None = None,
    overwrite: bool = False,
    dpi: float = 100,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Write the one-page view of a fused real pair: the inputs, the result, and spectra at a few pixels.

    Top row: (1) the MSI as a colour composite: ``msi_bands`` when given, else bands named red/green/blue
    (or r/g/b), else the bands nearest 640/550/460 nm when the MSI has wavelengths, else its first three
    bands; (2) the HSI false colour (``hsi_bands``, else the bands nearest 640/550/460 nm, else the bands at
    3/4, 1/2, 1/4 of its range), upsampled by nearest neighbour to the MSI size; (3) the fused cube with the
    HSI's bands and the HSI's stretch, so colours compare directly. Stretches are the ``stretch``
    percentiles over usable pixels. With ``valid`` (``(H, W)`` boolean on the MSI grid, True = usable) the
    no-data region is hatched and outlined in red on all three. Bottom row: at each pixel (numbered circles
    on the images) the fused spectrum (solid) and the HSI spectrum of the low-resolution pixel covering it,
    ``(row // r, col // r)`` (dashed), against wavelength when both cubes have wavelengths, else band index.

    ``pixels`` (``(row, col)`` on the MSI grid) default to :func:`default_pixels` (4 pixels) over the pixels
    usable in ``valid`` and valid in every cube (``Cube.valid_mask``). Shapes: ``msi`` ``H x W x m``,
    ``fused`` ``H x W x L``, ``hsi`` ``h x w x L`` with ``H = r h``, ``W = r w``. Default size
    ``(max(9, 2.4 n_pixels), 6.4)`` inches.
    """
    out = _check_output(path, overwrite)
    hsi, msi, fused = _as_cube(hsi, "hsi"), _as_cube(msi, "msi"), _as_cube(fused, "fused")
    H, W = msi.shape[:2]
    if fused.shape[:2] != (H, W):
        raise InputError(f"fused {fused.shape} must be on the MSI grid {H}x{W} (H x W x L)")
    if fused.bands != hsi.bands:
        raise InputError(f"fused has {fused.bands} bands but the HSI has {hsi.bands}; they must match")
    r = infer_ratio(hsi.shape[:2], (H, W))
    mask = _check_mask(valid, (H, W))
    usable = (np.ones((H, W), bool) if mask is None else mask) & msi.valid_mask() & fused.valid_mask()
    usable &= _repeat(hsi.valid_mask(), r)
    if not usable.any():
        raise InputError("no pixel is usable in every cube and in valid; nothing to stretch or sample")
    pix = default_pixels(usable, ratio=r) if pixels is None else _check_pixels(pixels, (H, W), "MSI grid")
    mb = _msi_rgb_bands(msi) if msi_bands is None else composite_bands(msi, bands=msi_bands)
    hb = _hsi_rgb_bands(hsi) if hsi_bands is None else composite_bands(hsi, bands=hsi_bands)
    st = _check_stretch(stretch)
    title = _check_title(title)
    _check_size(figsize, dpi)
    msi_img, _ = _composite(msi, mb, usable, st)
    lr_usable = _block_all(usable, r)  # LR pixels seeing only usable ground; else any usable ground
    if not lr_usable.any():
        lr_usable = usable.reshape(H // r, r, W // r, r).any(axis=(1, 3))
    hsi_img, lim = _composite(hsi, hb, lr_usable, st)
    fused_img = false_colour(fused, bands=hb, limits=lim)
    invalid = None if mask is None else ~mask
    use_nm = hsi.wavelengths is not None and fused.wavelengths is not None
    n = len(pix)
    if figsize is None:
        figsize = (max(9.0, 2.4 * n), 6.4 + (0.3 if title else 0.0))
    matplotlib = _matplotlib()
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure(figsize, dpi)
        gs = fig.add_gridspec(2, 1, height_ratios=[1.35, 1.0])
        top = gs[0].subgridspec(1, 3)
        for j, (label, img) in enumerate((
            (f"MSI {H}x{W}, bands {mb}", msi_img),
            (f"HSI {H // r}x{W // r} (nearest x{r}), bands {hb}", _repeat(hsi_img, r)),
            (f"fused {H}x{W}, HSI bands and stretch", fused_img),
        )):
            ax = fig.add_subplot(top[0, j])
            ax.imshow(img, interpolation="nearest")
            _outline(ax, invalid)
            _mark(ax, pix)
            ax.set_title(label)
            ax.set_axis_off()
        bottom = gs[1].subgridspec(1, n)
        for i, (row, col) in enumerate(pix):
            ax = fig.add_subplot(bottom[0, i])
            xf = fused.wavelengths if use_nm else np.arange(fused.bands)
            xh = hsi.wavelengths if use_nm else np.arange(hsi.bands)
            ax.plot(xf, np.asarray(fused.data[row, col, :], dtype=np.float64), color="black", linewidth=1.4,
                    label="fused")
            ax.plot(xh, np.asarray(hsi.data[row // r, col // r, :], dtype=np.float64), "--", color="tab:red",
                    linewidth=1.1, label="HSI (LR pixel)")
            ax.set_title(f"{i + 1}: row {row}, col {col}" + ("" if usable[row, col] else " (no data)"))
            ax.set_xlabel("wavelength (nm)" if use_nm else "band index")
            ax.grid(True, linewidth=0.3, alpha=0.5)
            if i == 0:
                ax.set_ylabel("value")
                ax.legend(loc="best", frameon=False)
        if title:
            fig.suptitle(title)
        return _save(fig, out, overwrite=overwrite, dpi=dpi)
