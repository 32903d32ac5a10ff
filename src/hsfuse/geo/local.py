"""Local (non-rigid) resampling of an image already on the fused grid by a smooth per-pixel displacement.

:func:`warp_with_field` is the correction step of local co-registration: the displacement field ``d(p) = (dy, dx)``
(MSI pixels) says that the content which belongs at pixel ``p`` sits at ``p + d(p)`` in the image (the image's
content moved by ``d``, the convention of :func:`hsfuse.estimation.registration.estimate_shift`: ``+dy`` = further
down); the output puts it back,

    out(p) = image(p + d(p)),

so a constant ``d`` gives what :func:`hsfuse.geo.warp_to_grid` gives with ``shift = -d`` (up to the interpolation
kernel: cubic B-spline here, GDAL's cubic convolution there).

Computed lazily chunk by chunk (``dask.array.map_overlap``): each output chunk evaluates the field at its own pixels
and samples the chunk's input with a halo of ``ceil(max |d|)`` plus the interpolation support (and, for cubic, 8
more pixels so that the spline's prefilter sees enough of its neighbourhood: the result matches a whole-image
resampling to ~1e-4 of the local contrast). Reflectance: ``scipy.ndimage.map_coordinates`` with a cubic spline
(``order=3``); pixels whose cubic footprint touches a NaN or lies outside the image become NaN (NaNs are filled
with the nearest valid value before the prefilter so that they do not ring into their neighbours). Masks
(``(y, x)`` boolean): ``order=0`` (nearest), ``True`` (unusable) outside the image.

This module knows nothing of tie points: the field is any callable of pixel coordinates (for a
:class:`~hsfuse.estimation.registration.ShiftField`, its ``at_hr``), or arrays, or a constant pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["warp_with_field", "FieldFn"]

#: ``(rows, cols) -> (dy, dx)``: pixel coordinates (arrays that broadcast, e.g. ``(n, 1)`` and ``(1, m)``) to the
#: displacement there, in pixels of the same grid
FieldFn = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]

_PREFILTER_MARGIN = 8  # extra halo for the spline prefilter (its influence decays as 0.268^n)


def _as_field(field: Any, shape: tuple[int, int]) -> tuple[FieldFn, float | None]:
    """A callable of (rows, cols) and, when known without evaluating it, the largest |component|."""
    if callable(field):
        return field, None
    try:
        dy, dx = field
    except (TypeError, ValueError):
        raise InputError("the displacement field must be a callable (rows, cols) -> (dy, dx), or a pair (dy, dx) of "
                         "numbers or of arrays of the image's (y, x) shape") from None
    dy = np.broadcast_to(np.asarray(dy, np.float64), shape)
    dx = np.broadcast_to(np.asarray(dx, np.float64), shape)
    if not (np.isfinite(dy).all() and np.isfinite(dx).all()):
        raise InputError("the displacement field contains NaN/inf")

    def lookup(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(rows).astype(np.intp)
        c = np.asarray(cols).astype(np.intp)
        return dy[r, c], dx[r, c]

    return lookup, float(max(np.abs(dy).max(initial=0.0), np.abs(dx).max(initial=0.0)))


def _largest(field: FieldFn, shape: tuple[int, int], every: int = 8) -> float:
    """The largest |component| of ``field`` sampled every ``every`` pixels (and on the last row and column), plus
    one pixel for what lies between the samples."""
    rows = np.unique(np.r_[np.arange(0, shape[0], every), shape[0] - 1]).astype(np.float64)[:, None]
    cols = np.unique(np.r_[np.arange(0, shape[1], every), shape[1] - 1]).astype(np.float64)[None, :]
    dy, dx = field(rows, cols)
    return float(max(np.abs(dy).max(), np.abs(dx).max())) + 1.0


def _sample(block: np.ndarray, sy: np.ndarray, sx: np.ndarray, order: int, fill: float) -> np.ndarray:
    """``block`` (2-D) at the fractional coordinates ``(sy, sx)``; ``fill`` where the footprint leaves the block or
    (reflectance) touches a NaN."""
    from scipy import ndimage

    n0, n1 = block.shape
    outside = (sy < 0) | (sy > n0 - 1) | (sx < 0) | (sx > n1 - 1)
    if order == 0:
        out = ndimage.map_coordinates(block, [sy, sx], order=0, mode="nearest")
        out[outside] = fill
        return out
    bad = ~np.isfinite(block)
    if bad.all():
        return np.full(sy.shape, fill)
    data = block
    if bad.any():  # nearest valid value: no step for the prefilter to ring on
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        data = block[tuple(idx)]
    coeffs = ndimage.spline_filter(data, order=order, mode="mirror")
    out = ndimage.map_coordinates(coeffs, [sy, sx], order=order, mode="mirror", prefilter=False)
    if bad.any():
        # the spline's support at x is floor(x) - (order - 1) // 2 ... floor(x) + order // 2 + 1: the 2 x 2 of the
        # linear footprint, dilated by (order - 1) // 2 ... (order + 1) // 2 pixels
        reach = order // 2
        grown = ndimage.binary_dilation(bad, structure=np.ones((2 * reach + 1, 2 * reach + 1), bool)) if reach else bad
        touched = ndimage.map_coordinates(grown.astype(np.float64), [sy, sx], order=1, mode="constant", cval=1.0) > 0
        outside |= touched
    out[outside] = fill
    return out


def _warp_block(block: np.ndarray, *, field: FieldFn, order: int, halo: int, starts: tuple[list[int], list[int]],
                fill: float, block_id: tuple[int, ...] | None = None) -> np.ndarray:
    """One output chunk: ``block`` is the input chunk with ``halo`` pixels on each side."""
    assert block_id is not None
    y0, x0 = starts[0][block_id[1]], starts[1][block_id[2]]
    ny, nx = block.shape[1] - 2 * halo, block.shape[2] - 2 * halo
    rows = np.arange(y0, y0 + ny, dtype=np.float64)[:, None]
    cols = np.arange(x0, x0 + nx, dtype=np.float64)[None, :]
    dy, dx = field(rows, cols)
    sy = np.broadcast_to(np.asarray(dy, np.float64) + rows - (y0 - halo), (ny, nx))
    sx = np.broadcast_to(np.asarray(dx, np.float64) + cols - (x0 - halo), (ny, nx))
    out = np.empty((block.shape[0], ny, nx), dtype=block.dtype)
    for c in range(block.shape[0]):
        out[c] = _sample(block[c].astype(np.float64), sy, sx, order, fill)
    return out


def warp_with_field(image: Any, field_hr: Any, *, order: int = 3, max_displacement: float | None = None,
                    chunk: int = 512) -> Any:
    """``image`` resampled at ``p + d(p)``: the content moved by the displacement field ``d`` put back (module
    docstring), lazily.

    Args:
        image: a ``(band, y, x)`` DataArray (reflectance, NaN = no data) or a ``(y, x)`` boolean mask DataArray
            (``True`` = unusable), numpy- or dask-backed, already on the grid of the field.
        field_hr: the displacement ``(dy, dx)`` in pixels of this grid: a callable ``(rows, cols) -> (dy, dx)``
            of pixel coordinates (broadcasting ``(n, 1)`` and ``(1, m)`` arrays; e.g.
            :meth:`hsfuse.estimation.registration.ShiftField.at_hr`), a pair of ``(y, x)`` arrays, or a pair of
            numbers (a translation).
        order: spline order, 3 (cubic) for reflectance, 0 (nearest) for masks (the default for a boolean image).
        max_displacement: the largest ``|dy|``, ``|dx|`` (pixels), for the halo; default: the arrays' maximum, or
            a callable sampled every 8 pixels, plus one.
        chunk: the chunk side when ``image`` is not dask-backed (else its chunks are kept).

    Returns:
        A dask-backed DataArray with ``image``'s coordinates, attributes and dtype; NaN (masks: ``True``) where
        ``p + d(p)`` falls outside the image or, for cubic, its footprint touches a NaN.
    """
    import dask.array as da

    is_mask = image.ndim == 2
    if image.ndim not in (2, 3):
        raise InputError(f"warp_with_field takes a (band, y, x) image or a (y, x) mask, got dims {image.dims}")
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 5:
        raise InputError(f"order must be an integer spline order in 0..5, got {order!r}")
    if is_mask:
        order = 0
    shape = (int(image.shape[-2]), int(image.shape[-1]))
    fn, known = _as_field(field_hr, shape)
    if max_displacement is None:
        max_displacement = known if known is not None else _largest(fn, shape)
    if not (isinstance(max_displacement, (int, float)) and math.isfinite(max_displacement) and max_displacement >= 0):
        raise InputError(f"max_displacement must be a non-negative number of pixels, got {max_displacement!r}")
    halo = int(math.ceil(max_displacement)) + order // 2 + 1 + (_PREFILTER_MARGIN if order > 1 else 0)

    data = image.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(chunk, chunk) if is_mask else (-1, chunk, chunk))
    if is_mask:
        arr, fill, dtype = data[None].astype(np.float32), 1.0, np.float32
    else:
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        arr, fill, dtype = data, np.nan, data.dtype
    # every chunk at least as large as the halo (map_overlap takes its halo from the neighbouring chunks)
    spatial = []
    for axis in (1, 2):
        sizes = list(arr.chunks[axis])
        while len(sizes) > 1 and min(sizes) < halo:
            i = int(np.argmin(sizes))
            j = i - 1 if i == len(sizes) - 1 or (i > 0 and sizes[i - 1] < sizes[i + 1]) else i + 1
            sizes[min(i, j)] = sizes[i] + sizes[j]
            del sizes[max(i, j)]
        spatial.append(tuple(sizes))
    arr = arr.rechunk((arr.chunks[0], *spatial))
    starts = tuple([int(v) for v in np.cumsum((0, *arr.chunks[axis]))[:-1]] for axis in (1, 2))
    out = arr.map_overlap(_warp_block, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: fill, 2: fill},
                          trim=False, dtype=dtype, chunks=arr.chunks, field=fn, order=order, halo=halo, starts=starts,
                          fill=fill, meta=np.array((), dtype=dtype))
    if is_mask:
        return image.copy(data=out[0] > 0.5)
    return image.copy(data=out)
