"""Lazy (out-of-core) image cubes: xarray ``DataArray`` s backed by ``dask.array``, opened without reading the data.

Scenes larger than memory are opened with :func:`open_lazy`; nothing is read until a chunk is computed. The
large-scene engine (:mod:`hsfuse.chunked`) and :func:`write_zarr` take this data model;
:func:`cube_to_dataarray` / :func:`dataarray_to_cube` convert to and from an in-memory :class:`~hsfuse.types.Cube`.

The data model
--------------
* dims ``("band", "y", "x")``; the dtype as stored in the file (native byte order, no scaling, no masking).
* ``band`` coordinate: the band centres in nm (float64) when known, with ``attrs["wavelength_units"] = "nm"``;
  else the integers ``0..B-1`` (and no ``wavelength_units``). Non-index coordinates on ``band`` when known:
  ``fwhm`` (nm, float64) and ``band_name`` (str).
* ``y``, ``x`` coordinates: pixel-centre map coordinates of the affine transform when it is axis-aligned
  (rioxarray's convention: ``x[j] = a (j + 1/2) + c``, ``y[i] = e (i + 1/2) + f``); else the pixel indices
  ``0..H-1``, ``0..W-1`` as float64: for images without georeferencing, and for rotated or sheared transforms,
  which 1-D coordinates cannot describe (rioxarray would build 2-D ``xc``/``yc`` arrays as large as the image).
* georeferencing through rioxarray: ``rio.write_crs`` / ``rio.write_transform`` (the ``spatial_ref`` grid-mapping
  coordinate; the transform, rotated or not, is kept exactly as its GDAL ``GeoTransform``), no-data through
  ``rio.write_nodata(value, encoded=False)`` (``attrs["_FillValue"]``). The CRS text the reader found
  (``"EPSG:n"`` or WKT) is kept verbatim in ``spatial_ref.attrs["hsfuse_crs"]``, used while it still names the
  grid mapping's CRS.
* ``attrs``: ``units`` (when known), ``source`` (the path), ``format``, and the other provenance the eager reader
  puts in ``Cube.attrs`` (``variable``, ``layout``, ``interleave``, notes, ...).
* ``name``: the variable read (``.mat``/``.h5``/``.nc``/``.zarr``/``.npz``), else ``"cube"``.
* ``chunks``: a dask array chunked ``(all bands, cy, cx)``. The openers' ``chunks=`` is an int (square chunk
  side), a ``(cy, cx)`` pair, or ``None``: the file's natural blocks (GeoTIFF tiles or strips, zarr / HDF5 /
  NetCDF chunks), grouped to at least 512 pixels a side when they are smaller, and 512 x 512 for files without
  blocks (ENVI, ``.npy``, contiguous HDF5 / NetCDF, in-memory cubes).

What is lazy
------------
==========================  ====================================================================================
file                        how it is opened
==========================  ====================================================================================
``.tif/.tiff`` (COG too)    lazy: ``rioxarray.open_rasterio(chunks=...)``; band metadata from hsfuse's tags
                            (:func:`hsfuse.io.geotiff.dataset_fields`, the rules of ``read_geotiff``)
``.hdr`` + data (ENVI)      lazy: spectral's memory map (``open_memmap``, any interleave and byte order); each
                            chunk copies its window only; header metadata as ``read_envi`` gives it
``.mat`` v7.3               lazy: the HDF5 dataset through h5py (stored transposed; variable choice, wavelength
                            variables and ``layout=`` as ``read_mat``)
``.mat`` v5/v7              **in memory**: scipy cannot read part of a variable; read by ``read_cube``, wrapped
``.h5/.hdf5/.he5``          lazy: an h5py dataset as stored (C order); ``variable=`` (else the only 3-D numeric
                            dataset), ``layout=``; band vectors and ``nodata``/``units``/``crs``/``transform``
                            from datasets or attributes named as in ``.npz`` files
``.zarr``                   lazy: ``xarray.open_zarr`` (a store written by xarray, e.g. :func:`write_zarr`), or
                            ``dask.array.from_zarr`` for a bare zarr array with hsfuse's ``.npz``-style attributes
``.nc/.nc4/.cdf`` (NetCDF)  lazy: ``xarray.open_dataset(chunks=...)``; ``variable=`` (else the only 3-D
                            variable); the CF grid mapping (``spatial_ref``, ``crs``) read by rioxarray
``.npy``                    lazy: ``np.load(mmap_mode="r")``; ``layout=``
``.npz``, images, CAVE      **in memory**: read by ``read_cube`` and wrapped (:func:`cube_to_dataarray`)
==========================  ====================================================================================

Lazy arrays over ENVI, ``.npy`` and HDF5 files are small picklable objects that open their file on first use in
each process, so a graph can be sent to ``distributed`` workers without the data.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import check_positive_int
from ..errors import FileFormatError, HsfuseError, InputError
from ..types import Cube, GeoInfo
from ._common import (
    Layout,
    check_layout,
    check_real_dtype,
    clean_band_metadata,
    fwhm_name_unit,
    import_optional,
    is_real_numeric,
    make_cube,
    native,
    nm_factor,
    reading,
    resolve_layout,
    shape_str,
    unit_factor,
    wavelength_name_unit,
)
from .atomic import atomic_output_dir, check_output_path
from .numpy_io import choose_cube

if TYPE_CHECKING:
    import xarray

__all__ = ["open_lazy", "band_info", "cube_to_dataarray", "dataarray_to_cube", "write_zarr", "describe_lazy",
           "describe_file", "spatial_chunks", "LAZY_SUFFIXES", "DEFAULT_CHUNK"]

#: Chunk side (pixels) for files without natural blocks, and the least side natural blocks are grouped to.
DEFAULT_CHUNK = 512
_DIMS = ("band", "y", "x")
_GRID = "spatial_ref"
_CRS_HINT = "hsfuse_crs"
# attrs of the data model that are not Cube.attrs
_MODEL_ATTRS = {"units", "wavelength_units", "_FillValue", "missing_value", "grid_mapping", "coordinates"}

#: Suffix -> how :func:`open_lazy` reads it (``"lazy"`` or ``"in memory"``); a folder is a zarr store or CAVE.
LAZY_SUFFIXES: dict[str, str] = {
    ".tif": "lazy", ".tiff": "lazy", ".hdr": "lazy", ".img": "lazy", ".mat": "lazy (v7.3) / in memory (v5)",
    ".h5": "lazy", ".hdf5": "lazy", ".he5": "lazy", ".zarr": "lazy", ".nc": "lazy", ".nc4": "lazy",
    ".cdf": "lazy", ".npy": "lazy", ".npz": "in memory", ".png": "in memory", ".jpg": "in memory",
    ".jpeg": "in memory", ".bmp": "in memory",
}  # fmt: skip
_FORMAT_OF = {
    ".tif": "geotiff", ".tiff": "geotiff", ".hdr": "envi", ".img": "envi", ".mat": "mat", ".h5": "hdf5",
    ".hdf5": "hdf5", ".he5": "hdf5", ".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf", ".cdf": "netcdf",
    ".npy": "npy", ".npz": "npz", ".png": "image", ".jpg": "image", ".jpeg": "image", ".bmp": "image",
}  # fmt: skip
_VARIABLE_FORMATS = ("mat", "hdf5", "zarr", "netcdf", "npz")
_LAYOUT_FORMATS = ("mat", "hdf5", "npy", "npz", "zarr")

_BAND_DIMS = {"band", "bands", "wavelength", "wavelengths", "wl", "lambda", "channel", "channels", "spectral"}
_Y_DIMS = {"y", "lat", "latitude", "northing", "row", "rows", "line", "lines"}
_X_DIMS = {"x", "lon", "longitude", "easting", "col", "cols", "column", "columns", "sample", "samples"}


# ---------------------------------------------------------------------------------------------- dependencies


def _xarray() -> Any:
    """xarray, with dask and rioxarray (its ``.rio`` accessor registered)."""
    xr = import_optional("xarray", "xarray", "lazy (out-of-core) image cubes")
    import_optional("dask.array", "dask[array]", "lazy (out-of-core) image cubes")
    import_optional("rioxarray", "rioxarray", "georeferenced lazy image cubes")
    return xr


def _dask_array() -> Any:
    return import_optional("dask.array", "dask[array]", "lazy (out-of-core) image cubes")


# ---------------------------------------------------------------------------------------------- chunks


def _grow(block: int, n: int) -> int:
    """A natural block side grouped to at least :data:`DEFAULT_CHUNK` (a multiple of the block), capped at ``n``."""
    if block <= 0:
        return min(DEFAULT_CHUNK, n)
    if block < DEFAULT_CHUNK:
        block *= -(-DEFAULT_CHUNK // block)
    return min(block, n)


def spatial_chunks(chunks: Any, hw: tuple[int, int], natural: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(cy, cx)`` from the ``chunks=`` argument, the image size and the file's natural block ``(rows, cols)``."""
    if chunks is None:
        if natural is None:
            sides = (DEFAULT_CHUNK, DEFAULT_CHUNK)
        else:
            sides = tuple(_grow(int(b), int(n)) for b, n in zip(natural, hw))  # type: ignore[assignment]
    elif isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        side = check_positive_int(chunks, "chunks")
        sides = (side, side)
    elif isinstance(chunks, (tuple, list)) and len(chunks) == 2:
        sides = (check_positive_int(chunks[0], "chunks[0] (rows)"), check_positive_int(chunks[1], "chunks[1] (cols)"))
    else:
        raise InputError(
            f"chunks must be a positive integer (square chunks), a (rows, cols) pair of positive integers, or None "
            f"(the file's natural blocks), got {chunks!r}"
        )
    return max(1, min(sides[0], int(hw[0]))), max(1, min(sides[1], int(hw[1])))


