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
same protocol (``benchmarks/results/classical/octave_parity*.json``; known operators only, the scenes, noise levels
and methods run there; random originals (VCA, k-means) as the mean over the recorded Octave states). They are not
re-run here: Octave takes minutes per method and is not installed by hsfuse; rerun ``octave_parity.py`` to refresh
them. ``as published`` is the original as shipped; ``aligned`` is the attribution run with the original's geometry
helpers given the true PSF and phase (see that script). The original's options are its own (FUSE's prior, LTMR's
``eta = 1e-3``): compare them with the ``[...]`` rows that set those options; the plain rows are hsfuse's defaults.

Floors: for known operators, the arithmetic of each method's dominant steps as implemented
(``benchmarks/classical_costs.py``; data-dependent counts from a counting run, which is also the warm-up) at the
machine's measured rates, and measured time / floor.

Results: ``OUT.json`` and ``OUT.md`` with the machine described.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description
from hsfuse.bench.runner import DEFAULT_CASES, check_result_paths, prepare_case, write_json_markdown
from hsfuse.errors import InputError
from hsfuse.estimation.hysure import estimate_hysure
from hsfuse.methods.registry import get_method
from hsfuse.metrics.functional import psnr, sam
from hsfuse.types import FusionMeasurement

RESULTS = Path(__file__).resolve().parent / "results" / "classical"


def _costs_module():
    """``benchmarks/classical_costs.py`` (a script beside this one, not a package): the arithmetic floors."""
    path = Path(__file__).resolve().parent / "classical_costs.py"
    spec = importlib.util.spec_from_file_location("classical_costs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

#: (label, registered method, options): the classical suite with hsfuse's defaults, and beside the noise-aware
#: defaults (FUSE lam="auto", LTMR eta="auto") the fixed weights they replace: FUSE's original prior and hsfuse's
#: previous unit-noise lam=1e-3, LTMR's original eta=1e-3
DEFAULT_RUNS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("bicubic", "bicubic", {}),
    ("gsa", "gsa", {}),
    ("sfim", "sfim", {}),
    ("glp", "glp", {}),
    ("hysure", "hysure", {}),
    ("cnmf", "cnmf", {}),
    ("cstf[separable=nearest]", "cstf", {"separable": "nearest"}),  # = the default for a separable (true) PSF
    ("fuse", "fuse", {}),
    ("fuse[lam=1e-3]", "fuse", {"lam": 1e-3}),
    ("fuse[prior=original]", "fuse", {"prior": "original", "subspace_dim": 15}),
    ("ltmr", "ltmr", {}),
    ("ltmr[eta=1e-3]", "ltmr", {"eta": 1e-3}),
)

#: bench label -> parity-harness runs (as published, aligned) whose recorded original numbers apply
PARITY_NAMES = {"gsa": ("gsa", "gsa_aligned"), "sfim": ("sfim", "sfim_aligned"), "glp": ("glp", "glp_aligned"),
                "hysure": ("hysure", "hysure_svd"), "cnmf": ("cnmf", "cnmf_aligned"),
                "cstf[separable=nearest]": ("cstf", None),
                "fuse": ("fuse", None), "fuse[lam=1e-3]": ("fuse", None), "fuse[prior=original]": ("fuse", None),
                "ltmr": ("ltmr", None), "ltmr[eta=1e-3]": ("ltmr", None)}


