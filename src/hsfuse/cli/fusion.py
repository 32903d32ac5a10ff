"""Commands that fuse and score: ``demo``, ``fuse``, ``methods``, ``evaluate``, ``report``, ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ._common import (ProgressBar, add_quiet, add_read_options, band_list, method_keyed, positive_float, positive_int,
                      print_table, say_printer)

__all__ = ["register"]


def cmd_demo(args: argparse.Namespace) -> int:
    from ..bench.demo import run_demo

    result = run_demo(args.output, size=args.size, ratio=args.ratio, seed=args.seed, overwrite=args.overwrite,
                      on_progress=say_printer(args.quiet))
    cols = ["method", "psnr", "ssim", "sam", "ergas", "rmse", "time_s"]
    print_table(result.rows, title=f"hsfuse demo: synthetic {args.size}x{args.size}x31 scene, ratio {args.ratio}, "
                "Nikon D700 RGB (metric preset 'hsfuse', data range 1)",
                columns=[c for c in cols if c in result.rows[0]])
    print(f"outputs in {args.output}: " + ", ".join(p.name for p in result.outputs))
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from ..methods.options import parse_options
    from ..methods.registry import get_method
    from ..workflows.fusion import fuse_to_file

    spec = get_method(args.method)
    options = parse_options(spec.options, args.option, method=spec.name)
    if args.report:
        from ..workflows.report import check_report_path

        check_report_path(args.report, overwrite=args.overwrite)  # before fusing
    with ProgressBar(spec.name, quiet=args.quiet) as progress:
        path, _ = fuse_to_file(args.hsi, args.msi, args.output, method=spec.name, options=options,
                               overwrite=args.overwrite, hsi_variable=args.hsi_variable, msi_variable=args.msi_variable,
                               layout=args.layout, weights=args.weights, device=args.device, progress=progress,
                               say=say_printer(args.quiet), ratio=args.ratio, srf=args.srf, psf=args.psf,
                               physics=args.physics, bands=args.bands, srf_normalize=args.srf_normalize,
                               offset=args.offset, boundary=args.boundary,
                               large={k: getattr(args, k) for k in ("chunk", "memory_gb", "workers", "scheduler",
                                                                    "threads", "resume", "cog")},
                               real={"coregister": args.coregister, "mask": args.mask,
                                     "mask_reasons": args.mask_reasons, "shift": args.shift})
    say_printer(args.quiet)(f"wrote {path}")
    if args.report:
        from ..workflows.report import report_of_fused

        summary = report_of_fused(path, args.report, hsi=args.hsi, msi=args.msi, method=spec.name,
                                  options=options.as_kwargs(), physics=args.physics, overwrite=args.overwrite,
                                  srf=args.srf, psf=args.psf, bands=args.bands, srf_normalize=args.srf_normalize,
                                  offset=args.offset, boundary=args.boundary)
        say_printer(args.quiet)(f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..workflows.report import write_run_report

    summary = write_run_report(args.runs, args.output, hsi=args.hsi, msi=args.msi, reference=args.reference,
                               physics=args.physics, title=args.title, overwrite=args.overwrite,
                               max_side=args.max_side, spectra_mb=args.spectra_mb)
    print(f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB; images every {summary.display_step} pixel(s), "
          f"spectra every {summary.spectra_step}) in {summary.seconds:.1f} s")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from ..methods.registry import METHODS, get_method, method_summary, options_table

    if args.name is None:
        print_table([method_summary(s) for s in METHODS.values()], title="fusion methods ('hsfuse methods NAME' for "
                    "its options)", columns=["method", "needs", "blind", "fits_per_image", "locality", "options",
                                             "description"])
        return 0
    spec = get_method(args.name)
    summary = method_summary(spec)
    print(f"{spec.name}: {spec.description}\n  paper: {spec.reference}\n  needs: {summary['needs']}; blind: "
          f"{summary['blind']}; fits per image: {summary['fits_per_image']}; locality: {summary['locality']}; "
          f"devices: {summary['devices']}")
    rows = options_table(spec)
    if rows:
        print_table(rows, title=f"options of {spec.name} (hsfuse fuse --method {spec.name} --option KEY=VALUE)")
    else:
        print("  no options")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..workflows.evaluate import evaluate_no_reference, evaluate_reference

    if args.report:
        from ..workflows.report import check_report_path

        check_report_path(args.report, overwrite=args.overwrite)  # before scoring

    if args.reference:
        given = [o for o, v in (("--hsi", args.hsi), ("--msi", args.msi), ("--physics", args.physics),
                                ("--srf", args.srf), ("--psf", args.psf), ("--bands", args.bands),
                                ("--hsi-variable", args.hsi_variable), ("--msi-variable", args.msi_variable)) if v]
        if given:
            raise InputError(f"{', '.join(given)} are for scoring without a reference; with --reference give only "
                             "--estimate (and --preset, --ratio)")
        preset = args.preset or "hsfuse"
        scores = evaluate_reference(args.reference, args.estimate, preset=preset, ratio=args.ratio,
                                    data_range=args.data_range, reference_variable=args.reference_variable,
                                    estimate_variable=args.estimate_variable, layout=args.layout)
        title = f"{Path(args.estimate).name} vs {Path(args.reference).name} (metric preset {preset!r})"
    elif args.hsi and args.msi:
        ignored = [o for o, v in (("--preset", args.preset), ("--ratio", args.ratio),
                                  ("--data-range", args.data_range), ("--reference-variable", args.reference_variable))
                   if v is not None]
        if ignored:
            raise InputError(f"{', '.join(ignored)} are for scoring against a reference; without --reference the "
                             "scores are QNR and consistency with the pair's own operators (drop them)")
        scores = evaluate_no_reference(args.hsi, args.msi, args.estimate, physics=args.physics, srf=args.srf,
                                       psf=args.psf, bands=args.bands, hsi_variable=args.hsi_variable,
                                       msi_variable=args.msi_variable, estimate_variable=args.estimate_variable,
                                       layout=args.layout)
        title = (f"{Path(args.estimate).name} without a reference (operators: {scores['operators']}; QNR blocks "
                 f"{scores['q_block']} px)")
    else:
        raise InputError("give --reference REF (reference-based metrics) or --hsi LR and --msi MSI (no-reference "
                         "scores of a real pair)")
    if args.report:
        from ..workflows.report import write_run_report

        name = Path(args.estimate).stem
        values = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
        if args.reference:
            summary = write_run_report([args.estimate], args.report, reference=args.reference,
                                       metrics=[{"method": name, **values}], overwrite=args.overwrite)
        else:
            summary = write_run_report([args.estimate], args.report, hsi=args.hsi, msi=args.msi,
                                       physics=args.physics, scores={name: values}, overwrite=args.overwrite)
        print(f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB)", file=sys.stderr)
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        print_table([{"metric": k, "value": v} for k, v in scores.items()], title=title)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.machine import machine_description
    from ..bench.runner import DEFAULT_CASES, check_results_folder, parse_case, run_benchmark, write_results
    from ..methods.options import parse_options
    from ..methods.registry import METHODS, get_method

    check_results_folder(args.output, overwrite=args.overwrite)  # before any case runs
    cases = [parse_case(c) for c in args.case] if args.case else list(DEFAULT_CASES)
    if args.report:
        from ..bench.runner import report_path
        from ..io.atomic import check_output_path

        for case in cases:
            for ratio in args.ratios:
                if Path(args.output).is_dir():
                    check_output_path(report_path(args.output, case, ratio), overwrite=args.overwrite)
    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--weights {item!r} must look like METHOD=CHECKPOINT")
        weights[name] = path
    methods = args.methods or [n for n, s in METHODS.items() if s.direct] + sorted(weights)
    options = {m: parse_options(get_method(m).options, pairs, method=m)
               for m, pairs in method_keyed(args.option, "--option").items()}
    with ProgressBar("benchmark", quiet=args.quiet) as progress:
        total = len(cases) * len(args.ratios) * len(methods)
        done = iter(range(1, total + 1))
        rows = run_benchmark(cases, methods, args.ratios, simulation_preset=args.simulation_preset,
                             metric_preset=args.preset, device=args.device, seed=args.seed, weights=weights,
                             options=options, report_dir=args.output if args.report else None,
                             overwrite=args.overwrite,
                             on_progress=None if progress is None else lambda m: progress(next(done), total, info=m))
    settings = {"simulation_preset": args.simulation_preset, "metric_preset": args.preset, "ratios": args.ratios,
                "cases": [c.label for c in cases], "seed": args.seed, "weights": weights,
                "options": {m: o.as_kwargs() for m, o in options.items()}}
    paths = write_results(rows, args.output, machine=machine_description(args.device), settings=settings,
                          overwrite=args.overwrite)
    cols = ["scene", "sensor", "ratio", "method", "psnr", "ssim", "sam", "ergas", "time_s", "peak_mem_mib"]
    print_table(rows, title="hsfuse bench", columns=[c for c in cols if c in rows[0]])
    for p in paths:
        print(f"wrote {p}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.simulation import SIMULATION_PRESETS
    from ..methods.registry import METHODS
    from ..metrics.presets import PRESETS

    p = sub.add_parser("demo", help="simulate, fuse with every method, evaluate, write outputs (synthetic scene)",
                       description="The main job on the embedded synthetic scene: simulate an HSI/RGB pair, fuse "
                       "with every classical method, print the metrics, write fused cubes and a figure.")
    p.add_argument("-o", "--output", default="hsfuse-demo", help="output folder (default: ./hsfuse-demo)")
    p.add_argument("--size", type=positive_int, default=128, help="scene height and width (default 128)")
    p.add_argument("--ratio", type=positive_int, default=4, help="resolution ratio (default 4)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_quiet(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fuse", help="fuse a LR HSI with a HR MSI",
                       description="Fuse; the output keeps the HSI's wavelengths and the MSI's georeferencing. "
                       "'hsfuse methods' lists the methods, 'hsfuse methods NAME' their options (--option KEY=VALUE).")
    p.add_argument("--hsi", required=True, help="low-resolution hyperspectral image")
    p.add_argument("--msi", required=True, help="high-resolution multispectral/RGB image")
    p.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option (repeatable), e.g. --option lam=0.01; see 'hsfuse methods NAME'")
    p.add_argument("--physics", help="physics.json from 'hsfuse simulate' or 'hsfuse estimate' (PSF, SRF, ratio)")
    p.add_argument("--srf", help="MSI sensor: name ('hsfuse srf list'), response CSV, or (m x L) .npy")
    p.add_argument("--bands", type=band_list, help="sensor bands present in the MSI, e.g. B2,B3,B4,B8")
    p.add_argument("--srf-normalize", choices=["sum", "none"], default="sum", help="SRF rows sum to one (default)")
    p.add_argument("--psf", help="gaussian:fwhm=F[,size=K] | gaussian:sigma=S[,size=K] | kernel FILE "
                   "(default gaussian FWHM = ratio)")
    p.add_argument("--ratio", type=positive_int, help="check the ratio implied by the image sizes")
    p.add_argument("--offset", type=int, help="decimation offset (default (ratio-1)//2)")
    p.add_argument("--boundary", choices=["circular", "reflect"], default="circular")
    p.add_argument("--hsi-variable")
    p.add_argument("--msi-variable")
    add_read_options(p)
    p.add_argument("--device", help="cpu (default) or cuda[:N]")
    p.add_argument("--weights", help="trained networks: run folder from 'hsfuse train' (its best checkpoint), a "
                   "checkpoint folder, or its model.safetensors")
    p.add_argument("-o", "--output", required=True, help="output file (.npz, .mat, .tif, .hdr, .npy; .zarr or .tif "
                   "for large scenes)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (and --report)")
    p.add_argument("--report", metavar="FILE.html", help="also write the interactive HTML report of the result "
                   "(README: 'Reports')")
    large = p.add_argument_group("large scenes", "chunked, out-of-core fusion on Dask (README: 'Large scenes'); used "
                                 "when any of these is given, for a .zarr output, or when the method's whole-image "
                                 "working set would exceed --memory-gb")
    large.add_argument("--memory-gb", type=float, help="memory budget of the whole run in GiB (default 4): picks the "
                       "chunk size")
    large.add_argument("--chunk", type=positive_int, help="chunk side in HR pixels (a multiple of the ratio) instead "
                       "of one chosen from --memory-gb")
    large.add_argument("--workers", type=positive_int, help="run on a dask.distributed LocalCluster of N worker "
                       "processes (default: the local threaded scheduler)")
    large.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://host:8786")
    large.add_argument("--threads", type=positive_int, help="threads (tasks at once) per worker; default: the cores "
                       "divided among the workers")
    large.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command: "
                       "chunks already written are kept")
    large.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF (with overviews) for a "
                       ".tif output")
    real = p.add_argument_group("real pairs", "products (EnMAP, PRISMA, EMIT, DESIS, Sentinel-2, Landsat) or "
                                "georeferenced rasters on their own grids (README: 'Real satellite pairs')")
    real.add_argument("--coregister", choices=["global", "local", "none"],
                      help="global (default for real pairs): measure and remove a global translation of the MSI; "
                      "local: then also a smooth tie-point displacement field (terrain, attitude); none: only measure")
    real.add_argument("--shift", nargs=2, type=float, metavar=("DY", "DX"), help="remove this known translation of "
                      "the MSI (HSI pixels; +DY: its content sits further down) instead of measuring one")
    real.add_argument("--mask", metavar="FILE", help="a raster of unusable pixels (non-zero) on either image's grid")
    real.add_argument("--mask-reasons", type=band_list, metavar="NAMES", help="product masks to use, e.g. "
                      "nodata,cloud,shadow (default: every mask the products have)")
    add_quiet(p)
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("methods", help="list the fusion methods, or one method's options",
                       description="Without NAME: every method with what it needs (PSF, SRF, trained weights), "
                       "whether it is blind or fits each pair, its locality and its options. With NAME: its options "
                       "with types, defaults and meaning (set them with 'hsfuse fuse --option KEY=VALUE').")
    p.add_argument("name", nargs="?", help="a method name")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("evaluate", help="quality metrics, with a reference or without one",
                       description="With --reference: reference-based metrics of a preset (every convention fixed; "
                       "see hsfuse.metrics.presets): " + "; ".join(f"{n}: {v.reproduces.split('.')[0]}"
                                                                   for n, v in PRESETS.items())
                       + ". With --hsi and --msi instead: no-reference scores of a real pair (QNR, D_lambda, D_s, "
                       "consistency with both inputs), operators from --physics/--srf/--psf or estimated (HySure).")
    p.add_argument("--estimate", required=True, help="the fused image")
    p.add_argument("--reference", help="the reference high-resolution HSI")
    p.add_argument("--hsi", help="no reference: the low-resolution HSI of the pair")
    p.add_argument("--msi", help="no reference: the MSI of the pair")
    p.add_argument("--physics", help="no reference: physics.json with the PSF and SRF (default: estimated)")
    p.add_argument("--srf", help="no reference: the MSI's SRF (name, CSV or .npy), in the files' units")
    p.add_argument("--psf", help="no reference: the PSF (with --srf)")
    p.add_argument("--bands", type=band_list, help="no reference: sensor bands of --srf present in the MSI")
    p.add_argument("--preset", choices=sorted(PRESETS), help="metric preset with --reference (default hsfuse)")
    p.add_argument("--ratio", type=positive_int, help="resolution ratio (needed for ERGAS)")
    p.add_argument("--data-range", type=float, help="override the preset's data range (peak value)")
    p.add_argument("--reference-variable")
    p.add_argument("--estimate-variable")
    p.add_argument("--hsi-variable")
    p.add_argument("--msi-variable")
    add_read_options(p)
    p.add_argument("--json", action="store_true", help="print JSON with lower-case metric names")
    p.add_argument("--report", metavar="FILE.html", help="also write the interactive HTML report of the estimate")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --report file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="interactive HTML report of runs (one self-contained page)",
                       description="One static HTML page (Plotly, inlined: opens offline) of one or more runs: "
                       "false-colour composites with shared zoom and a blink comparison, error or consistency maps, "
                       "metrics (sortable), per-band curves, the spectra at a clicked pixel, the operators and the "
                       "provenance. RUN: a 'hsfuse demo' or 'hsfuse pair' output folder, or a fused image file "
                       "(then give --hsi/--msi/--reference/--physics as they apply).")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--hsi", help="the LR HSI (default: the run's)")
    p.add_argument("--msi", help="the MSI (default: the run's)")
    p.add_argument("--reference", help="the reference HR HSI (default: the run's)")
    p.add_argument("--physics", help="physics.json with the PSF and SRF (default: the run's)")
    p.add_argument("--title", help="page title")
    p.add_argument("--max-side", type=positive_int, default=1024, help="largest side of the displayed images "
                   "(decimated reads of larger results; default 1024)")
    p.add_argument("--spectra-mb", type=positive_float, default=4.0, help="budget of the embedded spectra in MB "
                   "(default 4; a coarser spectra grid for larger results)")
    p.add_argument("-o", "--output", required=True, help="the page (.html)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="methods x scenes x ratios -> CSV/JSON/Markdown table",
                       description="Simulate each case with one preset, fuse with each method, evaluate with one "
                       "metric preset; record wall time and peak memory. Cases are SCENE:SENSOR[:BANDS] with scenes "
                       "from the shared data folder ($HSFUSE_DATA) or 'synthetic'.")
    p.add_argument("--case", action="append", help="SCENE:SENSOR[:BAND,...] (repeatable); default: pavia_u with "
                   "IKONOS B,G,R,NIR; indian_pines with Landsat-8 OLI B1-B7; jasper_ridge with Sentinel-2A 10/20 m bands")
    p.add_argument("--methods", nargs="+", help="methods (default: every direct method, plus each network given "
                   "--weights)")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=CHECKPOINT",
                   help="a trained network's checkpoint (repeatable), e.g. dbin=runs/dbin")
    p.add_argument("--option", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="a method option (repeatable), e.g. fuse:subspace_dim=5")
    p.add_argument("--ratios", nargs="+", type=positive_int, default=[4, 8])
    p.add_argument("--simulation-preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse")
    p.add_argument("--preset", choices=sorted(PRESETS), default="hsfuse", help="metric preset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="bench-results", help="output folder")
    p.add_argument("--report", action="store_true", help="also write one interactive HTML report per case and "
                   "ratio into the output folder (report_<scene>_<sensor>_r<ratio>.html)")
    p.add_argument("--overwrite", action="store_true")
    add_quiet(p)
    p.set_defaults(func=cmd_bench)
