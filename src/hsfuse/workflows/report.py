"""``hsfuse report`` and the ``--report`` options: the HTML page (:mod:`hsfuse.viz.report`) of runs on disk.

A RUN is one of:

* a ``demo`` folder (``metrics.json``, ``reference/hsi/msi.npz``, ``fused_*.npz``, ``physics.json``);
* a ``pair`` folder (``report.json``, ``fused_*.npz``, ``operators/physics.json``; the inputs are the files named
  in ``report.json`` unless ``hsi``/``msi`` are given);
* a fused image file (any format hsfuse reads, ``.zarr`` included), named by its file stem; the inputs, the
  reference and the operators then come from the keyword arguments.

Several RUNs are shown together (their results side by side); the first RUN that has them gives the inputs,
reference, operators and metric rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..physics.serialize import load_observation
from ..viz.report import ReportInputs, ReportSummary, write_report

__all__ = ["run_report_inputs", "write_run_report", "check_report_path", "report_of_fused"]


def check_report_path(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Pre-flight check of a report path (``.html``, writable, not existing unless ``overwrite``)."""
    from ..io.atomic import check_output_path

    if Path(path).suffix.lower() not in (".html", ".htm"):
        raise InputError(f"a report is an HTML page: give a name ending in .html, got {Path(path).name!r}")
    return check_output_path(path, overwrite=overwrite)