def recorded_originals(scene: str, ratio: int, snr_db: float | None = None) -> dict[str, dict[str, Any]]:
    """The parity harness's original rows for ``scene`` (by run name), if recorded for this ratio and noise (clean:
    ``snr_db=None``). Random originals (VCA, k-means) give their mean over the recorded Octave states."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("octave_parity*.json")):
        rec = json.loads(path.read_text())
        p = rec["protocol"]
        noisy = p.get("snr_db")
        same_noise = (p["noise"] == "none") if snr_db is None else (noisy is not None and float(noisy) == snr_db)
        if p["scene"] != scene or p["ratio"] != ratio or not same_noise or p["simulation_preset"] != "hsfuse":
            continue
        for row in rec["rows"]:
            orig = dict(row["original"])
            seeds = row.get("over_seeds")
            if seeds:
                orig.update(psnr=seeds["original_psnr_mean"], sam=seeds["original_sam_mean"],
                            states=len(seeds["original_states"]))
            rows[row["method"]] = {**orig, "source": path.name}
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
        runs: tuple[tuple[str, str, dict[str, Any]], ...], floors: bool = True
        ) -> tuple[list[dict[str, Any]], dict[str, float] | None]:
    """Every run on every scene, noise and operator set: ``(rows, measured machine rates or None)``."""
    cases = {c.scene: c for c in DEFAULT_CASES}
    costs = _costs_module() if floors else None
    rates = costs.machine_rates() if costs is not None else None
    unknown = sorted(set(scenes) - set(cases))
    if unknown:
        raise InputError(f"unknown scenes {unknown}; known: {', '.join(cases)}")
    specs = {label: (get_method(name), get_method(name).make_options(opts or None)) for label, name, opts in runs}
    spec_options = {label: opts for label, _, opts in runs}
    rows: list[dict[str, Any]] = []
    warmed: set[str] = set()
    for scene in scenes:
        for snr in snrs:
            originals = recorded_originals(scene, ratio, snr)
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

                    counts = None
                    try:
                        if costs is not None and ops == "known":  # the data-dependent counts; also a warm-up
                            counts = costs.measure_counts(spec.name, y, physics, dict(spec_options[label]))
                        elif label not in warmed:
                            call()
                    except InputError as err:  # e.g. CSTF and an estimated PSF that is not separable
                        rows.append({"scene": scene, "snr_db": snr, "operators": ops, "method": label,
                                     "refused": str(err), **est_note})
                        print(f"  refused: {err}", flush=True)
                        continue
                    warmed.add(label)
                    t0 = time.perf_counter()
                    out = call()
                    seconds = time.perf_counter() - t0
                    p, s = _score(ref, out)
                    row: dict[str, Any] = {"scene": scene, "snr_db": snr, "operators": ops, "method": label,
                                           "psnr": p, "sam": s, "time_s": seconds, **est_note}
                    if counts is not None:
                        H, W = y.msi.shape[-2:]
                        f = costs.report(spec.name, (H, W, y.hsi.shape[1], y.msi.shape[1], ratio,
                                                     int(physics.spatial.psf.shape[-1])), seconds, rates,
                                         options=dict(spec_options[label]), counts=counts)
                        row.update(floor_s=f["floor_s"], measured_over_floor=f["measured_over_floor"],
                                   gflop=f["flop_total"] / 1e9, floor_dtype=f["dtype"])
                    names = PARITY_NAMES.get(label)
                    if names and ops == "known":
                        published, aligned = (originals.get(n) if n else None for n in names)
                        if published:
                            row.update(octave_psnr=published["psnr"], octave_sam=published["sam"],
                                       octave_time_s=published["time_s_median"],
                                       octave_speedup=published["time_s_median"] / seconds,
                                       octave_source=published["source"],
                                       octave_states=published.get("states", 1))
                        if aligned:
                            row.update(octave_aligned_psnr=aligned["psnr"], octave_aligned_sam=aligned["sam"])
                    rows.append(row)
    return rows, rates


def _f(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Classical methods: quality and time", "",
             f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores, {m.get('memory_gib')} GiB, "
             f"torch {m.get('torch')} ({m.get('torch_threads')} threads), device cpu.", "",
             f"Protocol: {result['protocol']}", "",
             "Floor: the arithmetic of each method's dominant steps as implemented (benchmarks/classical_costs.py: "
             "FFT flops at the measured rfft2 rate, products and other flops at the measured GEMM rate, compulsory "
             "bytes at the copy rate; known operators only). Rates: " + ", ".join(
                 f"{k} {v:.1f}" for k, v in (result.get("rates") or {}).items()) + ".", "",
             "| scene | noise | operators | method | PSNR (dB) | SAM (deg) | time (s) | floor (s) | time / floor "
             "| Octave PSNR / SAM as published | Octave PSNR / SAM, aligned geometry | Octave time (s) | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        noise = "clean" if r["snr_db"] is None else f"{r['snr_db']:g} dB"
        if "refused" in r:
            lines.append(f"| {r['scene']} | {noise} | {r['operators']} | {r['method']} | refused: {r['refused']} "
                         "|" + " |" * 8)
            continue
        octave = f"{r['octave_psnr']:.2f} / {r['octave_sam']:.2f}" if "octave_psnr" in r else ""
        aligned = (f"{r['octave_aligned_psnr']:.2f} / {r['octave_aligned_sam']:.2f}"
                   if "octave_aligned_psnr" in r else "")
        lines.append(f"| {r['scene']} | {noise} | {r['operators']} | {r['method']} | {r['psnr']:.2f} | "
                     f"{r['sam']:.2f} | {r['time_s']:.3g} | {_f(r.get('floor_s'), '.3g')} | "
                     f"{_f(r.get('measured_over_floor'), '.1f')} | {octave} | {aligned} | "
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
    ap.add_argument("--no-floors", action="store_true", help="skip the arithmetic floors (no rate measurement, no "
                    "counting run)")
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
        check_result_paths(args.out, overwrite=args.overwrite)
        rows, rates = run([s.strip() for s in args.scenes.split(",") if s.strip()], ratio=args.ratio, snrs=snrs,
                          operators=ops, runs=tuple(by_label[w] for w in wanted), floors=not args.no_floors)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"protocol": f"ratio {args.ratio}, preset hsfuse (Gaussian PSF FWHM = r, circular, offset (r-1)//2, "
                          "SRF rows sum to 1), noise on both images seeded 0; PSNR band_max averaged over bands, "
                          "SAM degrees over non-zero pixels; one timed run after a warm-up",
              "machine": machine_description(), "rates": rates, "rows": rows}
    write_json_markdown(args.out, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
