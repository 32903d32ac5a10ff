"""Benchmark of the classical fusion methods: quality and time, clean and noisy, known and estimated operators.

    python benchmarks/bench_classical.py [--scenes pavia_u,indian_pines,jasper_ridge] [--ratio 4]
        [--snr clean,30] [--operators known,estimated] [--methods ...] [--out benchmarks/results/classical/bench]

Protocol (the one of ``benchmarks/reference/octave_parity.py``, so the recorded Octave numbers sit beside):
each scene of :data:`hsfuse.bench.runner.DEFAULT_CASES` simulated by :func:`~hsfuse.bench.runner.prepare_case`
(preset ``hsfuse``: Gaussian PSF FWHM = r, 2r+1 taps, circular boundary, offset (r - 1) // 2, SRF rows summing
to one), clean or with white Gaussian noise at the given SNR on both images (seed 0). ``known``: every method
gets the true PSF and SRF; ``estimated``: every method gets the PSF and SRF that
:func:`hsfuse.estimation.estimate_hysure` fits to the pair itself (no knowledge of the simulation). Metrics:
PSNR with each band's reference maximum as peak, averaged over bands, and SAM in degrees over non-zero pixels
(the parity harness's definitions). Times: one run after an untimed warm-up, float32, the machine's threads.

Octave columns: the original MATLAB code's PSNR / SAM / time, READ from the parity results recorded under the
same protocol (``benchmarks/results/classical/octave_parity*.json``; clean, known operators only, the scenes
and methods run there). They are not re-run here: Octave takes minutes per method and is not installed by
hsfuse; rerun ``octave_parity.py`` to refresh them. ``as published`` is the original as shipped; ``aligned``
is the attribution run with the original's geometry helpers given the true PSF and phase (see that script).

Results: ``OUT.json`` and ``OUT.md`` with the machine described.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import DEFAULT_CASES, prepare_case
from hsfuse.errors import InputError
from hsfuse.estimation.hysure import estimate_hysure
from hsfuse.io.atomic import atomic_outputs
from hsfuse.methods.registry import get_method
from hsfuse.metrics.functional import psnr, sam
from hsfuse.types import FusionMeasurement

RESULTS = Path(__file__).resolve().parent / "results" / "classical"

#: (label, registered method, options): the classical suite, and FUSE also with the original's prior
DEFAULT_RUNS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("bicubic", "bicubic", {}),
    ("gsa", "gsa", {}),
    ("sfim", "sfim", {}),
    ("glp", "glp", {}),
    ("hysure", "hysure", {}),
    ("cnmf", "cnmf", {}),
    ("fuse", "fuse", {}),
    ("fuse[prior=original]", "fuse", {"prior": "original", "subspace_dim": 15}),
    ("ltmr", "ltmr", {}),
)

#: bench label -> parity-harness runs (as published, aligned) whose recorded original numbers apply
PARITY_NAMES = {"gsa": ("gsa", "gsa_aligned"), "sfim": ("sfim", "sfim_aligned"), "glp": ("glp", "glp_aligned"),
                "hysure": ("hysure", "hysure_svd"), "fuse": ("fuse", None), "fuse[prior=original]": ("fuse", None)}


def recorded_originals(scene: str, ratio: int) -> dict[str, dict[str, Any]]:
    """The parity harness's original rows for ``scene`` (by run name), if recorded for this ratio, clean."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("octave_parity*.json")):
        rec = json.loads(path.read_text())
        p = rec["protocol"]
        if p["scene"] != scene or p["ratio"] != ratio or p["noise"] != "none" or p["simulation_preset"] != "hsfuse":
            continue
        for row in rec["rows"]:
            rows[row["method"]] = {**row["original"], "source": path.name}
    return rows


