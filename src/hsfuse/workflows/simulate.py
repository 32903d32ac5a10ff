"""``hsfuse simulate``: Wald's protocol from a reference file to a folder of inputs and their known operators."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.simulation import Simulation, simulate
from ..errors import InputError
from ..io import read_cube, write_cube
from ..io.atomic import atomic_folder_files, check_output_path
from ..physics.serialize import observation_to_dict
from ..physics.specs import PsfSpec, SrfSpec, resolve_psf, resolve_srf

__all__ = ["simulate_to_folder", "SIMULATION_FILES"]

#: the files of a simulation folder, by role
SIMULATION_FILES = ("hsi", "msi", "reference")


def _cube_files(path: Path) -> list[Path]:
    """The files a cube written to ``path`` occupies: an ENVI ``.hdr`` with its ``.img``, else ``path`` alone."""
    return [path, path.with_suffix(".img")] if path.suffix.lower() == ".hdr" else [path]


def simulate_to_folder(reference: str | os.PathLike[str], output: str | os.PathLike[str], *, srf: SrfSpec, ratio: int,
                       bands: Sequence[str] | None = None, preset: str = "hsfuse", psf: PsfSpec = None,
                       snr_hsi_db: float | None = None, snr_msi_db: float | None = None, seed: int | None = None,
                       ext: str = "npz", variable: str | None = None, layout: str = "auto", overwrite: bool = False,
                       say: Callable[[str], None] = lambda _m: None) -> Simulation:
    """Simulate the pair of ``reference`` and write ``output/{hsi,msi,reference}.EXT`` and ``physics.json``.

    The outputs are checked before any work (existing files need ``overwrite``); the reference is cropped to a
    multiple of ``ratio``; ``physics.json`` records the exact PSF, SRF, ratio, offset, boundary and preset used
    (pass it to ``hsfuse fuse --physics``).
    """
    out = Path(output)
    names = {name: f"{name}.{ext}" for name in SIMULATION_FILES}
    # every file of the result (an ENVI cube is a .hdr/.img pair), written and renamed as one unit
    files = [q.name for name in SIMULATION_FILES for q in _cube_files(Path(names[name]))] + ["physics.json"]
    if out.exists() and not out.is_dir():  # refused before any work (a missing folder, parents included, is made)
        raise InputError(f"cannot write folder {out}: a file of that name exists; remove it or choose another path")
    if out.is_dir():  # refuse existing outputs before any work
        for name in files:
            check_output_path(out / name, overwrite=overwrite)
    ref = read_cube(reference, variable=variable, layout=layout)
    say(f"reference {ref.shape[0]}x{ref.shape[1]}x{ref.bands}")
    matrix, band_names = resolve_srf(srf, hsi_bands=ref.bands, wavelengths=ref.wavelengths, fwhm=ref.fwhm,
                                     bands=bands)
    kernel = resolve_psf(psf, ratio=ratio) if psf is not None else None
    sim = simulate(ref, matrix, ratio=ratio, preset=preset, srf_band_names=band_names, psf=kernel,
                   snr_hsi_db=snr_hsi_db, snr_msi_db=snr_msi_db, seed=seed)
    description: dict[str, Any] = observation_to_dict(sim.physics)
    description["preset"] = dict(vars(sim.preset))
    # a new folder appears whole (the staging folder renamed); in an existing one the files are replaced as one
    # group, its other files kept (hsfuse.io.atomic.atomic_folder_files)
    with atomic_folder_files(out, files, overwrite=overwrite) as staging:
        for name, cube in (("hsi", sim.hsi), ("msi", sim.msi), ("reference", sim.reference)):
            write_cube(cube, staging / names[name])
        (staging / "physics.json").write_text(json.dumps(description, indent=1) + "\n")
    targets = {name: out / names[name] for name in SIMULATION_FILES}
    physics_path = out / "physics.json"
    for name, cube in (("hsi", sim.hsi), ("msi", sim.msi), ("reference", sim.reference)):
        say(f"wrote {targets[name]} ({cube.shape[0]}x{cube.shape[1]}x{cube.bands})")
    say(f"wrote {physics_path} (PSF, SRF, ratio, offset, boundary: pass it to 'hsfuse fuse --physics')")
    return sim
