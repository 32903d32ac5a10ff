"""Blind fusion on simulated pairs of real scenes: estimated vs true operators, and what they cost in quality.

    python benchmarks/bench_blind.py [--ratios 4 8] [--snr none 30] [--schedule fast] \
        [-o benchmarks/results/blind]

Protocol (UDALN's own simulation preset: r x r Gaussian PSF with FWHM = r averaging disjoint blocks, SRF rows
summing to one; noise, when asked, white Gaussian at the given SNR on both images, seeded):

* scenes from the shared data folder, each with the MSI sensor of its band range (``CASES``), cropped to a
  multiple of 8;
* operators estimated blindly from the pair by HySure's least squares with the settings of ``hsfuse estimate``
  (PSF support 2r + 1, lambda 0.01, 20 alternating refinements; see
  :func:`hsfuse.workflows.real_pair.estimate_operators`) and by UDALN
  (its learned r x r PSF and SRF after all three stages); relative Frobenius errors against the true PSF
  (padded to a common size, centred) and SRF;
* fused quality (``udaln`` metric preset, against the reference) of FUSE with the true operators, FUSE with
  each estimate, UDALN itself, and bicubic as the floor.

Results: ``results.{csv,json,md}`` with the machine described.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import write_results
from hsfuse.estimation.operators import EstimatedOperators
from hsfuse.methods.bicubic import fuse_bicubic
from hsfuse.methods.sylvester import fuse_fuse
from hsfuse.methods.udaln import fit_udaln
from hsfuse.metrics.presets import evaluate
from hsfuse.physics import FusionObservation, SpatialDegradation
from hsfuse.physics.learnable import support_from_srf
from hsfuse.types import FusionMeasurement
from hsfuse.workflows.real_pair import estimate_operators

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_udaln import relative_error, simulated_pair  # noqa: E402

# scene, MSI sensor (CSV relative to the shared data folder, or a name), bands
CASES: tuple[tuple[str, str, list[str] | None], ...] = (
    ("houston2018", "srf/worldview2_1nm.csv", ["Coastal", "Blue", "Green", "Yellow", "Red", "RedEdge", "NIR1", "NIR2"]),
    ("pavia_u", "srf/ikonos_5nm.csv", ["Blue", "Green", "Red", "NIR"]),
    ("jasper_ridge", "landsat8", ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]),
    ("indian_pines", "landsat8", ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]),
)


def _crop8(y: FusionMeasurement, ref: torch.Tensor, r: int) -> tuple[FusionMeasurement, torch.Tensor]:
    """Crop the simulated pair to a multiple of 8 HR pixels (so r = 4 and 8 cover the same ground)."""
    H, W = ref.shape[-2:]
    H8, W8 = H // 8 * 8, W // 8 * 8
    return (FusionMeasurement(y.hsi[..., : H8 // r, : W8 // r], y.msi[..., :H8, :W8]), ref[..., :H8, :W8])


def _score(ref: torch.Tensor, est: torch.Tensor, r: int) -> dict[str, float]:
    m = evaluate(ref, est.double(), preset="udaln", ratio=r)
    return {k: float(m[k]) for k in ("psnr", "sam", "ergas", "rmse")}


def run_case(scene: str, sensor: str, bands: list[str] | None, *, ratio: int, snr: float | None, schedule: str,
             seed: int) -> list[dict[str, Any]]:
    sim = simulated_pair(scene=scene, sensor=sensor, bands=bands, ratio=ratio, snr_db=snr, seed=seed)
    y, ref = _crop8(sim.measurement(dtype=torch.float64), sim.reference.to_tensor(dtype=torch.float64), ratio)
    true_psf, true_srf = sim.physics.spatial.psf, sim.physics.spectral.matrix
    # UDALN's r x r block PSF never reaches the image border, so its 'reflect' boundary is the circular model
    # FUSE's closed form needs, exactly
    true_obs = FusionObservation(SpatialDegradation(ratio=ratio, psf=true_psf, offset=sim.physics.spatial.offset,
                                                    boundary="circular"), sim.physics.spectral)
    support = support_from_srf(true_srf)
    base = {"scene": scene, "size": f"{ref.shape[-2]}x{ref.shape[-1]}x{ref.shape[1]}", "msi_bands": y.msi.shape[1],
            "ratio": ratio, "snr_db": "none" if snr is None else snr}
    rows = []

    def add(method: str, est: torch.Tensor, seconds: float, ops: EstimatedOperators | None = None) -> None:
        row = {**base, "method": method, **_score(ref, est, ratio), "time_s": seconds,
               "psf_rel_err": "" if ops is None else relative_error(ops.psf, true_psf),
               "srf_rel_err": "" if ops is None else relative_error(ops.srf, true_srf)}
        rows.append(row)

    t = time.perf_counter()
    add("bicubic", fuse_bicubic(y, sim.physics), time.perf_counter() - t)
    t = time.perf_counter()
    add("fuse (true PSF, SRF)", fuse_fuse(y, true_obs), time.perf_counter() - t)
    t = time.perf_counter()
    hy = estimate_operators(y, estimator="hysure", support=support)
    t_est = time.perf_counter() - t
    t = time.perf_counter()
    add("fuse (hysure estimates)", fuse_fuse(y, hy.to_observation()), t_est + time.perf_counter() - t, hy)
    res = fit_udaln(FusionMeasurement(y.hsi.float(), y.msi.float()), schedule=schedule, support=support)
    add(f"udaln ({schedule})", res.estimate, res.seconds, res.operators)
    t = time.perf_counter()
    add("fuse (udaln estimates)", fuse_fuse(y, res.operators.to_observation()), res.seconds + time.perf_counter() - t,
        res.operators)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratios", nargs="+", type=int, default=[4, 8])
    p.add_argument("--snr", nargs="+", default=["none", "30"], help="SNR in dB per run, or 'none'")
    p.add_argument("--scenes", nargs="+", help="subset of: " + ", ".join(c[0] for c in CASES))
    p.add_argument("--schedule", default="fast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("-o", "--output", default="benchmarks/results/blind")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    settings = {"simulation_preset": "udaln", "metric_preset": "udaln", "schedule": args.schedule,
                "ratios": args.ratios, "snr_db": args.snr, "seed": args.seed}
    paths: list[Path] = []
    for scene, sensor, bands in CASES:
        if args.scenes and scene not in args.scenes:
            continue
        for r in args.ratios:
            for snr in args.snr:
                level = None if snr == "none" else float(snr)
                print(f"{scene} r={r} snr={snr}", file=sys.stderr, flush=True)
                rows += run_case(scene, sensor, bands, ratio=r, snr=level, schedule=args.schedule, seed=args.seed)
                # after every case, so an interrupted run keeps what it measured
                paths = write_results(rows, args.output, machine=machine_description("cpu"), settings=settings,
                                      overwrite=args.overwrite or bool(paths))  # our own earlier write
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