def _response_error(srf: torch.Tensor, true_srf: torch.Tensor, hsi: torch.Tensor) -> float:
    """``||R_est Y_h - R Y_h|| / ||R Y_h||`` on the pair's own HSI: how far the estimated SRF's synthetic MSI is from
    the true one. (The matrices themselves can differ much more: the data constrain R only on their subspace.)"""
    x = hsi.double()
    a = torch.einsum("ml,nlhw->nmhw", srf.double(), x)
    b = torch.einsum("ml,nlhw->nmhw", true_srf.double(), x)
    return float((a - b).norm() / b.norm())


def _score(ref: torch.Tensor, est: torch.Tensor) -> tuple[float, float]:
    est = est.detach().cpu().to(torch.float64)
    return (float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0]),
            float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0]))


def run(scenes: list[str], *, ratio: int, snrs: list[float | None], operators: list[str],
        runs: tuple[tuple[str, str, dict[str, Any]], ...]) -> list[dict[str, Any]]:
    cases = {c.scene: c for c in DEFAULT_CASES}
    unknown = sorted(set(scenes) - set(cases))
    if unknown:
        raise InputError(f"unknown scenes {unknown}; known: {', '.join(cases)}")
    specs = {label: (get_method(name), get_method(name).make_options(opts or None)) for label, name, opts in runs}
    rows: list[dict[str, Any]] = []
    warmed: set[str] = set()
    for scene in scenes:
        originals = recorded_originals(scene, ratio)
        for snr in snrs:
            sim = prepare_case(cases[scene], ratio=ratio, snr_db=snr)
            y = sim.measurement()
            ref = sim.reference.to_tensor(dtype=torch.float64)
            for ops in operators:
                t0 = time.perf_counter()
                if ops == "known":
                    physics, est_note = sim.physics.to(dtype=torch.float32), {}
                else:
                    est = estimate_hysure(FusionMeasurement(y.hsi.double(), y.msi.double()), ratio=ratio)
                    physics = est.to_observation(boundary="circular").to(dtype=torch.float32)
                    true_psf = sim.physics.spatial.psf
                    est_note = {"estimate_s": time.perf_counter() - t0,
                                "srf_response_error": _response_error(est.srf, sim.physics.spectral.matrix, y.hsi),
                                "psf_size": int(est.psf.shape[-1]), "psf_size_true": int(true_psf.shape[-1]),
                                "psf_offset": int(est.offset)}
                for label, (spec, options) in specs.items():
                    print(f"{scene} {'clean' if snr is None else f'{snr:g} dB'} {ops} {label}", flush=True)

                    def call() -> torch.Tensor:
                        with torch.no_grad():
                            return spec.run(y, physics, options=options, weights=None)

                    if label not in warmed:
                        call()
                        warmed.add(label)
                    t0 = time.perf_counter()
                    out = call()
                    seconds = time.perf_counter() - t0
                    p, s = _score(ref, out)
                    row: dict[str, Any] = {"scene": scene, "snr_db": snr, "operators": ops, "method": label,
                                           "psnr": p, "sam": s, "time_s": seconds, **est_note}
                    names = PARITY_NAMES.get(label)
                    if names and snr is None and ops == "known":
                        published, aligned = (originals.get(n) if n else None for n in names)
                        if published:
                            row.update(octave_psnr=published["psnr"], octave_sam=published["sam"],
                                       octave_time_s=published["time_s_median"],
                                       octave_speedup=published["time_s_median"] / seconds,
                                       octave_source=published["source"])
                        if aligned:
                            row.update(octave_aligned_psnr=aligned["psnr"], octave_aligned_sam=aligned["sam"])
                    rows.append(row)
    return rows


