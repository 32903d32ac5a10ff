"""NumPy ``.npy`` (one array) and ``.npz`` (several named arrays) files.

``.npy`` holds only the array: the layout (``"hwb"`` H x W x B, ``"bhw"`` B x H x W, or ``"auto"``, see
:func:`hsfuse.io._common.orient`) says how to read it and the wavelengths can be passed in.

``.npz``: the cube is the array named ``variable=``, else ``cube``, else ``data``, else the only 3-D numeric
array (several -> an error listing them). Metadata keys read when present: a wavelength vector
(``wavelengths``, ``wavelengths_nm``, ``wavelengths_um``, ``wl`` ...; values below 30 without a unit
suffix are micrometres), ``fwhm``/``fwhm_nm``, ``band_names``, ``nodata``, ``units``, ``crs``, ``transform``.
:func:`write_npz` writes ``cube`` (H x W x B) + ``wavelengths_nm`` + ``fwhm_nm`` + those keys, so every
:class:`Cube` field except ``attrs`` round-trips. Files are read with ``allow_pickle=False`` (never runs code
from the file).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube, GeoInfo
from ._common import (
    Layout,
    check_layout,
    check_wavelength_count,
    fwhm_name_unit,
    is_real_numeric,
    make_cube,
    native,
    nm_factor,
    orient,
    reading,
    require_file,
    shape_str,
    wavelength_name_unit,
)
from .atomic import atomic_output

__all__ = ["read_npy", "read_npz", "write_npy", "write_npz"]

_META_KEYS = ("band_names", "nodata", "units", "crs", "transform")


def _finish(
    data: np.ndarray,
    *,
    what: str,
    layout: str,
    wavelengths: Any,
    found_wl: np.ndarray | None,
    attrs: dict[str, Any],
    **fields: Any,
) -> Cube:
    """Orient a 3-D array, attach wavelengths (user-given beat found ones), build the Cube."""
    if data.size == 0:
        raise InputError(f"{what} is empty (shape {shape_str(data.shape)}): nothing to read")
    if not is_real_numeric(data):
        raise FileFormatError(f"{what} has dtype {data.dtype}; expected real numbers")
    if data.ndim != 3:
        raise FileFormatError(
            f"{what} has shape {shape_str(data.shape)}; expected a 3-D cube (a single-band image needs a band "
            "axis: save arr[..., None])"
        )
    user = wavelengths is not None
    wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1) if user else found_wl
    n_wl = wl.shape[0] if wl is not None and wl.shape[0] in (data.shape[0], data.shape[2]) else None
    if user and n_wl is None and layout == "auto":
        raise InputError(
            f"{wl.shape[0]} wavelengths given but {what} has shape {shape_str(data.shape)}: "  # type: ignore[union-attr]
            "no axis of that length; give one wavelength per band"
        )
    cube_data, used = orient(native(data), layout, n_wavelengths=n_wl, what=what)
    attrs["layout"] = used
    wl = check_wavelength_count(wl, cube_data.shape[2], user=user, what=what, attrs=attrs)
    return make_cube(cube_data, what=what, wavelengths=wl, attrs=attrs, **fields)


def read_npy(
    path: str | os.PathLike[str], *, layout: Layout = "auto", wavelengths: Any = None, mmap: bool = False
) -> Cube:
    """Read a cube from a ``.npy`` file (``layout`` as in :func:`hsfuse.io.mat.read_mat`).

    ``mmap=True`` memory-maps the file read-only instead of loading it (large scenes); the cube's data is then
    a view of the file. ``attrs``: ``source``, ``format="npy"``, ``layout``.

    Example:
        >>> cube = read_npy("patch.npy", layout="hwb", wavelengths=np.arange(400, 710, 10))  # doctest: +SKIP
    """
    p = require_file(path)
    check_layout(layout)
    with reading(p, "NumPy .npy"):
        data = np.load(str(p), allow_pickle=False, mmap_mode="r" if mmap else None)
    if not isinstance(data, np.ndarray):
        raise FileFormatError(f"{p} is not a .npy array file")
    attrs: dict[str, Any] = {"source": str(p), "format": "npy"}
    return _finish(data, what=str(p), layout=layout, wavelengths=wavelengths, found_wl=None, attrs=attrs)


def _npz_listing(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` from the .npy headers inside the archive, without loading the arrays."""
    fmt = np.lib.format
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(str(path)) as z:
        for name in z.namelist():
            if not name.endswith(".npy"):
                continue
            with z.open(name) as fh:
                version = fmt.read_magic(fh)
                reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _fortran, dtype = reader(fh)
            out[name[:-4]] = (tuple(int(s) for s in shape), np.dtype(dtype))
    return out


