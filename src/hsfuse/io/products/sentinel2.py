"""Sentinel-2 MSI Level-2A products (SAFE folders) as they come: :func:`open_sentinel2` returns a :class:`Product`.

Specification
-------------
ESA, *Sentinel-2 Products Specification Document*, S2-PDGS-TAS-DI-PSD, Issue 14.6 (16/03/2021) for the L2A
("SAFE compact", PSD 14) layout and element names, with the PB 04.00 additions (``BOA_ADD_OFFSET_VALUES_LIST``,
25 January 2022) of the PSD 14.8 schemas that products of baseline 04.00 and later reference (a PB 05.09 tile
metadata file names ``schemas/14.08.02``). What is read::

    <name>.SAFE/
      MTD_MSIL2A.xml                      product metadata (n1:Level-2A_User_Product)
      GRANULE/<granule>/MTD_TL.xml        tile metadata (n1:Level-2A_Tile_ID)
      GRANULE/<granule>/IMG_DATA/R10m/T<tile>_<sensing>_B02_10m.jp2  ...  R20m/..._B05_20m.jp2, ..._SCL_20m.jp2
                                          R60m/..._B01_60m.jp2 ...

* ``MTD_MSIL2A.xml``, ``n1:General_Info/Product_Info``: ``PROCESSING_BASELINE``, ``PRODUCT_TYPE`` (``S2MSI2A``),
  ``PRODUCT_URI``, ``PRODUCT_START_TIME``, ``Datatake/SPACECRAFT_NAME`` (``Sentinel-2A`` -> sensor
  ``"sentinel2a"``, ``Sentinel-2B`` -> ``"sentinel2b"``), ``Product_Organisation/Granule_List/Granule/IMAGE_FILE``
  (the band files, relative to the SAFE folder, without ``.jp2``); ``Product_Image_Characteristics``:
  ``Special_Values`` (``NODATA`` = 0), ``QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE`` (10000),
  ``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET[@band_id]`` (-1000 from baseline 04.00; absent, i.e. 0, before),
  ``Spectral_Information_List/Spectral_Information[@bandId, @physicalBand]`` (``RESOLUTION``,
  ``Wavelength/CENTRAL``: the ``band`` coordinate is these centres, in nm), ``Scene_Classification_List``.
* ``MTD_TL.xml``, ``n1:Geometric_Info/Tile_Geocoding``: ``HORIZONTAL_CS_CODE`` (``EPSG:326nn``), ``Size`` and
  ``Geoposition`` (``ULX``, ``ULY``, ``XDIM``, ``YDIM``) per resolution: the grid of the returned image.

Reflectance, no-data, band names
--------------------------------
``reflectance = (DN + BOA_ADD_OFFSET[b]) / BOA_QUANTIFICATION_VALUE`` (PSD, PB 04.00 note), in float32; DN equal
to the ``NODATA`` special value (0) is NaN. A product of baseline >= 04.00 without its offsets is refused (a
silent 0 would shift every reflectance by +0.1). Bands are named as the SRF library names them (``"B2"``,
``"B8A"``: ``physicalBand`` of the PSD) and returned in spectral order (B1 ... B8, B8A, B9, B11, B12).

One grid
--------
The image is on the 10 m (default) or 20 m grid of the tile. A band with a file at that resolution is read as
it is (at 20 m, B02-B04 are the product's own 20 m files). Another band is read at its native resolution (B05
... at 20 m, B01/B09 at 60 m) and **upsampled lazily by an integer factor** (2, 3 or 6), pixel centres aligned
(all resolutions share the tile's upper-left corner): output pixel ``i`` sits at input coordinate
``u = (i + 1/2) / f - 1/2``. ``resampling="bilinear"`` (default) interpolates the two nearest input pixels per
axis with weights ``1 - (u - floor u)``, ``u - floor u``, edges replicated (``scipy.ndimage.map_coordinates(order=1,
mode="nearest")`` at those coordinates); ``"nearest"`` repeats each input pixel ``f x f`` times. Bilinear is the
default because the fusion engine needs every band on one grid and bilinear is the least harmful local choice:
it adds no 10 m detail of its own (nearest paints ``f x f`` blocks whose edges fusion methods would take for
real structure), it stays within the range of its neighbours (convex weights: no overshoot or negative
reflectance, unlike cubic kernels), it needs only a one-pixel halo (chunk-local) and it keeps the grids
co-registered. It adds no information: ``metadata["band_resolution_m"]`` keeps each band's native resolution.
A NaN input pixel makes every output pixel it weighs on NaN. L2A has no 20 m B08 (and no B10 at all): ask for
B8A instead.

Masks (scene classification)
----------------------------
``SCL`` (20 m; nearest-upsampled to 10 m), classes of ``Scene_Classification_List`` (their ``_TEXT`` names are
matched, the indices read from the product; these are the PSD's):

=========  =====  ==========================================================
mask       SCL    SCENE_CLASSIFICATION_TEXT
=========  =====  ==========================================================
nodata     0      SC_NODATA; also True where any returned band is NaN
saturated  1      SC_SATURATED_DEFECTIVE
dark       2      SC_DARK_FEATURE_SHADOW (dark area pixels / topographic shadow)
shadow     3      SC_CLOUD_SHADOW
water      6      SC_WATER
cloud      8, 9   SC_CLOUD_MEDIUM_PROBA, SC_CLOUD_HIGH_PROBA
cirrus     10     SC_THIN_CIRRUS
snow       11     SC_SNOW_ICE
(none)     4,5,7  SC_VEGETATION, SC_NOT_VEGETATED, SC_UNCLASSIFIED
=========  =====  ==========================================================

Not read: TCI/AOT/WVP, the QI_DATA masks (MSK_CLDPRB, MSK_DETFOO...), angles, the SATURATED special value of
the bands (the SCL class 1 covers it), multi-granule products of the pre-2016 format (PSD < 14).
"""

