"""ENVI raster files: a text header ``x.hdr`` beside a raw data file ``x.img`` (via ``spectral.io.envi``).

Kept on reading and writing: the data (any interleave and byte order on read, native dtype), ``wavelength``
(converted to nm from the header's ``wavelength units``: micrometres x 1000; a missing/"Unknown" unit is
guessed, values below 30 being micrometres; a non-length unit such as wavenumber drops them), ``fwhm``
(same unit), ``band names``, ``data ignore value`` (-> ``nodata``), ``data units`` (-> ``units``, an
hsfuse/GDAL-style extension), and the georeferencing:

``map info = {projection, ref_x, ref_y, easting, northing, x_size, y_size, [zone, North|South,] datum,
units=..., [rotation=deg]}``: the map coordinate ``(easting, northing)`` is the corner of 1-based pixel
``(ref_x, ref_y)`` (pixel ``(1, 1)``'s corner is the image's upper-left corner). The affine transform is
``[a b; d e] = R(theta) diag(x_size, -y_size)`` with ``R`` the counter-clockwise rotation by ``rotation``, and
``(c, f)`` chosen so that the reference pixel maps to ``(easting, northing)``. This equals GDAL's ENVI driver
for unrotated grids and for rotated grids with square pixels referenced at pixel (1, 1) (GDAL ignores the
rotation when moving the reference to the corner).

CRS: UTM/WGS-84 -> ``"EPSG:326zz"``/``"EPSG:327zz"``, Geographic Lat/Lon WGS-84 -> ``"EPSG:4326"``, else the
``coordinate system string`` (WKT; as ``"EPSG:n"`` when rasterio can identify it), else ``None``. The raw map
info is always kept in ``attrs["envi_map_info"]`` (the only record when the CRS cannot be expressed).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube, GeoInfo
from ._common import import_optional, make_cube, nm_factor, reading, require_file
from .atomic import atomic_outputs

__all__ = [
    "read_envi", "write_envi", "parse_map_info", "format_map_info", "open_envi_image", "header_fields", "Interleave",
]

Interleave = Literal["bsq", "bil", "bip"]
_DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".hyspex", ".sli")
_ENVI_DTYPES = {"uint8", "int16", "int32", "float32", "float64", "uint16", "uint32", "int64", "uint64"}


def _envi_module() -> Any:
    return import_optional("spectral.io.envi", "spectral", "reading and writing ENVI files")


def _find_header(p: Path) -> Path:
    if p.suffix.lower() == ".hdr":
        return p
    for cand in (p.with_suffix(".hdr"), p.with_suffix(".HDR"), Path(str(p) + ".hdr")):
        if cand.is_file():
            return cand
    raise FileFormatError(f"no ENVI header found for {p}: expected {p.with_suffix('.hdr')} or {p}.hdr beside it")


def _floats(values: Any) -> np.ndarray:
    vals = values if isinstance(values, list) else str(values).strip("{} ").split(",")
    return np.asarray([float(str(v).strip()) for v in vals if str(v).strip()], dtype=np.float64)


def _epsg_from_wkt(wkt: str) -> str:
    """``"EPSG:n"`` when rasterio identifies the WKT, else the WKT itself."""
    try:
        from rasterio.crs import CRS

        code = CRS.from_wkt(wkt).to_epsg()
        return f"EPSG:{code}" if code else wkt
    except Exception:  # noqa: BLE001 - rasterio missing or WKT it cannot parse: keep the text
        return wkt


def parse_map_info(map_info: list[str] | str, *, crs_wkt: str | None = None) -> tuple[GeoInfo | None, str]:
    """ENVI ``map info`` (list of header fields or the ``{...}`` string) -> ``(GeoInfo or None, note)``.

    See the module docstring for the convention. ``crs_wkt`` is the header's ``coordinate system string``.

    Example:
        >>> geo, _ = parse_map_info("{UTM, 1, 1, 500000, 4000000, 30, 30, 15, North, WGS-84, units=Meters}")
        >>> geo.crs, geo.transform
        ('EPSG:32615', (30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0))
    """
    fields = map_info if isinstance(map_info, list) else str(map_info).strip().strip("{}").split(",")
    fields = [str(v).strip() for v in fields]
    options = {k.strip().lower(): v.strip() for k, _, v in (f.partition("=") for f in fields if "=" in f)}
    plain = [f for f in fields if "=" not in f]
    if len(plain) < 7:
        return None, f"map info has {len(plain)} fields, expected at least 7; georeferencing not read"
    try:
        ref_x, ref_y, east, north, dx, dy = (float(v) for v in plain[1:7])
        theta = math.radians(float(options.get("rotation", "0")))
    except ValueError:
        return None, "map info fields 2-7 are not numbers; georeferencing not read"
    proj = plain[0].lower()
    cos, sin = math.cos(theta), math.sin(theta)
    if theta == 0.0:
        cos, sin = 1.0, 0.0
    a, b, d, e = dx * cos, dy * sin, dx * sin, -dy * cos
    c = east - a * (ref_x - 1.0) - b * (ref_y - 1.0)
    f = north - d * (ref_x - 1.0) - e * (ref_y - 1.0)
    crs: str | None = None
    note = ""
    datum_index = 9 if proj == "utm" else 7
    datum = plain[datum_index].replace(" ", "").upper() if len(plain) > datum_index else ""
    if proj == "utm" and len(plain) >= 9 and datum in ("WGS-84", "WGS84"):
        try:
            zone = int(float(plain[7]))
            south = plain[8].strip().lower().startswith("s")
            if 1 <= zone <= 60:
                crs = f"EPSG:{(32700 if south else 32600) + zone}"
        except ValueError:
            pass
    elif proj.startswith("geographic") and datum in ("WGS-84", "WGS84"):
        crs = "EPSG:4326"
    if crs is None and crs_wkt:
        crs = _epsg_from_wkt(crs_wkt)
    if crs is None and proj not in ("arbitrary", "pixel"):
        note = f"map info projection {plain[0]!r} has no CRS hsfuse can express; see attrs['envi_map_info']"
    return GeoInfo(crs=crs, transform=(a, b, c, d, e, f)), note


def _crs_epsg(crs: str | None) -> int | None:
    if crs is None:
        return None
    s = crs.strip().upper()
    if s.startswith("EPSG:") and s[5:].isdigit():
        return int(s[5:])
    return None


def format_map_info(geo: GeoInfo) -> tuple[list[str] | None, str | None]:
    """``GeoInfo`` -> ``(map info fields, coordinate system string WKT)``; ``(None, None)`` when not expressible.

    UTM WGS-84 (EPSG 326zz/327zz) and EPSG:4326 use ENVI's named projections; any other CRS is written as
    ``Arbitrary`` plus the ESRI-dialect WKT in ``coordinate system string`` (what ENVI and GDAL read). A
    transform with skew or a flip (not a rotation of a north-up grid) cannot be written as map info.
    """
    if geo.transform is None:
        return None, None
    a, b, c, d, e, f = geo.transform
    dx, dy = math.hypot(a, d), math.hypot(b, e)
    if dx == 0 or dy == 0:
        return None, None
    theta = math.atan2(d, a)
    if not (math.isclose(b, dy * math.sin(theta), abs_tol=1e-12 * dy) and math.isclose(e, -dy * math.cos(theta), abs_tol=1e-12 * dy)):
        return None, None
    code = _crs_epsg(geo.crs)
    wkt: str | None = None
    if geo.crs is not None:
        try:
            from rasterio.crs import CRS
            from rasterio.enums import WktVersion

            wkt = CRS.from_user_input(geo.crs).to_wkt(version=WktVersion.WKT1_ESRI)
        except Exception:  # noqa: BLE001 - rasterio missing or CRS it cannot parse
            wkt = geo.crs if code is None else None
    corner = [repr(float(c)), repr(float(f)), repr(float(dx)), repr(float(dy))]
    if code is not None and (32601 <= code <= 32660 or 32701 <= code <= 32760):
        hemi = "North" if code < 32700 else "South"
        fields = ["UTM", "1", "1", *corner, str(code % 100), hemi, "WGS-84", "units=Meters"]
    elif code == 4326:
        fields = ["Geographic Lat/Lon", "1", "1", *corner, "WGS-84", "units=Degrees"]
    else:
        fields = ["Arbitrary", "1", "1", *corner, "units=Meters" if geo.crs else "units=Unknown"]
    if abs(theta) > 1e-15:
        fields.append(f"rotation={math.degrees(theta)!r}")
    return fields, wkt


#: data-file names tried beside a header ``x.hdr`` (what the ``spectral`` reader tries, in its order)
_DATA_SUFFIXES = ("", ".img", ".IMG", ".dat", ".DAT", ".sli", ".SLI", ".hyspex", ".raw", ".RAW", ".bsq", ".bil",
                  ".bip")


def _data_candidates(hdr: Path) -> list[Path]:
    base = hdr.with_suffix("")
    return [base.with_name(base.name + s) for s in _DATA_SUFFIXES]


def _check_header_sizes(hdr: Path) -> None:
    """Refuse a header whose ``samples``, ``lines`` or ``bands`` is not a positive integer, or whose ``interleave`` is
    not bsq/bil/bip (a corrupt header would otherwise fail deep inside the reader with an unrelated message, or, for
    the interleave, be read silently in a wrong band order)."""
    try:
        text = hdr.read_text(errors="replace")
    except OSError:
        return  # the reader reports it
    for key, value in re.findall(r"(?im)^\s*(samples|lines|bands)\s*=\s*(\S+)", text):
        try:
            ok = int(value) > 0
        except ValueError:
            ok = False
        if not ok:
            raise FileFormatError(f"ENVI header {hdr}: '{key.lower()} = {value}' must be a positive integer (the "
                                  "header is corrupt: fix it or regenerate the file)")
    for value in re.findall(r"(?im)^\s*interleave\s*=\s*(\S+)", text):
        if value.lower() not in ("bsq", "bil", "bip"):
            raise FileFormatError(f"ENVI header {hdr}: 'interleave = {value}' is not bsq, bil or bip (the header is "
                                  "corrupt: fix it or regenerate the file)")


def open_envi_image(path: str | os.PathLike[str]) -> tuple[Path, Any]:
    """``(header path, spectral image)`` of an ENVI file, checked: an image (not a library), data file complete.

    The image's ``open_memmap`` maps the data without reading it; :func:`read_envi` copies it, the lazy
    opener (:func:`hsfuse.io.lazy.open_lazy`) reads it a window at a time.
    """
    p = require_file(path)
    hdr = _find_header(p)
    _check_header_sizes(hdr)
    envi = _envi_module()
    image_arg = None if p == hdr else str(p)
    if image_arg is None and not any(c.is_file() for c in _data_candidates(hdr)):
        names = ", ".join(c.name for c in _data_candidates(hdr)[:4])
        raise FileFormatError(f"ENVI header {hdr} has no data file beside it (looked for {names}, ...): put the data "
                              "file next to the header under the same name, or give the data file's path")
    with reading(hdr, "ENVI"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = envi.open(str(hdr), image_arg)
        if not hasattr(img, "open_memmap"):
            raise FileFormatError(f"{hdr} is an ENVI spectral library, not an image; it has no cube to read")
        expected = int(img.offset) + int(img.nrows) * int(img.ncols) * int(img.nbands) * int(img.sample_size)
        actual = os.path.getsize(img.filename)
        if actual < expected:
            raise FileFormatError(
                f"ENVI data file {img.filename} is truncated: the header ({hdr}) describes {expected} bytes, the file "
                f"has {actual}"
            )
    return hdr, img


def header_fields(metadata: dict[str, Any], hdr: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(Cube fields, attrs)`` from a parsed ENVI header (spectral's ``metadata``): the module docstring's rules.

    Fields: ``wavelengths``/``fwhm`` (nm), ``band_names``, ``nodata``, ``units``, ``geo``; attrs: ``source``,
    ``format="envi"``, ``interleave``, and ``description``, ``reflectance_scale_factor``, ``sensor_type``,
    ``envi_map_info``, notes when present.
    """
    md = dict(metadata)
    attrs: dict[str, Any] = {"source": str(hdr), "format": "envi", "interleave": str(md.get("interleave", ""))}
    for key in ("description", "reflectance scale factor", "sensor type"):
        if key in md:
            attrs[key.replace(" ", "_")] = md[key] if isinstance(md[key], str) else ",".join(md[key])
    fields: dict[str, Any] = {}
    wl_factor = 1.0
    with reading(hdr, "ENVI (header values)"):
        if "wavelength" in md:
            raw = _floats(md["wavelength"])
            factor, note = nm_factor(raw, md.get("wavelength units"))
            if note:
                attrs["wavelength_note"] = note
            if factor is not None:
                fields["wavelengths"], wl_factor = raw * factor, factor
        if "fwhm" in md and "wavelengths" in fields:
            fields["fwhm"] = _floats(md["fwhm"]) * wl_factor
        if "band names" in md:
            names = md["band names"]
            fields["band_names"] = names if isinstance(names, list) else [names]
        if "data ignore value" in md:
            fields["nodata"] = float(str(md["data ignore value"]).strip())
        if "data units" in md:
            fields["units"] = str(md["data units"]).strip()
        if "map info" in md:
            mi = md["map info"]
            attrs["envi_map_info"] = "{" + ", ".join(mi if isinstance(mi, list) else [mi]) + "}"
            css = md.get("coordinate system string")
            wkt = ",".join(css).strip() if isinstance(css, list) else (str(css).strip("{} ") if css else None)
            geo, note = parse_map_info(mi, crs_wkt=wkt or None)
            if note:
                attrs["geo_note"] = note
            fields["geo"] = geo
    return fields, attrs


