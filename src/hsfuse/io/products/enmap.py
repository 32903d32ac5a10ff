"""EnMAP HSI Level-2A (surface reflectance) products, as DLR delivers them: :func:`open_enmap`.

Specification followed
----------------------
*EnMAP HSI Level 1B / 1C / 2A Product Specification* (DLR/GFZ, doc. EN-PCV-ICD-2009-2, issue 1.x; metadata XML
schema ``level_X``, ``metadata/schema/versionSchema`` 01.xx). The document is distributed to EnMAP data users and is
not reproduced here; the element names and nesting read below were cross-checked against the public readers of the
format (ESA SNAP's ``eu.esa.opt.dataio.enmap`` and the EnMAP-Box "Import EnMAP L2A product" algorithm). Where the
specification was not at hand, the assumption is stated.

A product (the unpacked delivery folder, named like its files) holds::

    ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z-METADATA.XML
    ...-SPECTRAL_IMAGE.TIF            reflectance DN, int16, all bands, UTM (or .BSQ/.BIL/.BIP + .HDR, or _COG.TIF)
    ...-QL_QUALITY_CLOUD.TIF          1 = cloud
    ...-QL_QUALITY_CLOUDSHADOW.TIF    1 = cloud shadow
    ...-QL_QUALITY_HAZE.TIF           1 = haze
    ...-QL_QUALITY_CIRRUS.TIF         1/2/3 = thin/medium/thick cirrus
    ...-QL_QUALITY_SNOW.TIF           1 = snow
    ...-QL_QUALITY_CLASSES.TIF        bits 0-1: 01 land, 10 water, 11 background
    ...-QL_PIXELMASK.TIF              per band, bit 0 = defective detector pixel (255 = background)
    ...-QL_QUALITY_TESTFLAGS.TIF, -QL_VNIR.TIF, -QL_SWIR.TIF, -HISTORY.XML   (not read)

What is read
------------
* ``METADATA.XML`` (root ``level_X``): ``base/level`` (must be ``L2A``), ``specific/bandCharacterisation/bandID``
  (attribute ``number``; ``wavelengthCenterOfBand``, ``FWHMOfBand`` in nm, ``GainOfBand``, ``OffsetOfBand``),
  ``specific/backgroundValue`` (no-data), ``specific/vnirProductQuality|swirProductQuality/expectedChannelsList``
  (which band numbers come from which detector), ``metadata/name``, ``base/revision`` (processor version),
  ``metadata/schema/versionSchema``, ``base/temporalCoverage/startTime|stopTime``, ``processing/productFormat``,
  ``product/ortho/projection``.
* ``SPECTRAL_IMAGE``: lazily (:func:`hsfuse.io.lazy.open_lazy`); CRS (UTM) and transform from the GeoTIFF (or the
  ENVI header's ``map info``). Reflectance = ``DN * GainOfBand + OffsetOfBand`` per band, as float32; pixels equal
  to the no-data value are NaN.
* Band order: the L2A file is ordered by wavelength (its VNIR and SWIR bands interleave in the 900-1000 nm detector
  overlap); the reader sorts by ``wavelengthCenterOfBand`` anyway and keeps every band (both detectors in the
  overlap; ``metadata["vnir_bands"]``/``["swir_bands"]`` say which band numbers are which). Bands filled with the
  no-data value (the product's bad bands) stay in the image, all NaN.
* Masks (``True`` = unusable): ``nodata`` (every band is NaN), ``cloud``, ``shadow``, ``cirrus`` (any class),
  ``haze``, ``snow``, ``water`` (class 10 of ``QL_QUALITY_CLASSES``), ``defective`` (bit 0 of any band of
  ``QL_PIXELMASK``, background 255 excluded); a mask whose file is absent is left out.

Assumptions
-----------
* No-data value: the GeoTIFF's nodata tag, else ``specific/backgroundValue``, else -32768 (what SNAP's reader uses
  for L2A, whose metadata may lack it).
* Quality rasters have the spectral image's size and grid (checked: size and transform; refused otherwise).
* ``QL_QUALITY_TESTFLAGS`` and the quicklooks are not interpreted.

The helpers it shares with :mod:`.desis`, :mod:`.prisma` and :mod:`.emit` (product folders, DLR metadata XML, the
float32 reflectance image, masks) are in :mod:`.base`.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ...errors import FileFormatError
from ..lazy import spatial_chunks
from .base import (
    Product,
    check_same_grid,
    clean_text,
    find_member,
    find_product,
    mask_dataarray,
    nodata_mask,
    open_raster,
    parse_xml,
    reflectance_image,
    band_table,
    nodata_value,
)

__all__ = ["open_enmap"]

SPEC = "EnMAP HSI Level 1B/1C/2A Product Specification (DLR/GFZ, EN-PCV-ICD-2009-2, issue 1.x; XML schema level_X)"
_METADATA_RE = re.compile(r"^ENMAP.*-METADATA\.XML$", re.I)

#: quality raster key -> (mask name, rule)
_QUALITY = {
    "QL_QUALITY_CLOUD": ("cloud", "eq1"),
    "QL_QUALITY_CLOUDSHADOW": ("shadow", "eq1"),
    "QL_QUALITY_CIRRUS": ("cirrus", "cirrus"),
    "QL_QUALITY_HAZE": ("haze", "eq1"),
    "QL_QUALITY_SNOW": ("snow", "eq1"),
    "QL_QUALITY_CLASSES": ("water", "water_class"),
    "QL_PIXELMASK": ("defective", "pixelmask"),
}


def open_enmap(path: str | os.PathLike[str], *, chunks: int | tuple[int, int] | None = None) -> Product:
    """Open an EnMAP L2A product lazily: surface reflectance (float32, NaN = no data), band centres/FWHM, masks.

    Args:
        path: the product folder (or the folder it was unpacked into), its ``-METADATA.XML``, or any of its files.
        chunks: spatial chunk side, ``(rows, cols)``, or ``None`` for the GeoTIFF's blocks grouped to >= 512.

    Returns:
        :class:`~hsfuse.io.products.base.Product` with ``sensor="enmap"``, ``level="L2A"``, ``kind="hsi"``; the
        module docstring says what is read and which masks are made. Nothing but metadata is read until computed.

    Raises:
        FileFormatError: no or several ``-METADATA.XML``, unparsable metadata, missing spectral image, a product of
        another level (L1B/L1C), metadata and image that disagree, a truncated raster.
        InputError: bad ``chunks``.
    """
    spatial_chunks(chunks, (1, 1))  # bad chunks -> InputError before any file is touched
    folder, meta_path = find_product(Path(path), _METADATA_RE, what="EnMAP", pattern="ENMAP*-METADATA.XML")
    prefix = meta_path.name[: -len("-METADATA.XML")]
    root = parse_xml(meta_path, "EnMAP metadata")
    if root.tag != "level_X":
        raise FileFormatError(f"{meta_path} is not EnMAP metadata: its root element is <{root.tag}>, expected "
                              "<level_X>")
    level = (root.findtext("base/level") or "").strip()
    if level and level.upper() != "L2A":
        raise FileFormatError(f"{meta_path} describes an EnMAP {level} product; open_enmap reads L2A (surface "
                              "reflectance, orthorectified)")
    if not level and "L2A" not in prefix.upper():
        raise FileFormatError(f"{meta_path}: no <base><level> and the name does not say L2A; open_enmap reads L2A")
    items = root.findall("specific/bandCharacterisation/bandID")
    numbers, wl, fwhm, gains, offsets = band_table(
        items, [item.get("number", str(i + 1)) for i, item in enumerate(items)],
        ("wavelengthCenterOfBand", "FWHMOfBand", "GainOfBand", "OffsetOfBand"), meta_path,
        where="<specific><bandCharacterisation><bandID>", number_name="bandID number")
    spectral = find_member(folder, prefix, "SPECTRAL_IMAGE", what="EnMAP spectral image")
    raw = open_raster(spectral, chunks, what="EnMAP spectral image")
    if raw.shape[0] != len(wl):
        raise FileFormatError(f"{spectral} has {raw.shape[0]} bands but {meta_path} characterises {len(wl)}")
    nodata, nodata_from = nodata_value(raw, root, ("specific/backgroundValue",))
    image, order = reflectance_image(
        raw, wavelengths=wl, fwhm=fwhm, gains=gains, offsets=offsets, nodata=nodata,
        band_names=[f"B{n:03d}" for n in numbers], what=str(spectral),
        attrs={"source": str(folder), "format": "enmap-l2a", "sensor": "enmap", "level": "L2A"},
    )
    masks = {"nodata": nodata_mask(image)}
    files = {"metadata": meta_path.name, "spectral_image": spectral.name}
    cy, cx = image.data.chunks[1][0], image.data.chunks[2][0]
    for key, (name, rule) in _QUALITY.items():
        member = find_member(folder, prefix, key, what=key, required=False)
        if member is None:
            continue
        ql = open_raster(member, (cy, cx), what=f"EnMAP {key}")
        check_same_grid(ql, image, member)
        masks[name] = mask_dataarray(_quality_rule(ql.data, rule), image, name)
        files[name] = member.name
    vnir = _channel_list(root, "specific/vnirProductQuality/expectedChannelsList")
    swir = _channel_list(root, "specific/swirProductQuality/expectedChannelsList")
    metadata = {
        "product_name": prefix,
        "level": "L2A",
        "processor_version": clean_text(root.findtext("base/revision")),
        "schema_version": clean_text(root.findtext("metadata/schema/versionSchema")),
        "start_time": clean_text(root.findtext("base/temporalCoverage/startTime")),
        "stop_time": clean_text(root.findtext("base/temporalCoverage/stopTime")),
        "product_format": clean_text(root.findtext("processing/productFormat")),
        "projection": clean_text(root.findtext("product/ortho/projection")),
        "nodata_value": nodata,
        "nodata_value_from": nodata_from,
        "band_numbers": [int(numbers[i]) for i in order],
        "gains": [float(gains[i]) for i in order],
        "offsets": [float(offsets[i]) for i in order],
        "vnir_bands": vnir,
        "swir_bands": swir,
        "scaling": "reflectance = DN * GainOfBand + OffsetOfBand; DN == no-data value -> NaN",
        "files": files,
        "specification": SPEC,
    }
    return Product(image=image, kind="hsi", sensor="enmap", level="L2A", masks=masks,
                   metadata={k: v for k, v in metadata.items() if v is not None})


def _channel_list(root: ET.Element, tag: str) -> list[int] | None:
    text = root.findtext(tag)
    if not text:
        return None
    try:
        return [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        return None


def _quality_rule(data: Any, rule: str) -> Any:
    """Lazy boolean ``(y, x)`` of a quality raster ``(bands, y, x)`` under ``rule`` (module docstring)."""
    band0 = data[0]
    if rule == "eq1":
        return band0 == 1
    if rule == "cirrus":
        return (band0 >= 1) & (band0 <= 3)
    if rule == "water_class":
        return (band0 & 3) == 2
    if rule == "pixelmask":
        return (((data & 1) == 1) & (data != 255)).any(axis=0)
    raise AssertionError(rule)  # pragma: no cover
