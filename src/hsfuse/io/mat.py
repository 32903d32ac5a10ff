"""MATLAB ``.mat`` files: v5/v7 (``scipy.io``) and v7.3 (HDF5, ``h5py``).

MATLAB stores arrays column-major. scipy returns them in MATLAB's index order (an ``H x W x B`` MATLAB array
reads as ``(H, W, B)``). In v7.3 files the HDF5 dataset of an ``H x W x B`` array has shape ``(B, W, H)``
(reversed axes, same bytes): it is transposed back here, so both versions give MATLAB's index order.

Which variable: the one named by ``variable=``, else the only 3-D real numeric array in the file, else an
error listing the candidates. A variable named like a wavelength vector (``wavelength(s)``, ``wl``,
``wavelengths_nm``, ``wavelengths_um``, ``band_centers`` ..., case-insensitive) with one value per band
becomes :attr:`Cube.wavelengths`; a ``_nm``/``_um`` suffix fixes the unit, otherwise values all below 30 are
read as micrometres and converted to nm. ``fwhm``/``fwhm_nm``/``bandwidths`` likewise become
:attr:`Cube.fwhm` (without a unit suffix, in the wavelength vector's unit; nm if there is none).

Layout: see :func:`hsfuse.io._common.orient` (``"hwb"`` = H x W x B, the MATLAB usual; ``"bhw"`` = B x H x W;
``"auto"`` decides and refuses when it cannot).

Zhu-format unmixing files (Jasper Ridge, Samson, Urban: a ``bands x pixels`` 2-D matrix) are not cubes:
reading them gives an error that says how to reshape them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube
from ._common import (
    Layout,
    check_layout,
    check_real_dtype,
    check_wavelength_count,
    fwhm_name_unit,
    make_cube,
    native,
    nm_factor,
    orient,
    reading,
    resolve_layout,
    require_file,
    shape_str,
    wavelength_name_unit,
)
from .atomic import atomic_output

__all__ = ["read_mat", "write_mat", "inspect_mat", "MatCubeInfo", "MatVersion"]

MatVersion = Literal["5", "7.3"]
_NUMERIC_CLASSES = {
    "double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
}  # fmt: skip
_MATLAB_CLASS = {
    "float64": "double", "float32": "single", "int8": "int8", "uint8": "uint8", "int16": "int16",
    "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
}  # fmt: skip
_V5_LIMIT = 2**31 - 1  # bytes per variable in a v5/v7 file


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def _header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(128)


# ---------------------------------------------------------------------------------------------- listing


def _list_v5(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, MATLAB class)}`` without loading the data."""
    import scipy.io

    return {name: (tuple(int(s) for s in shape), cls) for name, shape, cls in scipy.io.whosmat(str(path))}


