"""Benchmark runner: methods x scenes x ratios under one simulation preset and one metric preset.

Each case simulates an HSI/MSI pair from a reference scene (Wald's protocol), fuses it with every method
(given the known physics), evaluates against the reference and records wall time and peak memory. Results are
a tidy table: one row per (scene, sensor, ratio, method), written as CSV, JSON and Markdown with the machine
described.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.paths import data_root
from ..data.scenes import SCENES, load_scene
from ..data.simulation import Simulation, simulate
from ..data.synthetic import synthetic_scene
from .._checks import check_device
from ..errors import InputError
from ..io.atomic import atomic_outputs, check_output_path
from ..methods.registry import get_method
from ..metrics.presets import evaluate
from ..physics.srf_library import srf_matrix
from ..types import Cube
from .machine import machine_description, measure

__all__ = ["BenchCase", "DEFAULT_CASES", "parse_case", "resolve_sensor", "prepare_case", "run_benchmark",
           "write_results", "check_results_folder", "markdown_table", "check_result_paths",
           "write_json_markdown"]


@dataclass(frozen=True)
class BenchCase:
    """A reference scene and the MSI sensor simulated from it.

    Attributes:
        scene: a name from :data:`hsfuse.data.scenes.SCENES`, or ``"synthetic"`` (the embedded scene).
        sensor: a named sensor (``hsfuse srf list``) or a CSV path (relative paths are also looked up under
            the shared data folder, e.g. ``srf/ikonos_5nm.csv``).
        bands: MSI bands of the sensor to keep (names), or ``None`` for all bands covering the HSI range.
    """

    scene: str
    sensor: str
    bands: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.scene}:{self.sensor}" + (f"[{','.join(self.bands)}]" if self.bands else "")


DEFAULT_CASES: tuple[BenchCase, ...] = (
    BenchCase("pavia_u", "srf/ikonos_5nm.csv", ("Blue", "Green", "Red", "NIR")),
    # Landsat-8 OLI multispectral bands (no panchromatic B8, no cirrus B9)
    BenchCase("indian_pines", "landsat8", ("B1", "B2", "B3", "B4", "B5", "B6", "B7")),
    # Sentinel-2A 10 m and 20 m bands (no 60 m atmospheric bands B1, B9, B10)
    BenchCase("jasper_ridge", "sentinel2a", ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")),
)


def parse_case(text: str) -> BenchCase:
    """``SCENE:SENSOR`` or ``SCENE:SENSOR:BAND,BAND,...`` -> :class:`BenchCase`."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise InputError(f"bench case {text!r} must look like SCENE:SENSOR or SCENE:SENSOR:BAND1,BAND2")
    bands = tuple(b.strip() for b in parts[2].split(",") if b.strip()) if len(parts) == 3 else None
    return BenchCase(parts[0], parts[1], bands or None)


def resolve_sensor(spec: str) -> str:
    """A sensor name, an existing CSV path, or a CSV path relative to the shared data folder."""
    if spec.lower().endswith(".csv") and not Path(spec).exists() and (data_root() / spec).exists():
        return str(data_root() / spec)
    return spec


def _reference(scene: str, *, seed: int) -> Cube:
    if scene == "synthetic":
        return synthetic_scene(seed=seed)
    if scene not in SCENES:
        raise InputError(f"unknown bench scene {scene!r}; known: synthetic, {', '.join(sorted(SCENES))}")
    return load_scene(scene)


def prepare_case(case: BenchCase, *, ratio: int, preset: str = "hsfuse", seed: int = 0,
                 snr_db: float | None = None) -> Simulation:
    """Load the scene, build the sensor's SRF on its bands, and simulate the pair (``snr_db``: white Gaussian noise
    at this SNR on both images, overriding the preset's, seeded by ``seed``; ``None`` keeps the preset's)."""
    ref = _reference(case.scene, seed=seed)
    if ref.wavelengths is None:
        raise InputError(f"scene {case.scene!r} has no band wavelengths: an SRF cannot be placed on it")
    matrix, names = srf_matrix(resolve_sensor(case.sensor), ref.wavelengths, hsi_fwhm=ref.fwhm,
                               bands=list(case.bands) if case.bands else None, normalize="none",
                               drop_uncovered=case.bands is None)
    return simulate(ref, matrix, ratio=ratio, preset=preset, srf_band_names=names, snr_hsi_db=snr_db,
                    snr_msi_db=snr_db, seed=seed if snr_db is not None else None)