def _listing_str(listing: dict[str, tuple[tuple[int, ...], np.dtype]]) -> str:
    return ", ".join(f"'{k}' ({shape_str(s)} {d})" for k, (s, d) in listing.items()) or "none"


def choose_cube(listing: dict[str, tuple[tuple[int, ...], Any]], variable: str | None, path: Path, *,
                preferred: tuple[str, ...] = ("cube", "data"), skip: Callable[[str], bool] | None = None,
                noun: str = "array") -> str:
    """The cube among a file's named arrays (``listing``: name -> (shape, dtype)): ``variable`` if given (it must
    exist), else the first of ``preferred`` present, else the only 3-D real numeric one not ``skip``-ped; the
    errors list the candidates. Shared by the npz reader and the lazy HDF5/zarr/NetCDF openers."""
    if variable is not None:
        if variable not in listing:
            raise FileFormatError(f"{path} has no {noun} {variable!r}; it holds {_listing_str(listing)}; pass "
                                  "variable=")
        return variable
    for key in preferred:
        if key in listing:
            return key
    cubes = [k for k, (s, d) in listing.items()
             if len(s) == 3 and is_real_numeric(np.empty(0, d)) and not (skip is not None and skip(k))]
    if len(cubes) == 1:
        return cubes[0]
    if len(cubes) > 1:
        shown = _listing_str({k: listing[k] for k in cubes})
        raise FileFormatError(f"{path}: ambiguous: {noun}s {shown} are all 3-D; pass variable=<name>")
    raise FileFormatError(f"{path} holds no 3-D numeric array ({noun}s: {_listing_str(listing)}); pass variable=")


def _vector_key(listing: dict[str, Any], match: Any, exclude: str) -> str | None:
    for key, (shape, dtype) in listing.items():
        if key != exclude and match(key) is not None and len(shape) == 1 and is_real_numeric(np.empty(0, dtype)):
            return key
    return None


