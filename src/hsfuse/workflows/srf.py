"""``hsfuse srf``: the sensor library as tables, and a sensor's SRF matrix on an HSI's bands as CSV."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..io import read_cube
from ..io.atomic import atomic_output, check_output_path
from ..physics.specs import resolve_srf
from ..physics.srf_library import get_sensor, list_sensors

__all__ = ["sensor_rows", "band_rows", "resample_to_csv", "pair_srf"]


def sensor_rows() -> list[dict[str, Any]]:
    """``hsfuse srf list``: one row per named sensor."""
    return [{"sensor": n, "description": d} for n, d in list_sensors()]


def band_rows(sensor: str) -> tuple[str, list[dict[str, Any]]]:
    """``hsfuse srf show``: a title and one row per band (centre and 1 %-of-peak range, nm)."""
    s = get_sensor(sensor)
    rows = [{"band": name, "centre_nm": float(c), "from_nm": float(lo), "to_nm": float(hi)}
            for name, c, (lo, hi) in zip(s.band_names, s.centers_nm, s.spans_nm)]
    return f"{s.name}: {s.source} (range: response >= 1% of peak)", rows


def resample_to_csv(sensor: str, hsi: str | os.PathLike[str], *, output: str | os.PathLike[str] | None = None,
                    bands: Sequence[str] | None = None, normalize: Literal["sum", "none"] = "none",
                    overwrite: bool = False) -> tuple[str, np.ndarray]:
    """``hsfuse srf resample``: the ``(m, L)`` matrix of ``sensor`` on the band centres of the HSI file ``hsi``, as
    CSV text (``wavelength_nm`` + one column per sensor band), written atomically to ``output`` when given."""
    if output is not None:
        check_output_path(output, overwrite=overwrite)
    cube = read_cube(hsi)
    if cube.wavelengths is None:  # (resolve_srf's advice, an SRF matrix, is what this command makes)
        raise InputError(f"{hsi} has no band wavelengths, so {sensor}'s responses cannot be placed on its bands: "
                         "give an HSI in a format that stores them (ENVI, GeoTIFF with wavelength tags, .npz with "
                         "wavelengths_nm)")
    matrix, names = resolve_srf(sensor, hsi_bands=cube.bands, wavelengths=cube.wavelengths, fwhm=cube.fwhm, bands=bands)
    if normalize == "sum":
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    text = io.StringIO()
    np.savetxt(text, np.column_stack([cube.wavelengths, matrix.T]), delimiter=",",
               header="wavelength_nm," + ",".join(names), comments="", fmt="%.8g")
    if output is not None:
        with atomic_output(Path(output), overwrite=overwrite) as tmp:
            Path(tmp).write_text(text.getvalue())
    return text.getvalue(), matrix


def pair_srf(hsi: str | os.PathLike[str], msi: str | os.PathLike[str] | None = None, *, sensor: str | None = None,
             bands: Sequence[str] | None = None, figure: str | os.PathLike[str] | None = None,
             overwrite: bool = False) -> tuple[str, list[dict[str, Any]], np.ndarray]:
    """``hsfuse srf show --hsi ... --msi ...``: the ``R`` matrix between an HSI (its band centres and FWHM, each
    band a Gaussian) and an MSI sensor (``sensor``, or the MSI product's own, e.g. ``sentinel2a``), with one row per
    MSI band (its centroid on the HSI bands and the share of its response the HSI covers) and, with ``figure``, the
    curves as a PNG. Bands outside the HSI's range are dropped with a warning."""
    from ..physics.srf_library import get_sensor
    from .products import open_input

    h = open_input(hsi, label="HSI").image
    if h.attrs.get("wavelength_units") != "nm":
        raise InputError(f"{hsi} has no band wavelengths; an SRF cannot be placed on its bands")
    wl = np.asarray(h.coords["band"].values, np.float64)
    fwhm = np.asarray(h.coords["fwhm"].values, np.float64) if "fwhm" in h.coords else None
    names = bands
    if sensor is None:
        if msi is None:
            raise InputError("give --msi (a product or raster whose sensor is known) or --sensor NAME")
        m = open_input(msi, label="MSI")
        sensor = m.sensor
        if sensor is None:
            raise InputError(f"the sensor of {msi} is not known; give --sensor NAME ('hsfuse srf list')")
        if names is None and "band_name" in m.image.coords:
            names = [str(n) for n in m.image.coords["band_name"].values]
    matrix, kept = resolve_srf(sensor, hsi_bands=wl.size, wavelengths=wl, fwhm=fwhm, bands=names)
    coverage = get_sensor(sensor).select(kept).coverage(wl, hsi_fwhm=fwhm)
    rows = [{"band": n, "centroid_nm": float((row * wl).sum() / row.sum()), "covered": float(c)}
            for n, row, c in zip(kept, matrix, coverage)]
    if figure is not None:
        from ..viz.blind_figures import plot_srf

        plot_srf(matrix, path=figure, wavelengths_nm=wl, band_names=kept, normalize=True, overwrite=overwrite,
                 title=f"{sensor} on the HSI's {wl.size} bands")
    return f"{sensor} on {wl.size} HSI bands ({wl[0]:g}-{wl[-1]:g} nm)", rows, matrix
