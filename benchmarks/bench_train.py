"""Supervised networks trained under a stated budget on real scenes, scored on a held-out region.

    python benchmarks/bench_train.py [--budget-s 240] [--device cpu] [-o benchmarks/results/train_cpu]

Protocol (per case, e.g. Pavia University + IKONOS B,G,R,NIR at ratio 4):

1. the scene (max-normalised) is split by rows: the top ``1 - test_fraction`` part is the only data any network
   is trained on; the bottom ``test_fraction`` part (cut on a multiple of the ratio) is the test region, never
   seen in training, never used to select checkpoints (the last checkpoint is scored);
2. training samples are random patches of the training part, degraded on the fly with the ``hsfuse``
   simulation preset (Gaussian PSF FWHM = r, circular, SRF rows summing to one), flips and rotations;
3. each network trains with its paper configuration and the paper's loss/optimiser/schedule rescaled to the
   budget. The step count is budget / (seconds per step measured on 3 probe steps), so the budget is wall
   time on this machine and the step count is reported;
4. the test region is simulated whole with the same degradation and fused by every network (last
   checkpoint) and by bicubic, GSA and FUSE (known PSF and SRF), and scored with the ``hsfuse`` metric preset.

Results: ``results.{csv,json,md}`` in the output folder with the machine described; training runs under
``runs/`` (TensorBoard logs, checkpoints) unless ``--keep-runs`` is off.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import DEFAULT_CASES, BenchCase, parse_case, resolve_sensor, write_results
from hsfuse.data.patches import DegradationFamily, PatchSampler, split_rows, validation_pairs
from hsfuse.data.scenes import load_scene
from hsfuse.data.simulation import SIMULATION_PRESETS
from hsfuse.methods.registry import get_method
from hsfuse.metrics.presets import evaluate
from hsfuse.models.base import count_parameters
from hsfuse.models.checkpoint import load_model
from hsfuse.models.inference import run_network
from hsfuse.models.catalog import MODELS
from hsfuse.physics.srf_library import srf_matrix
from hsfuse.training.loop import TrainOptions, train
from hsfuse.types import FusionMeasurement

CLASSICAL = ("bicubic", "gsa", "fuse")


def stderr_progress(label: str):
    """A ``progress(done, total, info=...)`` callback printing one updating line on a terminal's stderr, or
    ``None`` when stderr is not a terminal (logs stay clean)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int, *, info: str = "") -> None:
        print(f"\r{label} {done}/{total}  {info}", end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return show


def prepare(case: BenchCase, *, ratio: int, test_fraction: float, patch: int):
    scene = load_scene(case.scene)
    matrix, names = srf_matrix(resolve_sensor(case.sensor), scene.wavelengths, hsi_fwhm=scene.fwhm,
                               bands=list(case.bands) if case.bands else None, normalize="none",
                               drop_uncovered=case.bands is None)
    family = DegradationFamily(ratio=ratio, srfs=(torch.as_tensor(matrix, dtype=torch.float64),),
                               preset=SIMULATION_PRESETS["hsfuse"])
    top, bottom = split_rows(scene, bottom_fraction=test_fraction, multiple=ratio)
    test = validation_pairs([bottom], family)[0]
    return family, top, test, names


def train_one(name: str, family: DegradationFamily, top, *, budget_s: float, patch: int, batch: int,
              device: str, run_dir: Path, config: str, overrides: dict[str, Any], reuse: bool) -> dict[str, Any]:
    summary = run_dir / "summary.json"
    if reuse and summary.is_file():  # a finished run of an earlier invocation (same settings): score it again
        done = json.loads(summary.read_text())
        return {"steps": done["steps"], "train_s": done["seconds"], "s_per_step": done["seconds"] / done["steps"],
                "batch": batch, "patch": patch, "checkpoint": str(run_dir)}
    sampler = PatchSampler([top], family, patch_size=patch, seed=0)
    base = dict(method=name, config=config, batch_size=batch, device=device, val_every=10**9, log_every=10,
                amp=device.startswith("cuda"), **overrides)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    probe_dir = run_dir.with_name(run_dir.name + "-probe")
    shutil.rmtree(probe_dir, ignore_errors=True)
    train(TrainOptions(steps=4, ckpt_every=10**9, **base), sampler, run_dir=probe_dir, stop_after=1)
    t1 = time.perf_counter()
    train(TrainOptions(steps=4, ckpt_every=10**9, **base), sampler, run_dir=probe_dir, resume=True)
    per_step = (time.perf_counter() - t1) / 3  # steps 2-4 of a warm process (step 1 pays one-off costs)
    shutil.rmtree(probe_dir, ignore_errors=True)
    steps = max(10, int(budget_s / per_step))
    shutil.rmtree(run_dir, ignore_errors=True)
    res = train(TrainOptions(steps=steps, ckpt_every=max(steps // 4, 1), **base), sampler, run_dir=run_dir,
                progress=stderr_progress(f"train {name}"))
    return {"steps": steps, "train_s": res.seconds, "s_per_step": res.seconds / steps, "batch": batch,
            "patch": patch, "checkpoint": str(res.last)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", help="SCENE:SENSOR[:BANDS]; default: pavia_u + IKONOS B,G,R,NIR "
                    "and jasper_ridge + Sentinel-2A 10/20 m bands")
    ap.add_argument("--ratio", type=int, default=4)
    ap.add_argument("--test-fraction", type=float, default=0.4, help="fraction of rows (bottom) kept for testing")
    ap.add_argument("--methods", nargs="+", default=sorted(MODELS))
    ap.add_argument("--config", default="paper")
    ap.add_argument("--budget-s", type=float, default=240.0, help="training wall time per network and case")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("-o", "--output", default="benchmarks/results/train_cpu")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="score finished runs under OUTPUT/runs instead of retraining")
    args = ap.parse_args(argv)
    cases = [parse_case(c) for c in args.case] if args.case else [DEFAULT_CASES[0], DEFAULT_CASES[2]]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for case in cases:
        family, top, test, names = prepare(case, ratio=args.ratio, test_fraction=args.test_fraction,
                                           patch=args.patch)
        y = FusionMeasurement(test.hsi, test.msi)
        physics = family.nominal().to(dtype=torch.float32)
        H, W = test.reference.shape[-2:]
        common = {"scene": case.scene, "sensor": Path(case.sensor).stem, "msi_bands": family.msi_bands,
                  "bands": family.hsi_bands, "ratio": args.ratio, "train_rows": top.shape[0],
                  "test_rows": H, "width": W}
        for name in CLASSICAL:
            t = time.perf_counter()
            with torch.no_grad():
                est = get_method(name).function(y, physics)
            scores = evaluate(test.reference.double(), est.double(), preset="hsfuse", ratio=args.ratio)
            rows.append({**common, "method": name, **scores, "fuse_s": time.perf_counter() - t, "params": None,
                         "steps": None, "train_s": None, "s_per_step": None, "batch": None, "patch": None})
            print(f"{case.label} {name}: psnr {scores['psnr']:.2f}", file=sys.stderr)
        for name in args.methods:
            run_dir = out / "runs" / f"{case.scene}-r{args.ratio}-{name}"
            info = train_one(name, family, top, budget_s=args.budget_s, patch=args.patch, batch=args.batch,
                             device=args.device, run_dir=run_dir, config=args.config, overrides={}, reuse=args.reuse)
            net, card = load_model(run_dir, device=args.device)
            t = time.perf_counter()
            est = run_network(net, test.hsi, test.msi, band_scaling=card.band_scaling, device=args.device)
            fuse_s = time.perf_counter() - t
            scores = evaluate(test.reference.double(), est.clamp_min(0).double(), preset="hsfuse", ratio=args.ratio)
            rows.append({**common, "method": name, **scores, "fuse_s": fuse_s, "params": count_parameters(net),
                         **{k: v for k, v in info.items() if k != "checkpoint"}})
            print(f"{case.label} {name}: {info['steps']} steps in {info['train_s']:.0f} s, psnr {scores['psnr']:.2f}",
                  file=sys.stderr)
            write_results(rows, out, machine=machine_description(args.device), overwrite=True,
                          settings=_settings(args))
    write_results(rows, out, machine=machine_description(args.device), overwrite=True, settings=_settings(args))
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"ratio": args.ratio, "test_fraction": args.test_fraction, "config": args.config,
            "budget_s": args.budget_s,
            "patch": args.patch, "batch": args.batch, "device": args.device, "simulation": "hsfuse",
            "metric_preset": "hsfuse", "checkpoint": "last (no selection on the test region)"}


if __name__ == "__main__":
    sys.exit(main())
