"""The package's layers, stated once: a module may import only modules of lower or equal rank.

``tests/test_layering.py`` checks every import in ``src/hsfuse`` against :data:`RANK`; DEVELOPERS.md and the
README point here. Reading from the bottom:

* rank 0, **types and I/O**: ``errors``, ``_checks`` (validation shared by every public boundary), ``progress``
  (the progress-callback protocol), ``types`` (``Cube``, ``FusionMeasurement``), ``io`` (one reader/writer per
  format, atomic writes);
* 1, **physics**: the observation model as operators (PSF/decimation, SRF, noise), the SRF library, and the
  specs that build them from strings, files or arrays (``physics.specs``); **geo**: grids of real pairs, the fused
  grid, lazy warping;
* 2, **metrics**: reference and no-reference quality indices and their presets;
* 3, **models**: the networks (``models.catalog`` names them), checkpoints, tiled inference;
* 3.5, **methods** (every fusion method; ``methods.registry`` is *the* catalogue of methods, including the
  networks as methods) and **estimation** (blind PSF/SRF estimators, co-registration);
* 4, **data**, **training** and **chunked**: scenes, simulation, patches; the resumable step engine and the
  fusion trainer; the large-scene engine (chunked fusion on Dask);
* 4.5, **synthesis**: unmixing and abundance diffusion (training and datasets);
* 5, **bench**, **viz** (``*_figures`` modules draw) and **workflows** (one module per command group: files in,
  files out, built from the layers below; ``hsfuse.fuse`` lives in ``workflows.fusion``);
* 6, **cli**: parses arguments, calls one workflow function per command and prints.

The top-level ``hsfuse/__init__.py`` and ``__main__.py`` are exempt: they re-export the public API.
"""

from __future__ import annotations

__all__ = ["RANK"]

RANK: dict[str, float] = {
    "errors": 0, "_checks": 0, "progress": 0, "types": 0, "io": 0, "_layers": 0,
    "physics": 1, "geo": 1,
    "metrics": 2,
    "models": 3,
    "methods": 3.5, "estimation": 3.5,
    "data": 4, "training": 4, "chunked": 4,
    "synthesis": 4.5,
    "bench": 5, "viz": 5, "workflows": 5,
    "cli": 6,
}