# ---------------------------------------------------------------------------------------------- lazy file arrays


class FileHandleMixin:
    """A file opened on first use in each process (under a lock) and pickled as its path, never its data, so
    ``distributed`` workers reopen it. Subclasses set ``self.path`` and call :meth:`_init_handle`."""

    path: str

    def _init_handle(self) -> None:
        self._handle: Any = None
        self._lock = threading.Lock()

    def _handle_for(self, opener: Callable[[], Any]) -> Any:
        if self._handle is None:
            with self._lock:
                if self._handle is None:
                    self._handle = opener()
        return self._handle

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def file_stamp(self) -> Any:
        """``(mtime_ns, size)`` of the file (for dask tokens: a changed file is a new array), or ``None``."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size


class _FileArray(FileHandleMixin):
    """A read-only array over a file, for ``dask.array.from_array``: opened on first use in each process, read
    one window per chunk. Pickling sends the path, never the data (``distributed`` workers reopen the file)."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: Any) -> None:
        self.path = str(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = native(np.empty(0, dtype)).dtype
        self.ndim = len(self.shape)
        self._init_handle()

    def _open(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _read(self, handle: Any, key: Any) -> np.ndarray:
        return np.array(handle[key])  # a copy of the window only (handle is a memory map)

    def __getitem__(self, key: Any) -> np.ndarray:
        return native(self._read(self._handle_for(self._open), key))

    def __dask_tokenize__(self) -> Any:
        return (type(self).__name__, self.path, self.file_stamp(), self.shape, str(self.dtype), *self._token_extra())

    def _token_extra(self) -> tuple[Any, ...]:
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, shape={self.shape}, dtype={self.dtype})"


class _EnviArray(_FileArray):
    """``(bands, lines, samples)`` of an ENVI data file, through spectral's memory map (any interleave)."""

    def _open(self) -> Any:
        from .envi import open_envi_image

        _, img = open_envi_image(self.path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return img.open_memmap(interleave="bsq", writable=False)


class _NpyArray(_FileArray):
    """A ``.npy`` array as stored, memory-mapped read-only."""

    def _open(self) -> Any:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


class _H5Array(_FileArray):
    """One HDF5 dataset as stored (a v7.3 ``.mat`` variable has MATLAB's axes reversed)."""

    def __init__(self, path: str, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        super().__init__(path, shape, dtype)
        self.name = name

    def _open(self) -> Any:
        import h5py

        f = h5py.File(self.path, "r")
        return f, f[self.name]

    def _read(self, handle: Any, key: Any) -> np.ndarray:
        return np.asarray(handle[1][key])

    def _token_extra(self) -> tuple[Any, ...]:
        return (self.name,)


def _from_file_array(arr: _FileArray, perm: tuple[int, int, int], cy: int, cx: int) -> Any:
    """Dask array ``(bands, y, x)`` of a stored 3-D array whose axes ``perm`` are (band, y, x)."""
    dsa = _dask_array()
    from dask.base import tokenize

    stored = [0, 0, 0]
    stored[perm[0]] = arr.shape[perm[0]]
    stored[perm[1]] = cy
    stored[perm[2]] = cx
    name = f"{type(arr).__name__.strip('_').lower()}-{tokenize(arr, tuple(stored))}"
    out = dsa.from_array(arr, chunks=tuple(stored), name=name, meta=np.empty((0, 0, 0), arr.dtype))
    return out.transpose(perm)


# ---------------------------------------------------------------------------------------------- building


def _axis_aligned(transform: tuple[float, ...]) -> bool:
    return transform[1] == 0.0 and transform[3] == 0.0


def _centre_start(step: float, origin: float) -> float:
    """Centre of pixel 0 (rioxarray's ``affine * Affine.translation(0.5, 0.5)``, term by term)."""
    return step * 0.5 + origin


def _pixel_coords(transform: tuple[float, ...] | None, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` coordinates: pixel-centre map coordinates (axis-aligned transform) or pixel indices."""
    if transform is None or not _axis_aligned(transform):
        return np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    a, _, c, _, e, f = transform
    x = np.arange(w) * a + _centre_start(a, c)
    y = np.arange(h) * e + _centre_start(e, f)
    return y.astype(np.float64), x.astype(np.float64)


def _write_nodata(da: Any, nodata: float, what: str) -> Any:
    value = float(nodata)
    try:
        return da.rio.write_nodata(value, encoded=False)
    except OverflowError:
        dt = np.dtype(da.dtype)
        if dt.kind == "f":
            with np.errstate(over="ignore"):
                cast = dt.type(value)
            if np.isfinite(cast):  # e.g. -9999.9 on float32 data: the pixels hold float32(-9999.9)
                return da.rio.write_nodata(cast, encoded=False)
        warnings.warn(f"{what}: nodata {value!r} cannot be held by {dt} data (no pixel can equal it); kept in "
                      "attrs['nodata_unusable'] only")
        da = da.copy(deep=False)
        da.attrs["nodata_unusable"] = value
        return da


def _georeference(da: Any, geo: GeoInfo | None, nodata: float | None, what: str) -> Any:
    if geo is not None and geo.crs is not None:
        try:
            da = da.rio.write_crs(geo.crs)
        except Exception as exc:  # noqa: BLE001 - pyproj/rasterio CRS errors of every kind
            raise InputError(f"{what}: CRS {geo.crs!r} is not one rioxarray understands ({exc}); use 'EPSG:<code>' "
                             "or WKT") from exc
        da.coords[_GRID].attrs[_CRS_HINT] = str(geo.crs)
    if geo is not None and geo.transform is not None:
        from affine import Affine

        da = da.rio.write_transform(Affine(*geo.transform))
    if nodata is not None:
        da = _write_nodata(da, nodata, what)
    return da


def _build(
    data: Any,
    *,
    what: str,
    name: str = "cube",
    wavelengths: Any = None,
    fwhm: Any = None,
    band_names: list[str] | None = None,
    geo: GeoInfo | None = None,
    nodata: float | None = None,
    units: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> Any:
    """The data model (module docstring) around a ``(bands, y, x)`` dask array."""
    xr = _xarray()
    b, h, w = (int(s) for s in data.shape)
    wl, fw, names, attrs = clean_band_metadata(
        b, what=what, wavelengths=wavelengths, fwhm=fwhm, band_names=band_names, attrs=attrs
    )
    coords: dict[str, Any] = {
        "band": ("band", np.asarray(wl, np.float64) if wl is not None else np.arange(b, dtype=np.int64)),
    }
    if fw is not None:
        coords["fwhm"] = ("band", np.asarray(fw, np.float64))
    if names is not None:
        coords["band_name"] = ("band", np.array([str(n) for n in names], dtype=str))
    ys, xs = _pixel_coords(geo.transform if geo is not None else None, h, w)
    coords["y"], coords["x"] = ("y", ys), ("x", xs)
    out_attrs = {k: v for k, v in attrs.items() if k not in _MODEL_ATTRS}
    if units is not None:
        out_attrs["units"] = str(units)
    if wl is not None:
        out_attrs["wavelength_units"] = "nm"
    da = xr.DataArray(data, dims=_DIMS, coords=coords, attrs=out_attrs, name=name)
    return _georeference(da, geo, nodata, what)


# ---------------------------------------------------------------------------------------------- reading a DataArray


def _axis_attr(da: Any, dim: Any) -> str:
    if dim not in da.coords:
        return ""
    at = da.coords[dim].attrs
    axis = str(at.get("axis", "")).upper()
    std = str(at.get("standard_name", "")).lower()
    if axis in ("X", "Y"):
        return axis
    if std in ("projection_x_coordinate", "longitude", "grid_longitude"):
        return "X"
    if std in ("projection_y_coordinate", "latitude", "grid_latitude"):
        return "Y"
    return ""


def _dims3(da: Any, what: str, error: type[HsfuseError]) -> tuple[Any, Any, Any]:
    """``(band_dim, y_dim, x_dim)`` of a 3-D DataArray, from dim names (or CF axis attributes)."""
    dims = list(da.dims)
    if len(dims) != 3:
        raise error(f"{what} has dims {tuple(dims)} (shape {shape_str(da.shape)}); expected a 3-D cube (band, y, x)")
    if tuple(dims) == _DIMS or set(dims) == set(_DIMS):
        return "band", "y", "x"
    low = {d: str(d).lower() for d in dims}
    ys = [d for d in dims if low[d] in _Y_DIMS or _axis_attr(da, d) == "Y"]
    xs = [d for d in dims if low[d] in _X_DIMS or _axis_attr(da, d) == "X"]
    if len(ys) == 1 and len(xs) == 1 and ys[0] != xs[0]:
        band = next(d for d in dims if d not in (ys[0], xs[0]))
        return band, ys[0], xs[0]
    bands = [d for d in dims if low[d] in _BAND_DIMS or wavelength_name_unit(low[d]) is not None]
    if len(bands) == 1:
        rest = [d for d in dims if d != bands[0]]
        return bands[0], rest[0], rest[1]
    raise error(f"{what} has dims {tuple(dims)}: cannot tell which is the band axis and which are y and x; name "
                "them (band, y, x)")


def _standard(da: Any, what: str, error: type[HsfuseError]) -> Any:
    """``da`` with dims renamed to and ordered as ``(band, y, x)``."""
    band, y, x = _dims3(da, what, error)
    named = wavelength_name_unit(str(band)) if band != "band" else None
    if named is not None and band in da.coords and "units" not in da.coords[band].attrs:
        # a dim named like a wavelength vector: its name is the only record of what it holds (and of the unit)
        da = da.assign_coords({band: da.coords[band].copy().assign_attrs(units=named or "unknown")})
    mapping = {old: new for old, new in zip((band, y, x), _DIMS) if old != new}
    if mapping:
        try:
            da = da.rename(mapping)
        except ValueError as exc:
            raise error(f"{what}: cannot rename dims {mapping} ({exc})") from exc
    return da.transpose(*_DIMS)


def _grid_mapping(da: Any) -> Any:
    name = da.encoding.get("grid_mapping") or da.attrs.get("grid_mapping") or _GRID
    return da.coords[name] if name in da.coords else None


def _crs_text(da: Any, gm: Any) -> str | None:
    try:
        crs = da.rio.crs
    except Exception:  # noqa: BLE001 - a grid mapping rioxarray cannot parse: no CRS
        crs = None
    if crs is None:
        return None
    hint = gm.attrs.get(_CRS_HINT) if gm is not None else None
    if hint:
        try:
            from rasterio.crs import CRS

            if CRS.from_user_input(str(hint)) == crs:
                return str(hint)
        except Exception:  # noqa: BLE001 - a stale or unparsable hint is ignored
            pass
    return str(crs.to_string())


def _coords_1d(da: Any, dim: str) -> np.ndarray | None:
    if dim in da.coords and da.coords[dim].ndim == 1 and np.issubdtype(da.coords[dim].dtype, np.number):
        return np.asarray(da.coords[dim].values, dtype=np.float64)
    return None


def _from_coords(ys: np.ndarray, xs: np.ndarray, steps: tuple[float, float] | None = None) -> tuple[float, ...] | None:
    """rioxarray's transform of regular 1-D pixel-centre coordinates (``steps`` when a side has one pixel)."""
    a = float(xs[1] - xs[0]) if len(xs) > 1 else (steps[0] if steps else None)
    e = float(ys[1] - ys[0]) if len(ys) > 1 else (steps[1] if steps else None)
    if a is None or e is None or len(xs) == 0 or len(ys) == 0:
        return None
    return (a, 0.0, float(xs[0]) - a / 2.0, 0.0, e, float(ys[0]) - e / 2.0)


def _grid_offset(values: np.ndarray, step: float, origin: float) -> int | None:
    """``k`` such that ``values`` are the pixel centres ``k, k+1, ...`` of the grid (``None`` if they are not)."""
    if len(values) == 0 or step == 0:
        return None
    start = _centre_start(step, origin)
    k = int(round((float(values[0]) - start) / step))
    expected = (np.arange(len(values)) + k) * step + start
    return k if np.array_equal(values, expected) else None


def _fit_transform(t: tuple[float, ...], ys: np.ndarray | None, xs: np.ndarray | None) -> tuple[float, ...]:
    """The grid mapping's transform moved to the DataArray's coordinates (a window or a resampling of its grid)."""
    if ys is None or xs is None or len(ys) == 0 or len(xs) == 0:
        return t
    a, b, c, d, e, f = t
    if _axis_aligned(t):
        i0, j0 = _grid_offset(xs, a, c), _grid_offset(ys, e, f)
        if i0 is not None and j0 is not None:
            return t if i0 == j0 == 0 else (a, 0.0, a * i0 + c, 0.0, e, e * j0 + f)
        return _from_coords(ys, xs, (a, e)) or t
    # rotated / sheared grids carry pixel indices: index (j, i) of the window is pixel (x0 + j sx, y0 + i sy)
    x0, y0 = float(xs[0]), float(ys[0])
    sx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    sy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0
    if (x0, y0, sx, sy) == (0.0, 0.0, 1.0, 1.0):
        return t
    ox, oy = x0 + 0.5 - 0.5 * sx, y0 + 0.5 - 0.5 * sy
    return (a * sx, b * sy, a * ox + b * oy + c, d * sx, e * sy, d * ox + e * oy + f)


def _is_index(values: np.ndarray) -> bool:
    """Pixel-index coordinates ``0, 1, 2, ...`` (the data model's coordinates of a grid without a transform)."""
    return bool(np.array_equal(values, np.arange(len(values))))


def _geo_of(da: Any) -> GeoInfo | None:
    """CRS and transform of a ``(band, y, x)`` DataArray.

    The transform is the grid mapping's ``GeoTransform`` (exactly, or moved to the window the coordinates show);
    without one, and with a CRS, it is derived from regular 1-D map coordinates as rioxarray does (CF files),
    unless they are the pixel indices ``0..n-1`` of the data model's grids without a transform.
    """
    gm = _grid_mapping(da)
    crs = _crs_text(da, gm)
    ys, xs = _coords_1d(da, "y"), _coords_1d(da, "x")
    transform: tuple[float, ...] | None = None
    gt = gm.attrs.get("GeoTransform") if gm is not None else None
    if gt is not None:
        try:
            vals = [float(v) for v in str(gt).replace(",", " ").split()]
        except ValueError:
            vals = []
        if len(vals) == 6:
            c, a, b, f, d, e = vals
            transform = _fit_transform((a, b, c, d, e, f), ys, xs)
    elif crs is not None and ys is not None and xs is not None and not (_is_index(ys) and _is_index(xs)):
        transform = _from_coords(ys, xs)  # CF grids: map coordinates and a CRS, no GeoTransform
    if crs is None and transform is None:
        return None
    return GeoInfo(crs=crs, transform=transform)  # type: ignore[arg-type]


def _nodata_of(da: Any) -> float | None:
    try:
        value = da.rio.nodata
    except (OverflowError, ValueError, TypeError):
        value = da.attrs.get("_FillValue")
    if value is None:
        return None
    arr = np.asarray(value).reshape(-1)
    return float(arr[0]) if arr.size and is_real_numeric(arr) else None


def band_info(da: Any) -> dict[str, Any]:
    """``wavelengths`` (nm) / ``fwhm`` / ``band_names`` of a lazy ``(band, y, x)`` DataArray, those it has
    (read from its coordinates and attributes only: no data is read)."""
    return _band_fields(da, "the cube", {})


def _band_fields(da: Any, what: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """``wavelengths``/``fwhm``/``band_names`` of a ``(band, y, x)`` DataArray.

    Wavelengths are the ``band`` coordinate in the unit of ``attrs["wavelength_units"]`` (the data model), or of
    the coordinate's own ``units`` attribute (CF files), or of its name (a dim named ``wavelength_um``).
    """
    out: dict[str, Any] = {}
    coord = da.coords["band"] if "band" in da.coords else None
    factor: float | None = None
    if coord is not None and np.issubdtype(coord.dtype, np.number):
        unit = da.attrs.get("wavelength_units")
        own = coord.attrs.get("units")
        named = wavelength_name_unit(str(coord.attrs.get("long_name", "")) or "") or wavelength_name_unit(
            str(coord.attrs.get("standard_name", ""))
        )
        is_wavelength = unit is not None or (own is not None and unit_factor(str(own)) is not None) or named is not None
        if unit is None and own is not None and unit_factor(str(own)) is not None:
            unit = own
        if unit is None and named:
            unit = named
        if is_wavelength:
            raw = np.asarray(coord.values, dtype=np.float64)
            factor, note = nm_factor(raw, None if unit is None else str(unit))
            if note and da.attrs.get("wavelength_units") is None:
                attrs["wavelength_note"] = note
            if factor is not None:
                out["wavelengths"] = raw * factor
    for cname, cvar in da.coords.items():
        if cname == "band" or cvar.dims != ("band",):
            continue
        if fwhm_name_unit(str(cname)) is not None and "fwhm" not in out and np.issubdtype(cvar.dtype, np.number):
            own = cvar.attrs.get("units") or fwhm_name_unit(str(cname)) or None
            f = unit_factor(str(own)) if own else None
            scale = f if f else (factor if factor else 1.0)
            out["fwhm"] = np.asarray(cvar.values, dtype=np.float64) * scale
        elif str(cname) in ("band_name", "band_names") and "band_names" not in out:
            values = np.asarray(cvar.values).tolist()
            out["band_names"] = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return out


def _fields_of(da: Any, what: str) -> dict[str, Any]:
    """Cube fields (all but ``data``) of a DataArray with dims ``(band, y, x)``."""
    attrs = {k: v for k, v in da.attrs.items() if k not in _MODEL_ATTRS}
    fields = _band_fields(da, what, attrs)
    units = _text(da.attrs["units"]) if "units" in da.attrs else None
    fields.update(geo=_geo_of(da), nodata=_nodata_of(da), units=units or None, attrs=attrs)
    return fields


# ---------------------------------------------------------------------------------------------- public: conversions


def cube_to_dataarray(cube: Cube, *, chunks: int | tuple[int, int] | None = None) -> xarray.DataArray:
    """A :class:`Cube` as the lazy data model: ``(band, y, x)`` DataArray over a dask view of ``cube.data``.

    No copy is made (the chunks are views of ``cube.data``). Wavelengths, FWHM, band names, CRS, transform,
    nodata and units go where the module docstring says; ``cube.attrs`` become ``attrs``; ``name`` is
    ``cube.attrs["variable"]`` when set, else ``"cube"``. :func:`dataarray_to_cube` is the exact inverse.

    Args:
        cube: the cube.
        chunks: spatial chunk side, ``(cy, cx)``, or ``None`` for 512 x 512.

    Example:
        >>> import numpy as np
        >>> da = cube_to_dataarray(Cube(np.zeros((13, 11, 5), np.float32), wavelengths=np.arange(5.0) + 400), chunks=4)
        >>> da.dims, da.data.chunks
        (('band', 'y', 'x'), ((5,), (4, 4, 4, 1), (4, 4, 3)))
    """
    if not isinstance(cube, Cube):
        raise InputError(f"cube_to_dataarray takes a Cube, got {type(cube).__name__}")
    dsa = _dask_array()
    data = np.moveaxis(cube.data, 2, 0)
    b, h, w = data.shape
    cy, cx = spatial_chunks(chunks, (h, w))
    arr = dsa.from_array(data, chunks=(b, cy, cx), name=False)
    name = str(cube.attrs.get("variable", "cube"))
    return _build(
        arr,
        what="cube",
        name=name,
        wavelengths=cube.wavelengths,
        fwhm=cube.fwhm,
        band_names=cube.band_names,
        geo=cube.geo,
        nodata=cube.nodata,
        units=cube.units,
        attrs=dict(cube.attrs),
    )


def dataarray_to_cube(da: xarray.DataArray) -> Cube:
    """Compute a DataArray of the data model (or any 3-D DataArray whose dims name the band, y and x axes) into a
    :class:`Cube` ``(H, W, B)``, with its wavelengths, FWHM, band names, georeferencing, nodata and units.

    The transform is the grid mapping's ``GeoTransform`` exactly, moved to the window when ``da`` is a slice of
    the grid it describes (or recomputed from the coordinates when they are not on that grid). ``attrs`` other
    than the data model's become ``Cube.attrs``. The inverse of :func:`cube_to_dataarray`.

    Raises:
        InputError: not a DataArray, not 3-D, dims that do not say which axis is which.
    """
    xr = _xarray()
    if not isinstance(da, xr.DataArray):
        raise InputError(f"dataarray_to_cube takes an xarray DataArray, got {type(da).__name__}")
    what = f"DataArray {da.name!r}" if da.name is not None else "DataArray"
    da = _standard(da, what, InputError)
    fields = _fields_of(da, what)
    values = da.data
    if hasattr(values, "dask"):
        data = np.asarray(values.transpose(1, 2, 0).compute())
    else:
        data = np.moveaxis(np.asarray(values), 0, 2)
    return make_cube(np.ascontiguousarray(data), what=what, **fields)


# ---------------------------------------------------------------------------------------------- opening files


def _lazy_supported() -> str:
    return "; ".join(f"{s} ({how})" for s, how in LAZY_SUFFIXES.items()) + "; a folder (zarr store, or CAVE in memory)"


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("zarr.json", ".zgroup", ".zarray"))


def _envi_header_beside(path: Path) -> bool:
    return any(c.is_file() for c in (path.with_suffix(".hdr"), path.with_suffix(".HDR"), Path(str(path) + ".hdr")))


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "zarr" if path.suffix.lower() == ".zarr" or _is_zarr_store(path) else "cave"
    suffix = path.suffix.lower()
    if suffix in _FORMAT_OF:
        return _FORMAT_OF[suffix]
    if _envi_header_beside(path):
        return "envi"
    raise FileFormatError(
        f"cannot tell the format of {path} from its extension {suffix!r}; open_lazy reads {_lazy_supported()}"
    )


def _open_geotiff(p: Path, chunks: Any) -> Any:
    rasterio = import_optional("rasterio", "rasterio", "reading GeoTIFF files")
    rioxarray = import_optional("rioxarray", "rioxarray", "reading GeoTIFF files lazily")
    from rasterio.errors import NotGeoreferencedWarning

    from .geotiff import dataset_fields

    with reading(p, "TIFF (rasterio/GDAL)"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(str(p)) as src:
            fields = dataset_fields(src, p)
            hw = (src.height, src.width)
            block = tuple(src.block_shapes[0])
        cy, cx = spatial_chunks(chunks, hw, block)  # type: ignore[arg-type]
        rx = rioxarray.open_rasterio(
            str(p), chunks={"band": -1, "y": cy, "x": cx}, mask_and_scale=False, parse_coordinates=False
        )
        data = rx.data
    return _build(data, what=str(p), **fields)


def _open_envi(p: Path, chunks: Any) -> Any:
    from .envi import header_fields, open_envi_image

    hdr, img = open_envi_image(p)
    fields, attrs = header_fields(img.metadata, hdr)
    shape = (int(img.nbands), int(img.nrows), int(img.ncols))
    arr = _EnviArray(str(p), shape, np.dtype(img.dtype))
    cy, cx = spatial_chunks(chunks, shape[1:])
    return _build(_from_file_array(arr, (0, 1, 2), cy, cx), what=str(hdr), attrs=attrs, **fields)


def _perm(layout: str) -> tuple[int, int, int]:
    """Axes (band, y, x) of an array stored ``H x W x B`` (``"hwb"``) or ``B x H x W`` (``"bhw"``)."""
    return (2, 0, 1) if layout == "hwb" else (0, 1, 2)


def _natural(block: tuple[int, ...] | None, perm: tuple[int, int, int]) -> tuple[int, int] | None:
    return None if not block else (int(block[perm[1]]), int(block[perm[2]]))


def _open_mat(p: Path, variable: str | None, layout: str, chunks: Any) -> Any:
    from .mat import inspect_mat

    info = inspect_mat(p, variable=variable, layout=layout)  # type: ignore[arg-type]
    if not info.hdf5:  # MAT v5/v7: scipy reads whole variables only
        return _open_in_memory(p, variable, layout, chunks)
    import h5py

    with reading(p, "MATLAB v7.3 (HDF5)"), h5py.File(str(p), "r") as f:
        ds = f[info.name]
        stored, dtype, block = tuple(ds.shape), ds.dtype, ds.chunks
    check_real_dtype(dtype, info.what)
    # stored = MATLAB's axes reversed; MATLAB H x W x B ("hwb") or B x H x W ("bhw") -> (band, y, x)
    to_matlab = (2, 1, 0)
    perm = tuple(to_matlab[i] for i in _perm(info.layout))
    hw = (stored[perm[1]], stored[perm[2]])
    cy, cx = spatial_chunks(chunks, hw, _natural(block, perm))  # type: ignore[arg-type]
    data = _from_file_array(_H5Array(str(p), info.name, stored, dtype), perm, cy, cx)  # type: ignore[arg-type]
    return _build(data, what=info.what, name=info.name, wavelengths=info.wavelengths, fwhm=info.fwhm,
                  attrs=dict(info.attrs))


def _is_band_vector(n: str) -> bool:
    base = n.rsplit("/", 1)[-1]
    return wavelength_name_unit(base) is not None or fwhm_name_unit(base) is not None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.size == 1 and arr.dtype.kind in "SUO":
        return _text(arr.reshape(-1)[0])
    return None


def _npz_style_fields(meta: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """Cube fields from ``.npz``-style keys (``wavelengths[_nm|_um]``, ``fwhm[_nm]``, ``band_names``, ``nodata``,
    ``units``, ``crs``, ``transform``) found as HDF5 datasets/attributes or zarr attributes."""
    fields: dict[str, Any] = {}
    wl_factor = 1.0
    for key, value in meta.items():
        unit = wavelength_name_unit(key)
        arr = np.asarray(value)
        if unit is not None and "wavelengths" not in fields and is_real_numeric(arr) and arr.ndim <= 2:
            raw = arr.astype(np.float64).reshape(-1)
            factor, note = nm_factor(raw, unit)
            attrs["wavelength_variable"] = key
            if note:
                attrs["wavelength_note"] = note
            if factor is not None:
                fields["wavelengths"], wl_factor = raw * factor, factor
    for key, value in meta.items():
        unit = fwhm_name_unit(key)
        arr = np.asarray(value)
        if unit is not None and "fwhm" not in fields and is_real_numeric(arr) and arr.ndim <= 2:
            scale = 1.0 if unit == "nm" else 1e3 if unit == "um" else wl_factor
            fields["fwhm"] = arr.astype(np.float64).reshape(-1) * scale
    lowered = {k.lower(): v for k, v in meta.items()}
    if "band_names" in lowered:
        names = np.asarray(lowered["band_names"]).reshape(-1).tolist()
        fields["band_names"] = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
    for key in ("nodata", "_fillvalue"):
        if key in lowered and "nodata" not in fields:
            arr = np.asarray(lowered[key]).reshape(-1)
            if arr.size == 1 and is_real_numeric(arr):
                fields["nodata"] = float(arr[0])
    if "units" in lowered and _text(lowered["units"]):
        fields["units"] = _text(lowered["units"])
    crs = _text(lowered["crs"]) if "crs" in lowered else None
    transform = None
    if "transform" in lowered:
        arr = np.asarray(lowered["transform"]).reshape(-1)
        if arr.size == 6 and is_real_numeric(arr):
            transform = tuple(float(v) for v in arr)
    if crs or transform is not None:
        fields["geo"] = GeoInfo(crs=crs or None, transform=transform)  # type: ignore[arg-type]
    return fields


def _open_hdf5(p: Path, variable: str | None, layout: str, chunks: Any) -> Any:
    h5py = import_optional("h5py", "h5py", "reading HDF5 files")
    with reading(p, "HDF5"), h5py.File(str(p), "r") as f:
        datasets: dict[str, Any] = {}
        f.visititems(lambda n, o: datasets.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        listing = {n: (tuple(int(s) for s in o.shape), o.dtype) for n, o in datasets.items()}
        name = choose_cube(listing, variable, p, preferred=(), skip=_is_band_vector, noun="variable")
        ds = datasets[name]
        what = f"{p} dataset {name!r}"
        stored, dtype, block = tuple(int(s) for s in ds.shape), ds.dtype, ds.chunks
        meta: dict[str, Any] = {}
        def group(n: str) -> str:
            return n.rsplit("/", 1)[0] if "/" in n else ""

        for n, o in sorted(datasets.items(), key=lambda item: group(item[0]) != group(name)):  # own group first
            base = n.rsplit("/", 1)[-1]
            small = o.size <= 1_000_000 and len(o.shape) <= 2
            if n != name and small and (base.lower() in ("band_names", "nodata", "units", "crs", "transform")
                                        or _is_band_vector(base)):
                meta.setdefault(base, o[()])
        meta.update({str(k): v for k, v in ds.attrs.items()})
    if len(stored) != 3:
        raise FileFormatError(f"{what} has shape {shape_str(stored)}; expected a 3-D cube")
    if 0 in stored:
        raise InputError(f"{what} is empty (shape {shape_str(stored)}): nothing to read")
    check_real_dtype(dtype, what)
    attrs: dict[str, Any] = {"source": str(p), "format": "hdf5", "variable": name}
    fields = _npz_style_fields(meta, attrs)
    wl = fields.get("wavelengths")
    n_wl = len(wl) if wl is not None and len(wl) in (stored[0], stored[2]) else None
    used = resolve_layout(stored, layout, n_wavelengths=n_wl, what=what)
    attrs["layout"] = used
    perm = _perm(used)
    cy, cx = spatial_chunks(chunks, (stored[perm[1]], stored[perm[2]]), _natural(block, perm))
    data = _from_file_array(_H5Array(str(p), name, stored, dtype), perm, cy, cx)
    return _build(data, what=what, name=name, attrs=attrs, **fields)


def _open_npy(p: Path, layout: str, chunks: Any) -> Any:
    with reading(p, "NumPy .npy"):
        mm = np.load(str(p), mmap_mode="r", allow_pickle=False)
        stored, dtype = tuple(int(s) for s in mm.shape), mm.dtype
        del mm
    what = str(p)
    if 0 in stored:
        raise InputError(f"{what} is empty (shape {shape_str(stored)}): nothing to read")
    check_real_dtype(dtype, what)
    if len(stored) != 3:
        raise FileFormatError(
            f"{what} has shape {shape_str(stored)}; expected a 3-D cube (a single-band image needs a band axis: "
            "save arr[..., None])"
        )
    used = resolve_layout(stored, layout, n_wavelengths=None, what=what)
    perm = _perm(used)
    cy, cx = spatial_chunks(chunks, (stored[perm[1]], stored[perm[2]]))
    data = _from_file_array(_NpyArray(str(p), stored, dtype), perm, cy, cx)
    return _build(data, what=what, attrs={"source": str(p), "format": "npy", "layout": used})


def _xr_listing(ds: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    return {str(n): (tuple(int(s) for s in v.shape), v.dtype) for n, v in ds.data_vars.items()}


def _xr_natural(var: Any, dims: tuple[Any, Any, Any]) -> tuple[int, int] | None:
    enc = var.encoding
    stored = enc.get("chunks") or enc.get("chunksizes")
    if stored and len(stored) == len(var.dims):
        by_dim = dict(zip(var.dims, stored))
        return int(by_dim[dims[1]]), int(by_dim[dims[2]])
    pref = enc.get("preferred_chunks") or {}
    if dims[1] in pref and dims[2] in pref and (pref[dims[1]], pref[dims[2]]) != var.shape[-2:]:
        return int(pref[dims[1]]), int(pref[dims[2]])
    return None


def _from_xarray(open_fn: Callable[[Any], Any], p: Path, fmt: str, variable: str | None, chunks: Any) -> Any:
    """A zarr group / NetCDF variable as the data model: inspect without chunks, reopen with ``(B, cy, cx)``."""
    what_fmt = {"zarr": "zarr store", "netcdf": "NetCDF"}[fmt]
    with reading(p, what_fmt):
        ds = open_fn(None)
        try:
            listing = _xr_listing(ds)
            name = choose_cube(listing, variable, p, preferred=(), skip=_is_band_vector, noun="variable")
            var = ds[name]
            what = f"{p} variable {name!r}"
            if var.ndim != 3:
                raise FileFormatError(f"{what} has dims {var.dims} (shape {shape_str(var.shape)}); expected a 3-D "
                                      "cube (band, y, x)")
            dims = _dims3(var, what, FileFormatError)
            natural = _xr_natural(var, dims)
            hw = (var.sizes[dims[1]], var.sizes[dims[2]])
        finally:
            ds.close()
        cy, cx = spatial_chunks(chunks, hw, natural)
        ds = open_fn({dims[0]: -1, dims[1]: cy, dims[2]: cx})
        var = _standard(ds[name], what, FileFormatError)
    if not hasattr(var.data, "dask"):  # pragma: no cover - xarray always gives dask with chunks=
        var = var.chunk({"band": -1, "y": cy, "x": cx})
    check_real_dtype(var.dtype, what)
    fields = _fields_of(var, what)
    fields["attrs"].update(source=str(p), format=fmt)  # the variable is the name
    data = var.data
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return _build(data, what=what, name=name, **fields)


def _open_zarr(p: Path, variable: str | None, layout: str, chunks: Any) -> Any:
    zarr = import_optional("zarr", "zarr", "reading zarr stores")
    with reading(p, "zarr store"):
        node = zarr.open(str(p), mode="r")
    if isinstance(node, zarr.Array):
        if variable is not None:
            raise InputError(f"variable= applies to zarr groups; {p} is a single zarr array")
        return _open_zarr_array(p, node, layout, chunks)
    if layout != "auto":
        raise InputError(f"layout= applies to bare zarr arrays; the variables of {p} name their dims")
    xr = _xarray()

    def open_fn(ch: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            return xr.open_zarr(str(p), chunks=ch, mask_and_scale=False, decode_coords="all", decode_times=False,
                                decode_timedelta=False, consolidated=None)

    return _from_xarray(open_fn, p, "zarr", variable, chunks)


def _open_zarr_array(p: Path, arr: Any, layout: str, chunks: Any) -> Any:
    dsa = _dask_array()
    stored, dtype = tuple(int(s) for s in arr.shape), np.dtype(arr.dtype)
    what = f"zarr array {p}"
    if len(stored) != 3:
        raise FileFormatError(f"{what} has shape {shape_str(stored)}; expected a 3-D cube")
    if 0 in stored:
        raise InputError(f"{what} is empty (shape {shape_str(stored)}): nothing to read")
    check_real_dtype(dtype, what)
    meta = dict(arr.attrs)
    attrs: dict[str, Any] = {"source": str(p), "format": "zarr"}
    fields = _npz_style_fields({k: v for k, v in meta.items() if k != "_ARRAY_DIMENSIONS"}, attrs)
    dim_names = getattr(arr.metadata, "dimension_names", None) or meta.get("_ARRAY_DIMENSIONS")
    perm: tuple[int, int, int] | None = None
    if dim_names and len(dim_names) == 3 and all(dim_names) and layout == "auto":
        xr = _xarray()
        probe = xr.DataArray(np.broadcast_to(np.zeros((), dtype), stored), dims=tuple(str(d) for d in dim_names))
        try:
            band, y, x = _dims3(probe, what, FileFormatError)
            names = [str(d) for d in dim_names]
            perm = (names.index(band), names.index(y), names.index(x))
        except FileFormatError:
            perm = None
    if perm is None:
        wl = fields.get("wavelengths")
        n_wl = len(wl) if wl is not None and len(wl) in (stored[0], stored[2]) else None
        used = resolve_layout(stored, layout, n_wavelengths=n_wl, what=what)
        attrs["layout"] = used
        perm = _perm(used)
    block = tuple(int(c) for c in arr.chunks)
    cy, cx = spatial_chunks(chunks, (stored[perm[1]], stored[perm[2]]), _natural(block, perm))
    stored_chunks = [0, 0, 0]
    stored_chunks[perm[0]], stored_chunks[perm[1]], stored_chunks[perm[2]] = stored[perm[0]], cy, cx
    with reading(p, "zarr array"):
        data = dsa.from_zarr(str(p), chunks=tuple(stored_chunks)).transpose(perm)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return _build(data, what=what, attrs=attrs, **fields)


def _open_netcdf(p: Path, variable: str | None, chunks: Any) -> Any:
    xr = _xarray()
    with open(p, "rb") as fh:
        netcdf4 = fh.read(8).startswith(b"\x89HDF")  # NetCDF-4 is HDF5 (NetCDF-3 is read by scipy)
    if netcdf4:
        try:
            import netCDF4  # noqa: F401
        except ImportError:
            import_optional("h5netcdf", "h5netcdf", "reading NetCDF-4 files")

    def open_fn(ch: Any) -> Any:
        return xr.open_dataset(str(p), chunks=ch, mask_and_scale=False, decode_coords="all", decode_times=False,
                               decode_timedelta=False)

    return _from_xarray(open_fn, p, "netcdf", variable, chunks)


def _open_in_memory(p: Path, variable: str | None, layout: str, chunks: Any) -> Any:
    from . import read_cube

    return cube_to_dataarray(read_cube(p, variable=variable, layout=layout), chunks=chunks)  # type: ignore[arg-type]


def open_lazy(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    layout: Layout = "auto",
    chunks: int | tuple[int, int] | None = None,
) -> xarray.DataArray:
    """Open an image cube file as a lazy ``(band, y, x)`` DataArray over dask: nothing is read until computed.

    The format is chosen from the path as :func:`~hsfuse.io.read_cube` does, plus ``.zarr`` (store or bare
    array), ``.nc`` (NetCDF) and ``.h5``/``.hdf5`` (HDF5); the module docstring lists what is lazy and what is
    read into memory (MAT v5, ``.npz``, images, CAVE folders). The result follows the data model of the module
    docstring: wavelengths/FWHM/band names on the ``band`` axis, pixel-centre ``y``/``x``, CRS, transform and
    nodata through rioxarray, ``units``/``source``/``format`` in ``attrs``. ``dataarray_to_cube(open_lazy(p))``
    equals ``read_cube(p)`` for the formats both read.

    Args:
        path: the file (or zarr store / CAVE folder).
        variable: the cube's variable in ``.mat``, ``.h5``, ``.nc``, ``.zarr`` (group) and ``.npz`` files;
            default: the only 3-D numeric one.
        layout: ``"hwb"``/``"bhw"``/``"auto"`` for ``.mat``, ``.h5``, ``.npy``, ``.npz`` and bare zarr arrays
            (see :func:`~hsfuse.io.read_mat`).
        chunks: spatial chunk side (int), ``(cy, cx)``, or ``None`` for the file's natural blocks (512 when it
            has none); chunks always hold every band.

    Raises:
        FileFormatError: missing, truncated or unreadable file, unknown extension (the message lists the
        supported ones), unknown or ambiguous variable (the message lists the candidates), data not 3-D.
        InputError: an option that does not apply to the format, bad ``chunks``, empty data.
        MissingDependencyError: xarray, dask, rioxarray or a format library is not installed.

    Example:
        >>> da = open_lazy("scene.tif", chunks=1024)  # doctest: +SKIP
        >>> da.sel(band=slice(450, 700)).isel(y=slice(0, 256)).mean().compute()  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p} not found; check the path (current folder: {Path.cwd()})")
    check_layout(layout)
    spatial_chunks(chunks, (1, 1))  # validate early
    fmt = _format_of(p)
    if variable is not None and fmt not in _VARIABLE_FORMATS:
        raise InputError(f"variable= applies to .mat, .h5, .nc, .zarr and .npz files only, not to {fmt} ({p})")
    if layout != "auto" and fmt not in _LAYOUT_FORMATS:
        raise InputError(f"layout= applies to .mat, .h5, .npy, .npz and bare zarr arrays only, not to {fmt} ({p})")
    _xarray()
    if fmt == "geotiff":
        return _open_geotiff(p, chunks)
    if fmt == "envi":
        return _open_envi(p, chunks)
    if fmt == "mat":
        return _open_mat(p, variable, layout, chunks)
    if fmt == "hdf5":
        return _open_hdf5(p, variable, layout, chunks)
    if fmt == "zarr":
        return _open_zarr(p, variable, layout, chunks)
    if fmt == "netcdf":
        return _open_netcdf(p, variable, chunks)
    if fmt == "npy":
        return _open_npy(p, layout, chunks)
    return _open_in_memory(p, variable, layout, chunks)


# ---------------------------------------------------------------------------------------------- writing zarr


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _clean_attrs(attrs: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Attributes zarr can store (JSON): NumPy values as Python ones, other objects as text."""
    out = {}
    for k, v in attrs.items():
        if k in keep:
            out[str(k)] = v
        else:
            out[str(k)] = json.loads(json.dumps(v, default=_jsonable, allow_nan=True))
    return out


def _regular_chunks(data: Any) -> Any:
    """A dask array zarr can store chunk for chunk: all chunks but the last of each axis equal."""
    sizes = []
    for axis, c in enumerate(data.chunks):
        if len(c) > 1 and (len(set(c[:-1])) > 1 or c[-1] > c[0]):
            sizes.append(max(c))
        else:
            sizes.append(c[0] if axis else data.shape[0])
    sizes[0] = data.shape[0]
    return data if tuple(sizes) == tuple(c[0] if c else 0 for c in data.chunks) else data.rechunk(tuple(sizes))


def write_zarr(da: xarray.DataArray, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a DataArray of the data model (lazy or not) to a zarr store, chunk by chunk; returns the path.

    The store is written by xarray (variable ``da.name``, else ``"cube"``; zarr chunks = the dask chunks, or
    ``(B, 512, 512)`` for in-memory data) with every coordinate and attribute, so :func:`open_lazy` reads it back
    identically (only ``attrs["source"]``/``["format"]`` then name the store). Nodata is the zarr fill value
    and ``_FillValue``; without nodata no fill value is declared (floats are not masked). The write is atomic
    (:func:`~hsfuse.io.atomic.atomic_output_dir`: a temporary folder renamed onto ``path``); an existing store
    is replaced only with ``overwrite=True``, and a folder that is not a zarr store never is.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false, or it is a folder that is not a zarr store.
        InputError: not a DataArray, not 3-D with named band/y/x dims, a path not ending in ``.zarr``,
        attributes or data zarr cannot store.
    """
    xr = _xarray()
    if not isinstance(da, xr.DataArray):
        raise InputError(f"write_zarr takes an xarray DataArray, got {type(da).__name__}")
    p = Path(path)
    if p.suffix.lower() != ".zarr":
        raise InputError(f"a zarr store's name must end in .zarr (open_lazy tells the format by it), got {p.name!r}")
    name = str(da.name).replace("/", "_") if da.name is not None else "cube"
    what = f"DataArray {name!r}"
    da = _standard(da, what, InputError)
    check_real_dtype(da.dtype, what)
    data = da.data
    if not hasattr(data, "dask"):
        b, h, w = da.shape
        cy, cx = spatial_chunks(None, (h, w))
        data = _dask_array().from_array(np.asarray(data), chunks=(b, cy, cx), name=False)
    data = _regular_chunks(data)
    out = da.copy(data=data)
    ds = out.to_dataset(name=name)
    for var in ds.variables.values():
        var.encoding = {}
    if _GRID in ds.coords:
        ds.variables[name].encoding["grid_mapping"] = _GRID  # the CF link GDAL and rioxarray follow
    if "band_name" in ds.coords:  # variable-length strings: zarr v3 has a spec for them, not for fixed-width ones
        ds = ds.assign_coords(band_name=("band", np.asarray(ds["band_name"].values).astype(str).astype(object)))
    if "_FillValue" not in ds[name].attrs and "_FillValue" in da.encoding and da.dtype.kind == "f":
        ds[name].attrs["_FillValue"] = np.nan  # nodata masked to NaN (rio.write_nodata(encoded=True)): NaN is nodata
    for vname, var in ds.variables.items():
        keep = ("_FillValue",) if vname == name else ()
        var.attrs = _clean_attrs(dict(var.attrs), keep)
        if "_FillValue" not in var.attrs and var.dtype.kind in "fc":
            var.encoding["_FillValue"] = None
    ds.attrs = _clean_attrs(dict(ds.attrs))
    target = check_output_path(p, overwrite=overwrite, folder=True)
    store_like = _is_zarr_store(target)
    with atomic_output_dir(target, overwrite=overwrite, replaceable=lambda _entry: store_like) as tmp:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
                ds.to_zarr(str(tmp), mode="w", consolidated=False)
        except HsfuseError:
            raise
        except (TypeError, ValueError) as exc:
            raise InputError(f"cannot write {p} as zarr: {exc}") from exc
    return target



def describe_lazy(da: Any, *, max_values: int = 2_000_000) -> str:
    """:func:`hsfuse.io.describe` of a (possibly huge) DataArray without loading it: metadata from the array, value
    statistics from every ``step``-th row and column (``step`` chosen so at most ``max_values`` values are read)."""
    import math

    from . import describe

    bands, height, width = (int(n) for n in da.shape)
    step = max(1, math.ceil(math.sqrt(bands * height * width / max_values)))
    meta = dataarray_to_cube(da[:, :1, :1])
    sample = np.moveaxis(np.asarray(da[:, ::step, ::step].values), 0, 2)
    lines = describe(meta.replace(data=sample)).splitlines()
    lines[0] = f"shape:        {height} x {width} x {bands} (H x W x B)"
    chunks = getattr(da, "chunks", None)
    if chunks:
        lines.insert(2, f"chunks:       {chunks[1][0]} x {chunks[2][0]} pixels x {chunks[0][0]} bands (read lazily)")
    if step > 1:
        lines = [line.replace(" pixels", f" sampled pixels (every {step}th row and column)", 1)
                 if line.startswith("values:") else line for line in lines]
    return "\n".join(lines)


#: formats only the lazy reader opens, and the file size above which ``describe_file`` reads lazily
LAZY_ONLY = (".zarr", ".nc", ".nc4", ".cdf", ".h5", ".hdf5", ".he5")
LAZY_ABOVE_BYTES = 512 * 2**20


def describe_file(path: str | os.PathLike[str], *, variable: str | None = None, layout: str = "auto") -> str:
    """``hsfuse info``: the summary of any readable file; large files and lazy-only formats are not loaded whole."""
    from . import describe, read_cube
    from .products import open_product, product_type

    if product_type(path) is not None:
        return open_product(path).describe()
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0
    if p.suffix.lower() in LAZY_ONLY or size > LAZY_ABOVE_BYTES:
        return describe_lazy(open_lazy(p, variable=variable, layout=layout))
    return describe(read_cube(p, variable=variable, layout=layout))
