"""EMIT Level-2A surface reflectance (``EMIT_L2A_RFL_*.nc``), orthorectified lazily through its GLT: :func:`open_emit`.

Specification followed
----------------------
*EMIT Data Product User Guide* (NASA JPL, version 1.0, 2023) and the NetCDF-4 layout of the LP DAAC collections
EMITL2ARFL V001 (reflectance and mask files, ``ncei_template_version`` NCEI_NetCDF_Swath_Template_v2.0), cross-checked
against public readers of real granules (EnMAP-Box "Import EMIT L2A product" and its GLT gather, a published listing of
a V001 granule's variables and attributes).

An ``EMIT_L2A_RFL_001_<time>_<orbit>_<scene>.nc`` holds the *unprojected* swath and the lookup table to a map grid::

    reflectance                         float32 (downtrack, crosstrack, bands), _FillValue -9999
    sensor_band_parameters/wavelengths  float32 (bands), nm        ; fwhm (bands), nm ; good_wavelengths uint8 (bands)
    location/glt_x, location/glt_y      int32 (ortho_y, ortho_x): 1-based crosstrack / downtrack index of the swath
                                        pixel that fills each map pixel, 0 = no data
    location/lat, lon, elev             (downtrack, crosstrack)                              (not read)
    global attributes geotransform      GDAL order (x0, dx, rx, y0, ry, dy) of the GLT grid
                      spatial_ref       WKT of the grid's CRS (EPSG:4326)

What is read and how
--------------------
* The image is the GLT's map grid: map pixel ``(i, j)`` takes swath pixel ``(|glt_y| - 1, |glt_x| - 1)``; it is
  NaN where either GLT value is 0 and where the reflectance equals the fill value. Each output chunk reads only the
  swath rows and columns its GLT block points to (in row strips of at most 64 MB), so nothing is read until computed.
* Bands with ``good_wavelengths == 0`` (deep water-vapour absorption) are dropped; ``metadata["dropped_bands_nm"]``
  lists them. Bands are sorted by wavelength.
* CRS from ``spatial_ref`` (``"EPSG:4326"`` when rasterio identifies it; EPSG:4326 is assumed when it is absent),
  transform from ``geotransform``.
* The L2A mask file (``EMIT_L2A_MASK_*.nc``, given as ``mask_file=`` or found beside the reflectance file with the same
  granule id): its ``mask`` variable (downtrack, crosstrack, mask bands) named by ``sensor_band_parameters/
  mask_bands`` is orthorectified through the same GLT; flags selected by name (case-insensitive, so the v001 and later
  layouts both work): "Cloud flag" -> ``cloud``, "Cirrus flag" -> ``cirrus``, "Water flag" -> ``water``, "Spacecraft
  Flag" -> ``spacecraft``, "Dilated Cloud Flag" -> ``dilated_cloud``, "Aggregate Flag" -> ``aggregate``; ``True`` where
  the flag is 1. ``nodata`` is ``True`` where every band is NaN.

Assumptions
-----------
* Negative GLT values (pixels the GLT in-filled from a neighbour, in some EMIT products) are used by their absolute
  value; only 0 means no data.
* The mask file has the reflectance file's swath size (checked) and geometry (same granule; its own GLT is not read).
* The data bands of the mask file (AOD550, H2O) and ``band_mask`` are not read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FileFormatError, InputError
from ...types import GeoInfo
from .._common import nm_factor, reading, shape_str
from ..lazy import FileHandleMixin, _H5Array, spatial_chunks
from .base import Product
from .base import build_image, h5_text, mask_dataarray, nodata_mask, open_h5, sort_bands

__all__ = ["open_emit"]

SPEC = ("EMIT Data Product User Guide (NASA JPL, v1.0, 2023); EMITL2ARFL V001 NetCDF-4 layout "
        "(NCEI_NetCDF_Swath_Template_v2.0)")
DEFAULT_FILL = -9999.0
FLAGS = {"cloud flag": "cloud", "cirrus flag": "cirrus", "water flag": "water", "spacecraft flag": "spacecraft",
         "dilated cloud flag": "dilated_cloud", "aggregate flag": "aggregate"}
_WINDOW_BYTES = 64 * 2**20
_RFL_RE = re.compile(r"^EMIT_L2A_RFL_(.+)\.nc$", re.I)


def open_emit(
    path: str | os.PathLike[str],
    *,
    chunks: int | tuple[int, int] | None = None,
    mask_file: str | os.PathLike[str] | bool | None = None,
) -> Product:
    """Open an EMIT L2A reflectance granule lazily, orthorectified through its GLT, with its L2A masks.

    Args:
        path: the ``EMIT_L2A_RFL_*.nc`` file, or a folder holding exactly one.
        chunks: spatial chunk side of the map grid, ``(rows, cols)``, or ``None`` (the GLT's HDF5 chunks grouped to
            >= 512).
        mask_file: the ``EMIT_L2A_MASK_*.nc`` file; ``None`` (default) looks for the granule's mask file beside
            ``path``; ``False`` reads no mask file.

    Returns:
        :class:`~hsfuse.io.products.base.Product` with ``sensor="emit"``, ``level="L2A"``, ``kind="hsi"``: the image on
        the GLT's north-up EPSG:4326 grid (float32 reflectance, NaN = no data), good bands only, masks ``nodata`` and
        the mask file's flags. Nothing but metadata is read until computed.

    Raises:
        FileFormatError: not NetCDF-4/HDF5, truncated, not an EMIT L2A reflectance file (radiance, mask or uncertainty
        file), missing GLT or band parameters, a mask file that does not match the granule, GLT indices outside the
        swath (when computed).
        InputError: bad ``chunks`` or ``mask_file``.
    """
    spatial_chunks(chunks, (1, 1))
    p = _find_rfl(Path(path))
    fmt = "NetCDF-4 (EMIT L2A RFL)"
    with open_h5(p, fmt, "reading EMIT NetCDF-4 products") as f, reading(p, fmt):
        _check_reflectance_file(f, p)
        ds = f["reflectance"]
        swath = tuple(int(n) for n in ds.shape)
        if len(swath) != 3 or 0 in swath:
            raise FileFormatError(f"{p}: reflectance has shape {shape_str(swath)}; expected (downtrack, crosstrack, "
                                  "bands)")
        fill = _scalar(ds.attrs.get("_FillValue"), DEFAULT_FILL)
        wl, fw, good, wl_note = _band_parameters(f, p, swath[2])
        glt = _glt(f, p)
        gattrs = {str(k): v for k, v in f.attrs.items()}
    h, w = glt["shape"]
    cy, cx = spatial_chunks(chunks, (h, w), glt["chunks"])
    geo, crs_note = _geo(gattrs, p)

    keep = np.flatnonzero(good)
    if not keep.size:
        raise FileFormatError(f"{p}: every band has good_wavelengths == 0; nothing to read")
    order, dup = sort_bands(wl[keep])
    bands = keep[order]
    gx, gy = _glt_arrays(p, glt, cy, cx)
    data = _orthorectify(_SwathGather(str(p), "reflectance", swath, bands, fill), gx, gy, len(bands))
    attrs: dict[str, Any] = {"source": str(p), "format": "emit-l2a-rfl", "sensor": "emit", "level": "L2A"}
    if dup:
        attrs["duplicate_wavelengths_dropped"] = dup
    image = build_image(data, geo=geo, wavelengths=wl[bands], fwhm=None if fw is None else fw[bands],
                        band_names=[f"B{b + 1:03d}" for b in bands], what=str(p), attrs=attrs)
    masks = {"nodata": nodata_mask(image)}
    mask_path = _mask_path(p, mask_file)
    mask_meta: dict[str, Any] = {}
    if mask_path is not None:
        mask_meta = _add_flag_masks(masks, mask_path, swath, gx, gy, image)
    dropped = np.flatnonzero(~good)
    metadata = {
        "title": h5_text(gattrs.get("title")),
        "product_version": h5_text(gattrs.get("product_version")),
        "time_coverage_start": h5_text(gattrs.get("time_coverage_start")),
        "time_coverage_end": h5_text(gattrs.get("time_coverage_end")),
        "flight_line": h5_text(gattrs.get("flight_line")),
        "swath_shape": list(swath[:2]),
        "glt": "map pixel <- swath pixel (|glt_y| - 1, |glt_x| - 1); 0 = no data",
        "geotransform": [float(v) for v in np.asarray(gattrs.get("geotransform", [])).reshape(-1)] or None,
        "crs_note": crs_note,
        "fill_value": fill,
        "dropped_bands_nm": [float(wl[i]) for i in dropped],
        "dropped_bands_note": (f"{dropped.size} band(s) with good_wavelengths == 0 dropped" if dropped.size else None),
        "wavelength_note": wl_note,
        **mask_meta,
        "files": {"reflectance": p.name, **({"mask": mask_path.name} if mask_path is not None else {})},
        "specification": SPEC,
    }
    return Product(image=image, kind="hsi", sensor="emit", level="L2A", masks=masks,
                   metadata={k: v for k, v in metadata.items() if v is not None})


# ---------------------------------------------------------------------------------------------- the GLT gather


class _SwathGather(FileHandleMixin):
    """The block function of the orthorectification: ``(glt_x block, glt_y block) -> (bands, rows, cols)`` float32.

    Reads only the swath rows/columns the block needs, opens the file on first use in each process and pickles as
    its path (so ``distributed`` workers reopen it).
    """

    def __init__(self, path: str, variable: str, swath: tuple[int, ...], bands: np.ndarray, fill: float | None):
        self.path, self.variable = str(path), variable
        self.swath = tuple(int(n) for n in swath)
        self.bands = np.asarray(bands, np.intp)
        self.fill = fill
        self._init_handle()

    def _dataset(self) -> Any:
        def opener() -> Any:
            import h5py

            with reading(Path(self.path), "NetCDF-4 (EMIT)"):
                f = h5py.File(self.path, "r")
            return f, f[self.variable]

        return self._handle_for(opener)[1]

    def __call__(self, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        gx, gy = np.asarray(gx), np.asarray(gy)
        out = np.full((len(self.bands),) + gx.shape, np.nan, np.float32)
        valid = (gx != 0) & (gy != 0)
        if not valid.any():
            return out
        rows = np.abs(gy[valid]).astype(np.int64) - 1
        cols = np.abs(gx[valid]).astype(np.int64) - 1
        if rows.max() >= self.swath[0] or cols.max() >= self.swath[1]:
            raise FileFormatError(f"{self.path}: the GLT points to swath pixel ({rows.max() + 1}, {cols.max() + 1}) "
                                  f"(1-based) but the swath is {self.swath[0]} x {self.swath[1]}; GLT and "
                                  f"{self.variable} do not belong together")
        ds = self._dataset()
        vals = np.empty((rows.size, len(self.bands)), np.float32)
        per_row = (int(cols.max() - cols.min()) + 1) * self.swath[2] * 4
        step = max(1, _WINDOW_BYTES // per_row)
        r_end = int(rows.max()) + 1
        with reading(Path(self.path), "NetCDF-4 (EMIT)"):
            for s0 in range(int(rows.min()), r_end, step):
                sel = (rows >= s0) & (rows < s0 + step)
                if not sel.any():
                    continue
                c = cols[sel]
                c0, c1 = int(c.min()), int(c.max()) + 1
                win = np.asarray(ds[s0:min(s0 + step, r_end), c0:c1, :])
                vals[sel] = win[rows[sel] - s0, c - c0][:, self.bands]
        if self.fill is not None:
            vals[vals == np.float32(self.fill)] = np.nan
        out[:, valid] = vals.T
        return out

    def __dask_tokenize__(self) -> Any:
        return ("emit-gather", self.path, self.file_stamp(), self.variable, self.swath, self.bands.tolist(), self.fill)


def _glt_arrays(p: Path, glt: dict[str, Any], cy: int, cx: int) -> tuple[Any, Any]:
    import dask.array as dsa
    from dask.base import tokenize

    out = []
    for name in ("location/glt_x", "location/glt_y"):
        arr = _H5Array(str(p), name, glt["shape"], glt["dtype"])
        out.append(dsa.from_array(arr, chunks=(cy, cx), name=f"emit-{name.split('/')[-1]}-{tokenize(arr, cy, cx)}",
                                  meta=np.empty((0, 0), arr.dtype)))
    return out[0], out[1]


def _orthorectify(gather: _SwathGather, gx: Any, gy: Any, nbands: int) -> Any:
    import dask.array as dsa
    from dask.base import tokenize

    return dsa.blockwise(gather, "byx", gx, "yx", gy, "yx", new_axes={"b": nbands}, dtype=np.float32,
                         meta=np.empty((0, 0, 0), np.float32), name=f"emit-ortho-{tokenize(gather, gx, gy)}")


# ---------------------------------------------------------------------------------------------- file contents


def _find_rfl(path: Path) -> Path:
    if not path.exists():
        raise FileFormatError(f"{path} not found; check the path (current folder: {Path.cwd()})")
    if path.is_file():
        return path
    found = sorted(q for q in path.iterdir() if q.is_file() and _RFL_RE.match(q.name))
    if len(found) != 1:
        names = ", ".join(q.name for q in found) or "none"
        raise FileFormatError(f"{path}: expected one EMIT_L2A_RFL_*.nc file, found {names}; pass the file")
    return found[0]


def _check_reflectance_file(f: Any, p: Path) -> None:
    if "reflectance" in f:
        return
    if "radiance" in f:
        raise FileFormatError(f"{p} is an EMIT L1B radiance file; open_emit reads L2A reflectance (EMIT_L2A_RFL_*.nc)")
    if "mask" in f:
        raise FileFormatError(f"{p} is an EMIT L2A mask file; open the EMIT_L2A_RFL_*.nc beside it (its mask file is "
                              "found automatically, or give mask_file=)")
    if "reflectance_uncertainty" in f:
        raise FileFormatError(f"{p} is an EMIT L2A reflectance uncertainty file; open the EMIT_L2A_RFL_*.nc instead")
    names = ", ".join(sorted(str(k) for k in f.keys())) or "nothing"
    raise FileFormatError(f"{p} is not an EMIT L2A reflectance file: no 'reflectance' variable (it holds {names})")


def _band_parameters(f: Any, p: Path, nb: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str | None]:
    grp = "sensor_band_parameters"
    if f"{grp}/wavelengths" not in f:
        raise FileFormatError(f"{p}: {grp}/wavelengths missing; band centres unknown")
    var = f[f"{grp}/wavelengths"]
    raw = np.asarray(var[()], np.float64).reshape(-1)
    units = h5_text(var.attrs.get("units"))
    factor, note = nm_factor(raw, units)
    if factor is None or raw.size != nb:
        raise FileFormatError(f"{p}: {grp}/wavelengths has {raw.size} values in {units!r} "
                              f"for {nb} bands")
    wl = raw * factor
    fw = None
    if f"{grp}/fwhm" in f:
        fw = np.asarray(f[f"{grp}/fwhm"][()], np.float64).reshape(-1) * factor
        if fw.size != nb:
            raise FileFormatError(f"{p}: {grp}/fwhm has {fw.size} values for {nb} bands")
    good = np.ones(nb, bool)
    if f"{grp}/good_wavelengths" in f:
        g = np.asarray(f[f"{grp}/good_wavelengths"][()]).reshape(-1)
        if g.size != nb:
            raise FileFormatError(f"{p}: {grp}/good_wavelengths has {g.size} values for {nb} bands")
        good = g != 0
    return wl, fw, good, note or None


def _glt(f: Any, p: Path) -> dict[str, Any]:
    for name in ("location/glt_x", "location/glt_y"):
        if name not in f:
            raise FileFormatError(f"{p}: {name} missing; without the geometry lookup table the swath cannot be "
                                  "placed on a map grid")
    gx, gy = f["location/glt_x"], f["location/glt_y"]
    if gx.shape != gy.shape or len(gx.shape) != 2 or 0 in gx.shape:
        raise FileFormatError(f"{p}: glt_x {shape_str(gx.shape)} and glt_y {shape_str(gy.shape)} must be equal 2-D "
                              "grids")
    if gx.dtype.kind not in "iu" or gy.dtype.kind not in "iu":
        raise FileFormatError(f"{p}: the GLT holds {gx.dtype}/{gy.dtype}; expected integers")
    return {"shape": tuple(int(n) for n in gx.shape), "dtype": gx.dtype, "chunks": gx.chunks}


def _geo(gattrs: dict[str, Any], p: Path) -> tuple[GeoInfo, str | None]:
    if "geotransform" not in gattrs:
        raise FileFormatError(f"{p}: global attribute 'geotransform' missing; the GLT grid is not georeferenced")
    gt = np.asarray(gattrs["geotransform"], np.float64).reshape(-1)
    if gt.size != 6:
        raise FileFormatError(f"{p}: geotransform has {gt.size} values; expected GDAL's six")
    x0, dx, rx, y0, ry, dy = (float(v) for v in gt)
    wkt = h5_text(gattrs.get("spatial_ref"))
    note = None
    crs = "EPSG:4326"
    if wkt:
        try:
            from rasterio.crs import CRS

            code = CRS.from_wkt(wkt).to_epsg()
            crs = f"EPSG:{code}" if code else wkt
        except Exception:  # noqa: BLE001 - a WKT rasterio cannot parse: kept verbatim
            crs = wkt
    else:
        note = "no spatial_ref attribute: EPSG:4326 assumed (the EMIT GLT grid)"
    return GeoInfo(crs=crs, transform=(dx, rx, x0, ry, dy, y0)), note


def _mask_path(p: Path, mask_file: Any) -> Path | None:
    if mask_file is False:
        return None
    if mask_file is True or mask_file is None:
        m = _RFL_RE.match(p.name)
        if not m:
            return None
        exact = p.with_name(f"EMIT_L2A_MASK_{m.group(1)}.nc")
        if exact.is_file():
            return exact
        granule = m.group(1).split("_", 1)[-1]  # drop the version, keep <time>_<orbit>_<scene>
        found = sorted(q for q in p.parent.glob(f"EMIT_L2A_MASK_*_{granule}.nc") if q.is_file())
        if not found and mask_file is True:
            raise FileFormatError(f"no EMIT_L2A_MASK_*_{granule}.nc beside {p}")
        return found[0] if found else None
    if not isinstance(mask_file, (str, os.PathLike)):
        raise InputError(f"mask_file must be a path, None (look beside the reflectance file) or False, got "
                         f"{mask_file!r}")
    q = Path(mask_file)
    if not q.is_file():
        raise FileFormatError(f"mask file {q} not found")
    return q


def _add_flag_masks(masks: dict[str, Any], q: Path, swath: tuple[int, ...], gx: Any, gy: Any,
                    image: Any) -> dict[str, Any]:
    import h5py

    with reading(q, "NetCDF-4 (EMIT L2A MASK)"), h5py.File(str(q), "r") as f:
        if "mask" not in f:
            raise FileFormatError(f"{q} is not an EMIT L2A mask file: no 'mask' variable")
        shape = tuple(int(n) for n in f["mask"].shape)
        fill = _scalar(f["mask"].attrs.get("_FillValue"), DEFAULT_FILL)
        if len(shape) != 3 or shape[:2] != swath[:2]:
            raise FileFormatError(f"{q}: mask is {shape_str(shape)} but the reflectance swath is "
                                  f"{swath[0]} x {swath[1]}; it belongs to another granule")
        if "sensor_band_parameters/mask_bands" not in f:
            raise FileFormatError(f"{q}: sensor_band_parameters/mask_bands missing; the flags cannot be named")
        names = [h5_text(n) or "" for n in np.asarray(f["sensor_band_parameters/mask_bands"][()]).reshape(-1)]
    if len(names) != shape[2]:
        raise FileFormatError(f"{q}: {len(names)} mask_bands for {shape[2]} mask layers")
    chosen = [(i, FLAGS[n.strip().lower()]) for i, n in enumerate(names) if n.strip().lower() in FLAGS]
    if not chosen:
        return {"mask_flags_read": [], "mask_bands": names}
    stack = _orthorectify(_SwathGather(str(q), "mask", shape, np.array([i for i, _ in chosen]), fill), gx, gy,
                          len(chosen))
    for k, (_, name) in enumerate(chosen):
        masks[name] = mask_dataarray(stack[k] == 1, image, name)
    return {"mask_flags_read": {name: names[i] for i, name in chosen}, "mask_bands": names}


def _scalar(value: Any, default: float) -> float:
    if value is None:
        return default
    arr = np.asarray(value).reshape(-1)
    try:
        return float(arr[0]) if arr.size else default
    except (TypeError, ValueError):
        return default