def run_benchmark(
    cases: Sequence[BenchCase],
    methods: Sequence[str],
    ratios: Sequence[int],
    *,
    simulation_preset: str = "hsfuse",
    metric_preset: str = "hsfuse",
    device: str = "cpu",
    seed: int = 0,
    warmup: bool = True,
    weights: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    on_progress: Callable[[str], None] | None = None,
    report_dir: str | Path | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Run every method on every case at every ratio; return one dict per run (tidy rows).

    With ``warmup`` each method runs once untimed before its first timed run. ``weights`` maps each trained
    network among ``methods`` to its checkpoint (``hsfuse bench --weights NAME=PATH``); ``options`` maps a method
    to its options (checked against its options dataclass before any case runs).

    Row keys: ``scene``, ``sensor``, ``msi_bands``, ``ratio``, ``method``, ``height``, ``width``, ``bands``,
    the metric names of ``metric_preset`` (lower case), ``time_s``, ``peak_mem_mib``, ``memory_kind``.

    With ``report_dir``, each case and ratio also gets its HTML report there (:mod:`hsfuse.viz.report`),
    ``report_<scene>_<sensor>_r<ratio>.html``: the simulated inputs, the reference and every method's result.
    """
    check_device(device)
    specs = [get_method(m) for m in methods]
    weights = dict(weights or {})
    unknown = sorted(set(weights) - {s.name for s in specs if s.needs_training})
    if unknown:
        raise InputError(f"--weights for {', '.join(unknown)}: give weights only for the trained networks among the "
                         "benchmarked methods")
    missing = [s.name for s in specs if s.needs_training and s.name not in weights]
    if missing:
        raise InputError(f"{', '.join(missing)} are trained networks: pass --weights NAME=CHECKPOINT for each "
                         "(a run folder from 'hsfuse train')")
    chosen = {s.name: s.make_options((options or {}).get(s.name)) for s in specs}
    extra = sorted(set(options or {}) - set(chosen))
    if extra:
        raise InputError(f"options given for {', '.join(extra)}, which are not among the benchmarked methods")
    rows: list[dict[str, Any]] = []
    warmed: set[str] = set()
    for case in cases:
        for ratio in ratios:
            sim = prepare_case(case, ratio=ratio, preset=simulation_preset, seed=seed)
            y = sim.measurement()
            y = type(y)(y.hsi.to(device), y.msi.to(device))
            physics = sim.physics.to(device=device, dtype=torch.float32)
            ref = sim.reference.to_tensor(dtype=torch.float64)
            estimates: dict[str, Cube] = {}
            case_rows: list[dict[str, Any]] = []
            for spec in specs:
                if on_progress is not None:
                    on_progress(f"{case.label} r={ratio} {spec.name}")
                def run() -> torch.Tensor:
                    return spec.run(y, physics, options=chosen[spec.name], weights=weights.get(spec.name))

                with torch.no_grad():
                    if warmup and spec.name not in warmed:  # first call pays one-off costs (imports, plans)
                        run()
                        warmed.add(spec.name)
                    est, wall, mem = measure(run, device=device)
                scores = evaluate(ref, est.detach().cpu().double(), preset=metric_preset, ratio=ratio)
                H, W, L = sim.reference.shape
                case_rows.append({
                    "scene": case.scene, "sensor": Path(case.sensor).stem, "msi_bands": sim.msi.bands,
                    "ratio": ratio, "method": spec.name, "height": H, "width": W, "bands": L,
                    **{k: float(v) for k, v in scores.items()},
                    "time_s": wall, "peak_mem_mib": mem.bytes / 2**20, "memory_kind": mem.kind,
                })
                if report_dir is not None:
                    estimates[spec.name] = Cube.from_tensor(est.detach().cpu().float(), like=sim.hsi)
            rows += case_rows
            if report_dir is not None:
                _case_report(report_dir, case, ratio, sim, estimates, case_rows, chosen, overwrite=overwrite)
    return rows


def report_path(report_dir: str | Path, case: BenchCase, ratio: int) -> Path:
    """Where :func:`run_benchmark` writes the report of ``case`` at ``ratio``."""
    return Path(report_dir) / f"report_{case.scene}_{Path(case.sensor).stem}_r{ratio}.html"


def _case_report(report_dir: str | Path, case: BenchCase, ratio: int, sim: Simulation, estimates: dict[str, Cube],
                 rows: list[dict[str, Any]], chosen: Mapping[str, Any], *, overwrite: bool) -> None:
    from ..viz.report import ReportInputs, write_report

    keep = ("method", "psnr", "ssim", "sam", "ergas", "rmse", "time_s")
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    write_report(report_path(report_dir, case, ratio), ReportInputs(
        results=estimates, hsi=sim.hsi, msi=sim.msi, reference=sim.reference, physics=sim.physics,
        metrics=[{k: r[k] for k in keep if k in r} for r in rows],
        options={m: {k: v for k, v in o.as_kwargs().items() if isinstance(v, (int, float, str, bool, type(None)))}
                 for m, o in chosen.items()},
        title=f"hsfuse bench: {case.label}, ratio {ratio}"), overwrite=overwrite)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``rows``."""
    if not rows:
        return "(no results)\n"
    cols = list(columns) if columns else list(rows[0])
    out = io.StringIO()
    out.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
    for row in rows:
        out.write("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |\n")
    return out.getvalue()


def check_result_paths(out: str | Path, *, overwrite: bool) -> tuple[Path, Path]:
    """``(OUT.json, OUT.md)`` of a benchmark script's ``--out OUT``; :class:`InputError` if either exists and
    ``overwrite`` is false (checked before any work, so a refused run changes nothing)."""
    out = Path(out)
    paths = (out.with_suffix(".json"), out.with_suffix(".md"))
    for path in paths:
        if path.exists() and not overwrite:
            raise InputError(f"{path} exists: pass --overwrite to replace it, or choose another --out")
    return paths


def write_json_markdown(out: str | Path, result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``result`` to ``OUT.json`` and ``markdown`` to ``OUT.md`` as one unit (both or neither replaced)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = (out.with_suffix(".json"), out.with_suffix(".md"))
    with atomic_outputs(list(paths), overwrite=True) as (tmp_json, tmp_md):
        Path(tmp_json).write_text(json.dumps(result, indent=2) + "\n")
        Path(tmp_md).write_text(markdown)
    return paths


def check_results_folder(outdir: str | Path, *, overwrite: bool) -> list[Path]:
    """Pre-flight check of a results folder, before a benchmark runs: it is a folder or can be made (its nearest
    existing ancestor is a writable folder), and its ``results.csv``/``.json``/``.md`` may be replaced. Returns
    those three paths."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"cannot write the results into {outdir}: a file of that name exists; give a folder")
    ancestor = outdir
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the results into {outdir}: {ancestor} is not a writable folder")
    paths = [outdir / name for name in ("results.csv", "results.json", "results.md")]
    if outdir.is_dir():
        for path in paths:
            check_output_path(path, overwrite=overwrite)
    return paths


def write_results(rows: Sequence[dict[str, Any]], outdir: str | Path, *, machine: dict[str, Any] | None = None,
                  settings: dict[str, Any] | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``results.csv``, ``results.json`` and ``results.md`` into ``outdir`` as one unit (all three new
    files or, on any failure or interruption, the previous ones)."""
    outdir = Path(outdir)
    paths = check_results_folder(outdir, overwrite=overwrite)
    outdir.mkdir(parents=True, exist_ok=True)
    machine = machine or machine_description()
    settings = settings or {}
    cols = list(rows[0]) if rows else []
    shown = [c for c in cols if c not in ("height", "width", "bands", "memory_kind")]
    text = ["# hsfuse benchmark", "", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), "",
            "Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), "", markdown_table(rows, shown)]
    with atomic_outputs(paths, overwrite=overwrite) as (csv_tmp, json_tmp, md_tmp):
        with open(csv_tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
        Path(json_tmp).write_text(json.dumps({"machine": machine, "settings": settings, "rows": list(rows)},
                                             indent=2) + "\n")
        Path(md_tmp).write_text("\n".join(text))
    return paths
