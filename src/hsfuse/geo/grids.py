"""Two images on two grids: compare them, choose the fused grid, and warp the MSI onto it lazily.

The fused product lies on the grid that **refines the HSI grid by an integer ratio**, in the HSI's CRS, cropped to
the footprint both images cover (DESIGN.md section 5). :func:`plan_grids` decides it:

1. Both images must carry a CRS and an affine transform (else one :class:`~hsfuse.errors.InputError` naming the
   image); the HSI grid must be north-up (no rotation).
2. The MSI footprint is transformed into the HSI's CRS; the HSI pixels it covers entirely form the HSI window
   (no overlap -> one error with both footprints).
3. The ratio from the pixel sizes ``q = p_HSI / p_MSI`` (the MSI's size measured in the HSI's CRS along the HSI's
   axes): ``r = round(q)`` when ``q`` is within ``tolerance`` (1 %) of an integer (30 m + 10 m -> 3; a 29.8 m
   product grid with 10 m -> 3, the MSI resampled to 9.93 m), else ``r = ceil(q)``: the MSI is resampled to a
   pixel no coarser than its own, so no MSI detail is lost (30 m + 20 m -> r = 2 and a 15 m grid: the 20 m bands
   are upsampled by 4/3; a 10 m grid (r = 3) would upsample them by 2 and fuse at a resolution the MSI does not
   have). ``ratio=`` overrides the choice.
4. The target grid: the HSI window's transform with pixel size ``p_HSI / r`` (its rows and columns start on the
   HSI pixel corners, so an HSI pixel is exactly an ``r x r`` block, whatever the MSI's offset).

:func:`warp_to_grid` resamples an image (or a mask) onto a grid chunk by chunk with ``rasterio.warp.reproject``
(GDAL), lazily (a dask task per output chunk reads only the source window it needs). Resampling per band type:
reflectance bands ``cubic`` (default; ``bilinear`` on request), classification layers and masks ``nearest``
(a class is never interpolated); pixels outside the source footprint become NaN (masks: ``True`` = unusable).
``shift`` moves the source before warping (co-registration correction, in target pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError

__all__ = ["Grid", "GridPlan", "grid_of", "plan_grids", "warp_to_grid", "Resampling"]

Resampling = Literal["nearest", "bilinear", "cubic", "lanczos", "average"]


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (WKT or ``"EPSG:n"``), affine transform ``(a, b, c, d, e, f)`` and ``(height, width)``."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]

    @property
    def pixel_size(self) -> tuple[float, float]:
        """``(x, y)`` pixel sizes (absolute, map units) of a north-up grid."""
        a, b, _, d, e, _ = self.transform
        return math.hypot(a, d), math.hypot(b, e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of a north-up grid."""
        a, _, c, _, e, f = self.transform
        h, w = self.shape
        xs, ys = (c, c + a * w), (f, f + e * h)
        return min(xs), min(ys), max(xs), max(ys)

    def affine(self) -> Any:
        from affine import Affine

        return Affine(*self.transform)

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> Grid:
        """The sub-grid of ``rows`` x ``cols`` (pixel index ranges)."""
        a, b, c, d, e, f = self.transform
        r0, c0 = rows[0], cols[0]
        return Grid(self.crs, (a, b, c + a * c0 + b * r0, d, e, f + d * c0 + e * r0),
                    (rows[1] - rows[0], cols[1] - cols[0]))

    def refined(self, ratio: int) -> Grid:
        """The grid whose ``ratio x ratio`` blocks are this grid's pixels."""
        a, b, c, d, e, f = self.transform
        return Grid(self.crs, (a / ratio, b / ratio, c, d / ratio, e / ratio, f),
                    (self.shape[0] * ratio, self.shape[1] * ratio))

    def coords(self) -> dict[str, np.ndarray]:
        """Pixel-centre ``y`` and ``x`` coordinates of a north-up grid."""
        a, _, c, _, e, f = self.transform
        h, w = self.shape
        return {"y": f + e * (np.arange(h) + 0.5), "x": c + a * (np.arange(w) + 0.5)}


def grid_of(da: Any, label: str) -> Grid:
    """The grid of a georeferenced ``(band, y, x)`` or ``(y, x)`` DataArray (rioxarray metadata)."""
    import rioxarray  # noqa: F401 - registers .rio

    try:
        crs = da.rio.crs
    except Exception:  # noqa: BLE001 - rioxarray raises several kinds when there is no spatial metadata
        crs = None
    if crs is None:
        raise InputError(f"the {label} has no coordinate reference system (CRS), so its grid cannot be compared with "
                         "the other image's; use a georeferenced product or file (GeoTIFF, ENVI map info, a product "
                         "folder), or fuse two images already on matching grids without georeferencing")
    transform = tuple(float(v) for v in da.rio.transform(recalc=False))[:6]
    epsg = crs.to_epsg()
    return Grid(f"EPSG:{epsg}" if epsg else crs.to_wkt(), transform, (int(da.shape[-2]), int(da.shape[-1])))


