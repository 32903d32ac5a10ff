"""How close do the learned endmembers and RGB-inferred abundances come to published unmixing ground truth?

    python benchmarks/bench_unmixing.py [--steps 1500] [-o benchmarks/results/unmixing]

For the two shared scenes with reference endmembers and abundances (Zhu's Jasper Ridge, 4 endmembers, and
Samson, 3), the unmixing network (``small`` configuration, K = the reference count, the paper's loss and lr,
endmembers started from ATGP pixels) is trained on the whole scene and its RGB simulated with the Canon EOS 5D
Mark II response. Reported (:func:`hsfuse.workflows.synth.unmixing_accuracy`): spectral angle between each
reference endmember and its Hungarian-matched learned one, abundance RMSE over the matched maps, and the
reconstruction PSNR of ``E A`` against the scene. The ATGP starting endmembers are scored the same way, so the
table shows what training adds. Note the network sees only the RGB: abundances come from 3 numbers per pixel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hsfuse.bench.machine import machine_description
from hsfuse.data.paths import shared_file
from hsfuse.data.scenes import SCENES, load_scene
from hsfuse.synthesis.unmixing import (UnmixingTrainOptions, initial_endmembers, load_unmixing, match_endmembers,
                                       rgb_response, train_unmixing)
from hsfuse.workflows.synth import unmixing_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import stderr_progress  # noqa: E402

REFERENCE_COUNT = {"jasper_ridge": 4, "samson": 3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="+", default=list(REFERENCE_COUNT))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--config", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="benchmarks/results/unmixing")
    args = ap.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.scenes:
        scene = load_scene(name)
        with np.load(shared_file(*SCENES[name].file.split("/"))) as z:
            reference = z["endmembers"].astype(np.float64)
        k = REFERENCE_COUNT[name]
        run = out / f"runs-{name}"
        t = time.perf_counter()
        res = train_unmixing([scene], response=rgb_response(scene.wavelengths), run_dir=run,
                             options=UnmixingTrainOptions(config=args.config, endmembers=k, steps=args.steps,
                                                          batch_size=8, patch_size=32, seed=args.seed,
                                                          ckpt_every=500),
                             resume=True, progress=stderr_progress(f"train unmixing {name}"))
        seconds = time.perf_counter() - t
        model = load_unmixing(run)
        acc = unmixing_accuracy(model, name)
        start = match_endmembers(initial_endmembers(scene.data.reshape(-1, scene.bands), k), reference)
        rows.append({"scene": name, "endmembers": k, "steps": res.steps_done, "train_s": seconds,
                     "atgp_start_mean_sad_deg": start["mean_sad_deg"], **acc})
        print(f"{name}: mean SAD {acc['mean_sad_deg']:.2f} deg (ATGP start {start['mean_sad_deg']:.2f})",
              file=sys.stderr)
    machine = machine_description("cpu")
    (out / "results.json").write_text(json.dumps({"machine": machine, "settings": vars(args), "rows": rows},
                                                 indent=2, default=float))
    lines = ["# Unmixing against reference endmembers and abundances", "",
             f"Machine: {', '.join(f'{k}={v}' for k, v in machine.items())}", "",
             "| scene | K | steps | train s | SAD per endmember (deg) | mean SAD (deg) | ATGP start mean SAD | "
             "abundance RMSE | reconstruction PSNR (dB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['endmembers']} | {r['steps']} | {r['train_s']:.0f} | "
                     f"{', '.join(f'{v:.1f}' for v in r['sad_deg'])} | {r['mean_sad_deg']:.2f} | "
                     f"{r['atgp_start_mean_sad_deg']:.2f} | {r['abundance_rmse']:.4f} | "
                     f"{r['reconstruction_psnr_db']:.2f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
