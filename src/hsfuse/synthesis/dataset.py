"""Stage 3 of "Unmixing Before Fusion": hyperspectral images as endmembers times abundances, written to disk.

``Y[i, j, :] = E A[i, j, :]`` with the unmixing network's endmembers ``E`` ``(C, K)`` and generated (or
RGB-inferred) abundances ``A`` ``(H, W, K)``. The authors min-max normalise ``E`` to ``[0, 1]`` before
synthesis; here ``E`` keeps the units of the scenes it was learnt from (each scaled to a maximum of 1), so the
synthetic cubes are on the real ones' scale.

Dataset folder (written atomically: a failed run leaves no half-written folder)::

    hsi/synth_00000.<ext>        the cube, with wavelengths (any format :func:`hsfuse.io.write_cube` writes)
    msi/synth_00000.<ext>        its simulated MSI/RGB ``R Y`` (when a sensor is given), with band names
    abundances/synth_00000.npz   the abundances used (key ``abundances``)
    endmembers.csv               wavelength (or band index) + one column per endmember
    dataset.json                 provenance: endmember source, abundance source, sensor, counts, format

``hsfuse train --data <folder>/hsi`` trains a fusion network on the cubes (it simulates LR-HSI/MSI itself).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import write_cube
from ..io.atomic import atomic_output_dir
from ..physics.srf_library import srf_matrix
from ..types import Cube

__all__ = ["synthesize", "write_dataset", "DATASET_FILE"]

DATASET_FILE = "dataset.json"


def synthesize(endmembers: np.ndarray, abundances: np.ndarray) -> np.ndarray:
    """``Y = A E^T``: abundances ``(..., K)`` times endmembers ``(C, K)`` -> ``(..., C)`` float32."""
    e = np.asarray(endmembers, dtype=np.float32)
    a = np.asarray(abundances, dtype=np.float32)
    if e.ndim != 2:
        raise InputError(f"endmembers must be (bands, K), got shape {e.shape}")
    if a.shape[-1] != e.shape[1]:
        raise InputError(f"abundances have {a.shape[-1]} maps but there are {e.shape[1]} endmembers; use the "
                         "unmixing model the abundances came from")
    return a @ e.T


def _write_endmembers(path: Path, endmembers: np.ndarray, wavelengths: np.ndarray | None) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["wavelength_nm" if wavelengths is not None else "band"] +
                   [f"endmember_{k}" for k in range(endmembers.shape[1])])
        axis = wavelengths if wavelengths is not None else np.arange(endmembers.shape[0])
        for x, row in zip(axis, endmembers):
            w.writerow([f"{x:g}"] + [f"{v:.7g}" for v in row])


def write_dataset(out: str | os.PathLike[str], *, endmembers: np.ndarray, abundances: Sequence[np.ndarray],
                  wavelengths_nm: Any = None, ext: str = "npz", msi_sensor: str | None = None,
                  msi_bands: Sequence[str] | None = None, drop_uncovered: bool = False,
                  provenance: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Synthesise one cube per abundance map and write the dataset folder (module docstring).

    Args:
        out: the dataset folder (replaced only with ``overwrite`` and only if it holds a dataset's files).
        endmembers: ``(C, K)``.
        abundances: maps ``(H, W, K)``.
        wavelengths_nm: ``(C,)`` band centres stored with each cube (needed for ``msi_sensor``).
        ext: file extension of the cubes (``npz``, ``mat``, ``tif``, ``hdr``, ``npy``).
        msi_sensor: a sensor name or SRF ``.csv`` to also write the simulated MSI/RGB.
        msi_bands, drop_uncovered: keep only these sensor bands / drop the bands the cubes' range does not cover
            (:func:`hsfuse.physics.srf_library.srf_matrix`).
        provenance: stored in ``dataset.json``.
    """
    ext = ext.lstrip(".").lower()
    if ext not in ("npz", "mat", "tif", "tiff", "hdr", "npy"):
        raise InputError(f"unsupported dataset format {ext!r}; choose npz, mat, tif, hdr or npy")
    e = np.asarray(endmembers, dtype=np.float32)
    wl = None if wavelengths_nm is None else np.asarray(wavelengths_nm, dtype=np.float64)
    if wl is not None and wl.shape != (e.shape[0],):
        raise InputError(f"{wl.size} wavelengths for {e.shape[0]} endmember bands")
    if not abundances:
        raise InputError("no abundance maps to synthesise from")
    response = names = None
    if msi_sensor is not None:
        if wl is None:
            raise InputError("simulating an MSI needs the cubes' wavelengths; the unmixing model has none")
        response, names = srf_matrix(msi_sensor, wl, normalize="sum", bands=list(msi_bands) if msi_bands else None,
                                     drop_uncovered=drop_uncovered)
    files = []
    with atomic_output_dir(out, overwrite=overwrite,
                           replaceable=lambda p: p.name in {"hsi", "msi", "abundances", "endmembers.csv",
                                                            DATASET_FILE}) as tmp:
        for sub in ("hsi", "abundances") + (("msi",) if response is not None else ()):
            (tmp / sub).mkdir()
        for i, a in enumerate(abundances):
            name = f"synth_{i:05d}"
            y = synthesize(e, a)
            write_cube(Cube(y, wavelengths=wl, units="reflectance (scaled)",
                            attrs={"synthetic": True, "index": i}), tmp / "hsi" / f"{name}.{ext}")
            if response is not None:
                msi = y @ response.T.astype(np.float32)
                write_cube(Cube(msi.astype(np.float32), band_names=list(names), units="reflectance (scaled)"),
                           tmp / "msi" / f"{name}.{ext}")
            np.savez_compressed(tmp / "abundances" / f"{name}.npz", abundances=np.asarray(a, dtype=np.float32))
            files.append(name)
        _write_endmembers(tmp / "endmembers.csv", e, wl)
        meta = {"format": "hsfuse-synthetic-dataset", "cubes": len(files), "ext": ext, "bands": int(e.shape[0]),
                "endmembers": int(e.shape[1]), "msi_sensor": msi_sensor, "msi_bands": names,
                "wavelengths_nm": None if wl is None else wl.tolist(), "files": files, "provenance": provenance or {}}
        (tmp / DATASET_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return Path(out)
