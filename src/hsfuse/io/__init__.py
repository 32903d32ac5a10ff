"""Reading and writing image cubes (:class:`~hsfuse.types.Cube`, ``H x W x B``) in the formats of the field.

One module per format (``mat``, ``envi``, ``geotiff``, ``numpy_io``, ``cave``, ``rgb``), each with a reader
returning a :class:`Cube` and a writer taking one; :func:`read_cube` / :func:`write_cube` pick the format from
the path. :data:`FORMATS` lists them with what each keeps. Every write is atomic (:mod:`hsfuse.io.atomic`):
an existing output is refused unless ``overwrite=True`` and is never left half-written.

Scenes larger than memory: :func:`open_lazy` (:mod:`hsfuse.io.lazy`) opens the same files, plus zarr stores,
NetCDF and HDF5, as an xarray ``DataArray`` ``(band, y, x)`` backed by dask, read chunk by chunk when computed;
:func:`cube_to_dataarray` / :func:`dataarray_to_cube` convert between the two models and :func:`write_zarr`
writes a DataArray. Column "lazy" says whether :func:`open_lazy` reads the file without loading it ("memory":
it is read whole by :func:`read_cube` and wrapped).

Dispatch by path (``format=`` overrides it):

==================  =========  ======  ==============================================================
path                format     lazy    notes
==================  =========  ======  ==============================================================
``*.mat``           mat        v7.3    v5/v7 (scipy) and v7.3 (HDF5); ``variable=``, ``layout=``; v5 is
                                       read whole by :func:`open_lazy` (scipy reads whole variables)
``*.hdr``/``*.img`` envi       yes     header + raw data file (memory-mapped by :func:`open_lazy`)
``*.tif/.tiff``     geotiff    yes     every TIFF goes through rasterio/GDAL, georeferenced or not (a plain
                                       RGB TIFF is a 3-band cube); :func:`~hsfuse.io.rgb.read_image` is
                                       the tifffile alternative; :func:`open_lazy` uses rioxarray
``*.npy``           npy        yes     array only; ``layout=``
``*.npz``           npz        memory  cube + metadata keys; ``variable=``, ``layout=``
folder              cave       memory  one 16-bit PNG per band (for writing: an existing folder or a path
                                       with no suffix)
``*.png/.jpg/...``  image      memory  colour / grey images, 1-4 bands
``*.zarr``          --         yes     :func:`open_lazy` / :func:`write_zarr` only (xarray store or bare
                                       zarr array)
``*.nc``            --         yes     :func:`open_lazy` only (NetCDF; ``variable=``)
``*.h5/.hdf5``      --         yes     :func:`open_lazy` only (HDF5 dataset; ``variable=``, ``layout=``)
==================  =========  ======  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube
from ._common import LAYOUTS, Layout, check_layout
from .atomic import atomic_output, atomic_output_dir, atomic_outputs, check_output_path
from .cave import CAVE_WAVELENGTHS_NM, read_cave, write_cave
from .envi import read_envi, write_envi
from .geotiff import read_geotiff, write_geotiff
from .lazy import LAZY_SUFFIXES, cube_to_dataarray, dataarray_to_cube, open_lazy, write_zarr
from .mat import read_mat, write_mat
from .numpy_io import read_npy, read_npz, write_npy, write_npz
from .rgb import read_image, write_png

__all__ = [
    "FORMATS",
    "FormatInfo",
    "read_cube",
    "write_cube",
    "check_float_output",
    "describe",
    "atomic_output",
    "atomic_outputs",
    "atomic_output_dir",
    "check_output_path",
    "read_mat",
    "write_mat",
    "read_envi",
    "write_envi",
    "read_geotiff",
    "write_geotiff",
    "read_npy",
    "read_npz",
    "write_npy",
    "write_npz",
    "read_cave",
    "write_cave",
    "read_image",
    "write_png",
    "CAVE_WAVELENGTHS_NM",
    "LAYOUTS",
    "open_lazy",
    "cube_to_dataarray",
    "dataarray_to_cube",
    "write_zarr",
    "LAZY_SUFFIXES",
]


@dataclass(frozen=True)
class FormatInfo:
    """One supported format: its name, the suffixes that select it, what it keeps, and its functions."""

    name: str
    suffixes: tuple[str, ...]
    description: str
    keeps: str
    read: Callable[..., Cube]
    write: Callable[..., Path] | None
    options: tuple[str, ...] = ()


FORMATS: dict[str, FormatInfo] = {
    "mat": FormatInfo(
        "mat", (".mat",), "MATLAB v5/v7 (scipy) or v7.3 (HDF5) file",
        "data, wavelengths_nm, fwhm_nm", read_mat, write_mat, ("variable", "layout", "wavelengths"),
    ),
    "envi": FormatInfo(
        "envi", (".hdr", ".img"), "ENVI header + raw data file",
        "data, wavelengths, fwhm, band names, nodata, units, map info / CRS", read_envi, write_envi,
    ),
    "geotiff": FormatInfo(
        "geotiff", (".tif", ".tiff"), "(Geo)TIFF via rasterio/GDAL",
        "data, CRS, transform, nodata, band names, units, wavelengths, fwhm", read_geotiff, write_geotiff,
    ),
    "npy": FormatInfo(
        "npy", (".npy",), "NumPy array file", "data only", read_npy, write_npy, ("layout", "wavelengths"),
    ),
    "npz": FormatInfo(
        "npz", (".npz",), "NumPy archive of named arrays",
        "data, wavelengths, fwhm, band names, nodata, units, CRS, transform", read_npz, write_npz,
        ("variable", "layout", "wavelengths"),
    ),
    "cave": FormatInfo(
        "cave", (), "CAVE folder of per-band 16-bit PNGs", "data (uint16); 31 bands read as 400:10:700 nm",
        read_cave, write_cave, ("wavelengths",),
    ),
    "image": FormatInfo(
        "image", (".png", ".jpg", ".jpeg", ".bmp"), "colour/grey image (PNG/JPEG/BMP; TIFF via format='image')",
        "data (8/16-bit), band names R,G,B[,A]", read_image, write_png,
    ),
}  # fmt: skip


def _supported() -> str:
    parts = [f"{', '.join(f.suffixes)} ({f.name})" for f in FORMATS.values() if f.suffixes]
    return "; ".join(parts) + "; a folder (cave)"


def _format_for(path: Path, *, for_writing: bool) -> str:
    if path.is_dir():
        return "cave"
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt.name
    if for_writing and suffix == "":
        return "cave"
    raise FileFormatError(
        f"cannot tell the format of {path} from its extension {suffix!r}; supported: {_supported()}; or pass "
        f"format= (one of {sorted(FORMATS)})"
    )


def _check_format(format: str | None) -> None:
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {sorted(FORMATS)}")


def read_cube(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    layout: Layout = "auto",
    format: str | None = None,
    wavelengths: Any = None,
) -> Cube:
    """Read an image cube from any supported file or folder, choosing the reader from the path.

    Args:
        path: file or (CAVE) folder.
        variable: the cube's variable/key in a ``.mat`` or ``.npz`` file (default: the only 3-D array).
        layout: ``"hwb"``/``"bhw"``/``"auto"`` for ``.mat``/``.npy``/``.npz`` (see :func:`read_mat`).
        format: force a format, one of :data:`FORMATS` (e.g. ``"image"`` to read a TIFF with tifffile).
        wavelengths: band centres in nm; for ``.mat``/``.npy``/``.npz``/CAVE they also guide ``layout``,
            for other formats they replace the file's.

    Returns:
        :class:`Cube` ``(H, W, B)``; ``attrs["source"]`` and ``attrs["format"]`` say where it came from.

    Raises:
        FileFormatError: ``"<path> not found"``, unknown extension (the message lists the supported ones),
        unreadable, truncated or ambiguous file.
        InputError: an option that does not apply to the format, empty data.

    Example:
        >>> cube = read_cube("scenes/paviaU_140x80x103_subset.mat")  # doctest: +SKIP
        >>> print(describe(cube))  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p} not found; check the path (current folder: {Path.cwd()})")
    _check_format(format)
    check_layout(layout)
    name = format or _format_for(p, for_writing=False)
    info = FORMATS[name]
    if variable is not None and "variable" not in info.options:
        raise InputError(f"variable= applies to .mat and .npz files only, not to {name} ({p})")
    if layout != "auto" and "layout" not in info.options:
        raise InputError(f"layout= applies to .mat, .npy and .npz files only, not to {name} ({p})")
    kwargs: dict[str, Any] = {}
    if variable is not None:
        kwargs["variable"] = variable
    if "layout" in info.options:
        kwargs["layout"] = layout
    if wavelengths is not None and "wavelengths" in info.options:
        kwargs["wavelengths"] = wavelengths
    cube = info.read(p, **kwargs)
    if wavelengths is not None and "wavelengths" not in info.options:
        wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        if wl.shape[0] != cube.bands:
            raise InputError(f"{wl.shape[0]} wavelengths given for {cube.bands} bands in {p}")
        fwhm = cube.fwhm if cube.wavelengths is not None else None
        cube = cube.replace(wavelengths=wl, fwhm=fwhm)
    return cube