def _f(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Classical methods: quality and time", "",
             f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores, {m.get('memory_gib')} GiB, "
             f"torch {m.get('torch')} ({m.get('torch_threads')} threads), device cpu.", "",
             f"Protocol: {result['protocol']}", "",
             "| scene | noise | operators | method | PSNR (dB) | SAM (deg) | time (s) | Octave PSNR / SAM as published "
             "| Octave PSNR / SAM, aligned geometry | Octave time (s) | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        noise = "clean" if r["snr_db"] is None else f"{r['snr_db']:g} dB"
        octave = f"{r['octave_psnr']:.2f} / {r['octave_sam']:.2f}" if "octave_psnr" in r else ""
        aligned = (f"{r['octave_aligned_psnr']:.2f} / {r['octave_aligned_sam']:.2f}"
                   if "octave_aligned_psnr" in r else "")
        lines.append(f"| {r['scene']} | {noise} | {r['operators']} | {r['method']} | {r['psnr']:.2f} | "
                     f"{r['sam']:.2f} | {r['time_s']:.3g} | {octave} | {aligned} | "
                     f"{_f(r.get('octave_time_s'), '.3g')} | {_f(r.get('octave_speedup'), '.0f')} |")
    est = {(r["scene"], r["snr_db"]): r for r in result["rows"] if r["operators"] == "estimated"}
    if est:
        lines += ["", "Estimated operators (HySure's estimator on each pair; SRF response error = "
                  "||R_est Y_h - R Y_h|| / ||R Y_h|| on the pair's HSI):", ""]
        for (scene, snr), r in est.items():
            lines.append(f"- {scene}, {'clean' if snr is None else f'{snr:g} dB'}: SRF response error "
                         f"{r['srf_response_error']:.3f}, PSF {r['psf_size']}x{r['psf_size']} at offset {r['psf_offset']} "
                         f"(true {r['psf_size_true']}x{r['psf_size_true']}), {r['estimate_s']:.2f} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="pavia_u,indian_pines,jasper_ridge")
    ap.add_argument("--ratio", type=int, default=4)
    ap.add_argument("--snr", default="clean,30", help="comma list of 'clean' or SNRs in dB")
    ap.add_argument("--operators", default="known,estimated")
    ap.add_argument("--methods", default=",".join(label for label, _, _ in DEFAULT_RUNS),
                    help="labels among " + ", ".join(label for label, _, _ in DEFAULT_RUNS))
    ap.add_argument("--out", type=Path, default=RESULTS / "bench")
    ap.add_argument("--overwrite", action="store_true", help="replace existing OUT.json / OUT.md")
    args = ap.parse_args(argv)
    try:
        snrs = [None if s.strip() == "clean" else float(s) for s in args.snr.split(",") if s.strip()]
        ops = [o.strip() for o in args.operators.split(",") if o.strip()]
        if set(ops) - {"known", "estimated"}:
            raise InputError(f"--operators takes 'known' and/or 'estimated', got {args.operators!r}")
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        by_label = {label: (label, n, o) for label, n, o in DEFAULT_RUNS}
        if set(wanted) - set(by_label):
            raise InputError(f"unknown methods {sorted(set(wanted) - set(by_label))}; known: {', '.join(by_label)}")
        out_json, out_md = args.out.with_suffix(".json"), args.out.with_suffix(".md")
        for path in (out_json, out_md):
            if path.exists() and not args.overwrite:
                raise InputError(f"{path} exists: pass --overwrite to replace it, or choose another --out")
        rows = run([s.strip() for s in args.scenes.split(",") if s.strip()], ratio=args.ratio, snrs=snrs,
                   operators=ops, runs=tuple(by_label[w] for w in wanted))
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"protocol": f"ratio {args.ratio}, preset hsfuse (Gaussian PSF FWHM = r, circular, offset (r-1)//2, "
                          "SRF rows sum to 1), noise on both images seeded 0; PSNR band_max averaged over bands, "
                          "SAM degrees over non-zero pixels; one timed run after a warm-up",
              "machine": machine_description(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs([out_json, out_md], overwrite=True) as (tmp_json, tmp_md):
        tmp_json.write_text(json.dumps(result, indent=2) + "\n")
        tmp_md.write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