def report_of_fused(result: str | os.PathLike[str], output: str | os.PathLike[str], *, hsi: str | os.PathLike[str],
                    msi: str | os.PathLike[str], method: str, options: Mapping[str, Any] | None = None,
                    physics: Any = None, overwrite: bool = False, **physics_args: Any) -> ReportSummary:
    """``hsfuse fuse --report``: the page of a fused file with its inputs and operators.

    The operators are ``physics`` (a ``physics.json``) or, when ``physics_args`` name an SRF, rebuilt as ``hsfuse
    fuse`` built them (:func:`hsfuse.physics.specs.build_observation` on the files' headers; no pixel is read).
    Inputs on grids other than the result's (products, rasters warped by the real-pair workflow) are left out of
    the page, which then says so, rather than refused after the fusion.
    """
    from ..io.lazy import band_info, open_lazy
    from ..physics.specs import build_observation

    fused, h, m = open_lazy(result), open_lazy(hsi), open_lazy(msi)
    H, W = fused.sizes["y"], fused.sizes["x"]
    on_grid = ((m.sizes["y"], m.sizes["x"]) == (H, W) and H % h.sizes["y"] == 0 and W % h.sizes["x"] == 0
               and H // h.sizes["y"] == W // h.sizes["x"])
    notes = []
    if not on_grid:
        notes.append("the inputs are on their own grids (a real pair warped onto the fused grid), so the page shows "
                     "the result alone")
        h = m = physics = None
    elif physics is None and physics_args.get("srf") is not None:
        info = band_info(h)
        physics = build_observation(hsi_bands=h.sizes["band"], msi_bands=m.sizes["band"], ratio=H // h.sizes["y"],
                                    wavelengths=info.get("wavelengths"), fwhm=info.get("fwhm"), **physics_args)
    inputs = run_report_inputs([result], hsi=h, msi=m, physics=physics, options={method: dict(options or {})},
                               title=f"hsfuse fuse: {Path(result).name} ({method})")
    return write_report(output, dataclasses.replace(inputs, notes=notes), overwrite=overwrite)


def _demo(folder: Path, found: dict[str, Any]) -> None:
    meta = json.loads((folder / "metrics.json").read_text())
    for name in ("hsi", "msi", "reference"):
        if (folder / f"{name}.npz").is_file():
            found.setdefault(name, folder / f"{name}.npz")
    if (folder / "physics.json").is_file():
        found.setdefault("physics", folder / "physics.json")
    rows = meta.get("results", [])
    found.setdefault("metrics", rows)
    found["seconds"].update({r["method"]: r["time_s"] for r in rows if "time_s" in r})
    found.setdefault("title", f"hsfuse demo: {meta.get('size')} x {meta.get('size')} synthetic scene, ratio "
                              f"{meta.get('ratio')}, {meta.get('sensor')}")


def _pair(folder: Path, found: dict[str, Any]) -> None:
    from ..io import read_cube
    from ..physics.transfer import to_linear
    from ..types import Cube

    meta = json.loads((folder / "report.json").read_text())
    for name in ("hsi", "msi"):
        entry = meta.get(name) or {}
        source = entry.get("source")
        if name in found or not (source and Path(source).exists()):
            continue
        cube = read_cube(source, variable=entry.get("variable"))
        if name == "msi":  # as the operators see it: linear (an sRGB camera image decoded), no-data as 0
            data = to_linear(cube.data, meta.get("msi_transfer") or "linear")
            if cube.nodata is not None:
                data = np.where(np.all(cube.data == cube.nodata, axis=2, keepdims=True), 0.0, data)
            cube = Cube(data.astype(np.float32), wavelengths=cube.wavelengths, band_names=cube.band_names)
        found[name] = cube
    if (folder / "operators" / "physics.json").is_file():
        found.setdefault("physics", folder / "operators" / "physics.json")
        found.setdefault("operators", f"estimated by {meta.get('estimator', 'the pair workflow')}")
    keys = ("qnr", "d_lambda", "d_s", "hsi_psnr", "msi_psnr")
    found["scores"].update({m: {k: v[k] for k in keys if k in v} for m, v in meta.get("methods", {}).items()})
    found["seconds"].update({m: v["seconds"] for m, v in meta.get("methods", {}).items() if "seconds" in v})
    found.setdefault("title", f"hsfuse pair: {folder.name}")


def run_report_inputs(runs: Sequence[str | os.PathLike[str]], *, hsi: Any = None, msi: Any = None,
                      reference: Any = None, physics: Any = None, title: str | None = None,
                      command: str | None = None, metrics: Sequence[Mapping[str, Any]] | None = None,
                      scores: Mapping[str, Mapping[str, Any]] | None = None,
                      options: Mapping[str, Mapping[str, Any]] | None = None) -> ReportInputs:
    """The :class:`~hsfuse.viz.report.ReportInputs` of ``runs`` (module docstring); explicit ``hsi``, ``msi``,
    ``reference``, ``physics`` (a ``physics.json`` path or an observation), ``metrics``, ``scores`` and
    ``options`` win over what the runs hold."""
    if not runs:
        raise InputError("give at least one RUN: a demo or pair output folder, or a fused image file")
    found: dict[str, Any] = {"seconds": {}, "scores": {}}
    for key, value in (("hsi", hsi), ("msi", msi), ("reference", reference), ("physics", physics),
                       ("title", title), ("metrics", metrics)):
        if value is not None:
            found[key] = value
    results: dict[str, Any] = {}
    for run in runs:
        path = Path(run)
        if not path.exists():
            raise InputError(f"{path} not found; give a demo or pair output folder or a fused image file")
        if path.is_dir() and path.suffix.lower() != ".zarr":
            fused = sorted(path.glob("fused_*.npz"))
            if (path / "metrics.json").is_file():
                _demo(path, found)
            elif (path / "report.json").is_file():
                _pair(path, found)
            else:
                raise InputError(f"{path} is neither a 'hsfuse demo' nor a 'hsfuse pair' output folder (no "
                                 "metrics.json or report.json); give those folders or fused image files")
            if not fused:
                raise InputError(f"{path} holds no fused_*.npz results")
            for f in fused:
                results[_unique(results, f.stem.removeprefix("fused_"))] = f
        else:
            results[_unique(results, path.stem)] = path
    obs = found.get("physics")
    if isinstance(obs, (str, os.PathLike)):
        obs = load_observation(obs)
    return ReportInputs(results=results, hsi=found.get("hsi"), msi=found.get("msi"),
                        reference=found.get("reference"), physics=obs, operators=found.get("operators", "given"),
                        metrics=found.get("metrics"), scores=dict(scores or found["scores"]) or None,
                        seconds=found["seconds"], options=dict(options or {}),
                        title=found.get("title", "hsfuse report"), command=command or " ".join(sys.argv))


def _unique(taken: Mapping[str, Any], name: str) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name} ({i})" in taken:
        i += 1
    return f"{name} ({i})"


def write_run_report(runs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                     overwrite: bool = False, max_side: int = 1024, spectra_mb: float = 4.0,
                     **inputs: Any) -> ReportSummary:
    """``hsfuse report``: :func:`run_report_inputs` then :func:`~hsfuse.viz.report.write_report`. The output path
    is checked first, before any file is opened."""
    check_report_path(output, overwrite=overwrite)
    return write_report(output, run_report_inputs(runs, **inputs), overwrite=overwrite, max_side=max_side,
                        spectra_mb=spectra_mb)
