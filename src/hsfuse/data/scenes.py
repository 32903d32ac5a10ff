"""The small real scenes shipped in the shared data folder, loaded as :class:`~hsfuse.types.Cube`.

Reflectance scaling is explicit: ``normalize="max"`` divides by the cube's maximum (so values lie in
[0, 1] and the metrics' ``data_range=1`` applies), ``"none"`` keeps the stored numbers (after the dataset's own
documented scale factor, e.g. Jasper Ridge's 1/5000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError
from ..types import Cube
from .paths import shared_file

__all__ = ["SceneInfo", "SCENES", "load_scene"]


@dataclass(frozen=True)
class SceneInfo:
    """Where a shared scene lives and how to read it."""

    file: str
    key: str
    description: str
    scale_key: str | None = None


SCENES: dict[str, SceneInfo] = {
    "pavia_u": SceneInfo("derived/paviaU_subset.npz", "cube",
                         "ROSIS Pavia University crop, 140x80x103, approx. 430-860 nm"),
    "indian_pines": SceneInfo("derived/indian_pines_subset.npz", "cube",
                              "AVIRIS Indian Pines crop, 70x70x200 (water bands removed), approx. 400-2500 nm"),
    "jasper_ridge": SceneInfo("derived/jasper_ridge.npz", "cube",
                              "AVIRIS Jasper Ridge, 100x100x198, approx. 380-2500 nm", scale_key="scale"),
    "samson": SceneInfo("derived/samson.npz", "cube", "Samson, 95x95x156, approx. 401-889 nm"),
    # the hyperspectral half of the real Houston pair, used alone as a reference scene (UDALN's paper setting)
    "houston2018": SceneInfo("derived/houston2018.npz", "hsi",
                             "CASI Houston 2018 (GRSS DFC) crop, 128x128x48, approx. 380-1050 nm"),
}


def load_scene(name: str, *, normalize: Literal["max", "none"] = "max") -> Cube:
    """Load a shared real scene by name (see :data:`SCENES`) as a float32 cube with wavelengths."""
    if name not in SCENES:
        raise InputError(f"unknown scene {name!r}; known scenes: {', '.join(sorted(SCENES))}")
    if normalize not in ("max", "none"):
        raise InputError(f"normalize must be 'max' or 'none', got {normalize!r}")
    info = SCENES[name]
    path = shared_file(*info.file.split("/"))
    with np.load(path) as z:
        data = z[info.key].astype(np.float32)
        if info.scale_key is not None:
            data /= float(z[info.scale_key])
        wavelengths = z["wavelengths_nm"] if "wavelengths_nm" in z.files else None
    if normalize == "max":
        data /= float(data.max())
    return Cube(data, wavelengths=wavelengths, units="reflectance (scaled)",
                attrs={"source": str(path), "scene": name, "normalize": normalize})