def _list_v73(f: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    import h5py

    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for name, obj in f.items():
        if name.startswith("#") or not isinstance(obj, h5py.Dataset):
            continue
        cls = obj.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        if obj.attrs.get("MATLAB_empty", 0):
            out[name] = ((0,), cls)
            continue
        if not cls:
            cls = obj.dtype.name if obj.dtype.kind in "iuf" else "other"
            cls = _MATLAB_CLASS.get(cls, cls)
        out[name] = (tuple(int(s) for s in obj.shape[::-1]), cls)
    return out


def _describe(variables: dict[str, tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"'{n}' ({shape_str(s)} {c})" for n, (s, c) in variables.items()) or "none"


def _choose(variables: dict[str, tuple[tuple[int, ...], str]], variable: str | None, path: Path) -> str:
    if variable is not None:
        if variable not in variables:
            raise FileFormatError(
                f"{path} has no variable {variable!r}; it holds {_describe(variables)}; pass variable=<one of them>"
            )
        return variable
    skip = {n for n in variables if wavelength_name_unit(n) is not None or fwhm_name_unit(n) is not None}
    cubes = [n for n, (s, c) in variables.items() if len(s) == 3 and c in _NUMERIC_CLASSES and n not in skip]
    if len(cubes) == 1:
        return cubes[0]
    if len(cubes) > 1:
        listed = _describe({n: variables[n] for n in cubes})
        raise FileFormatError(f"{path}: ambiguous: variables {listed} are all 3-D; pass variable=<name>")
    two_d = {n: v for n, v in variables.items() if len(v[0]) == 2 and v[1] in _NUMERIC_CLASSES and min(v[0]) > 1}
    hint = ""
    if two_d:
        hint = (
            "; a 2-D bands x pixels matrix (Zhu's unmixing format) is not a cube: reshape it yourself, "
            f"e.g. np.reshape({next(iter(two_d))}.T, (n_rows, n_cols, n_bands), order='F')"
        )
    raise FileFormatError(f"{path} holds no 3-D numeric array (variables: {_describe(variables)}){hint}")


# ---------------------------------------------------------------------------------------------- reading


def _find_vector(variables: dict[str, tuple[tuple[int, ...], str]], match: Any) -> str | None:
    """The first variable whose name matches and that is a numeric vector."""
    for name, (shape, cls) in variables.items():
        if match(name) is not None and cls in _NUMERIC_CLASSES and len(shape) <= 2 and sum(s > 1 for s in shape) <= 1:
            return name
    return None


def _load(path: Path, names: list[str], hdf5: bool) -> dict[str, np.ndarray]:
    if hdf5:
        import h5py

        out = {}
        with h5py.File(str(path), "r") as f:
            for n in names:
                arr = f[n][()]
                out[n] = np.asarray(arr).T  # HDF5 holds MATLAB arrays with reversed axes
        return out
    import scipy.io

    loaded = scipy.io.loadmat(str(path), variable_names=names, squeeze_me=False, mat_dtype=False)
    return {n: np.asarray(loaded[n]) for n in names if n in loaded}


@dataclass(frozen=True)
class MatCubeInfo:
    """What :func:`inspect_mat` found: everything :func:`read_mat` decides before it loads the cube.

    ``shape`` is the variable's shape in MATLAB's index order (an HDF5 dataset of a v7.3 file has it reversed);
    ``layout`` is resolved (``"hwb"`` or ``"bhw"``); ``attrs`` are the cube's provenance attributes.
    """

    path: Path
    hdf5: bool
    name: str
    shape: tuple[int, ...]
    layout: str
    wavelengths: np.ndarray | None
    fwhm: np.ndarray | None
    attrs: dict[str, Any]

    @property
    def what(self) -> str:
        return f"{self.path} variable {self.name!r}"


def _check_cube_shape(shape: tuple[int, ...], what: str) -> None:
    if 0 in shape:
        raise InputError(f"{what} is empty (shape {shape_str(shape)}): nothing to read")
    if len(shape) == 2:
        raise FileFormatError(
            f"{what} is 2-D ({shape_str(shape)}), not a cube; if it is a bands x pixels matrix (Zhu's "
            "unmixing format) reshape it: np.reshape(Y.T, (n_rows, n_cols, n_bands), order='F')"
        )
    if len(shape) != 3:
        raise FileFormatError(f"{what} has shape {shape_str(shape)}; expected a 3-D cube")


def inspect_mat(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    layout: Layout = "auto",
    wavelengths: Any = None,
) -> MatCubeInfo:
    """Choose the cube variable of a ``.mat`` file and read its band metadata, without loading the cube.

    The rules of :func:`read_mat` (variable choice, wavelength/FWHM variables, layout); only the small band
    vectors are loaded. Used by :func:`read_mat` and by the lazy opener (:func:`hsfuse.io.lazy.open_lazy`).

    Raises:
        FileFormatError / InputError: as :func:`read_mat`, except for the dtype check, which needs the data.
    """
    return _resolve(_inspect(path, variable=variable, layout=layout, wavelengths=wavelengths))


@dataclass
class _Found:
    path: Path
    hdf5: bool
    name: str
    shape: tuple[int, ...]
    layout: str
    wavelengths: np.ndarray | None
    user: bool
    wl_factor: float
    fwhm_raw: np.ndarray | None
    fwhm_unit: str | None
    attrs: dict[str, Any]


def _inspect(path: str | os.PathLike[str], *, variable: str | None, layout: str, wavelengths: Any) -> _Found:
    p = require_file(path)
    check_layout(layout)
    hdf5 = _is_hdf5(p)
    fmt = "MATLAB v7.3 (HDF5)" if hdf5 else "MATLAB v5/v7 .mat"
    with reading(p, fmt):
        if not hdf5 and _header(p).startswith(b"MATLAB 7.3"):
            raise FileFormatError(f"{p} says it is a MATLAB v7.3 file but its HDF5 part is unreadable (truncated?)")
        if hdf5:
            import h5py

            with h5py.File(str(p), "r") as f:
                variables = _list_v73(f)
        else:
            variables = _list_v5(p)
        name = _choose(variables, variable, p)
        shape, cls = variables[name]
        if cls not in _NUMERIC_CLASSES:
            kind = "empty" if 0 in shape else f"of MATLAB class '{cls}'"
            raise (InputError if 0 in shape else FileFormatError)(
                f"{p}: variable {name!r} is {kind}, not a numeric image cube"
            )
        wl_name = _find_vector(variables, wavelength_name_unit) if wavelengths is None else None
        fw_name = _find_vector(variables, fwhm_name_unit)
        loaded = _load(p, [n for n in (wl_name, fw_name) if n is not None], hdf5)
    what = f"{p} variable {name!r}"
    _check_cube_shape(shape, what)
    attrs: dict[str, Any] = {"source": str(p), "format": "mat-v7.3" if hdf5 else "mat-v5", "variable": name}
    wl: np.ndarray | None = None
    wl_factor = 1.0
    user = wavelengths is not None
    if user:
        wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    elif wl_name is not None:
        raw = np.asarray(loaded[wl_name], dtype=np.float64).reshape(-1)
        factor, note = nm_factor(raw, wavelength_name_unit(wl_name))
        if factor is not None:
            wl, wl_factor = raw * factor, factor
        attrs["wavelength_variable"] = wl_name
        if note:
            attrs["wavelength_note"] = note
    fwhm_raw, fwhm_unit = None, None
    if fw_name is not None:
        fwhm_raw = np.asarray(loaded[fw_name], dtype=np.float64).reshape(-1)
        fwhm_unit = fwhm_name_unit(fw_name)
        attrs["fwhm_variable"] = fw_name
    return _Found(p, hdf5, name, tuple(shape), layout, wl, user, wl_factor, fwhm_raw, fwhm_unit, attrs)


def _resolve(found: _Found) -> MatCubeInfo:
    """Decide the layout and match the wavelengths to the bands (after the data checks, as they are reported first)."""
    shape, wl, attrs = found.shape, found.wavelengths, dict(found.attrs)
    what = f"{found.path} variable {found.name!r}"
    n_wl = wl.shape[0] if wl is not None and wl.shape[0] in (shape[0], shape[2]) else None
    if found.user and n_wl is None and found.layout == "auto":
        raise InputError(
            f"{wl.shape[0]} wavelengths given but {what} has shape {shape_str(shape)}: "  # type: ignore[union-attr]
            "no axis of that length; give one wavelength per band"
        )
    used = resolve_layout(shape, found.layout, n_wavelengths=n_wl, what=what)
    attrs["layout"] = used
    bands = shape[2] if used == "hwb" else shape[0]
    wl = check_wavelength_count(wl, bands, user=found.user, what=what, attrs=attrs)
    fwhm = None
    if found.fwhm_raw is not None:
        unit = found.fwhm_unit
        fwhm = found.fwhm_raw * (1.0 if unit == "nm" else 1e3 if unit == "um" else found.wl_factor)
    return MatCubeInfo(found.path, found.hdf5, found.name, shape, used, wl, fwhm, attrs)


def read_mat(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    layout: Layout = "auto",
    wavelengths: Any = None,
) -> Cube:
    """Read an image cube from a MATLAB ``.mat`` file (v5/v7 or v7.3).

    Args:
        path: the ``.mat`` file.
        variable: name of the cube variable; default: the only 3-D numeric array.
        layout: ``"hwb"`` (H x W x B), ``"bhw"`` (B x H x W) or ``"auto"``, in MATLAB's index order.
        wavelengths: band centres in nm (overrides a wavelength vector in the file).

    Returns:
        :class:`Cube` with ``data`` ``(H, W, B)`` in the stored dtype, wavelengths/fwhm in nm when found, and
        ``attrs`` ``source``, ``format`` (``"mat-v5"``/``"mat-v7.3"``), ``variable``, ``layout``.

    Raises:
        FileFormatError: missing/corrupt/truncated file, no or several candidate cubes, 2-D data.
        InputError: empty array, wavelengths of the wrong length.

    Example:
        >>> cube = read_mat("scenes/paviaU_140x80x103_subset.mat")  # doctest: +SKIP
        >>> cube.shape  # doctest: +SKIP
        (140, 80, 103)
    """
    found = _inspect(path, variable=variable, layout=layout, wavelengths=wavelengths)
    p, what = found.path, f"{found.path} variable {found.name!r}"
    with reading(p, "MATLAB v7.3 (HDF5)" if found.hdf5 else "MATLAB v5/v7 .mat"):
        data = _load(p, [found.name], found.hdf5)[found.name]
    _check_cube_shape(tuple(data.shape), what)
    check_real_dtype(data.dtype, what)
    info = _resolve(found)
    cube_data, _ = orient(native(data), info.layout, n_wavelengths=None, what=what)
    return make_cube(cube_data, what=what, wavelengths=info.wavelengths, fwhm=info.fwhm, attrs=dict(info.attrs))


# ---------------------------------------------------------------------------------------------- writing


def _v73_userblock() -> bytes:
    """The 128-byte MATLAB header MATLAB expects in the 512-byte HDF5 user block of a v7.3 file."""
    text = "MATLAB 7.3 MAT-file, Platform: hsfuse, Created on: " + time.strftime("%a %b %d %H:%M:%S %Y")
    text += " HDF5 schema 1.00 ."
    head = text.encode("ascii")[:116].ljust(116, b" ")
    return head + b" " * 8 + b"\x00\x02" + b"IM"


def write_mat(
    cube: Cube,
    path: str | os.PathLike[str],
    *,
    variable: str = "cube",
    version: MatVersion = "5",
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write a cube to a MATLAB ``.mat`` file as an ``H x W x B`` array.

    The cube goes under ``variable``; wavelengths (nm) under ``wavelengths_nm`` and FWHM (nm) under
    ``fwhm_nm`` as 1 x B row vectors. Georeferencing, nodata and band names are not stored (MATLAB has no
    convention for them; use GeoTIFF or ENVI to keep them). ``version="5"`` (scipy; readable by MATLAB,
    Octave and scipy; at most 2 GiB per variable) or ``"7.3"`` (HDF5 with the MATLAB user block and
    ``MATLAB_class`` attributes, readable by MATLAB's ``load`` and h5py; the HDF5 dataset has shape
    ``(B, W, H)``). The write is atomic (:func:`~hsfuse.io.atomic.atomic_output`).

    Returns the path written.
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_mat takes a Cube, got {type(cube).__name__}")
    if version not in ("5", "7.3"):
        raise InputError(f"MAT version must be '5' or '7.3', got {version!r}")
    if not (isinstance(variable, str) and variable.isidentifier() and len(variable) <= 63):
        raise InputError(f"MATLAB variable name must be a valid identifier of at most 63 characters, got {variable!r}")
    if variable in ("wavelengths_nm", "fwhm_nm"):
        raise InputError(f"variable name {variable!r} is reserved for the band metadata; choose another")
    data = cube.data
    if data.dtype.name not in _MATLAB_CLASS:
        raise InputError(f"cannot store dtype {data.dtype} in a .mat file; cast to float32/float64 or an integer type")
    extra: dict[str, np.ndarray] = {}
    if cube.wavelengths is not None:
        extra["wavelengths_nm"] = np.asarray(cube.wavelengths, np.float64)[None, :]
    if cube.fwhm is not None:
        extra["fwhm_nm"] = np.asarray(cube.fwhm, np.float64)[None, :]
    if version == "5" and data.nbytes > _V5_LIMIT:
        raise InputError(
            f"cube is {data.nbytes / 2**30:.1f} GiB, over the 2 GiB per-variable limit of MAT v5; use version='7.3'"
        )
    with atomic_output(path, overwrite=overwrite) as tmp:
        if version == "5":
            import scipy.io

            scipy.io.savemat(str(tmp), {variable: data, **extra}, do_compression=compress, oned_as="row")
        else:
            import h5py

            opts: dict[str, Any] = {"compression": "gzip", "compression_opts": 4} if compress else {}
            with h5py.File(str(tmp), "w", userblock_size=512) as f:
                for name, arr in ((variable, data), *extra.items()):
                    ds = f.create_dataset(name, data=np.ascontiguousarray(arr.T), **(opts if arr.ndim == 3 else {}))
                    ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[arr.dtype.name])
            with open(tmp, "r+b") as fh:
                fh.write(_v73_userblock())
    return Path(path)