def check_float_output(path: str | os.PathLike[str], *, overwrite: bool) -> str:
    """Pre-flight check that a floating-point cube (a fused result) can be written to ``path``; returns the format.

    Refused before any work, with the fix: an unknown extension; a path without extension (a CAVE folder of
    16-bit PNGs) or an image format (8/16-bit PNG/JPEG/BMP), which cannot hold float data; and, for an ENVI pair,
    an existing ``.hdr`` or ``.img`` partner without ``overwrite``. (``.zarr`` outputs are the large-scene engine's
    and are checked there.)
    """
    p = Path(path)
    name = _format_for(p, for_writing=True)
    if name in ("cave", "image"):
        what = ("has no extension, which names a CAVE folder of 16-bit PNGs," if name == "cave"
                else "is an 8/16-bit image format, which")
        raise InputError(f"output {p} {what} cannot hold a floating-point fused cube; give an extension: .tif, .npz, "
                         ".hdr, .mat or .zarr")
    if name == "envi":
        from .atomic import check_output_path
        from .envi import _outputs

        for q in _outputs(p):
            check_output_path(q, overwrite=overwrite)
    return name


def write_cube(cube: Cube, path: str | os.PathLike[str], *, overwrite: bool = False, format: str | None = None) -> Path:
    """Write a cube, choosing the writer from the path; returns the path written.

    ``.mat`` (variable ``cube``; MAT v5, or v7.3 when the cube exceeds v5's 2 GiB limit), ``.hdr``/``.img``
    (ENVI pair), ``.tif``/``.tiff`` (GeoTIFF), ``.npy``, ``.npz``, ``.png`` (1-4 bands, ``uint8``/``uint16``),
    and a folder (existing, or a path without suffix) for CAVE PNGs. ``format=`` overrides the choice.
    Format-specific options (compression, MAT version, PNG scaling, interleave) are on the per-format
    writers (:func:`write_mat`, :func:`write_envi`, ...).

    Raises:
        OutputExistsError: the output exists and ``overwrite`` is false.
        InputError: the cube does not fit the format (dtype, band count), the folder is missing/read-only.
        FileFormatError: unknown extension (the message lists the supported ones).
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_cube takes a Cube, got {type(cube).__name__}")
    _check_format(format)
    p = Path(path)
    name = format or _format_for(p, for_writing=True)
    if name == "mat":
        version = "7.3" if cube.data.nbytes > 2**31 - 1 else "5"
        return write_mat(cube, p, overwrite=overwrite, version=version)  # type: ignore[arg-type]
    writer = FORMATS[name].write
    if writer is None:  # pragma: no cover - every format has a writer today
        raise InputError(f"format {name!r} cannot be written")
    return writer(cube, p, overwrite=overwrite)


def _fmt_num(v: float) -> str:
    return f"{v:.6g}"


def describe(cube: Cube) -> str:
    """A multi-line, human-readable summary of a cube (what ``hsfuse info`` prints).

    Shape and layout, dtype, value range and mean over valid pixels (finite and not nodata), wavelength count,
    range and mean step, FWHM range, CRS, transform, nodata, units, the first band names, and the source.

    Example:
        >>> import numpy as np
        >>> print(describe(Cube(np.arange(6.0).reshape(1, 2, 3))).splitlines()[0])
        shape:        1 x 2 x 3 (H x W x B)
    """
    if not isinstance(cube, Cube):
        raise InputError(f"describe takes a Cube, got {type(cube).__name__}")
    d = cube.data
    h, w, b = cube.shape
    lines = [f"shape:        {h} x {w} x {b} (H x W x B)", f"dtype:        {d.dtype}"]
    mask = cube.valid_mask()
    valid = d[mask]
    if np.issubdtype(d.dtype, np.floating):
        valid = valid[np.isfinite(valid)]
    if valid.size:
        lines.append(
            f"values:       min {_fmt_num(float(valid.min()))}, max {_fmt_num(float(valid.max()))}, "
            f"mean {_fmt_num(float(valid.mean(dtype=np.float64)))} over {int(mask.sum())} of {h * w} pixels"
        )
    else:
        lines.append("values:       no valid pixels")
    if cube.wavelengths is not None:
        wl = cube.wavelengths
        step = f", mean step {_fmt_num(float(np.mean(np.diff(wl))))} nm" if wl.size > 1 else ""
        lines.append(f"wavelengths:  {wl.size} bands, {_fmt_num(wl[0])} - {_fmt_num(wl[-1])} nm{step}")
    else:
        lines.append("wavelengths:  unknown")
    if cube.fwhm is not None:
        lines.append(f"fwhm:         {_fmt_num(cube.fwhm.min())} - {_fmt_num(cube.fwhm.max())} nm")
    geo = cube.geo
    crs = geo.crs if geo is not None and geo.crs else "none"
    lines.append(f"crs:          {crs if len(crs) <= 80 else crs[:77] + '...'}")
    transform = "none" if geo is None or geo.transform is None else "(" + ", ".join(_fmt_num(v) for v in geo.transform) + ")"
    lines.append(f"transform:    {transform}")
    lines.append(f"nodata:       {'none' if cube.nodata is None else _fmt_num(cube.nodata)}")
    if cube.units is not None:
        lines.append(f"units:        {cube.units}")
    if cube.band_names is not None:
        shown = ", ".join(cube.band_names[:6]) + (f", ... ({len(cube.band_names)} names)" if b > 6 else "")
        lines.append(f"band names:   {shown}")
    src = cube.attrs.get("source")
    if src is not None:
        extra = ", ".join(f"{k}={cube.attrs[k]}" for k in ("variable", "layout") if k in cube.attrs)
        lines.append(f"source:       {src} ({cube.attrs.get('format', '?')}{', ' + extra if extra else ''})")
    notes = [f"{k}: {v}" for k, v in cube.attrs.items() if k.endswith("_note")]
    lines.extend(f"note:         {n}" for n in notes)
    return "\n".join(lines)