def read_envi(path: str | os.PathLike[str]) -> Cube:
    """Read an ENVI image (give the ``.hdr`` or the data file).

    Returns:
        :class:`Cube` ``(H, W, B)`` = (lines, samples, bands) in the file's dtype (native byte order), with
        wavelengths/fwhm in nm, band names, nodata, units and georeferencing as described in the module
        docstring; ``attrs``: ``source``, ``format="envi"``, ``interleave``, plus ``description``,
        ``reflectance_scale_factor``, ``sensor_type``, ``envi_map_info`` when present.

    Raises:
        FileFormatError: missing header or data file, unparsable header, truncated data file, spectral library.
    """
    hdr, img = open_envi_image(path)
    with reading(hdr, "ENVI"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm = img.open_memmap(interleave="bip", writable=False)
        data = np.array(mm)
        del mm
    fields, attrs = header_fields(img.metadata, hdr)
    return make_cube(data, what=str(hdr), attrs=attrs, **fields)


def _outputs(path: Path) -> tuple[Path, Path]:
    suffix = path.suffix.lower()
    if suffix == ".hdr":
        return path, path.with_suffix(".img")
    if suffix == ".img":
        return path.with_suffix(".hdr"), path
    raise InputError(f"ENVI output must end in .hdr or .img (got {path.name}); both x.hdr and x.img are written")


def write_envi(
    cube: Cube, path: str | os.PathLike[str], *, overwrite: bool = False, interleave: Interleave = "bsq"
) -> Path:
    """Write a cube as ENVI ``x.hdr`` + ``x.img`` (``path`` may name either); returns the header path.

    Header: wavelengths and fwhm in nm (``wavelength units = Nanometers``), ``band names`` (commas in names
    become ``-``, ENVI lists being comma-separated), ``data ignore value``, ``data units``, ``map info`` and
    ``coordinate system string`` (see :func:`format_map_info`). ``interleave`` is the on-disk band order.
    Both files are written atomically (:func:`~hsfuse.io.atomic.atomic_outputs`).
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_envi takes a Cube, got {type(cube).__name__}")
    if interleave not in ("bsq", "bil", "bip"):
        raise InputError(f"interleave must be 'bsq', 'bil' or 'bip', got {interleave!r}")
    if cube.data.dtype.name not in _ENVI_DTYPES:
        raise InputError(
            f"ENVI cannot store dtype {cube.data.dtype}; cast to one of {sorted(_ENVI_DTYPES)} (e.g. int8 -> int16)"
        )
    envi = _envi_module()
    hdr, img = _outputs(Path(path))
    md: dict[str, Any] = {"description": "written by hsfuse"}
    if cube.wavelengths is not None:
        md["wavelength"] = [float(v) for v in cube.wavelengths]
        md["wavelength units"] = "Nanometers"
    if cube.fwhm is not None:
        md["fwhm"] = [float(v) for v in cube.fwhm]
    if cube.band_names is not None:
        md["band names"] = [str(n).replace("{", "(").replace("}", ")") for n in cube.band_names]
    if cube.nodata is not None:
        md["data ignore value"] = repr(float(cube.nodata))
    if cube.units is not None:
        md["data units"] = str(cube.units)
    if cube.geo is not None:
        fields, wkt = format_map_info(cube.geo)
        if fields is None and cube.geo.transform is not None:
            warnings.warn("the cube's transform has skew or a flip ENVI map info cannot express; not written")
        if fields is not None:
            md["map info"] = fields
        if wkt:
            md["coordinate system string"] = "{" + wkt + "}"
    elif "envi_map_info" in cube.attrs:
        md["map info"] = str(cube.attrs["envi_map_info"]).strip().strip("{}").split(",")
    with atomic_outputs([hdr, img], overwrite=overwrite) as (tmp_hdr, _tmp_img):
        envi.save_image(str(tmp_hdr), cube.data, metadata=md, interleave=interleave, ext=".img", force=True)
    return hdr
