"""Real pairs without a reference: ``estimate`` (blind PSF and SRF) and ``pair`` (the whole workflow)."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import (ProgressBar, add_quiet, add_read_options, band_list, method_keyed, nonnegative_float,
                      positive_float, positive_int, print_table, say_printer)

__all__ = ["register"]


def _read(args: argparse.Namespace):
    from ..io.atomic import check_output_path
    from ..workflows.real_pair import read_pair

    check_output_path(args.output, overwrite=args.overwrite, folder=True)  # before reading anything
    if args.bands and not args.support:
        raise InputError("--bands selects bands of the --support sensor; give --support SENSOR too")
    return read_pair(args.hsi, args.msi, example=args.example, hsi_variable=args.hsi_variable,
                     msi_variable=args.msi_variable, hsi_nodata=args.hsi_nodata, msi_nodata=args.msi_nodata,
                     msi_transfer=args.msi_transfer, layout=args.layout)


def cmd_estimate(args: argparse.Namespace) -> int:
    from ..workflows.real_pair import estimate_to_folder

    pair = _read(args)
    with ProgressBar(args.estimator, quiet=args.quiet) as progress:
        estimate_to_folder(pair, args.output, estimator=args.estimator, support=args.support, bands=args.bands,
                           ratio=args.ratio, kernel_size=args.kernel_size, iterations=args.iterations,
                           hysure_lambda=args.hysure_lambda, overwrite=args.overwrite, progress=progress,
                           say=say_printer(args.quiet))
    print(f"fuse with: hsfuse fuse --hsi {pair.hsi_path} --msi {pair.msi_path} --physics {args.output}/physics.json "
          "--method fuse -o fused.npz")
    return 0


def cmd_pair(args: argparse.Namespace) -> int:
    from ..methods.options import parse_options
    from ..methods.registry import get_method
    from ..workflows.real_pair import pair_to_folder

    options = {m: parse_options(get_method(m).options, pairs, method=m).as_kwargs()
               for m, pairs in method_keyed(args.option, "--option").items()}
    pair = _read(args)
    with ProgressBar("pair", quiet=args.quiet) as progress:
        result = pair_to_folder(pair, args.output, methods=args.methods, estimator=args.estimator,
                                support=args.support, bands=args.bands, options=options, ratio=args.ratio,
                                shift_threshold_lr_px=args.shift_threshold, hysure_lambda=args.hysure_lambda,
                                overwrite=args.overwrite, progress=progress, say=say_printer(args.quiet))
    rows = [{"method": name, **{k: m[k] for k in ("qnr", "d_lambda", "d_s", "hsi_psnr", "msi_psnr", "seconds")}}
            for name, m in result.report["methods"].items()]
    print_table(rows, title=f"no-reference scores (operators estimated by {args.estimator})")
    print(f"wrote {args.output}: report.html, report.md, report.json, fused_*.npz, overview_*.png, operators/")
    return 0


def _pair_options(p: argparse.ArgumentParser) -> None:
    from ..workflows.real_pair import ESTIMATORS, EXAMPLES

    p.add_argument("--hsi", help="low-resolution hyperspectral image")
    p.add_argument("--msi", help="high-resolution multispectral/RGB image")
    p.add_argument("--hsi-variable")
    p.add_argument("--msi-variable")
    p.add_argument("--example", choices=sorted(EXAMPLES), help="use a real pair from the shared data folder "
                   "($HSFUSE_DATA); houston2018: 48-band CASI HSI + 4x finer RGB with a no-data patch")
    p.add_argument("--hsi-nodata", type=float, help="HSI no-data value (default: the file's, if any)")
    p.add_argument("--msi-nodata", type=float, help="MSI no-data value, e.g. 0 for black fill (default: the "
                   "file's, if any)")
    p.add_argument("--msi-transfer", choices=["linear", "srgb"], help="srgb: the MSI is a gamma-encoded camera "
                   "RGB (8-bit JPEG/TIFF products usually are); decode it to linear values first (default linear; "
                   "srgb with --example houston2018)")
    p.add_argument("--ratio", type=positive_int, help="check the ratio implied by the image sizes")
    p.add_argument("--estimator", choices=sorted(ESTIMATORS), default="hysure",
                   help="; ".join(f"{n}: {e.description}" for n, e in ESTIMATORS.items()) + " (default hysure)")
    p.add_argument("--hysure-lambda", type=nonnegative_float, default=0.01, help="hysure: smoothness weight of the SRF and "
                   "PSF fits (default 0.01, tuned on simulated pairs; HySure's own is 10, safer on real pairs)")
    p.add_argument("--support", help="a nominal sensor (name, CSV or .npy) restricting each MSI band to the HSI "
                   "bands where it responds >= 1%% of its peak (needs HSI wavelengths)")
    p.add_argument("--bands", type=band_list, help="bands of --support to use")
    add_read_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a previous output folder of this command")
    add_quiet(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="blind PSF and SRF estimation from a real pair",
                       description="Estimate the PSF and the SRF of an HSI/MSI pair and write OUTDIR/physics.json "
                       "(for 'hsfuse fuse --physics'), psf.csv ('--psf'), srf.npy ('--srf', with --srf-normalize "
                       "none), srf.csv and plots. The SRF is in the files' own units (it carries the gain between "
                       "the two sensors); the PSF sums to one.")
    _pair_options(p)
    p.add_argument("--kernel-size", type=positive_int, help="hysure: PSF side (default 2r+1)")
    p.add_argument("--iterations", type=positive_int, help="udaln: stage-1 iterations (default 20000)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("pair", help="real pair end to end: mask, estimate, check registration, fuse, no-reference "
                       "scores, figures",
                       description="The blind-fusion workflow for a real pair with no reference (see "
                       "hsfuse.workflows.real_pair): no-data masking, PSF/SRF estimation, co-registration check, "
                       "fusion with each method, QNR and consistency scores, figures; all into OUTDIR. Blind "
                       "methods run with their real-pair options (UDALN: schedule=fast, srf_normalize=none) unless "
                       "--option METHOD:KEY=VALUE says otherwise.")
    _pair_options(p)
    p.add_argument("--methods", nargs="+", default=["fuse", "udaln"], help="fusion methods (default: fuse udaln)")
    p.add_argument("--option", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="a method option (repeatable), e.g. udaln:schedule=paper")
    p.add_argument("--shift-threshold", type=positive_float, default=0.5, help="co-registration warning threshold in HSI "
                   "pixels (default 0.5)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_pair)