from __future__ import annotations

import os
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import FileFormatError, InputError
from ...types import GeoInfo
from ..lazy import _build, _dask_array, spatial_chunks, _xarray
from .base import Product, select_bands

__all__ = ["open_sentinel2", "S2_BANDS", "SCL_MASKS", "PSD_REFERENCE"]

PSD_REFERENCE = ("ESA Sentinel-2 Products Specification Document S2-PDGS-TAS-DI-PSD Issue 14.6 (L2A layout), "
                 "with the PB 04.00 BOA_ADD_OFFSET of the PSD 14.8 schemas")

#: PSD band order (``bandId`` of ``Spectral_Information``, ``band_id`` of ``BOA_ADD_OFFSET``): the SRF library's
#: band name (``physicalBand``), the file-name token, the native resolution in metres.
S2_BANDS: tuple[tuple[str, str, int], ...] = (
    ("B1", "B01", 60), ("B2", "B02", 10), ("B3", "B03", 10), ("B4", "B04", 10), ("B5", "B05", 20),
    ("B6", "B06", 20), ("B7", "B07", 20), ("B8", "B08", 10), ("B8A", "B8A", 20), ("B9", "B09", 60),
    ("B10", "B10", 60), ("B11", "B11", 20), ("B12", "B12", 20),
)  # fmt: skip
_INDEX = {name: i for i, (name, _, _) in enumerate(S2_BANDS)}
_TOKEN = {name: token for name, token, _ in S2_BANDS}
_NATIVE = {name: res for name, _, res in S2_BANDS}
_DEFAULT = {10: ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"),
            20: ("B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")}
_RESOLUTIONS = (10, 20)

#: mask name -> the SCENE_CLASSIFICATION_TEXT names it covers, and their PSD indices (used when the product's
#: Scene_Classification_List is absent)
SCL_MASKS: dict[str, tuple[tuple[str, int], ...]] = {
    "nodata": (("SC_NODATA", 0),),
    "saturated": (("SC_SATURATED_DEFECTIVE", 1),),
    "dark": (("SC_DARK_FEATURE_SHADOW", 2),),
    "shadow": (("SC_CLOUD_SHADOW", 3),),
    "water": (("SC_WATER", 6),),
    "cloud": (("SC_CLOUD_MEDIUM_PROBA", 8), ("SC_CLOUD_HIGH_PROBA", 9)),
    "cirrus": (("SC_THIN_CIRRUS", 10),),
    "snow": (("SC_SNOW_ICE", 11),),
}
_SPACECRAFT = {"SENTINEL-2A": "sentinel2a", "SENTINEL-2B": "sentinel2b"}
_FILE_RE = re.compile(r"_(B\d\d|B8A|SCL|AOT|WVP|TCI)_(\d\d)m$")

Resampling = Literal["bilinear", "nearest"]