@dataclass(frozen=True)
class GridPlan:
    """What :func:`plan_grids` decided (module docstring).

    Attributes:
        hsi_window: ``(row0, row1, col0, col1)`` of the HSI pixels inside the common footprint.
        hsi_grid: the grid of that window; target: the fused grid (``hsi_grid`` refined by ``ratio``).
        ratio: the integer ratio; pixel_ratio: the measured ``p_HSI / p_MSI``.
        same_grid: the MSI already lies on ``target`` (no warp needed).
        reason: one sentence: the sizes, the ratio rule applied and the resampling of the MSI.
    """

    hsi_window: tuple[int, int, int, int]
    hsi_grid: Grid
    target: Grid
    ratio: int
    pixel_ratio: float
    same_grid: bool
    reason: str


def _footprint_in(grid: Grid, crs: str) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)


def plan_grids(hsi: Any, msi: Any, *, ratio: int | None = None, tolerance: float = 0.01) -> GridPlan:
    """Compare the two grids and choose the fused grid (module docstring)."""
    from rasterio.warp import transform as warp_points

    h, m = grid_of(hsi, "HSI"), grid_of(msi, "MSI")
    a, b, _, d, _, _ = h.transform
    if abs(b) > 1e-9 * abs(a) or abs(d) > 1e-9 * abs(a):
        raise InputError("the HSI grid is rotated; hsfuse fuses on north-up grids: warp the HSI to a north-up grid "
                         "first (e.g. gdalwarp)")
    left, bottom, right, top = _footprint_in(m, h.crs)
    hl, hb, hr, ht = h.bounds
    px, py = h.pixel_size
    a_, _, c_, _, e_, f_ = h.transform
    # HSI pixels entirely inside the MSI footprint (and the HSI)
    c0 = max(0, math.ceil((max(left, hl) - c_) / a_ - 1e-9))
    c1 = min(h.shape[1], math.floor((min(right, hr) - c_) / a_ + 1e-9))
    r0 = max(0, math.ceil((min(top, ht) - f_) / e_ - 1e-9))
    r1 = min(h.shape[0], math.floor((max(bottom, hb) - f_) / e_ + 1e-9))
    if c1 - c0 < 2 or r1 - r0 < 2:
        raise InputError(f"the images do not overlap: the HSI covers {hl:.6g}..{hr:.6g} x {hb:.6g}..{ht:.6g} and the "
                         f"MSI {left:.6g}..{right:.6g} x {bottom:.6g}..{top:.6g} in {h.crs} (at least 2 x 2 HSI pixels "
                         "must lie inside the MSI)")
    # the MSI's pixel size along the HSI axes, measured at the overlap's centre in the HSI's CRS
    mx, my = (c_ + a_ * (c0 + c1) / 2), (f_ + e_ * (r0 + r1) / 2)
    ma = m.affine()
    cx, cy = warp_points(h.crs, m.crs, [mx], [my])
    col, row = ~ma @ (cx[0], cy[0])
    corners = [ma @ (col, row), ma @ (col + 1, row), ma @ (col, row + 1)]
    xs, ys = warp_points(m.crs, h.crs, [p[0] for p in corners], [p[1] for p in corners])
    step = (math.hypot(xs[1] - xs[0], ys[1] - ys[0]) + math.hypot(xs[2] - xs[0], ys[2] - ys[0])) / 2
    q = px / step
    if ratio is not None:
        r = int(ratio)
        rule = f"ratio {r} as requested"
    elif abs(q - round(q)) <= tolerance * q and round(q) >= 1:
        r = int(round(q))
        rule = f"within {100 * tolerance:g} % of the integer {r}"
    else:
        r = int(math.ceil(q))
        rule = (f"not an integer: r = ceil({q:.3g}) = {r}, so the MSI is resampled to {px / r:.4g} (no coarser than "
                "its own pixel; no MSI detail is lost)")
    if r < 2:
        raise InputError(f"the HSI pixel ({px:.4g}) is not larger than the MSI pixel ({step:.4g}); nothing to fuse")
    hsi_grid = h.window((r0, r1), (c0, c1))
    target = hsi_grid.refined(r)
    same = (m.crs == target.crs and np.allclose(m.transform, target.transform, rtol=0, atol=1e-6 * px)
            and m.shape == target.shape)
    reason = (f"HSI pixel {px:.4g}, MSI pixel {step:.4g} (in {h.crs}): ratio {q:.4g}, {rule}; fused grid {target.shape[0]}"
              f" x {target.shape[1]} at {px / r:.4g} in {h.crs}, the HSI cropped to the common footprint "
              f"(rows {r0}:{r1}, columns {c0}:{c1})")
    return GridPlan((r0, r1, c0, c1), hsi_grid, target, r, q, same, reason)


