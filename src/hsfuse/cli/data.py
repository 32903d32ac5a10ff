"""Commands about files and sensors: ``info``, ``simulate``, ``srf list|show|resample``."""

from __future__ import annotations

import argparse

from ._common import add_quiet, add_read_options, band_list, positive_int, print_table, say_printer

__all__ = ["register"]


def cmd_info(args: argparse.Namespace) -> int:
    from ..io.lazy import describe_file

    print(describe_file(args.file, variable=args.variable, layout=args.layout))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..workflows.simulate import simulate_to_folder

    simulate_to_folder(args.reference, args.output, srf=args.srf, ratio=args.ratio, bands=args.bands,
                       preset=args.preset, psf=args.psf, snr_hsi_db=args.snr_hsi, snr_msi_db=args.snr_msi,
                       seed=args.seed, ext=args.format, variable=args.variable, layout=args.layout,
                       overwrite=args.overwrite, say=say_printer(args.quiet))
    return 0


def cmd_srf_list(args: argparse.Namespace) -> int:
    from ..workflows.srf import sensor_rows

    print_table(sensor_rows(), title="named sensors")
    print("Any CSV file (wavelength_nm + one column per band) is accepted wherever a sensor name is.")
    return 0


def cmd_srf_show(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..workflows.srf import band_rows, pair_srf

    if args.hsi is None:
        if args.sensor is None:
            raise InputError("give a SENSOR, or --hsi (and --msi or the SENSOR) to show the SRF matrix between them")
        title, rows = band_rows(args.sensor)
    else:
        title, rows, _ = pair_srf(args.hsi, args.msi, sensor=args.sensor, bands=args.bands, figure=args.output,
                                  overwrite=args.overwrite)
    print_table(rows, title=title)
    if args.output:
        print(f"wrote {args.output}")
    return 0


def cmd_srf_resample(args: argparse.Namespace) -> int:
    from ..workflows.srf import resample_to_csv

    text, matrix = resample_to_csv(args.sensor, args.hsi, output=args.output, bands=args.bands,
                                   normalize=args.normalize, overwrite=args.overwrite)
    if args.output:
        print(f"wrote {args.output} ({matrix.shape[0]} bands x {matrix.shape[1]} HSI bands)")
    else:
        print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.simulation import SIMULATION_PRESETS

    p = sub.add_parser("info", help="describe an image file (shape, dtype, wavelengths, georeferencing)")
    p.add_argument("file")
    p.add_argument("--variable")
    add_read_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("simulate", help="Wald's protocol: LR HSI + HR MSI from a reference HSI",
                       description="Write OUTDIR/hsi.EXT, msi.EXT, reference.EXT (cropped to a multiple of the "
                       "ratio) and physics.json (the exact PSF/SRF/ratio/offset/boundary used).")
    p.add_argument("reference", help="reference HSI file (.mat, .hdr, .tif, .npy, .npz, CAVE folder)")
    p.add_argument("--srf", required=True, help="sensor name ('hsfuse srf list'), response CSV, or (m x L) .npy")
    p.add_argument("--bands", type=band_list, help="sensor bands to keep, e.g. Blue,Green,Red,NIR (default: every "
                   "band the HSI covers)")
    p.add_argument("--ratio", type=positive_int, required=True, help="integer resolution ratio")
    p.add_argument("--preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse", help="simulation preset")
    p.add_argument("--psf", help="override the preset PSF: gaussian:fwhm=F[,size=K] | gaussian:sigma=S | FILE")
    p.add_argument("--snr-hsi", type=float, help="HSI noise, SNR in dB (default: preset, none)")
    p.add_argument("--snr-msi", type=float, help="MSI noise, SNR in dB (default: preset, none)")
    p.add_argument("--seed", type=int, help="noise seed")
    p.add_argument("--variable", help="variable name inside a .mat/.npz file")
    add_read_options(p)
    p.add_argument("--format", choices=["npz", "mat", "tif", "hdr", "npy"], default="npz", help="output format")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_quiet(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("srf", help="sensor spectral responses: list | show | resample")
    srf_sub = p.add_subparsers(dest="srf_command", required=True, metavar="SRF_COMMAND")
    q = srf_sub.add_parser("list", help="named sensors")
    q.set_defaults(func=cmd_srf_list)
    q = srf_sub.add_parser("show", help="band centres and ranges of a sensor, or the SRF matrix between an HSI and an "
                           "MSI (--hsi, --msi) with a figure (-o)")
    q.add_argument("sensor", nargs="?", help="a sensor name (or the MSI's sensor when --msi is not a product)")
    q.add_argument("--hsi", help="an HSI product or raster with band wavelengths (and FWHM)")
    q.add_argument("--msi", help="an MSI product (its sensor and bands are used)")
    q.add_argument("--bands", type=band_list, help="sensor bands to use")
    q.add_argument("-o", "--output", help="figure of the curves (PNG)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_srf_show)
    q = srf_sub.add_parser("resample", help="SRF matrix of a sensor on an HSI's band centres, as CSV")
    q.add_argument("sensor")
    q.add_argument("--hsi", required=True, help="HSI file whose band wavelengths to use")
    q.add_argument("--bands", type=band_list)
    q.add_argument("--normalize", choices=["sum", "none"], default="none")
    q.add_argument("-o", "--output", help="CSV file (default: standard output)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_srf_resample)
