"""``hsfuse srf``: the sensor library as tables, and a sensor's SRF matrix on an HSI's bands as CSV."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..io import read_cube
from ..io.atomic import atomic_output, check_output_path
from ..physics.specs import resolve_srf
from ..physics.srf_library import get_sensor, list_sensors

__all__ = ["sensor_rows", "band_rows", "resample_to_csv"]


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