# ---------------------------------------------------------------------------------------------- XML


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(elem: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if elem is None else [c for c in elem if _local(c.tag) == name]


def _child(elem: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        found = _children(elem, name)
        elem = found[0] if found else None
    return elem


def _descendant(elem: ET.Element | None, name: str) -> ET.Element | None:
    if elem is None:
        return None
    return next((e for e in elem.iter() if _local(e.tag) == name), None)


def _text(elem: ET.Element | None) -> str | None:
    return None if elem is None or elem.text is None else elem.text.strip()


def _parse_xml(path: Path, what: str) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(f"{path} is not valid XML ({exc}); the {what} of the product is damaged") from exc
    except OSError as exc:
        raise FileFormatError(f"cannot read {path} ({exc})") from exc


def _number(text: str | None, what: str, where: Path) -> float:
    try:
        return float(str(text))
    except (TypeError, ValueError):
        raise FileFormatError(f"{where}: {what} is {text!r}, not a number") from None


# ---------------------------------------------------------------------------------------------- the product


def _safe_folder(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(SAFE folder, MTD_MSIL2A.xml)`` of a SAFE folder or of its product metadata file."""
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p} not found; give the .SAFE folder of a Sentinel-2 L2A product (or its "
                              f"MTD_MSIL2A.xml); current folder: {Path.cwd()}")
    if p.is_file():
        if p.name.upper() == "MTD_MSIL2A.XML":
            return p.parent, p
        if p.suffix.lower() == ".zip":
            raise FileFormatError(f"{p} is an archive; unzip it and give the .SAFE folder inside")
        raise FileFormatError(f"{p} is not a Sentinel-2 L2A product: give its .SAFE folder or MTD_MSIL2A.xml")
    mtd = p / "MTD_MSIL2A.xml"
    if mtd.is_file():
        return p, mtd
    if (p / "MTD_MSIL1C.xml").is_file():
        raise FileFormatError(f"{p} is a Level-1C product (MTD_MSIL1C.xml, top-of-atmosphere); open_sentinel2 "
                              "reads Level-2A (surface reflectance) products")
    inner = sorted(p.glob("*.SAFE"))
    hint = f"; it holds {inner[0].name}: give that folder" if len(inner) == 1 else ""
    raise FileFormatError(f"{p} is not a Sentinel-2 L2A SAFE folder: it has no MTD_MSIL2A.xml (the product "
                          f"metadata of S2-PDGS-TAS-DI-PSD){hint}")


def _baseline(text: str | None, mtd: Path) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    if not m:
        raise FileFormatError(f"{mtd}: PROCESSING_BASELINE is {text!r}; expected NN.NN (e.g. 05.10)")
    return int(m.group(1)), int(m.group(2))


def _product_metadata(mtd: Path) -> dict[str, Any]:
    """What open_sentinel2 uses from MTD_MSIL2A.xml."""
    root = _parse_xml(mtd, "product metadata")
    if _local(root.tag) != "Level-2A_User_Product":
        raise FileFormatError(f"{mtd}: root element is {_local(root.tag)!r}, not Level-2A_User_Product")
    general = _child(root, "General_Info")
    info = _child(general, "Product_Info")
    chars = _child(general, "Product_Image_Characteristics")
    if info is None or chars is None:
        raise FileFormatError(f"{mtd}: no General_Info/Product_Info or Product_Image_Characteristics")
    out: dict[str, Any] = {}
    for key in ("PRODUCT_URI", "PRODUCT_TYPE", "PROCESSING_LEVEL", "PRODUCT_START_TIME", "PRODUCT_STOP_TIME",
                "GENERATION_TIME", "PRODUCT_DOI"):
        value = _text(_child(info, key))
        if value is not None:
            out[key.lower()] = value
    ptype = out.get("product_type", "")
    if ptype and not ptype.upper().startswith("S2MSI2A"):
        raise FileFormatError(f"{mtd}: PRODUCT_TYPE is {ptype!r}; open_sentinel2 reads Level-2A (S2MSI2A) products")
    baseline_text = _text(_child(info, "PROCESSING_BASELINE"))
    out["processing_baseline"] = baseline_text
    out["_baseline"] = _baseline(baseline_text, mtd)
    take = _child(info, "Datatake")
    craft = _text(_child(take, "SPACECRAFT_NAME"))
    if craft is None:
        raise FileFormatError(f"{mtd}: no Product_Info/Datatake/SPACECRAFT_NAME (which satellite?)")
    out["spacecraft_name"] = craft
    for key in ("DATATAKE_SENSING_START", "SENSING_ORBIT_NUMBER", "SENSING_ORBIT_DIRECTION"):
        value = _text(_child(take, key))
        if value is not None:
            out[key.lower()] = value
    granules = _children(_child(info, "Product_Organisation", "Granule_List"), "Granule")
    if len(granules) > 1:
        raise FileFormatError(f"{mtd}: {len(granules)} granules; only single-tile products (SAFE compact, PSD 14, "
                              "since December 2016) are read")
    out["image_files"] = [t for t in (_text(e) for e in _children(granules[0], "IMAGE_FILE")) if t] \
        if granules else []
    if granules and granules[0].get("granuleIdentifier"):
        out["granule_identifier"] = granules[0].get("granuleIdentifier")
    # special values, quantification, offsets
    special = {(_text(_child(e, "SPECIAL_VALUE_TEXT")) or "").upper(): _text(_child(e, "SPECIAL_VALUE_INDEX"))
               for e in _children(chars, "Special_Values")}
    out["nodata_value"] = int(_number(special["NODATA"], "NODATA special value", mtd)) if "NODATA" in special else 0
    if special.get("SATURATED") is not None:
        out["saturated_value"] = int(_number(special["SATURATED"], "SATURATED special value", mtd))
    quant = _child(chars, "QUANTIFICATION_VALUES_LIST", "BOA_QUANTIFICATION_VALUE")
    if quant is None:
        quant = _descendant(chars, "BOA_QUANTIFICATION_VALUE")
    if quant is None:
        raise FileFormatError(f"{mtd}: no BOA_QUANTIFICATION_VALUE (Product_Image_Characteristics/"
                              "QUANTIFICATION_VALUES_LIST): cannot convert the digital numbers to reflectance")
    out["boa_quantification_value"] = _number(_text(quant), "BOA_QUANTIFICATION_VALUE", mtd)
    if not out["boa_quantification_value"] > 0:
        raise FileFormatError(f"{mtd}: BOA_QUANTIFICATION_VALUE is {out['boa_quantification_value']}; expected > 0")
    offsets_list = _child(chars, "BOA_ADD_OFFSET_VALUES_LIST")
    offsets: dict[int, float] | None = None
    if offsets_list is not None:
        offsets = {}
        for e in _children(offsets_list, "BOA_ADD_OFFSET"):
            bid = e.get("band_id")
            if bid is None or not bid.strip().isdigit():
                raise FileFormatError(f"{mtd}: a BOA_ADD_OFFSET without a numeric band_id attribute")
            offsets[int(bid)] = _number(_text(e), f"BOA_ADD_OFFSET band_id={bid}", mtd)
    out["_offsets"] = offsets
    spectral: dict[str, dict[str, Any]] = {}
    for e in _children(_child(chars, "Spectral_Information_List"), "Spectral_Information"):
        name, bid = e.get("physicalBand"), e.get("bandId")
        if not name:
            continue
        entry: dict[str, Any] = {"band_id": int(bid) if bid and bid.isdigit() else None}
        res = _text(_child(e, "RESOLUTION"))
        if res is not None:
            entry["resolution"] = int(_number(res, f"{name} RESOLUTION", mtd))
        for key in ("CENTRAL", "MIN", "MAX"):
            value = _text(_child(e, "Wavelength", key))
            if value is not None:
                entry[key.lower()] = _number(value, f"{name} Wavelength/{key}", mtd)
        spectral[name.upper()] = entry
    out["_spectral"] = spectral
    classes = {}
    for e in _children(_child(chars, "Scene_Classification_List"), "Scene_Classification_ID"):
        text, index = _text(_child(e, "SCENE_CLASSIFICATION_TEXT")), _text(_child(e, "SCENE_CLASSIFICATION_INDEX"))
        if text and index is not None:
            classes[text.upper()] = int(_number(index, f"{text} index", mtd))
    out["_scl_classes"] = classes
    return out


def _tile_metadata(mtl: Path) -> dict[str, Any]:
    """CRS and grids (per resolution) from the granule's MTD_TL.xml."""
    root = _parse_xml(mtl, "tile metadata")
    geo = _descendant(root, "Tile_Geocoding")
    if geo is None:
        raise FileFormatError(f"{mtl}: no Geometric_Info/Tile_Geocoding")
    code = _text(_child(geo, "HORIZONTAL_CS_CODE"))
    if not code:
        raise FileFormatError(f"{mtl}: no Tile_Geocoding/HORIZONTAL_CS_CODE (the tile's EPSG code)")
    sizes: dict[int, tuple[int, int]] = {}
    for e in _children(geo, "Size"):
        res = int(_number(e.get("resolution"), "Size@resolution", mtl))
        sizes[res] = (int(_number(_text(_child(e, "NROWS")), "NROWS", mtl)),
                      int(_number(_text(_child(e, "NCOLS")), "NCOLS", mtl)))
    positions: dict[int, tuple[float, float, float, float]] = {}
    for e in _children(geo, "Geoposition"):
        res = int(_number(e.get("resolution"), "Geoposition@resolution", mtl))
        positions[res] = tuple(_number(_text(_child(e, k)), k, mtl)  # type: ignore[assignment]
                               for k in ("ULX", "ULY", "XDIM", "YDIM"))
    out = {"crs": code.upper(), "crs_name": _text(_child(geo, "HORIZONTAL_CS_NAME")), "sizes": sizes,
           "geopositions": positions}
    for key in ("TILE_ID", "SENSING_TIME"):
        value = _text(_descendant(root, key))
        if value is not None:
            out[key.lower()] = value
    return out


def _band_files(safe: Path, meta: dict[str, Any]) -> dict[tuple[str, int], Path]:
    """``(token, resolution) -> file`` of the product's image files (IMAGE_FILE list, else the IMG_DATA folders)."""
    files: dict[tuple[str, int], Path] = {}
    listed = meta["image_files"]
    if listed:
        for rel in listed:
            m = _FILE_RE.search(rel)
            if m:
                rel_path = rel if rel.lower().endswith(".jp2") else rel + ".jp2"
                files[(m.group(1), int(m.group(2)))] = safe / rel_path
    else:
        for f in sorted(safe.glob("GRANULE/*/IMG_DATA/R*m/*.jp2")):
            m = _FILE_RE.search(f.stem)
            if m:
                files[(m.group(1), int(m.group(2)))] = f
    if not files:
        raise FileFormatError(f"{safe}: no band files (IMAGE_FILE entries of MTD_MSIL2A.xml, or "
                              "GRANULE/*/IMG_DATA/R10m|R20m|R60m/*_B02_10m.jp2 ...)")
    return files


def _granule_folder(safe: Path, files: dict[tuple[str, int], Path]) -> Path:
    folders = {f.parents[2] for f in files.values()}  # GRANULE/<id>/IMG_DATA/R10m/file
    if len(folders) != 1:
        raise FileFormatError(f"{safe}: band files in {len(folders)} granule folders; expected one")
    return folders.pop()


# ---------------------------------------------------------------------------------------------- lazy windows


@dataclass(frozen=True)
class _Source:
    """One band file and how its values reach the output grid."""

    path: str
    shape: tuple[int, int]  # the file's (rows, cols)
    factor: int  # output pixels per file pixel along each axis (1: the file is on the output grid)
    method: str  # "nearest" | "bilinear" (factor > 1)
    offset: float = 0.0  # reflectance = (DN + offset) / quantification
    quantification: float | None = None  # None: the DN as stored (SCL)
    nodata: int | None = None  # DN -> NaN


def _read(path: str, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as ds:
            return ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    except RasterioIOError as exc:
        raise FileFormatError(f"cannot read {path} ({exc}); the band file is missing or damaged") from exc


def _convert(dn: np.ndarray, src: _Source) -> np.ndarray:
    if src.quantification is None:
        return dn
    out = (dn.astype(np.float64) + src.offset) / src.quantification
    if src.nodata is not None:
        out[dn == src.nodata] = np.nan
    return out


def _taps(start: int, stop: int, f: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps ``(i0, i1, w)`` of output pixels ``start..stop-1`` on an input axis of ``n`` pixels.

    Output pixel ``i`` is at input coordinate ``u = (i + 1/2)/f - 1/2 = (2i + 1 - f) / (2f)``, clamped to
    ``[0, n - 1]`` (edges replicated); computed in integers so that exact input pixels get weight exactly 0.
    """
    num = 2 * np.arange(start, stop, dtype=np.int64) + 1 - f
    den = 2 * f
    i0 = np.floor_divide(num, den)
    w = (num - i0 * den) / den
    low = num < 0
    i0[low], w[low] = 0, 0.0
    high = i0 >= n - 1
    i0[high], w[high] = n - 1, 0.0
    return i0, np.minimum(i0 + 1, n - 1), w


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(1 - w) a + w b``, exactly ``a`` where ``w == 0`` (a NaN in ``b`` does not leak through a zero weight)."""
    return np.where(w == 0, a, (1.0 - w) * a + w * b)


def _window(src: _Source, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the output grid from one band file."""
    f = src.factor
    if f == 1:
        return _convert(_read(src.path, r0, r1, c0, c1), src)
    if src.method == "nearest":
        ri, ci = np.arange(r0, r1) // f, np.arange(c0, c1) // f
        block = _convert(_read(src.path, int(ri[0]), int(ri[-1]) + 1, int(ci[0]), int(ci[-1]) + 1), src)
        return block[np.ix_(ri - ri[0], ci - ci[0])]
    i0, i1, wy = _taps(r0, r1, f, src.shape[0])
    j0, j1, wx = _taps(c0, c1, f, src.shape[1])
    top, left = int(i0.min()), int(j0.min())
    a = _convert(_read(src.path, top, int(i1.max()) + 1, left, int(j1.max()) + 1), src)
    i0, i1, j0, j1 = i0 - top, i1 - top, j0 - left, j1 - left
    upper = _lerp(a[np.ix_(i0, j0)], a[np.ix_(i0, j1)], wx[None, :])
    lower = _lerp(a[np.ix_(i1, j0)], a[np.ix_(i1, j1)], wx[None, :])
    return _lerp(upper, lower, wy[:, None])


class _Windows:
    """``(bands, rows, cols)`` of band files on one output grid, for ``dask.array.from_array``: each chunk opens
    its files, reads the windows it needs (one input pixel of halo for bilinear) and converts/resamples them.
    Holds paths and numbers only, so graphs pickle small and any process can compute a chunk."""

    def __init__(self, sources: tuple[_Source, ...], shape: tuple[int, int], dtype: Any) -> None:
        self.sources = tuple(sources)
        self.shape = (len(self.sources), int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(k, (slice, int, np.integer)) for k in key):
            raise TypeError(f"{type(self).__name__} takes three slices or integers, got {key!r}")
        squeeze = tuple(axis for axis, k in enumerate(key) if not isinstance(k, slice))
        if squeeze:  # dask fuses x[0] into the getter: an integer index drops its axis
            whole = tuple(k if isinstance(k, slice) else slice(int(k) % n, int(k) % n + 1)
                          for k, n in zip(key, self.shape))
            return self[whole].squeeze(axis=squeeze)
        (b0, b1, bs), (r0, r1, rs), (c0, c1, cs) = (k.indices(n) for k, n in zip(key, self.shape))
        rows, cols = range(r0, r1, rs), range(c0, c1, cs)
        out = np.empty((len(range(b0, b1, bs)), len(rows), len(cols)), self.dtype)
        if out.size == 0:
            return out
        for k, b in enumerate(range(b0, b1, bs)):
            full = _window(self.sources[b], rows.start, rows[-1] + 1, cols.start, cols[-1] + 1)
            out[k] = full[:: rs, :: cs]
        return out

    def __dask_tokenize__(self) -> Any:
        stamps = []
        for s in self.sources:
            try:
                st = os.stat(s.path)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return (type(self).__name__, self.sources, tuple(stamps), self.shape, str(self.dtype))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.sources)} files, shape={self.shape}, dtype={self.dtype})"


def _dask(arr: _Windows, cy: int, cx: int, prefix: str) -> Any:
    dsa = _dask_array()
    from dask.base import tokenize

    chunks = (arr.shape[0], cy, cx)
    return dsa.from_array(arr, chunks=chunks, name=f"{prefix}-{tokenize(arr, chunks)}",
                          meta=np.empty((0, 0, 0), arr.dtype))


# ---------------------------------------------------------------------------------------------- public


def _band_name(value: Any) -> str:
    """``"B2"``/``"B02"``/``"b2"`` -> ``"B2"``; ``"B8A"``; else InputError."""
    text = str(value).strip().upper()
    m = re.fullmatch(r"B?0*(\d{1,2})(A?)", text)
    name = f"B{int(m.group(1))}{m.group(2)}" if m else text
    if name not in _INDEX:
        raise InputError(f"unknown Sentinel-2 band {value!r}; bands are "
                         f"{', '.join(n for n, _, _ in S2_BANDS if n != 'B10')} (B02 and B2 both work)")
    if name == "B10":
        raise InputError("B10 (cirrus, 1375 nm) has no surface reflectance in Level-2A products")
    return name


def _sensor(craft: str, mtd: Path, notes: list[str]) -> str:
    key = craft.strip().upper().replace(" ", "-")
    if key in _SPACECRAFT:
        return _SPACECRAFT[key]
    if re.fullmatch(r"SENTINEL-2[C-Z]", key):
        note = (f"{craft}: the SRF library has no response for this unit; sensor set to 'sentinel2a' (same MSI "
                "design); use the product's own spectral responses for exact work")
        warnings.warn(note)
        notes.append(note)
        return "sentinel2a"
    raise FileFormatError(f"{mtd}: SPACECRAFT_NAME is {craft!r}; expected Sentinel-2A or Sentinel-2B")


def _check_shape(path: Path, expected: tuple[int, int], what: str) -> tuple[int, int]:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as ds:
            shape, block = (ds.height, ds.width), tuple(ds.block_shapes[0])
    except RasterioIOError as exc:
        raise FileFormatError(f"cannot open {what} {path} ({exc})") from exc
    if shape != expected:
        raise FileFormatError(f"{what} {path} is {shape[0]} x {shape[1]} pixels; MTD_TL.xml says "
                              f"{expected[0]} x {expected[1]} at its resolution")
    return block  # type: ignore[return-value]


def open_sentinel2(
    path: str | os.PathLike[str],
    *,
    resolution: int = 10,
    bands: list[str] | tuple[str, ...] | None = None,
    chunks: int | tuple[int, int] | None = None,
    resampling: Resampling = "bilinear",
) -> Product:
    """Open a Sentinel-2 L2A product (``.SAFE`` folder or its ``MTD_MSIL2A.xml``) lazily as a :class:`Product`.

    The module docstring gives the specification, the files and elements read, the reflectance conversion, the
    resampling onto one grid and the mask table.

    Args:
        path: the ``.SAFE`` folder (unzipped) or its ``MTD_MSIL2A.xml``.
        resolution: the output grid, 10 (default) or 20 metres.
        bands: band names (``"B2"`` or ``"B02"``, ``"B8A"``...); default: B2-B8, B8A, B11, B12 at 10 m (B2-B7,
            B8A, B11, B12 at 20 m: L2A has no 20 m B08). B1/B9 (60 m) on request. Returned in spectral order.
        chunks: spatial chunk side, ``(cy, cx)``, or ``None`` (the band files' JPEG2000 tiles, at least 512).
        resampling: ``"bilinear"`` (default) or ``"nearest"``, for bands coarser than ``resolution``.

    Returns:
        ``Product(kind="msi", sensor="sentinel2a"|"sentinel2b", level="L2A")``: float32 reflectance
        ``(band, y, x)`` over dask (NaN = no data), ``band`` = the product's central wavelengths (nm),
        ``band_name`` = ``"B2"``..., the tile's CRS and transform; masks ``nodata``, ``saturated``, ``dark``,
        ``shadow``, ``water``, ``cloud``, ``cirrus``, ``snow`` (True = unusable for that reason).

    Raises:
        FileFormatError: not an L2A SAFE folder, missing/invalid MTD_MSIL2A.xml or MTD_TL.xml, missing band
        file, band files disagreeing with the tile metadata, baseline >= 04.00 without BOA_ADD_OFFSET.
        InputError: bad ``resolution``, ``bands``, ``chunks`` or ``resampling``.
    """
    if isinstance(resolution, bool) or resolution not in _RESOLUTIONS:
        raise InputError(f"resolution must be 10 or 20 (metres), got {resolution!r}")
    resolution = int(resolution)
    if resampling not in ("bilinear", "nearest"):
        raise InputError(f"resampling must be 'bilinear' or 'nearest', got {resampling!r}")
    names = select_bands(bands, _band_name, _DEFAULT[resolution], _INDEX.__getitem__, example="['B2', 'B8A']",
                         default_text="the default set")
    spatial_chunks(chunks, (1, 1))  # validate early
    xr = _xarray()
    safe, mtd = _safe_folder(path)
    meta = _product_metadata(mtd)
    notes: list[str] = []
    sensor = _sensor(meta["spacecraft_name"], mtd, notes)
    files = _band_files(safe, meta)
    granule = _granule_folder(safe, files)
    mtl = granule / "MTD_TL.xml"
    if not mtl.is_file():
        raise FileFormatError(f"{safe}: tile metadata {mtl.relative_to(safe)} not found (CRS and grid of the tile)")
    tile = _tile_metadata(mtl)
    if resolution not in tile["sizes"] or resolution not in tile["geopositions"]:
        raise FileFormatError(f"{mtl}: no Size/Geoposition for resolution {resolution}")
    shape = tile["sizes"][resolution]
    ulx, uly, xdim, ydim = tile["geopositions"][resolution]
    transform = (xdim, 0.0, ulx, 0.0, ydim, uly)

    # reflectance conversion
    major_minor = meta["_baseline"]
    offsets = meta["_offsets"]
    if offsets is None and major_minor >= (4, 0):
        raise FileFormatError(f"{mtd}: processing baseline {meta['processing_baseline']} (>= 04.00) but no "
                              "BOA_ADD_OFFSET_VALUES_LIST; reflectance = (DN + BOA_ADD_OFFSET) / "
                              "BOA_QUANTIFICATION_VALUE cannot be computed")
    spectral = meta["_spectral"]
    quant, nodata = meta["boa_quantification_value"], meta["nodata_value"]

    def band_id(name: str) -> int:
        entry = spectral.get(name)
        return entry["band_id"] if entry and entry.get("band_id") is not None else _INDEX[name]

    def native(name: str) -> int:
        entry = spectral.get(name)
        return int(entry["resolution"]) if entry and entry.get("resolution") else _NATIVE[name]

    def source_file(token: str, name: str) -> tuple[Path, int]:
        available = sorted(r for (t, r) in files if t == token)
        if resolution in available:
            use = resolution
        elif native(name) in available and native(name) > resolution:
            use = native(name)
        else:
            coarser = [r for r in available if r > resolution]
            if not coarser:
                have = ", ".join(f"{r} m" for r in available) or "none"
                hint = " (use B8A, or resolution=10)" if name == "B8" else ""
                raise InputError(f"{name} has no file at {resolution} m or coarser in this product (it has: "
                                 f"{have}){hint}")
            use = coarser[0]
        f = files[(token, use)]
        if not f.is_file():
            raise FileFormatError(f"{safe}: band file {f.relative_to(safe)} (listed in MTD_MSIL2A.xml) is missing")
        return f, use

    def grid(res: int, what: str) -> tuple[int, int]:
        if res not in tile["sizes"]:
            raise FileFormatError(f"{mtl}: no Size for resolution {res} ({what})")
        size = tile["sizes"][res]
        if res % resolution or size[0] * (res // resolution) != shape[0] or size[1] * (res // resolution) != shape[1]:
            raise FileFormatError(f"{mtl}: the {res} m grid ({size[0]} x {size[1]}) is not the {resolution} m grid "
                                  f"({shape[0]} x {shape[1]}) upsampled {res // resolution or '?'} times")
        return size

    sources, used, blocks = [], {}, []
    for name in names:
        f, res = source_file(_TOKEN[name], name)
        size = grid(res, str(f.name))
        block = _check_shape(f, size, f"band file of {name}")
        factor = res // resolution
        blocks.append((factor, (block[0] * factor, block[1] * factor)))
        offset = 0.0 if offsets is None else offsets.get(band_id(name), None)
        if offset is None:
            raise FileFormatError(f"{mtd}: BOA_ADD_OFFSET_VALUES_LIST has no band_id={band_id(name)} ({name})")
        sources.append(_Source(str(f), size, factor, resampling, float(offset), quant, nodata))
        used[name] = {"file": str(f.relative_to(safe)), "file_resolution_m": res, "offset": float(offset),
                      "resampled": f"{resampling} x{factor}" if factor > 1 else "none"}
    natural = min(blocks, key=lambda fb: fb[0])[1]  # the JPEG2000 tiles of a file on the output grid if any
    cy, cx = spatial_chunks(chunks, shape, natural)

    # band centres: the product's Spectral_Information/Wavelength/CENTRAL
    centres = [spectral.get(n, {}).get("central") for n in names]
    wavelengths = np.asarray(centres, np.float64) if all(c is not None for c in centres) else None
    if wavelengths is None:
        notes.append("Spectral_Information/Wavelength/CENTRAL missing: the band coordinate holds band indices; "
                     "attrs['srf_sensor'] names the SRF to take the centres from")

    crs = tile["crs"]
    geo = GeoInfo(crs, transform)
    attrs = {"source": str(safe), "format": "sentinel2-safe-l2a", "sensor": sensor, "level": "L2A",
             "srf_sensor": sensor, "processing_baseline": meta["processing_baseline"],
             "resolution_m": resolution, "resampling": resampling, "product_uri": meta.get("product_uri", safe.name)}
    image = _build(_dask(_Windows(tuple(sources), shape, np.float32), cy, cx, "sentinel2-l2a"),
                   what=f"Sentinel-2 L2A {safe.name}", name="reflectance", wavelengths=wavelengths,
                   band_names=names, geo=geo, nodata=float("nan"), units="reflectance", attrs=attrs)

    # masks from the scene classification (20 m, nearest)
    scl_res = min((r for t, r in files if t == "SCL" and r >= resolution), default=None)
    if scl_res is None:
        raise FileFormatError(f"{safe}: no scene classification file (IMG_DATA/R20m/*_SCL_20m.jp2)")
    scl_path = files[("SCL", scl_res)]
    if not scl_path.is_file():
        raise FileFormatError(f"{safe}: scene classification file {scl_path.relative_to(safe)} (listed in "
                              "MTD_MSIL2A.xml) is missing")
    scl_size = grid(scl_res, scl_path.name)
    _check_shape(scl_path, scl_size, "scene classification file")
    scl_src = _Source(str(scl_path), scl_size, scl_res // resolution, "nearest")
    scl = _dask(_Windows((scl_src,), shape, np.uint8), cy, cx, "sentinel2-scl")[0]
    listed = meta["_scl_classes"]
    plain = {k: v for k, v in image.coords.items() if "band" not in v.dims}
    masks: dict[str, Any] = {}
    scl_table: dict[str, list[int]] = {}
    for mask_name, members in SCL_MASKS.items():
        indices = sorted({listed.get(text, index) if listed else index for text, index in members})
        scl_table[mask_name] = indices
        data = _dask_array().isin(scl, indices)
        masks[mask_name] = xr.DataArray(data, dims=("y", "x"), coords=plain, name=mask_name)
    masks["nodata"] = (masks["nodata"] | image.isnull().any("band")).rename("nodata")

    metadata: dict[str, Any] = {
        "source": str(safe), "specification": PSD_REFERENCE, "product_uri": meta.get("product_uri", safe.name),
        "product_type": meta.get("product_type"), "processing_baseline": meta["processing_baseline"],
        "spacecraft": meta["spacecraft_name"], "sensing_start": meta.get("datatake_sensing_start",
                                                                         meta.get("product_start_time")),
        "sensing_time": tile.get("sensing_time"), "tile_id": tile.get("tile_id"),
        "relative_orbit": meta.get("sensing_orbit_number"), "crs": crs, "crs_name": tile.get("crs_name"),
        "resolution_m": resolution, "resampling": resampling, "bands": names,
        "band_resolution_m": {n: native(n) for n in names}, "band_files": used,
        "boa_quantification_value": quant, "nodata_value": nodata,
        "boa_add_offset": {n: used[n]["offset"] for n in names},
        "reflectance": "(DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE; DN == NODATA -> NaN",
        "band_centres_nm": None if wavelengths is None else dict(zip(names, wavelengths.tolist())),
        "band_centres_source": "MTD_MSIL2A.xml Spectral_Information/Wavelength/CENTRAL",
        "scl_file": str(scl_path.relative_to(safe)), "scl_masks": scl_table,
        "generation_time": meta.get("generation_time"), "product_doi": meta.get("product_doi"),
    }
    if "saturated_value" in meta:
        metadata["saturated_value"] = meta["saturated_value"]
    if notes:
        metadata["notes"] = notes
    metadata = {k: v for k, v in metadata.items() if v is not None}
    return Product(image=image, kind="msi", sensor=sensor, level="L2A", masks=masks, metadata=metadata)
