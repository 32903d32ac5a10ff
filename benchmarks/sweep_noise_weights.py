"""Calibration of the noise-aware defaults (issue 17 item 4): LTMR's eta and FUSE's lam swept against the noise.

    python benchmarks/sweep_noise_weights.py [--scenes pavia_u,indian_pines,jasper_ridge] [--snr clean,25,30,35]
        [--out benchmarks/results/classical/noise_weights] [--overwrite]

For each scene of :data:`hsfuse.bench.runner.DEFAULT_CASES` (r = 4, preset ``hsfuse``, known operators, white
Gaussian noise at each SNR on both images, seed 0): the HSI's noise variance estimated from the data
(:func:`hsfuse.physics.estimate_noise_sigma`, mean over bands) beside the true one, then PSNR / SAM of

* LTMR with fixed ``eta`` on a grid (the original's 1e-3 included) and with ``eta="auto"``
  (:func:`hsfuse.methods.ltmr.noise_aware_eta`: ``ETA_PER_NOISE_VARIANCE`` x the estimated variance);
* FUSE with fixed ``lam`` (unit-noise terms, hsfuse's previous default 1e-3 included), with the original's prior
  (``prior="original", subspace_dim=15``) and with ``lam="auto"`` (empirical Bayes, no tuned constant).

The LTMR constant was chosen from this sweep (the ratio ``eta / sigma^2`` of the best fixed ``eta`` per case is in
the results); FUSE's rule has no constant and is only checked here. Metrics as ``bench_classical.py``. Results:
``OUT.json`` and ``OUT.md`` with the machine described. Takes ~20 minutes on one core (LTMR: ~6 s per run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import DEFAULT_CASES, check_result_paths, prepare_case, write_json_markdown
from hsfuse.errors import InputError
from hsfuse.methods.ltmr import ETA_PER_NOISE_VARIANCE
from hsfuse.methods.registry import get_method
from hsfuse.metrics.functional import psnr, sam
from hsfuse.physics import estimate_noise_sigma
from hsfuse.physics.noise import noise_sigma

RESULTS = Path(__file__).resolve().parent / "results" / "classical"
ETAS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
LAMS = (1e-3, 1e-2, 1e-1)


def _score(ref: torch.Tensor, est: torch.Tensor) -> dict[str, float]:
    est = est.detach().cpu().to(torch.float64)
    return {"psnr": float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0]),
            "sam": float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0])}


def sweep(scenes: list[str], snrs: list[float | None]) -> list[dict[str, Any]]:
    cases = {c.scene: c for c in DEFAULT_CASES}
    unknown = sorted(set(scenes) - set(cases))
    if unknown:
        raise InputError(f"unknown scenes {unknown}; known: {', '.join(cases)}")
    ltmr, fuse = get_method("ltmr"), get_method("fuse")
    rows = []
    for scene in scenes:
        for snr in snrs:
            sim = prepare_case(cases[scene], ratio=4, snr_db=snr)
            y, physics = sim.measurement(), sim.physics.to(dtype=torch.float32)
            ref = sim.reference.to_tensor(dtype=torch.float64)
            est_var = float(estimate_noise_sigma(y.hsi).pow(2).mean())
            # the simulated noise's variance (from the noisy image's power: 0.1 % high at 30 dB)
            true_var = None if snr is None else float(noise_sigma(y.hsi, snr_db=snr).pow(2).mean())
            base = {"scene": scene, "snr_db": snr, "hsi_noise_var_estimated": est_var, "hsi_noise_var_true": true_var}
            print(f"{scene} {'clean' if snr is None else f'{snr:g} dB'}: noise variance estimated {est_var:.3g}"
                  + ("" if true_var is None else f", true {true_var:.3g}"), flush=True)

            def run(spec, label: str, method: str, **options: Any) -> None:
                t0 = time.perf_counter()
                with torch.no_grad():
                    z = spec.run(y, physics, options=spec.make_options(options or None), weights=None)
                rows.append({**base, "method": method, "setting": label, "options": options,
                             **_score(ref, z), "time_s": time.perf_counter() - t0})
                print(f"  {method} {label}: {rows[-1]['psnr']:.2f} dB {rows[-1]['sam']:.2f} deg", flush=True)

            for eta in ETAS:
                run(ltmr, f"eta={eta:g}", "ltmr", eta=eta)
                rows[-1]["eta_over_noise_var"] = eta / est_var
            run(ltmr, "auto", "ltmr")
            rows[-1]["eta_over_noise_var"] = ETA_PER_NOISE_VARIANCE
            for lam in LAMS:
                run(fuse, f"lam={lam:g}", "fuse", lam=lam)
            run(fuse, "prior=original", "fuse", prior="original", subspace_dim=15)
            run(fuse, "auto", "fuse")
    return rows


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Noise-aware defaults: LTMR eta and FUSE lam against the noise", "",
             f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores, torch {m.get('torch')} "
             f"({m.get('torch_threads')} threads).", "", f"Protocol: {result['protocol']}", "",
             f"LTMR eta=auto = {ETA_PER_NOISE_VARIANCE:g} x the estimated HSI noise variance; FUSE lam=auto = "
             "empirical Bayes (no constant).", ""]
    keys = []
    for r in result["rows"]:
        k = (r["scene"], r["snr_db"])
        if k not in keys:
            keys.append(k)
    for method in ("ltmr", "fuse"):
        settings = [r["setting"] for r in result["rows"]
                    if r["method"] == method and (r["scene"], r["snr_db"]) == keys[0]]
        lines += [f"## {method} (PSNR dB / SAM deg)", "",
                  "| scene | noise | est. noise var | " + " | ".join(settings) + " | best fixed |",
                  "|---|---|---|" + "---|" * (len(settings) + 1)]
        for k in keys:
            rs = [r for r in result["rows"] if r["method"] == method and (r["scene"], r["snr_db"]) == k]
            fixed = [r for r in rs if r["setting"] != "auto"]
            best = max(fixed, key=lambda r: r["psnr"])
            cells = " | ".join(f"{r['psnr']:.2f} / {r['sam']:.2f}" for r in rs)
            lines.append(f"| {k[0]} | {'clean' if k[1] is None else f'{k[1]:g} dB'} | "
                         f"{rs[0]['hsi_noise_var_estimated']:.2e} | {cells} | {best['setting']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="pavia_u,indian_pines,jasper_ridge")
    ap.add_argument("--snr", default="clean,25,30,35", help="comma list of 'clean' or SNRs in dB")
    ap.add_argument("--out", type=Path, default=RESULTS / "noise_weights")
    ap.add_argument("--overwrite", action="store_true", help="replace existing OUT.json / OUT.md")
    args = ap.parse_args(argv)
    try:
        snrs = [None if s.strip() == "clean" else float(s) for s in args.snr.split(",") if s.strip()]
        check_result_paths(args.out, overwrite=args.overwrite)
        rows = sweep([s.strip() for s in args.scenes.split(",") if s.strip()], snrs)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"protocol": "ratio 4, preset hsfuse (Gaussian PSF FWHM = r, circular, offset (r-1)//2, SRF rows sum "
                          "to 1), known operators, white noise at the SNR on both images, seed 0; PSNR band_max "
                          "averaged over bands, SAM degrees over non-zero pixels",
              "machine": machine_description(), "ltmr_eta_per_noise_variance": ETA_PER_NOISE_VARIANCE, "rows": rows}
    write_json_markdown(args.out, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