def read_npz(
    path: str | os.PathLike[str], *, variable: str | None = None, layout: Layout = "auto", wavelengths: Any = None
) -> Cube:
    """Read a cube and its metadata from a ``.npz`` archive.

    Args:
        path: the ``.npz`` file.
        variable: key of the cube; default ``cube``, ``data``, or the only 3-D numeric array.
        layout: as in :func:`hsfuse.io.mat.read_mat`.
        wavelengths: band centres in nm, overriding any in the file.

    Returns:
        :class:`Cube`; ``attrs``: ``source``, ``format="npz"``, ``variable``, ``layout``.

    Example:
        >>> cube = read_npz("derived/houston2018.npz", variable="hsi")  # doctest: +SKIP
        >>> cube.shape, cube.wavelengths.shape  # doctest: +SKIP
        ((128, 128, 48), (48,))
    """
    p = require_file(path)
    check_layout(layout)
    with reading(p, "NumPy .npz"):
        listing = _npz_listing(p)
        key = choose_cube(listing, variable, p)
        wl_key = _vector_key(listing, wavelength_name_unit, key)
        fw_key = _vector_key(listing, fwhm_name_unit, key)
        with np.load(str(p), allow_pickle=False) as z:
            data = z[key]
            arrays = {k: z[k] for k in (wl_key, fw_key, *_META_KEYS) if k is not None and k in listing and k != key}
    what = f"{p} array {key!r}"
    attrs: dict[str, Any] = {"source": str(p), "format": "npz", "variable": key}
    found_wl = None
    wl_factor = 1.0
    if wl_key is not None:
        raw = np.asarray(arrays[wl_key], dtype=np.float64).reshape(-1)
        factor, note = nm_factor(raw, wavelength_name_unit(wl_key))
        if factor is not None:
            found_wl, wl_factor = raw * factor, factor
        attrs["wavelength_variable"] = wl_key
        if note:
            attrs["wavelength_note"] = note
    fields: dict[str, Any] = {}
    if fw_key is not None:
        unit = fwhm_name_unit(fw_key)
        fields["fwhm"] = np.asarray(arrays[fw_key], np.float64).reshape(-1) * (
            1.0 if unit == "nm" else 1e3 if unit == "um" else wl_factor
        )
    if "band_names" in arrays and arrays["band_names"].ndim == 1:
        fields["band_names"] = [str(s) for s in arrays["band_names"].tolist()]
    if "nodata" in arrays and arrays["nodata"].size == 1 and is_real_numeric(arrays["nodata"]):
        fields["nodata"] = float(arrays["nodata"].reshape(-1)[0])
    if "units" in arrays and arrays["units"].size == 1 and arrays["units"].dtype.kind == "U":
        fields["units"] = str(arrays["units"].reshape(-1)[0])
    crs = str(arrays["crs"].reshape(-1)[0]) if "crs" in arrays and arrays["crs"].dtype.kind == "U" else None
    transform = None
    if "transform" in arrays and arrays["transform"].size == 6 and is_real_numeric(arrays["transform"]):
        transform = tuple(float(v) for v in arrays["transform"].reshape(-1))
    if crs is not None or transform is not None:
        fields["geo"] = GeoInfo(crs=crs or None, transform=transform)  # type: ignore[arg-type]
    return _finish(data, what=what, layout=layout, wavelengths=wavelengths, found_wl=found_wl, attrs=attrs, **fields)


def write_npy(cube: Cube, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the cube's data (H x W x B, its dtype) to ``.npy``; metadata is not kept (use ``.npz``)."""
    if not isinstance(cube, Cube):
        raise InputError(f"write_npy takes a Cube, got {type(cube).__name__}")
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(cube.data), allow_pickle=False)
    return Path(path)


def write_npz(
    cube: Cube,
    path: str | os.PathLike[str],
    *,
    variable: str = "cube",
    overwrite: bool = False,
    compressed: bool = True,
) -> Path:
    """Write a cube and its metadata to ``.npz``.

    Keys: ``variable`` (default ``cube``; H x W x B), ``wavelengths_nm``, ``fwhm_nm``, ``band_names``,
    ``nodata``, ``units``, ``crs``, ``transform`` (each only when set). ``compressed`` uses
    ``numpy.savez_compressed``. The write is atomic.
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_npz takes a Cube, got {type(cube).__name__}")
    reserved = {"wavelengths_nm", "fwhm_nm", *_META_KEYS}
    if not variable or variable in reserved:
        raise InputError(f"npz key for the cube must be a non-empty name other than {sorted(reserved)}, got {variable!r}")
    arrays: dict[str, np.ndarray] = {variable: np.asarray(cube.data)}
    if cube.wavelengths is not None:
        arrays["wavelengths_nm"] = np.asarray(cube.wavelengths, np.float64)
    if cube.fwhm is not None:
        arrays["fwhm_nm"] = np.asarray(cube.fwhm, np.float64)
    if cube.band_names is not None:
        arrays["band_names"] = np.array([str(n) for n in cube.band_names], dtype=str)
    if cube.nodata is not None:
        arrays["nodata"] = np.array(float(cube.nodata))
    if cube.units is not None:
        arrays["units"] = np.array(str(cube.units))
    if cube.geo is not None and cube.geo.crs is not None:
        arrays["crs"] = np.array(str(cube.geo.crs))
    if cube.geo is not None and cube.geo.transform is not None:
        arrays["transform"] = np.asarray(cube.geo.transform, np.float64)
    save = np.savez_compressed if compressed else np.savez
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        save(fh, **arrays)  # type: ignore[arg-type]
    return Path(path)