def _warp_block(src: np.ndarray, src_transform: tuple[float, ...], src_crs: str, dst_transform: tuple[float, ...],
                dst_crs: str, shape: tuple[int, int], resampling: str, is_mask: bool) -> np.ndarray:
    import rasterio.warp
    from affine import Affine
    from rasterio.enums import Resampling as R

    bands = src.shape[0]
    if is_mask:
        data, fill = src.astype(np.uint8), 1
        out = np.full((bands, *shape), fill, dtype=np.uint8)
    else:
        data, fill = src.astype(np.float32), np.nan
        out = np.full((bands, *shape), np.nan, dtype=np.float32)
    rasterio.warp.reproject(data, out, src_transform=Affine(*src_transform), src_crs=src_crs,
                            dst_transform=Affine(*dst_transform), dst_crs=dst_crs, resampling=getattr(R, resampling),
                            src_nodata=fill, dst_nodata=fill, num_threads=1)
    return out.astype(bool) if is_mask else out


def _source_window(src: Grid, dst: Grid, margin: int) -> tuple[int, int, int, int] | None:
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(dst.crs, src.crs, *dst.bounds, densify_pts=11)
    inv = ~src.affine()
    cols, rows = zip(*(inv @ (x, y) for x in (left, right) for y in (bottom, top)))
    r0, r1 = max(0, math.floor(min(rows)) - margin), min(src.shape[0], math.ceil(max(rows)) + margin)
    c0, c1 = max(0, math.floor(min(cols)) - margin), min(src.shape[1], math.ceil(max(cols)) + margin)
    return None if r1 <= r0 or c1 <= c0 else (r0, r1, c0, c1)


def warp_to_grid(src: Any, grid: Grid, *, resampling: Resampling = "cubic", chunk: int = 512,
                 shift: tuple[float, float] = (0.0, 0.0), label: str = "MSI") -> Any:
    """``src`` (``(band, y, x)`` or ``(y, x)`` boolean mask DataArray) resampled onto ``grid``, lazily.

    ``shift = (dy, dx)`` in target pixels moves the source content by that much (its transform is translated)
    before warping: the co-registration correction. Returns a dask-backed DataArray on ``grid`` with ``src``'s
    band coordinates, the grid's ``y``/``x``, CRS and transform; masks stay boolean (outside the source: ``True``).
    """
    import dask.array as da
    import rioxarray  # noqa: F401
    import xarray as xr
    from dask import delayed

    is_mask = src.ndim == 2
    s = grid_of(src, label)
    dy, dx = shift
    # sample each output pixel where the content moved by (dy, dx) target pixels came from: the destination
    # transform is translated by (-dy, -dx) pixels and the result labelled with the true grid
    a, b, c, d, e, f = grid.transform
    sampled = Grid(grid.crs, (a, b, c - dx * a - dy * b, d, e, f - dx * d - dy * e), grid.shape)
    arr = src.data if is_mask else src.data
    if not isinstance(arr, da.Array):
        arr = da.from_array(np.asarray(arr), chunks=-1)
    if is_mask:
        arr = arr[None]
    bands = arr.shape[0]
    margin = 4 if resampling == "cubic" else 2
    rows = []
    H, W = grid.shape
    for y0 in range(0, H, chunk):
        row = []
        for x0 in range(0, W, chunk):
            y1, x1 = min(y0 + chunk, H), min(x0 + chunk, W)
            sub = sampled.window((y0, y1), (x0, x1))
            win = _source_window(s, sub, margin)
            dtype = bool if is_mask else np.float32
            if win is None:
                block = da.full((bands, y1 - y0, x1 - x0), True if is_mask else np.nan, dtype=dtype)
            else:
                r0, r1, c0, c1 = win
                piece = arr[:, r0:r1, c0:c1]
                src_t = s.window((r0, r1), (c0, c1)).transform
                block = da.from_delayed(delayed(_warp_block, pure=True)(piece, src_t, s.crs, sub.transform, grid.crs,
                                                                         (y1 - y0, x1 - x0), resampling, is_mask),
                                        shape=(bands, y1 - y0, x1 - x0), dtype=dtype)
            row.append(block)
        rows.append(row)
    out = da.block(rows)
    coords = grid.coords()
    if is_mask:
        result = xr.DataArray(out[0], dims=("y", "x"), coords=coords, name=getattr(src, "name", None))
    else:
        band_coords = {k: v for k, v in src.coords.items() if k == "band" or (v.dims == ("band",))}
        result = xr.DataArray(out, dims=("band", "y", "x"), coords={**band_coords, **coords}, attrs=dict(src.attrs),
                              name=src.name)
    result = result.rio.write_crs(grid.crs)
    return result.rio.write_transform(grid.affine())
