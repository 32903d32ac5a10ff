"""UDALN time-to-quality: PSNR against wall time and iterations for its training schedules, side by side.

    python benchmarks/bench_udaln.py [--schedules paper fast] [--ratio 4] [--device cpu] \
        [-o benchmarks/results/udaln_schedule]

Protocol: the Houston 2018 CASI crop (128 x 128 x 48, real data, max-normalised) is the reference; the pair is
simulated with UDALN's own preset (r x r Gaussian FWHM = r on disjoint blocks, SRF rows summing to one) and
the WorldView-2 SRF (8 multispectral bands, ENVI filter functions resampled onto the HSI bands) - the paper's
Houston setting at a smaller size. Each schedule is run from the same seed; every ``--every`` iterations the
fused image is scored against the reference (PSNR, ``udaln`` metric preset: per-band peak = the reference's
band maximum) and the learned operators against the true ones; scoring time is excluded from the wall time.
The schedules run one after another in one process, so their times compare directly.

Results: ``results.json`` (every record, the machine), ``results.md`` (summary table), ``psnr_vs_time.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import resolve_sensor
from hsfuse.data.scenes import load_scene
from hsfuse.data.simulation import simulate
from hsfuse.io.atomic import atomic_output
from hsfuse.methods.udaln import SCHEDULES, fit_udaln
from hsfuse.metrics.presets import evaluate
from hsfuse.physics.learnable import support_from_srf
from hsfuse.physics.srf_library import srf_matrix
from hsfuse.viz.blind_figures import pad_centred

WV2_BANDS = ["Coastal", "Blue", "Green", "Yellow", "Red", "RedEdge", "NIR1", "NIR2"]


def simulated_pair(*, scene: str, sensor: str, bands: list[str] | None, ratio: int, snr_db: float | None = None,
                   seed: int = 0):
    """A UDALN-preset simulation of a shared scene; returns the :class:`~hsfuse.data.simulation.Simulation`."""
    cube = load_scene(scene)
    matrix, names = srf_matrix(resolve_sensor(sensor), cube.wavelengths, hsi_fwhm=cube.fwhm, bands=bands,
                               normalize="none", drop_uncovered=bands is None)
    return simulate(cube, matrix, ratio=ratio, preset="udaln", srf_band_names=names, snr_hsi_db=snr_db,
                    snr_msi_db=snr_db, seed=seed)


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """``||estimate - truth||_F / ||truth||_F``, the PSF padded/cropped to the truth's size (centred)."""
    e, t = estimate.double().cpu().numpy(), truth.double().cpu().numpy()
    if e.shape != t.shape and e.ndim == 2:
        size = max(e.shape[0], t.shape[0])
        e, t = pad_centred(e, size), pad_centred(t, size)
    return float(np.linalg.norm(e - t) / np.linalg.norm(t))


def run(schedules: list[str], *, ratio: int, every: int, device: str, seeds: list[int]) -> dict[str, Any]:
    sim = simulated_pair(scene="houston2018", sensor="srf/worldview2_1nm.csv", bands=WV2_BANDS, ratio=ratio)
    y = sim.measurement()
    reference = sim.reference.to_tensor(dtype=torch.float64)
    support = support_from_srf(sim.physics.spectral.matrix)
    true_psf, true_srf = sim.physics.spatial.psf, sim.physics.spectral.matrix
    runs = {}
    for seed, name in [(s, n) for s in seeds for n in schedules]:
        key = f"{name} (seed {seed})"
        print(f"{key}: {SCHEDULES[name].iterations} iterations", file=sys.stderr, flush=True)

        def score(record: dict[str, Any], model: torch.nn.Module) -> None:
            with torch.no_grad():
                est = model(y.msi.to(next(model.parameters()).device)).cpu().double()
            m = evaluate(reference, est, preset="udaln", ratio=ratio)
            record.update(psnr=float(m["psnr"]), sam=float(m["sam"]), ergas=float(m["ergas"]),
                          psf_rel_err=relative_error(model.spatial.psf.detach(), true_psf),
                          srf_rel_err=relative_error(model.spectral.matrix.detach(), true_srf))

        result = fit_udaln(y, schedule=name, support=support, device=device, monitor_every=every, callback=score,
                           seed=seed)
        final = result.history[-1]
        runs[key] = {"schedule_name": name, "seed": seed, "iterations": result.iterations,
                     "seconds": result.seconds, "final": final, "history": result.history,
                     "schedule": result.schedule}
        print(f"  {result.seconds:.1f} s, PSNR {final['psnr']:.2f} dB", file=sys.stderr, flush=True)
    return {"scene": "houston2018 (128x128x48 CASI crop, max-normalised)", "msi": "WorldView-2, 8 bands",
            "ratio": ratio, "simulation": "udaln preset", "metric_preset": "udaln", "runs": runs}


def write(results: dict[str, Any], out: Path, *, overwrite: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with atomic_output(out / "results.json", overwrite=overwrite) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    paths.append(out / "results.json")
    runs = results["runs"]
    lines = [f"# UDALN time-to-quality ({results['scene']}, {results['msi']}, r = {results['ratio']})", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "| run | iterations | wall time (s) | time vs paper | PSNR (dB) | SAM (deg) | ERGAS | PSF rel. err "
             "| SRF rel. err |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        f = r["final"]
        base = runs.get(f"paper (seed {r['seed']})")
        ratio = f"{r['seconds'] / base['seconds']:.3f}" if base else "-"
        lines.append(f"| {name} | {r['iterations']} | {r['seconds']:.1f} | {ratio} | {f['psnr']:.2f} | "
                     f"{f['sam']:.3f} | {f['ergas']:.3f} | {f['psf_rel_err']:.3f} | {f['srf_rel_err']:.3f} |")
    with atomic_output(out / "results.md", overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    paths.append(out / "results.md")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for name, r in runs.items():
        h = r["history"]
        axes[0].plot([x["seconds"] for x in h], [x["psnr"] for x in h], label=name)
        axes[1].plot([x["iteration"] for x in h], [x["psnr"] for x in h], label=name)
    axes[0].set_xlabel("wall time (s)")
    axes[1].set_xlabel("iteration")
    for ax in axes:
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"UDALN on {results['scene']}, r = {results['ratio']}")
    fig.tight_layout()
    with atomic_output(out / "psnr_vs_time.png", overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    paths.append(out / "psnr_vs_time.png")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", nargs="+", default=["paper", "fast"], choices=sorted(SCHEDULES))
    p.add_argument("--ratio", type=int, default=4)
    p.add_argument("--every", type=int, default=250, help="score every this many iterations")
    p.add_argument("--seeds", nargs="+", type=int, default=[2], help="initialisation seeds (2: the authors')")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("-o", "--output", default="benchmarks/results/udaln_schedule")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.schedules, ratio=args.ratio, every=args.every, device=args.device, seeds=args.seeds)
    results["machine"] = machine_description(args.device)
    for path in write(results, Path(args.output), overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
