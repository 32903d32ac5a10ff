"""Does synthetic training data help a supervised fusion network? ("Unmixing Before Fusion", CVPR 2024)

    python benchmarks/bench_synth.py [-o benchmarks/results/synth] [--seeds 0 1] [--fusion-steps 500]

Protocol (one case: Pavia University crop + IKONOS B, G, R, NIR, ratio 4, the ``hsfuse`` simulation preset):

1. the scene (max-normalised) is split by rows: the top 60 % is the *small real set*; the bottom 40 % is the
   test region. The test region is never used for unmixing, synthesis, training or checkpoint selection;
2. **unmixing** (stage 1): the ``small`` unmixing network (K = 5, the paper's loss and lr) is trained on the
   real set and its RGB simulated with the Canon EOS 5D Mark II response;
3. **abundances from RGB**: the network is applied to the real very-high-resolution RGB of Houston 2018 (an
   urban aerial image like Pavia; its no-data patch is cut out: three valid rectangles), at scales 1/2, 1/4
   and 1/8 (area averaging) so the abundance maps span several ground sampling distances;
4. **diffusion** (stage 2): the ``small`` SR3 denoiser (T = 2000, linear 1e-6..1e-2, L1 noise loss, Adam 1e-4)
   is trained on 32 x 32 crops of those maps (``--ema``: with a moving average of its weights, a deviation);
   ``--samples`` maps of 64 x 64 are drawn with DDIM (50 steps);
5. **synthesis** (stage 3): ``Y = E A`` with the learned endmembers; a realism report against the real set;
6. **fusion**: the same network (DBIN, reduced width: ``--fusion-config``) is trained with the same number
   of optimiser steps, batch, patch size and seed in four arms:

   * ``real``: the real set alone;
   * ``real+synth``: the real set and the synthetic cubes, half of the patches from each;
   * ``synth->real``: pre-trained on the synthetic cubes for half the steps, then fine-tuned on the real set
     for the other half (``TrainOptions.init_from``);
   * ``real+inferred``: as ``real+synth`` but with cubes built from the RGB-inferred abundances (no
     diffusion), to separate what the diffusion model adds from what the unmixing adds;

   and each arm is scored on the test region (``hsfuse`` metric preset, last checkpoint), next to GSA and
   FUSE with the true operators. Everything is repeated for each ``--seeds`` value (the seed of the fusion
   training; stages 1-4 run once with seed 0).

Outputs in ``-o``: ``results.json``/``results.md`` (machine described; per-stage seconds), ``realism.md``,
figures, and ``work/`` (runs and synthetic data; reused by ``--reuse``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import DEFAULT_CASES, resolve_sensor
from hsfuse.data.paths import shared_file
from hsfuse.data.patches import DegradationFamily, PatchSampler, split_rows, validation_pairs
from hsfuse.data.scenes import load_scene
from hsfuse.data.simulation import SIMULATION_PRESETS
from hsfuse.methods.registry import get_method
from hsfuse.metrics.presets import evaluate
from hsfuse.metrics.realism import realism_report
from hsfuse.models.checkpoint import load_model
from hsfuse.models.inference import run_network
from hsfuse.physics.srf_library import srf_matrix
from hsfuse.synthesis.dataset import synthesize
from hsfuse.synthesis.diffusion import DiffusionTrainOptions, load_diffusion, sample_abundances, train_diffusion
from hsfuse.synthesis.unmixing import (UnmixingTrainOptions, infer_abundances, load_unmixing, rgb_response,
                                       train_unmixing)
from hsfuse.training.loop import TrainOptions, train
from hsfuse.types import Cube, FusionMeasurement
from hsfuse.viz.synthesis_figures import plot_abundances, plot_previews, plot_realism

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import stderr_progress  # noqa: E402

RATIO = 4
METRICS = ("psnr", "sam", "ergas", "ssim", "rmse")


def houston_rgb_regions() -> list[np.ndarray]:
    """The Houston 2018 RGB without its no-data patch (rows 131-248, cols 314-368): three valid rectangles."""
    with np.load(shared_file("derived", "houston2018.npz")) as z:
        rgb = z["rgb"].astype(np.float32)
    nodata = (rgb == 0).all(-1)
    ys, xs = np.nonzero(nodata)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    regions = [rgb[y1:], rgb[:y1, :x0], rgb[:y1, x1:]]
    for r in regions:
        assert not (r == 0).all(-1).any(), "a region still holds no-data pixels"
    return regions


def abundance_summary(maps: np.ndarray) -> dict[str, Any]:
    """Mean abundance per endmember and roughness (mean absolute difference of vertically adjacent pixels) of
    abundance maps ``(n, H, W, K)``: how far generated maps are from the training maps' composition and
    smoothness."""
    a = np.asarray(maps, dtype=np.float64)
    return {"maps": int(a.shape[0]), "mean": [round(float(v), 4) for v in a.reshape(-1, a.shape[-1]).mean(0)],
            "roughness": round(float(np.abs(np.diff(a, axis=1)).mean()), 4)}


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return F.avg_pool2d(t, factor).squeeze(0).permute(1, 2, 0).numpy()


def fusion_sampler(real: Cube, synthetic: list[Cube], family: DegradationFamily, *, patch: int, seed: int,
                   real_share: float) -> PatchSampler:
    """Patches with ``real_share`` of them (in expectation) from the real set: the sampler draws scenes in
    proportion to their patch positions, so the real cube is listed as often as needed."""
    if not synthetic:
        return PatchSampler([real], family, patch_size=patch, seed=seed)
    positions = lambda c: (c.shape[0] - patch + 1) * (c.shape[1] - patch + 1)  # noqa: E731
    syn = sum(positions(c) for c in synthetic)
    copies = max(1, round(real_share / (1 - real_share) * syn / positions(real)))
    return PatchSampler([real] * copies + synthetic, family, patch_size=patch, seed=seed)


def train_arm(name: str, samplers: list[tuple[PatchSampler, int]], *, run_root: Path, seed: int, config: dict,
              batch: int, reuse: bool) -> tuple[Path, float]:
    """Train on each ``(sampler, steps)`` in turn, each stage starting from the previous stage's weights."""
    init = None
    seconds = 0.0
    run_root.mkdir(parents=True, exist_ok=True)
    for k, (sampler, steps) in enumerate(samplers):
        run = run_root / f"{name}-seed{seed}-stage{k}"
        if not (reuse and (run / "summary.json").is_file()):
            if run.exists():
                import shutil

                shutil.rmtree(run)
            opts = TrainOptions(method="dbin", config=config, steps=steps, batch_size=batch, seed=seed,
                                val_every=10**9, ckpt_every=steps, log_every=25, init_from=init)
            res = train(opts, sampler, run_dir=run, progress=stderr_progress(f"train {name} stage {k}"))
            seconds += res.seconds
        else:
            seconds += json.loads((run / "summary.json").read_text())["seconds"]
        init = str(run)
    return Path(init), seconds


