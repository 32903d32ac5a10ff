"""DESIS Level-2A (surface reflectance) products, as DLR/Teledyne Brown deliver them: :func:`open_desis`.

Specification followed
----------------------
*DESIS Product Specification* (DLR, doc. PAV-DLR-ICD-003, issue 1.0, 2019-06-04), with the metadata element names
cross-checked against public readers of real products (they parse ``hsi_doc/specific/bandCharacterisation/band``).

A product folder ``DESIS-HSI-L2A-DT0483531728_001-20200804T234520-V0210/`` holds files named like it::

    ...-METADATA.xml          root hsi_doc: base, specific (bandCharacterisation, ...), processing
    ...-SPECTRAL_IMAGE.tif    int16 reflectance DN, 235 bands (fewer when binned), UTM, band-interleaved by pixel
    ...-SPECTRAL_IMAGE.hdr    ENVI-style header beside the GeoTIFF (not read: the XML says the same)
    ...-QL_QUALITY-2.tif      8 bands, 1 = flagged: 1 shadow, 2 land, 3 snow, 4 haze over land, 5 haze over water,
                              6 cloud over land, 7 cloud over water, 8 water
    ...-QL_QUALITY.tif, -QL_IMAGE.tif, -HISTORY.xml   (see assumptions; quicklook and history not read)

What is read
------------
* ``METADATA.xml``: ``specific/bandCharacterisation/band`` (``bandNumber``, ``wavelengthCenterOfBand`` and
  ``wavelengthWidthOfBand`` = FWHM, in nm, ``gainOfBand``, ``offsetOfBand``); the level from ``base/level`` when
  present, else from the product name (``DESIS-HSI-L2A-...``); acquisition times from ``base/temporalCoverage``.
* ``SPECTRAL_IMAGE.tif`` lazily: reflectance = ``DN * gainOfBand + offsetOfBand`` as float32, bands sorted by
  wavelength, NaN where DN equals the no-data value; CRS and transform from the GeoTIFF.
* Masks (``True`` = unusable): ``nodata`` (every band NaN), ``cloud`` (layer 6 or 7), ``shadow`` (1), ``haze``
  (4 or 5), ``snow`` (3), ``water`` (8).

Assumptions
-----------
* No-data value: the GeoTIFF's nodata tag, else a ``backgroundValue``/``noDataValue`` element anywhere in the
  metadata, else -32768 (the value public readers mask).
* Quality layer: ``-QL_QUALITY-2.tif`` when present, else ``-QL_QUALITY.tif`` if it has the same 8-layer layout;
  a ``-QL_QUALITY.tif`` of another layout is not interpreted (``metadata["quality_note"]`` says so).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import FileFormatError
from ..lazy import spatial_chunks
from .base import (
    Product,
    check_same_grid,
    find_member,
    find_product,
    mask_dataarray,
    nodata_mask,
    open_raster,
    parse_xml,
    reflectance_image,
    band_table,
    clean_text,
    nodata_value,
)

__all__ = ["open_desis"]

SPEC = "DESIS Product Specification (DLR, PAV-DLR-ICD-003, issue 1.0, 2019-06-04)"
_METADATA_RE = re.compile(r"^DESIS-HSI-.*-METADATA\.xml$", re.I)
_LEVEL_RE = re.compile(r"^DESIS-HSI-(L[0-9][A-Z])-", re.I)
#: mask name -> 1-based layers of QL_QUALITY-2 whose OR it is
QUALITY_LAYERS = {"cloud": (6, 7), "shadow": (1,), "haze": (4, 5), "snow": (3,), "water": (8,)}


def open_desis(path: str | os.PathLike[str], *, chunks: int | tuple[int, int] | None = None) -> Product:
    """Open a DESIS L2A product lazily: surface reflectance (float32, NaN = no data), band centres/FWHM, masks.

    Args:
        path: the product folder (or the folder it was unpacked into), its ``-METADATA.xml``, or any of its files.
        chunks: spatial chunk side, ``(rows, cols)``, or ``None`` for the GeoTIFF's blocks grouped to >= 512.

    Returns:
        :class:`~hsfuse.io.products.base.Product` with ``sensor="desis"``, ``level="L2A"``, ``kind="hsi"``; the module
        docstring says what is read. Nothing but metadata is read until computed.

    Raises:
        FileFormatError: no or several ``-METADATA.xml``, unparsable metadata, missing spectral image, a product of
        another level (L1B, L1C), metadata and image that disagree, a truncated raster.
        InputError: bad ``chunks``.
    """
    spatial_chunks(chunks, (1, 1))
    folder, meta_path = find_product(Path(path), _METADATA_RE, what="DESIS", pattern="DESIS-HSI-*-METADATA.xml")
    prefix = meta_path.name[: -len("-METADATA.xml")]
    root = parse_xml(meta_path, "DESIS metadata")
    if root.tag != "hsi_doc":
        raise FileFormatError(f"{meta_path} is not DESIS metadata: its root element is <{root.tag}>, expected "
                              "<hsi_doc>")
    name_level = _LEVEL_RE.match(prefix)
    level = (root.findtext("base/level") or "").strip() or (name_level.group(1) if name_level else "")
    if level.upper() != "L2A":
        raise FileFormatError(f"{meta_path} describes a DESIS {level or 'unknown-level'} product; open_desis reads "
                              "L2A (surface reflectance)")
    items = root.findall("specific/bandCharacterisation/band")
    numbers, wl, fwhm, gains, offsets = band_table(
        items, [item.findtext("bandNumber") or str(i + 1) for i, item in enumerate(items)],
        ("wavelengthCenterOfBand", "wavelengthWidthOfBand", "gainOfBand", "offsetOfBand"), meta_path,
        where="<specific><bandCharacterisation><band>", number_name="bandNumber")
    spectral = find_member(folder, prefix, "SPECTRAL_IMAGE", what="DESIS spectral image")
    raw = open_raster(spectral, chunks, what="DESIS spectral image")
    if raw.shape[0] != len(wl):
        raise FileFormatError(f"{spectral} has {raw.shape[0]} bands but {meta_path} characterises {len(wl)}")
    nodata, nodata_from = nodata_value(raw, root, (".//backgroundValue", ".//noDataValue"))
    image, order = reflectance_image(
        raw, wavelengths=wl, fwhm=fwhm, gains=gains, offsets=offsets, nodata=nodata,
        band_names=[f"B{n:03d}" for n in numbers], what=str(spectral),
        attrs={"source": str(folder), "format": "desis-l2a", "sensor": "desis", "level": "L2A"},
    )
    masks = {"nodata": nodata_mask(image)}
    files = {"metadata": meta_path.name, "spectral_image": spectral.name}
    quality_note = None
    cy, cx = image.data.chunks[1][0], image.data.chunks[2][0]
    quality = (find_member(folder, prefix, "QL_QUALITY-2", what="QL_QUALITY-2", required=False)
               or find_member(folder, prefix, "QL_QUALITY", what="QL_QUALITY", required=False))
    if quality is not None:
        ql = open_raster(quality, (cy, cx), what="DESIS quality layer")
        check_same_grid(ql, image, quality)
        if ql.shape[0] == 8:
            for name, layers in QUALITY_LAYERS.items():
                flagged = None
                for k in layers:
                    m = ql.data[k - 1] == 1
                    flagged = m if flagged is None else flagged | m
                masks[name] = mask_dataarray(flagged, image, name)
            files["quality"] = quality.name
        else:
            quality_note = (f"{quality.name} has {ql.shape[0]} layers, not the 8 of QL_QUALITY-2; not interpreted")
    metadata = {
        "product_name": prefix,
        "level": "L2A",
        "start_time": clean_text(root.findtext("base/temporalCoverage/startTime")),
        "end_time": clean_text(root.findtext("base/temporalCoverage/endTime")),
        "processor_version": _version(prefix),
        "nodata_value": nodata,
        "nodata_value_from": nodata_from,
        "band_numbers": [int(numbers[i]) for i in order],
        "gains": [float(gains[i]) for i in order],
        "offsets": [float(offsets[i]) for i in order],
        "scaling": "reflectance = DN * gainOfBand + offsetOfBand; DN == no-data value -> NaN",
        "quality_layers": {name: list(layers) for name, layers in QUALITY_LAYERS.items()},
        "quality_note": quality_note,
        "files": files,
        "specification": SPEC,
    }
    return Product(image=image, kind="hsi", sensor="desis", level="L2A", masks=masks,
                   metadata={k: v for k, v in metadata.items() if v is not None})


def _version(prefix: str) -> str | None:
    m = re.search(r"-V(\d{4})$", prefix)
    return m.group(1) if m else None
