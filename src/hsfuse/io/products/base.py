"""What every satellite/airborne product reader returns: the image in the data model, its masks and metadata.

A reader (``open_enmap``, ``open_prisma``, ``open_emit``, ``open_desis``, ``open_sentinel2``, ``open_landsat``)
opens a product *as it comes* (its folder, archive members or files, per the agency's format specification) lazily
and returns a :class:`Product`:

* ``image``: an xarray ``DataArray`` ``(band, y, x)`` backed by dask (:mod:`hsfuse.io.lazy` conventions: ``band``
  = centre wavelength in nm with ``attrs["wavelength_units"] = "nm"``, ``fwhm`` and ``band_name`` coordinates,
  pixel-centre ``y``/``x`` map coordinates, CRS and transform through rioxarray), in **physical units** (surface
  reflectance in [0, 1] for L2A products): the product's scale factors and offsets are applied lazily, as float32,
  and its no-data pixels are NaN;
* ``masks``: named boolean ``(y, x)`` DataArrays on the image's grid, ``True`` where a pixel is *unusable* for that
  reason (``"nodata"``, ``"cloud"``, ``"shadow"``, ``"snow"``, ``"water"``, ``"quality"``...), lazily;
* ``kind``: ``"hsi"`` or ``"msi"``; ``sensor``: e.g. ``"enmap"``, ``"sentinel2a"`` (a name ``hsfuse srf list`` knows
  for multispectral sensors); ``level``: e.g. ``"L2A"``;
* ``metadata``: what was read (acquisition time, processing baseline/version, scale factors, source files), JSON-able.

:meth:`Product.unusable` combines masks; :meth:`Product.describe` is what ``hsfuse info`` prints for a product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Product", "ProductKind"]

ProductKind = Literal["hsi", "msi"]


@dataclass
class Product:
    """A product opened lazily (module docstring)."""

    image: Any
    kind: ProductKind
    sensor: str
    level: str
    masks: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def unusable(self, reasons: Sequence[str] | None = None) -> Any | None:
        """The OR of the named masks (default: all), a lazy boolean ``(y, x)`` DataArray, or ``None`` if none."""
        names = list(self.masks) if reasons is None else list(reasons)
        unknown = [n for n in names if n not in self.masks]
        if unknown:
            from ...errors import InputError

            raise InputError(f"{self.sensor} {self.level} has no mask(s) {', '.join(unknown)}; it has: "
                             f"{', '.join(self.masks) or 'none'}")
        out = None
        for name in names:
            out = self.masks[name] if out is None else (out | self.masks[name])
        return out

    def describe(self) -> str:
        """A multi-line summary: sensor, level, size, bands and wavelength range, grid, masks, metadata keys."""
        da = self.image
        bands, h, w = (int(n) for n in da.shape)
        lines = [f"product:      {self.sensor} {self.level} ({'hyperspectral' if self.kind == 'hsi' else 'multispectral'})",
                 f"shape:        {h} x {w} x {bands} (H x W x B), {da.dtype}, chunks "
                 f"{da.chunks[1][0]} x {da.chunks[2][0]}" if getattr(da, "chunks", None) else
                 f"shape:        {h} x {w} x {bands} (H x W x B), {da.dtype}"]
        if da.attrs.get("wavelength_units") == "nm":
            wl = da.coords["band"].values
            lines.append(f"wavelengths:  {bands} bands, {float(wl.min()):g} - {float(wl.max()):g} nm")
        if "band_name" in da.coords:
            names = [str(n) for n in da.coords["band_name"].values]
            lines.append("band names:   " + ", ".join(names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else ""))
        try:
            crs = da.rio.crs
            res = da.rio.resolution()
        except Exception:  # noqa: BLE001 - no spatial metadata
            crs, res = None, None
        lines.append(f"crs:          {crs if crs is not None else 'none'}")
        if res is not None and crs is not None:
            lines.append(f"pixel size:   {abs(res[0]):g} x {abs(res[1]):g} (map units)")
        lines.append(f"masks:        {', '.join(self.masks) if self.masks else 'none'}")
        shown = [(k, str(v)) for k, v in sorted(self.metadata.items()) if not isinstance(v, (dict, list))
                 and len(str(v)) <= 100]
        if shown:
            lines.append("metadata:")
            lines.extend(f"  {key}: {text}" for key, text in shown)
        return "\n".join(lines)