def score(weights: Path, test) -> dict[str, float]:
    net, card = load_model(weights)
    with torch.no_grad():
        est = run_network(net, test.hsi, test.msi, band_scaling=card.band_scaling)
    s = evaluate(test.reference.double(), est.clamp_min(0).double(), preset="hsfuse", ratio=RATIO)
    return {k: float(s[k]) for k in METRICS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="benchmarks/results/synth")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--unmix-steps", type=int, default=800)
    ap.add_argument("--diffusion-steps", type=int, default=2000)
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the diffusion weights (0: none, the paper)")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--fusion-steps", type=int, default=500)
    ap.add_argument("--fusion-config", default='{"width": 32, "resblocks": 1, "iterations": 2}')
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--arms", nargs="+", default=["real", "real+synth", "synth->real", "real+inferred"],
                    help="fusion arms to run (default: all four)")
    ap.add_argument("--reuse", action="store_true", help="reuse finished stages under OUTPUT/work")
    args = ap.parse_args(argv)
    out = Path(args.output)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    config = json.loads(args.fusion_config)
    timings: dict[str, Any] = {}

    # ---- data: the small real set and the test region
    case = DEFAULT_CASES[0]
    scene = load_scene(case.scene)
    matrix, names = srf_matrix(resolve_sensor(case.sensor), scene.wavelengths, bands=list(case.bands),
                               normalize="none")
    family = DegradationFamily(ratio=RATIO, srfs=(torch.as_tensor(matrix, dtype=torch.float64),),
                               preset=SIMULATION_PRESETS["hsfuse"])
    top, bottom = split_rows(scene, bottom_fraction=0.4, multiple=RATIO)
    test = validation_pairs([bottom], family)[0]
    print(f"real set {top.shape}, test region {bottom.shape}", file=sys.stderr)

    # ---- stage 1: unmixing on the real set only
    unmix_dir = work / "unmixing"
    if not (args.reuse and (unmix_dir / "last.json").is_file()):
        t = time.perf_counter()
        res = train_unmixing([top], response=rgb_response(top.wavelengths), run_dir=unmix_dir,
                             options=UnmixingTrainOptions(config="small", steps=args.unmix_steps, batch_size=8,
                                                          patch_size=32, ckpt_every=200),
                             resume=True, progress=stderr_progress("train unmixing"))
        timings["unmixing_train"] = {"steps": res.steps_done, "seconds": time.perf_counter() - t,
                                     "final": res.history[-1] if res.history else None}
    model = load_unmixing(unmix_dir)
    E = model.endmembers

    # ---- abundances from real RGB
    t = time.perf_counter()
    images = [downscale(r, f) for r in houston_rgb_regions() for f in (2, 4, 8)]
    inferred = [infer_abundances(model, im) for im in images]
    timings["unmixing_infer"] = {"images": len(images), "pixels": int(sum(a.shape[0] * a.shape[1] for a in inferred)),
                                 "seconds": time.perf_counter() - t}

    # ---- stage 2: diffusion on the inferred abundances
    ddpm_dir = work / "diffusion"
    if not (args.reuse and (ddpm_dir / "last.json").is_file()):
        t = time.perf_counter()
        res = train_diffusion([a for a in inferred if min(a.shape[:2]) >= 32], run_dir=ddpm_dir,
                              options=DiffusionTrainOptions(config="small", steps=args.diffusion_steps, crop=32,
                                                            batch_size=8, ckpt_every=500, ema=args.ema),
                              description={"source": "houston2018 RGB, scales 1/2 1/4 1/8"}, resume=True,
                              progress=stderr_progress("train diffusion"))
        timings["diffusion_train"] = {"steps": res.steps_done, "seconds": time.perf_counter() - t,
                                      "final": res.history[-1] if res.history else None}
    ddpm = load_diffusion(ddpm_dir)
    t = time.perf_counter()
    drawn = sample_abundances(ddpm, n=args.samples, size=64, sampler="ddim", steps=50, seed=0, batch=8)
    timings["diffusion_sample"] = {"samples": args.samples, "size": 64, "sampler": "ddim", "steps": 50,
                                   "seconds": time.perf_counter() - t, "raw_min": drawn.raw_min,
                                   "raw_fraction_invalid": drawn.raw_fraction_invalid}

    # ---- stage 3: synthesis
    t = time.perf_counter()
    wl = top.wavelengths
    synth = [Cube(synthesize(E, a), wavelengths=wl) for a in drawn.abundances]
    crops = [a[:64, :64] for a in inferred if min(a.shape[:2]) >= 64]
    synth_inferred = [Cube(synthesize(E, a), wavelengths=wl) for a in crops]
    maps_stats = {"generated": abundance_summary(drawn.abundances), "inferred_crops": abundance_summary(crops)}
    timings["synthesis"] = {"cubes": len(synth), "seconds": time.perf_counter() - t}
    report = realism_report([c.data for c in synth], [top.data], wavelengths_nm=wl,
                            abundances=list(drawn.abundances))
    report_inf = realism_report([c.data for c in synth_inferred], [top.data], wavelengths_nm=wl)
    (out / "realism.md").write_text("# Diffusion-generated cubes vs the real set\n\n" + report.to_markdown() +
                                    "\n\n# Cubes from RGB-inferred abundances vs the real set\n\n" +
                                    report_inf.to_markdown() + "\n")
    plot_realism(report, out / "realism.png", overwrite=True)
    plot_previews([c.data for c in synth[:8]], out / "synthetic_previews.png", wavelengths_nm=wl, overwrite=True)
    plot_abundances(drawn.abundances[0], out / "generated_abundances.png", overwrite=True)
    plot_abundances(inferred[0], out / "inferred_abundances.png", overwrite=True)

    # ---- fusion arms
    rows: list[dict[str, Any]] = []
    y = FusionMeasurement(test.hsi, test.msi)
    physics = family.nominal().to(dtype=torch.float32)
    for name in ("gsa", "fuse"):
        with torch.no_grad():
            est = get_method(name).function(y, physics)
        s = evaluate(test.reference.double(), est.double(), preset="hsfuse", ratio=RATIO)
        rows.append({"arm": name, "seed": None, **{k: float(s[k]) for k in METRICS}, "train_s": None})
    S, p = args.fusion_steps, args.patch
    for seed in args.seeds:
        arms = {
            "real": [(fusion_sampler(top, [], family, patch=p, seed=seed, real_share=1.0), S)],
            "real+synth": [(fusion_sampler(top, synth, family, patch=p, seed=seed, real_share=0.5), S)],
            "synth->real": [(PatchSampler(synth, family, patch_size=p, seed=seed), S // 2),
                            (fusion_sampler(top, [], family, patch=p, seed=seed, real_share=1.0), S - S // 2)],
            "real+inferred": [(fusion_sampler(top, synth_inferred, family, patch=p, seed=seed, real_share=0.5), S)],
        }
        for arm, stages in arms.items():
            if arm not in args.arms:
                continue
            weights, secs = train_arm(arm, stages, run_root=work / "fusion", seed=seed, config=config,
                                      batch=args.batch, reuse=args.reuse)
            s = score(weights, test)
            rows.append({"arm": arm, "seed": seed, **s, "train_s": secs})
            print(f"seed {seed} {arm}: psnr {s['psnr']:.2f} sam {s['sam']:.2f}", file=sys.stderr)
            _write(out, rows, timings, args, report, report_inf, maps_stats, top, bottom)
    _write(out, rows, timings, args, report, report_inf, maps_stats, top, bottom)
    return 0


def _write(out: Path, rows, timings, args, report, report_inf, maps_stats, top, bottom) -> None:
    machine = machine_description("cpu")
    summary: dict[str, dict[str, float]] = {}
    for arm in dict.fromkeys(r["arm"] for r in rows if r["seed"] is not None):
        vals = [r for r in rows if r["arm"] == arm]
        summary[arm] = {k: float(np.mean([r[k] for r in vals])) for k in METRICS} | {"seeds": len(vals)}
    payload = {"settings": {k: v for k, v in vars(args).items()}, "machine": machine, "case":
               {"scene": "pavia_u", "sensor": "IKONOS B,G,R,NIR", "ratio": RATIO, "real_rows": top.shape[0],
                "test_rows": bottom.shape[0], "width": top.shape[1]},
               "timings": timings, "rows": rows, "mean_over_seeds": summary,
               "abundance_maps": maps_stats, "realism": report.to_dict(), "realism_inferred": report_inf.to_dict()}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    lines = ["# Synthetic training data for a fusion network (Unmixing Before Fusion protocol)", "",
             f"Machine: {', '.join(f'{k}={v}' for k, v in machine.items())}", "",
             f"Pavia University crop, IKONOS B,G,R,NIR, ratio {RATIO}; real set = top {top.shape[0]} rows, test = "
             f"bottom {bottom.shape[0]} rows (never used before scoring). DBIN {args.fusion_config}, "
             f"{args.fusion_steps} steps x batch {args.batch} x patch {args.patch} per arm.", "",
             "| arm | seed | PSNR | SAM | ERGAS | SSIM | train s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ts = "" if r["train_s"] is None else f"{r['train_s']:.0f}"
        lines.append(f"| {r['arm']} | {'' if r['seed'] is None else r['seed']} | {r['psnr']:.2f} | {r['sam']:.2f} | "
                     f"{r['ergas']:.2f} | {r['ssim']:.4f} | {ts} |")
    lines += ["", "Mean over seeds:", "", "| arm | PSNR | SAM | ERGAS | SSIM |", "|---|---|---|---|---|"]
    for arm, s in summary.items():
        lines.append(f"| {arm} | {s['psnr']:.2f} | {s['sam']:.2f} | {s['ergas']:.2f} | {s['ssim']:.4f} |")
    lines += ["", "Abundance maps (mean per endmember; roughness = mean |difference| of vertically adjacent pixels):", "",
              "| maps | n | mean abundances | roughness |", "|---|---|---|---|"]
    for name, st in maps_stats.items():
        means = ", ".join(f"{v:.3f}" for v in st["mean"])
        lines.append(f"| {name} | {st['maps']} | {means} | {st['roughness']:.3f} |")
    lines += ["", "Stage timings:", "", "```", json.dumps(timings, indent=2, default=float), "```", ""]
    (out / "results.md").write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
