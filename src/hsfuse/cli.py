"""The ``hsfuse`` command line.

Every command has ``--help``; errors caused by the input print one line (``error: ...``) and exit with
status 2; outputs are written to a temporary file and renamed, and existing outputs are refused unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # tables piped to a file or read by CI are not cut to 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def _progress_printer(quiet: bool):
    if quiet:
        return lambda _msg: None
    err = _console(stderr=True)
    return lambda msg: err.print(f"[dim]hsfuse:[/dim] {msg}")


# --------------------------------------------------------------------------------------------- helpers


def _read(path: str, *, variable: str | None = None, layout: str = "auto"):
    from .io import read_cube

    return read_cube(path, variable=variable, layout=layout)


def parse_psf(spec: str, *, ratio: int):
    """``gaussian:fwhm=F[,size=K]``, ``gaussian:sigma=S[,size=K]`` (pixels; default size 2r+1) or a file
    (``.npy`` array, or ``.csv``/``.txt`` numbers) holding a ``k x k`` kernel."""
    import numpy as np
    import torch

    from .errors import FileFormatError, InputError
    from .physics import gaussian_psf

    if spec.startswith("gaussian"):
        options: dict[str, float] = {}
        _, _, rest = spec.partition(":")
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in ("fwhm", "sigma", "size"):
                raise InputError(f"PSF option {item!r} not understood; use gaussian:fwhm=F or gaussian:sigma=S"
                                 "[,size=K]")
            try:
                options[key.strip()] = float(value)
            except ValueError:
                raise InputError(f"PSF option {item!r}: {value!r} is not a number") from None
        size = int(options.pop("size", 2 * ratio + 1))
        if not options:
            options["fwhm"] = float(ratio)
        return gaussian_psf(size, **options)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--psf {spec!r} is neither 'gaussian:...' nor an existing kernel file (.npy/.csv/.txt)")
    try:
        kernel = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter="," if path.suffix == ".csv"
                                                                        else None)
    except (ValueError, OSError) as exc:
        raise FileFormatError(f"cannot read the PSF kernel from {path}: {exc}") from None
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.sum() <= 0:
        raise InputError(f"the PSF in {path} must be a square k x k kernel with a positive sum, got {kernel.shape}")
    return torch.from_numpy(kernel / kernel.sum())


def _srf_for(spec: str, cube, *, bands: list[str] | None):
    """SRF matrix (m, L) for ``cube`` from a sensor name, a response CSV, or an ``.npy`` (m, L) matrix."""
    import numpy as np

    from .errors import FileFormatError, InputError
    from .physics.srf_library import srf_matrix

    if spec.endswith(".npy"):
        try:
            matrix = np.load(spec)
        except (ValueError, OSError) as exc:
            raise FileFormatError(f"cannot read the SRF matrix from {spec}: {exc}") from None
        if matrix.ndim != 2 or cube.bands not in matrix.shape:
            raise InputError(f"the SRF matrix in {spec} has shape {matrix.shape}; it needs (m, {cube.bands})")
        matrix = matrix if matrix.shape[1] == cube.bands else matrix.T
        return matrix, [f"band{i + 1}" for i in range(matrix.shape[0])]
    if cube.wavelengths is None:
        raise InputError("the HSI has no band wavelengths, so a sensor response cannot be placed on its bands: "
                         "give the SRF as an .npy (m x L) matrix, or a file format that stores wavelengths")
    return srf_matrix(spec, cube.wavelengths, hsi_fwhm=cube.fwhm, bands=bands, normalize="none",
                      drop_uncovered=bands is None)


def _with_nodata(cube, value: float | None):
    """``cube`` with its no-data value set from the command line (``None`` keeps the file's)."""
    import dataclasses

    return cube if value is None else dataclasses.replace(cube, nodata=float(value))


def _support_for(spec: str | None, hsi, *, bands: list[str] | None, msi_bands: int):
    """``(m, L)`` boolean support of each MSI band from a sensor (response >= 1 % of its peak), or ``None``."""
    import torch

    from .errors import InputError
    from .physics.learnable import support_from_srf

    if spec is None:
        return None
    matrix, _ = _srf_for(spec, hsi, bands=bands)
    if matrix.shape[0] != msi_bands:
        raise InputError(f"--support {spec} gives {matrix.shape[0]} bands but the MSI has {msi_bands}; select them "
                         "with --bands")
    return support_from_srf(torch.as_tensor(matrix, dtype=torch.float64), threshold=0.01)


def _print_table(rows: list[dict[str, Any]], title: str, columns: Sequence[str] | None = None) -> None:
    from rich.table import Table

    if not rows:
        return
    cols = list(columns or rows[0])
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c in ("method", "scene", "sensor", "metric") else "right")
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in (row.get(c, "") for c in cols)])
    _console().print(table)


# --------------------------------------------------------------------------------------------- commands


def cmd_info(args: argparse.Namespace) -> int:
    from .io import describe

    cube = _read(args.file, variable=args.variable, layout=args.layout)
    print(describe(cube))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .data.simulation import simulate
    from .io import write_cube
    from .io.atomic import atomic_output, check_output_path
    from .physics.serialize import observation_to_dict

    say = _progress_printer(args.quiet)
    out = Path(args.output)
    ext = args.format
    targets = {name: out / f"{name}.{ext}" for name in ("hsi", "msi", "reference")}
    physics_path = out / "physics.json"
    if out.is_dir():  # refuse existing outputs before any work (a missing folder is created below)
        for p in [*targets.values(), physics_path]:
            check_output_path(p, overwrite=args.overwrite)
    reference = _read(args.reference, variable=args.variable, layout=args.layout)
    say(f"reference {reference.shape[0]}x{reference.shape[1]}x{reference.bands}")
    matrix, names = _srf_for(args.srf, reference, bands=args.bands)
    psf = parse_psf(args.psf, ratio=args.ratio) if args.psf else None
    sim = simulate(reference, matrix, ratio=args.ratio, preset=args.preset, srf_band_names=names, psf=psf,
                   snr_hsi_db=args.snr_hsi, snr_msi_db=args.snr_msi, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, cube in (("hsi", sim.hsi), ("msi", sim.msi), ("reference", sim.reference)):
        write_cube(cube, targets[name], overwrite=args.overwrite)
        say(f"wrote {targets[name]} ({cube.shape[0]}x{cube.shape[1]}x{cube.bands})")
    description = observation_to_dict(sim.physics)
    description["preset"] = {k: v for k, v in vars(sim.preset).items()}
    with atomic_output(physics_path, overwrite=args.overwrite) as tmp:
        Path(tmp).write_text(json.dumps(description, indent=1) + "\n")
    say(f"wrote {physics_path} (PSF, SRF, ratio, offset, boundary: pass it to 'hsfuse fuse --physics')")
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    import torch

    from ._checks import check_finite
    from .errors import InputError
    from .io import write_cube
    from .io.atomic import check_output_path
    from .methods.registry import get_method
    from .physics import FusionObservation, SpatialDegradation, SpectralResponse
    from .physics.serialize import load_observation
    from .types import Cube, FusionMeasurement, infer_ratio

    say = _progress_printer(args.quiet)
    check_output_path(args.output, overwrite=args.overwrite)  # before any work: exists, folder missing, ...
    spec = get_method(args.method)
    options: dict[str, Any] = {}
    if spec.needs_training:
        if not args.weights:
            raise InputError(f"{spec.name} is a trained network: pass --weights CHECKPOINT (a run folder from "
                             "'hsfuse train', one of its checkpoint folders, or a model.safetensors)")
        from .models.checkpoint import read_card

        read_card(args.weights)  # a missing or corrupt checkpoint is reported before reading the images
        options = {"weights": args.weights, "tile": "auto" if args.tile is None else args.tile,
                   "overlap": args.overlap, "memory_gb": args.memory_gb, "device": args.device}
    elif args.weights:
        raise InputError(f"--weights is for trained networks; {spec.name} needs none")
    if spec.name == "udaln":
        options = {"schedule": args.schedule or "paper", "srf_normalize": args.srf_normalize, "device": args.device,
                   "progress": not args.quiet}
    elif args.schedule is not None:
        raise InputError("--schedule is for the udaln method")
    hsi = _read(args.hsi, variable=args.hsi_variable, layout=args.layout)
    msi = _read(args.msi, variable=args.msi_variable, layout=args.layout)
    for label, cube in (("HSI", hsi), ("MSI", msi)):
        if not cube.valid_mask().all():
            raise InputError(f"the {label} has {int((~cube.valid_mask()).sum())} no-data or NaN pixel(s); fill or "
                             "crop them before fusion")
        check_finite(cube.data, label)
    ratio = infer_ratio(hsi.shape[:2], msi.shape[:2])
    if args.ratio is not None and args.ratio != ratio:
        raise InputError(f"--ratio {args.ratio} disagrees with the image sizes: HSI {hsi.shape[0]}x{hsi.shape[1]} "
                         f"and MSI {msi.shape[0]}x{msi.shape[1]} give ratio {ratio}")
    if args.physics:
        physics = load_observation(args.physics)
    else:
        if spec.needs_srf and not args.srf:
            raise InputError(f"method {spec.name!r} needs the MSI's spectral response: pass --srf SENSOR|CSV|NPY "
                             "(see 'hsfuse srf list') or --physics FILE from 'hsfuse simulate'")
        if args.srf:
            matrix, names = _srf_for(args.srf, hsi, bands=args.bands)
        else:  # not used by the method; a placeholder of the right size keeps the operator complete
            matrix, names = torch.full((msi.bands, hsi.bands), 1.0 / hsi.bands), None
        psf = parse_psf(args.psf or "gaussian", ratio=ratio)
        if spec.needs_psf and not args.psf:
            say(f"no --psf given: assuming a Gaussian PSF with FWHM = {ratio} pixels (the hsfuse default)")
        physics = FusionObservation(
            SpatialDegradation(ratio=ratio, psf=psf, offset=args.offset, boundary=args.boundary),
            SpectralResponse(matrix, normalize=args.srf_normalize, band_names=names),
        )
    if physics.spectral.msi_bands != msi.bands:
        raise InputError(f"the SRF has {physics.spectral.msi_bands} MSI bands but the MSI file has {msi.bands}; "
                         "select the sensor bands with --bands")
    device = args.device
    y = FusionMeasurement(hsi.to_tensor(device=device), msi.to_tensor(device=device))
    physics = physics.to(device=device, dtype=torch.float32)
    say(f"fusing {hsi.shape[0]}x{hsi.shape[1]}x{hsi.bands} with {msi.shape[0]}x{msi.shape[1]}x{msi.bands} "
        f"(ratio {ratio}) using {spec.name}")
    with torch.no_grad(), _tile_progress(quiet=args.quiet or not spec.needs_training) as progress:  # UDALN re-enables
        if spec.needs_training:
            options["progress"] = progress
        est = spec.function(y, physics, **options)
    fused = Cube.from_tensor(est.cpu(), like=hsi, geo=msi.geo, nodata=None,
                             attrs={"method": spec.name, "hsi": str(args.hsi), "msi": str(args.msi)})
    path = write_cube(fused, args.output, overwrite=args.overwrite)
    say(f"wrote {path}")
    return 0


class _tile_progress:
    """A rich progress bar fed by a ``callback(done, total)`` (tiles of a tiled inference)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None
        self.task = None

    def __enter__(self):
        return None if self.quiet else self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("tiles"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=_console(stderr=True), transient=True)
            self.task = self.bar.add_task("tiles", total=total)
            self.bar.start()
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from .data.patches import DegradationFamily, PatchSampler, load_training_scenes, split_rows, validation_pairs
    from .data.simulation import SIMULATION_PRESETS
    from .errors import InputError
    from .models.catalog import get_model_spec
    from .training import distributed
    from .training.loop import TrainOptions, train

    say = _progress_printer(args.quiet)
    spec = get_model_spec(args.method)
    config: Any = args.config
    if config.endswith(".json"):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read --config {args.config}: {exc}") from None
    if args.val and args.val_fraction:
        raise InputError("give either --val (held-out scenes) or --val-fraction (held-out rows), not both")
    scenes = load_training_scenes(args.data, variable=args.variable)
    held: list = []
    if args.val:
        held = load_training_scenes(args.val, variable=args.variable)
    elif args.val_fraction:
        pairs = [split_rows(c, bottom_fraction=args.val_fraction, multiple=args.ratio) for c in scenes]
        scenes, held = [p[0] for p in pairs], [p[1] for p in pairs]
    first = scenes[0]
    matrix, names = _srf_for(args.srf, first, bands=args.bands)
    family_srfs = [torch.as_tensor(matrix, dtype=torch.float64)]
    for extra in args.srf_family or []:
        m, _ = _srf_for(extra, first, bands=args.bands)
        family_srfs.append(torch.as_tensor(m, dtype=torch.float64))
    preset = dataclasses.replace(
        SIMULATION_PRESETS[args.preset],
        **{k: v for k, v in {"snr_hsi_db": args.snr_hsi, "snr_msi_db": args.snr_msi}.items() if v is not None})
    family = DegradationFamily(ratio=args.ratio, srfs=tuple(family_srfs), preset=preset,
                               psf_fwhm_range=tuple(args.psf_fwhm_range) if args.psf_fwhm_range else None)
    r = args.ratio
    smallest = min(min(c.shape[:2]) for c in scenes)
    patch = args.patch_size or min(max(r, round(spec.recipe.patch_size / r) * r), (smallest // r) * r)
    sampler = PatchSampler(scenes, family, patch_size=patch, augment=not args.no_augment, seed=args.seed)
    options = TrainOptions(method=args.method, config=config, steps=args.steps, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, val_every=args.val_every,
                           ckpt_every=args.ckpt_every, amp=args.amp, device=args.device,
                           init_from=args.init_from)
    data = {"wavelengths_nm": None if first.wavelengths is None else [float(v) for v in first.wavelengths],
            "msi_band_names": names,
            "description": {"train": [str(s) for s in args.data], "val": [str(s) for s in (args.val or [])],
                            "val_fraction": args.val_fraction, "srf": args.srf, "bands": args.bands,
                            "preset": args.preset}}
    say(f"training {args.method} ({options.config if isinstance(options.config, str) else 'custom'} config) on "
        f"{len(scenes)} scene(s), {first.bands} bands, {family.msi_bands} MSI bands, ratio {r}, patches {patch}px, "
        f"{args.steps} steps -> {args.output}")
    try:
        result = train(options, sampler, run_dir=args.output,
                       validation=validation_pairs(held, family) if held else (), data=data, resume=args.resume,
                       progress=not args.quiet)
    finally:
        distributed.cleanup()
    if result.best_metrics:
        say("best validation: " + ", ".join(f"{k} {v:.4g}" for k, v in result.best_metrics.items()))
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.best or result.last}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .errors import InputError
    from .metrics.presets import evaluate, get_preset

    ref = _read(args.reference, variable=args.reference_variable, layout=args.layout)
    est = _read(args.estimate, variable=args.estimate_variable, layout=args.layout)
    if ref.shape != est.shape:
        raise InputError(f"reference {ref.shape} and estimate {est.shape} differ in shape (H x W x bands)")
    preset = get_preset(args.preset)
    # The data scale the preset assumes: [0, 1] before im2uint8 quantisation, else its fixed PSNR peak.
    scale = 1.0 if preset.quantize == "uint8" else preset.psnr_data_range
    peak = float(np.nanmax(ref.data))
    if args.data_range is None and isinstance(scale, float) and peak > 1.01 * scale:
        raise InputError(f"the reference reaches {peak:g}, above the data range {scale:g} that preset "
                         f"{preset.name!r} assumes; pass --data-range {peak:g} (or the sensor's full scale), or "
                         "normalise the cubes first")
    scores = evaluate(ref.to_tensor(dtype=torch.float64), est.to_tensor(dtype=torch.float64), preset=args.preset,
                      ratio=args.ratio, data_range=args.data_range)
    scores = {k.lower(): float(v) for k, v in scores.items()}
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        _print_table([{"metric": k, "value": v} for k, v in scores.items()],
                     title=f"{Path(args.estimate).name} vs {Path(args.reference).name} "
                     f"(metric preset {args.preset!r})")
    return 0


def cmd_srf(args: argparse.Namespace) -> int:
    import numpy as np

    from .physics.srf_library import get_sensor, list_sensors

    if args.srf_command == "list":
        _print_table([{"sensor": n, "description": d} for n, d in list_sensors()], title="named sensors")
        print("Any CSV file (wavelength_nm + one column per band) is accepted wherever a sensor name is.")
        return 0
    sensor = get_sensor(args.sensor)
    if args.srf_command == "show":
        rows = [{"band": name, "centre_nm": float(c), "from_nm": float(lo), "to_nm": float(hi)}
                for name, c, (lo, hi) in zip(sensor.band_names, sensor.centers_nm, sensor.spans_nm)]
        _print_table(rows, title=f"{sensor.name}: {sensor.source} (range: response >= 1% of peak)")
        return 0
    # resample
    from .io.atomic import atomic_output, check_output_path

    if args.output:
        check_output_path(args.output, overwrite=args.overwrite)
    cube = _read(args.hsi)
    matrix, names = _srf_for(args.sensor, cube, bands=args.bands)
    if args.normalize == "sum":
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    header = "wavelength_nm," + ",".join(names)
    body = np.column_stack([cube.wavelengths, matrix.T])
    if args.output:
        with atomic_output(Path(args.output), overwrite=args.overwrite) as tmp:
            np.savetxt(tmp, body, delimiter=",", header=header, comments="", fmt="%.8g")
        print(f"wrote {args.output} ({matrix.shape[0]} bands x {matrix.shape[1]} HSI bands)")
    else:
        np.savetxt(sys.stdout, body, delimiter=",", header=header, comments="", fmt="%.6g")
    return 0


def _pair_inputs(args: argparse.Namespace):
    """The HSI and MSI cubes of ``estimate``/``pair`` (with ``--example`` filling in the shared data paths)."""
    from .errors import InputError

    if getattr(args, "example", None):
        from .data.paths import shared_file

        path = str(shared_file("derived", "houston2018.npz"))
        args.hsi, args.hsi_variable = args.hsi or path, args.hsi_variable or "hsi"
        args.msi, args.msi_variable = args.msi or path, args.msi_variable or "rgb"
        args.msi_nodata = 0.0 if args.msi_nodata is None else args.msi_nodata
        args.msi_transfer = args.msi_transfer or "srgb"  # an 8-bit camera RGB product: gamma-encoded
    if not args.hsi or not args.msi:
        raise InputError("give --hsi FILE and --msi FILE (or --example houston2018)")
    hsi = _with_nodata(_read(args.hsi, variable=args.hsi_variable, layout=args.layout), args.hsi_nodata)
    msi = _with_nodata(_read(args.msi, variable=args.msi_variable, layout=args.layout), args.msi_nodata)
    return hsi, msi


def cmd_estimate(args: argparse.Namespace) -> int:
    from .io.atomic import atomic_output_dir, check_output_path
    from .workflows.real_pair import estimate_operators, in_original_units, prepare_pair, save_operators

    say = _progress_printer(args.quiet)
    check_output_path(args.output, overwrite=args.overwrite, folder=True)
    hsi, msi = _pair_inputs(args)
    prepared = prepare_pair(hsi, msi, ratio=args.ratio, msi_transfer=args.msi_transfer or "linear")
    support = _support_for(args.support, hsi, bands=args.bands, msi_bands=msi.bands)
    masked = 0 if prepared.valid is None else int((~prepared.valid).sum())
    say(f"estimating the PSF and SRF with {args.estimator}: HSI {hsi.shape[0]}x{hsi.shape[1]}x{hsi.bands}, MSI "
        f"{msi.shape[0]}x{msi.shape[1]}x{msi.bands}, ratio {prepared.ratio}, {masked} no-data MSI pixel(s) masked")
    ops = estimate_operators(prepared.y, estimator=args.estimator, support=support, valid=prepared.valid,
                             kernel_size=args.kernel_size, iterations=args.iterations,
                             band_names=msi.band_names, hysure_lambda=args.hysure_lambda, progress=not args.quiet)
    ops = in_original_units(ops, prepared)
    ops.diagnostics["msi_transfer"] = args.msi_transfer or "linear"  # "srgb": the SRF maps to the decoded MSI
    with atomic_output_dir(args.output, overwrite=args.overwrite,
                           replaceable=lambda e: e.name in _ESTIMATE_FILES) as tmp:
        save_operators(ops, Path(tmp), wavelengths_nm=hsi.wavelengths)
    k = ops.psf.shape[-1]
    say(f"PSF {k}x{k} (sums to {float(ops.psf.sum()):.6f}); SRF {ops.srf.shape[0]}x{ops.srf.shape[1]}; wrote "
        f"{args.output}/physics.json, psf.csv, srf.npy, srf.csv, psf.png, srf.png")
    print(f"fuse with: hsfuse fuse --hsi {args.hsi} --msi {args.msi} --physics {args.output}/physics.json "
          "--method fuse -o fused.npz")
    return 0


_ESTIMATE_FILES = ("physics.json", "psf.csv", "srf.npy", "srf.csv", "psf.png", "srf.png")


def cmd_pair(args: argparse.Namespace) -> int:
    from .workflows.real_pair import run_real_pair

    say = _progress_printer(args.quiet)
    hsi, msi = _pair_inputs(args)
    support = _support_for(args.support, hsi, bands=args.bands, msi_bands=msi.bands)
    result = run_real_pair(hsi, msi, output=args.output, methods=args.methods, estimator=args.estimator,
                           support=support, ratio=args.ratio, schedule=args.schedule,
                           shift_threshold_lr_px=args.shift_threshold, overwrite=args.overwrite,
                           msi_transfer=args.msi_transfer or "linear", hysure_lambda=args.hysure_lambda,
                           progress=not args.quiet, say=say)
    rows = [{"method": name, **{k: m[k] for k in ("qnr", "d_lambda", "d_s", "hsi_psnr", "msi_psnr", "seconds")}}
            for name, m in result.report["methods"].items()]
    _print_table(rows, title=f"no-reference scores (operators estimated by {args.estimator})")
    print(f"wrote {args.output}: report.md, report.json, fused_*.npz, overview_*.png, operators/")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.machine import machine_description
    from .bench.runner import DEFAULT_CASES, parse_case, run_benchmark, write_results
    from .methods.registry import METHODS

    cases = [parse_case(c) for c in args.case] if args.case else list(DEFAULT_CASES)
    methods = args.methods or [n for n, s in METHODS.items() if s.direct]
    total = len(cases) * len(args.ratios) * len(methods)
    from rich.progress import Progress

    with Progress(console=_console(stderr=True), disable=args.quiet, transient=True) as progress:
        task = progress.add_task("benchmark", total=total)
        rows = run_benchmark(cases, methods, args.ratios, simulation_preset=args.simulation_preset,
                             metric_preset=args.preset, device=args.device, seed=args.seed,
                             on_progress=lambda m: progress.update(task, description=m, advance=1))
    settings = {"simulation_preset": args.simulation_preset, "metric_preset": args.preset, "ratios": args.ratios,
                "cases": [c.label for c in cases], "seed": args.seed}
    paths = write_results(rows, args.output, machine=machine_description(args.device), settings=settings,
                          overwrite=args.overwrite)
    cols = ["scene", "sensor", "ratio", "method", "psnr", "ssim", "sam", "ergas", "time_s", "peak_mem_mib"]
    _print_table(rows, title="hsfuse bench", columns=[c for c in cols if c in rows[0]])
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .bench.demo import run_demo

    say = _progress_printer(args.quiet)
    result = run_demo(args.output, size=args.size, ratio=args.ratio, seed=args.seed, overwrite=args.overwrite,
                      on_progress=say)
    cols = ["method", "psnr", "ssim", "sam", "ergas", "rmse", "time_s"]
    _print_table(result.rows, title=f"hsfuse demo: synthetic {args.size}x{args.size}x31 scene, ratio {args.ratio}, "
                 "Nikon D700 RGB (metric preset 'hsfuse', data range 1)",
                 columns=[c for c in cols if c in result.rows[0]])
    print(f"outputs in {args.output}: " + ", ".join(p.name for p in result.outputs))
    return 0


# --------------------------------------------------------------------------------------------- synth


class _callback_progress:
    """A rich progress bar fed by ``callback(done, total)``, labelled ``label`` (off when ``quiet``)."""

    def __init__(self, label: str, *, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.bar = None
        self.task = None

    def __enter__(self):
        return None if self.quiet else self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=_console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=total)
            self.bar.start()
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line (``None`` = keep the library default)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _precheck_run(args: argparse.Namespace, command: str) -> None:
    """Refuse an existing run (without --resume) or a foreign folder before reading any data."""
    if not args.resume:
        from .training.engine import check_run_dir

        check_run_dir(Path(args.output), {}, resume=False, keys=(), command=command)


def cmd_synth_train_unmixing(args: argparse.Namespace) -> int:
    from .data.patches import load_training_scenes
    from .data.scenes import load_scene
    from .errors import InputError
    from .io.atomic import atomic_output
    from .synthesis.unmixing import UnmixingTrainOptions, load_unmixing, rgb_response, train_unmixing
    from .workflows.synth import reference_unmixing, unmixing_accuracy

    say = _progress_printer(args.quiet)
    _precheck_run(args, "hsfuse synth train-unmixing")
    options = UnmixingTrainOptions(**_given(args, ("config", "endmembers", "steps", "batch_size", "patch_size", "lr",
                                                   "init", "seed", "device", "ckpt_every")))
    scenes = [load_scene(n) for n in args.scene] if args.scene else load_training_scenes(args.data)
    response = rgb_response(scenes[0].wavelengths, sensor=args.sensor or "canon_eos_5d_mark_ii",
                            bands=args.rgb_bands)
    first = scenes[0]
    say(f"training the unmixing network ({options.config} config, K = {options.net_config().endmembers}) on "
        f"{len(scenes)} scene(s), {first.bands} bands, RGB from {response.source}, {options.steps} steps -> "
        f"{args.output}")
    result = train_unmixing(scenes, response=response, run_dir=args.output, options=options, resume=args.resume,
                            progress=not args.quiet)
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.last}")
    if args.scene and len(args.scene) == 1 and reference_unmixing(args.scene[0]) is not None:
        try:
            acc = unmixing_accuracy(load_unmixing(args.output, device=args.device or "cpu"), args.scene[0],
                                    device=args.device or "cpu")
        except InputError as exc:
            say(f"no accuracy against the reference unmixing: {exc}")
        else:
            path = Path(args.output) / "accuracy.json"
            with atomic_output(path, overwrite=True) as tmp:
                Path(tmp).write_text(json.dumps(acc, indent=2) + "\n")
            print(f"{args.scene[0]}: mean SAD to the reference endmembers {acc['mean_sad_deg']:.2f} deg, abundance "
                  f"RMSE {acc['abundance_rmse']:.4f}, reconstruction PSNR {acc['reconstruction_psnr_db']:.2f} dB "
                  f"(wrote {path})")
    return 0


def cmd_synth_unmix(args: argparse.Namespace) -> int:
    from .io.atomic import check_output_path
    from .synthesis.unmixing import load_unmixing
    from .workflows.synth import infer_folder, load_rgb_images

    say = _progress_printer(args.quiet)
    check_output_path(args.output, overwrite=args.overwrite, folder=True)
    model = load_unmixing(args.weights, device=args.device)
    images = load_rgb_images(args.rgb or (), example=args.example, scales=args.scales, tile=args.tile,
                             transfer=args.rgb_transfer, say=say)
    say(f"unmixing {len(images)} image(s) into K = {model.net.config.endmembers} abundance maps with {model.path}")
    settings = {"rgb": args.rgb, "example": args.example, "scales": args.scales, "tile": args.tile,
                "rgb_transfer": args.rgb_transfer}
    with _callback_progress("images", quiet=args.quiet) as progress:
        infer_folder(model, images, args.output, overwrite=args.overwrite, device=args.device, settings=settings,
                     progress=progress)
    print(f"wrote {args.output}: {len(images)} abundance map file(s), index.json, preview.png")
    return 0


def cmd_synth_train_diffusion(args: argparse.Namespace) -> int:
    from .synthesis.diffusion import DiffusionTrainOptions, train_diffusion
    from .workflows.synth import load_abundance_folder

    say = _progress_printer(args.quiet)
    _precheck_run(args, "hsfuse synth train-diffusion")
    options = DiffusionTrainOptions(**_given(args, ("config", "steps", "batch_size", "crop", "lr", "T", "loss", "ema",
                                                    "seed", "device", "ckpt_every")))
    maps = []
    for folder in args.abundances:
        maps.extend(load_abundance_folder(folder))
    description = {"abundances": [str(Path(f).resolve()) for f in args.abundances], "maps": len(maps)}
    say(f"training the abundance diffusion model ({options.config} config) on {len(maps)} map(s) with "
        f"K = {maps[0].shape[-1]}, crops {options.crop}px, {options.steps} steps -> {args.output}")
    result = train_diffusion(maps, run_dir=args.output, options=options, description=description, resume=args.resume,
                             progress=not args.quiet)
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.last}")
    return 0


def cmd_synth_sample(args: argparse.Namespace) -> int:
    from .synthesis.diffusion import load_diffusion
    from .workflows.synth import sample_to_folder

    say = _progress_printer(args.quiet)
    model = load_diffusion(args.weights, device=args.device)
    say(f"sampling {args.n} abundance map(s) {args.size}x{args.size} ({args.sampler}"
        f"{f', {args.steps} steps' if args.sampler == 'ddim' else ''}) with {model.path}")
    with _callback_progress("denoising", quiet=args.quiet) as progress:
        meta = sample_to_folder(model, args.output, n=args.n, size=args.size, sampler=args.sampler, steps=args.steps,
                                eta=args.eta, seed=args.seed, batch=args.batch, device=args.device,
                                resume=args.resume, overwrite=args.overwrite, progress=progress, say=say)
    print(f"wrote {args.output}: {args.n} map(s) in {meta['batches']} batch file(s); raw samples off the simplex "
          f"before projection: {100 * meta['raw_fraction_invalid']:.2f} % of pixels (min {meta['raw_min']:.3g})")
    return 0


def cmd_synth_make(args: argparse.Namespace) -> int:
    from .workflows.synth import make_dataset

    say = _progress_printer(args.quiet)
    say(f"synthesising cubes from {args.abundances} with the endmembers of {args.unmixing}")
    out = make_dataset(args.unmixing, args.abundances, args.output, ext=args.format, msi_sensor=args.msi_sensor,
                       msi_bands=args.msi_bands, drop_uncovered=args.drop_uncovered, overwrite=args.overwrite)
    meta = json.loads((out / "dataset.json").read_text())
    print(f"wrote {out}: {meta['cubes']} cube(s) with {meta['bands']} bands ({meta['endmembers']} endmembers)"
          + (f", MSI for {args.msi_sensor}" if args.msi_sensor else "")
          + f"; train a fusion network with: hsfuse train --data {out}/hsi ...")
    return 0


def cmd_synth_report(args: argparse.Namespace) -> int:
    from .workflows.synth import realism

    say = _progress_printer(args.quiet)
    say(f"comparing {args.synthetic} with {', '.join(args.scene or args.real)}")
    r = realism(args.synthetic, args.real, args.output, scenes=args.scene or (), n_components=args.n_components,
                overwrite=args.overwrite)
    base = r["sam_real_baseline_deg"]
    rows = [{"metric": "mean gap", "value": r["mean_gap"]},
            {"metric": "captured variance", "value": r["captured_variance"]},
            {"metric": "real explained (top k)", "value": float(sum(r["real_explained"]))},
            {"metric": "SAM to nearest real, mean (deg)", "value": r["sam_to_real_deg"]["mean"]},
            {"metric": "baseline real to real, mean (deg)", "value": None if base is None else base["mean"]}]
    _print_table(rows, title=f"realism of {args.synthetic} ({r['bands']} bands)")
    print(f"wrote {args.output}: report.md, report.json, realism.png, previews.png, abundances.png")
    return 0


# --------------------------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (the ratio must be an integer)")
    return int(value)


def _read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=["auto", "hwb", "bhw"], default="auto",
                   help="axis order of .mat/.npy arrays: H x W x bands (hwb) or bands x H x W (bhw); default auto")


def build_parser() -> argparse.ArgumentParser:
    from .data.simulation import SIMULATION_PRESETS

    parser = argparse.ArgumentParser(prog="hsfuse", description="Hyperspectral + multispectral image fusion.")
    parser.add_argument("--version", action="version", version=f"hsfuse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="simulate, fuse with every method, evaluate, write outputs (synthetic scene)",
                       description="The main job on the embedded synthetic scene: simulate an HSI/RGB pair, fuse "
                       "with every classical method, print the metrics, write fused cubes and a figure.")
    p.add_argument("-o", "--output", default="hsfuse-demo", help="output folder (default: ./hsfuse-demo)")
    p.add_argument("--size", type=_positive_int, default=128, help="scene height and width (default 128)")
    p.add_argument("--ratio", type=_positive_int, default=4, help="resolution ratio (default 4)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="Wald's protocol: LR HSI + HR MSI from a reference HSI",
                       description="Write OUTDIR/hsi.EXT, msi.EXT, reference.EXT (cropped to a multiple of the "
                       "ratio) and physics.json (the exact PSF/SRF/ratio/offset/boundary used).")
    p.add_argument("reference", help="reference HSI file (.mat, .hdr, .tif, .npy, .npz, CAVE folder)")
    p.add_argument("--srf", required=True, help="sensor name ('hsfuse srf list'), response CSV, or (m x L) .npy")
    p.add_argument("--bands", type=lambda s: [b for b in s.split(",") if b], help="sensor bands to keep, e.g. "
                   "Blue,Green,Red,NIR (default: every band the HSI covers)")
    p.add_argument("--ratio", type=_positive_int, required=True, help="integer resolution ratio")
    p.add_argument("--preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse", help="simulation preset")
    p.add_argument("--psf", help="override the preset PSF: gaussian:fwhm=F[,size=K] | gaussian:sigma=S | FILE")
    p.add_argument("--snr-hsi", type=float, help="HSI noise, SNR in dB (default: preset, none)")
    p.add_argument("--snr-msi", type=float, help="MSI noise, SNR in dB (default: preset, none)")
    p.add_argument("--seed", type=int, help="noise seed")
    p.add_argument("--variable", help="variable name inside a .mat/.npz file")
    _read_options(p)
    p.add_argument("--format", choices=["npz", "mat", "tif", "hdr", "npy"], default="npz", help="output format")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_simulate)

    from .methods.registry import METHODS

    p = sub.add_parser("fuse", help="fuse a LR HSI with a HR MSI",
                       description="Fuse; the output keeps the HSI's wavelengths and the MSI's georeferencing. "
                       "Methods: " + "; ".join(f"{n}: {s.description}" for n, s in METHODS.items()))
    p.add_argument("--hsi", required=True, help="low-resolution hyperspectral image")
    p.add_argument("--msi", required=True, help="high-resolution multispectral/RGB image")
    p.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--physics", help="physics.json from 'hsfuse simulate' (known PSF, SRF, ratio)")
    p.add_argument("--srf", help="MSI sensor: name, response CSV, or (m x L) .npy")
    p.add_argument("--bands", type=lambda s: [b for b in s.split(",") if b], help="sensor bands present in the MSI")
    p.add_argument("--srf-normalize", choices=["sum", "none"], default="sum", help="SRF rows sum to one (default)")
    p.add_argument("--psf", help="gaussian:fwhm=F[,size=K] | gaussian:sigma=S[,size=K] | kernel FILE "
                   "(default gaussian FWHM = ratio)")
    p.add_argument("--ratio", type=_positive_int, help="check the ratio implied by the image sizes")
    p.add_argument("--offset", type=int, help="decimation offset (default (ratio-1)//2)")
    p.add_argument("--boundary", choices=["circular", "reflect"], default="circular")
    p.add_argument("--hsi-variable")
    p.add_argument("--msi-variable")
    _read_options(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--weights", help="trained networks: run folder from 'hsfuse train' (its best checkpoint), a "
                   "checkpoint folder, or its model.safetensors")
    p.add_argument("--tile", type=_positive_int, help="trained networks: tile side in LR pixels (default: "
                   "chosen to fit --memory-gb)")
    p.add_argument("--overlap", type=int, default=4, help="trained networks: tile overlap in LR pixels (default 4)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="trained networks: memory budget for automatic "
                   "tiling (default 4)")
    p.add_argument("--schedule", choices=["paper", "fast"], help="udaln: training schedule, paper (65,000 "
                   "iterations, default) or fast (23,500; see README); with udaln, --srf-normalize none lets the "
                   "learned SRF carry the gain between two sensors in different units")
    p.add_argument("-o", "--output", required=True, help="output file (.npz, .mat, .tif, .hdr, .npy)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_fuse)

    from .models.catalog import MODELS

    p = sub.add_parser("train", help="train a supervised fusion network on reference HSIs (Wald simulation)",
                       description="Random patches of the reference HSIs are degraded on the fly with a "
                       "simulation preset (optionally with random PSF widths and SRFs of a family), the network "
                       "is trained with its paper's loss and optimiser, validated on held-out data, and "
                       "checkpointed to RUNDIR (resumable with --resume; multi-GPU/multi-node with torchrun). "
                       "Networks: " + "; ".join(f"{n}: {s.description}" for n, s in MODELS.items()))
    p.add_argument("--method", required=True, choices=sorted(MODELS))
    p.add_argument("--data", nargs="+", required=True, help="reference HSI files or folders (any supported "
                   "format), or synthetic:N for N synthetic scenes")
    p.add_argument("--srf", required=True, help="MSI sensor: name ('hsfuse srf list'), response CSV, or (m x L) .npy")
    p.add_argument("--bands", type=lambda s: [b for b in s.split(",") if b], help="sensor bands to use")
    p.add_argument("--srf-family", nargs="+", help="further SRFs drawn at random per sample (blind training)")
    p.add_argument("--psf-fwhm-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="draw each sample's Gaussian PSF FWHM in [LO, HI] x ratio (blind training)")
    p.add_argument("--ratio", type=_positive_int, required=True, help="integer resolution ratio")
    p.add_argument("--preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse", help="simulation preset")
    p.add_argument("--snr-hsi", type=float, help="HSI noise, SNR in dB")
    p.add_argument("--snr-msi", type=float, help="MSI noise, SNR in dB")
    p.add_argument("--config", default="paper", help="architecture: paper (default), tiny, or a JSON file of options")
    p.add_argument("--steps", type=_positive_int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=_positive_int, help="samples per step per process (default: the paper's)")
    p.add_argument("--patch-size", type=_positive_int, help="HR patch side, a multiple of the ratio")
    p.add_argument("--lr", type=float, help="base learning rate (default: the paper's; its schedule is rescaled "
                   "to --steps)")
    p.add_argument("--val", nargs="+", help="held-out reference HSIs for validation")
    p.add_argument("--val-fraction", type=float, help="hold out this fraction of each scene's rows (bottom) instead")
    p.add_argument("--val-every", type=_positive_int, default=200)
    p.add_argument("--ckpt-every", type=_positive_int, default=200)
    p.add_argument("--no-augment", action="store_true", help="no random flips and rotations")
    p.add_argument("--variable", help="variable name inside .mat/.npz files")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in RUNDIR from its last checkpoint")
    p.add_argument("--init-from", metavar="WEIGHTS", help="start from these weights (same method, config, bands and "
                   "ratio), e.g. a network pre-trained on 'hsfuse synth make' data; fine-tuning")
    p.add_argument("-o", "--output", required=True, help="run folder")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    from .metrics.presets import PRESETS

    p = sub.add_parser("evaluate", help="reference-based quality metrics",
                       description="Metric presets (every convention fixed; see hsfuse.metrics.presets): "
                       + "; ".join(f"{n}: {v.reproduces.split('.')[0]}" for n, v in PRESETS.items()))
    p.add_argument("--reference", required=True)
    p.add_argument("--estimate", required=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default="hsfuse")
    p.add_argument("--ratio", type=_positive_int, help="resolution ratio (needed for ERGAS)")
    p.add_argument("--data-range", type=float, help="override the preset's data range (peak value)")
    p.add_argument("--reference-variable")
    p.add_argument("--estimate-variable")
    _read_options(p)
    p.add_argument("--json", action="store_true", help="print JSON with lower-case metric names")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="describe an image file (shape, dtype, wavelengths, georeferencing)")
    p.add_argument("file")
    p.add_argument("--variable")
    _read_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("srf", help="sensor spectral responses: list | show | resample")
    srf_sub = p.add_subparsers(dest="srf_command", required=True, metavar="SRF_COMMAND")
    q = srf_sub.add_parser("list", help="named sensors")
    q.set_defaults(func=cmd_srf)
    q = srf_sub.add_parser("show", help="band centres and ranges of a sensor")
    q.add_argument("sensor")
    q.set_defaults(func=cmd_srf)
    q = srf_sub.add_parser("resample", help="SRF matrix of a sensor on an HSI's band centres, as CSV")
    q.add_argument("sensor")
    q.add_argument("--hsi", required=True, help="HSI file whose band wavelengths to use")
    q.add_argument("--bands", type=lambda s: [b for b in s.split(",") if b])
    q.add_argument("--normalize", choices=["sum", "none"], default="none")
    q.add_argument("-o", "--output", help="CSV file (default: standard output)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_srf)

    def pair_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--hsi", help="low-resolution hyperspectral image")
        p.add_argument("--msi", help="high-resolution multispectral/RGB image")
        p.add_argument("--hsi-variable")
        p.add_argument("--msi-variable")
        p.add_argument("--example", choices=["houston2018"], help="use the real Houston 2018 pair from the shared "
                       "data folder ($HSFUSE_DATA): 48-band CASI HSI + 4x finer RGB with a no-data patch")
        p.add_argument("--hsi-nodata", type=float, help="HSI no-data value (default: the file's, if any)")
        p.add_argument("--msi-nodata", type=float, help="MSI no-data value, e.g. 0 for black fill (default: the "
                       "file's, if any)")
        p.add_argument("--msi-transfer", choices=["linear", "srgb"], help="srgb: the MSI is a gamma-encoded camera "
                       "RGB (8-bit JPEG/TIFF products usually are); decode it to linear values first (default linear; "
                       "srgb with --example houston2018)")
        p.add_argument("--ratio", type=_positive_int, help="check the ratio implied by the image sizes")
        p.add_argument("--estimator", choices=["hysure", "udaln"], default="hysure",
                       help="hysure: least squares with smoothness penalties (default, seconds); udaln: UDALN's "
                       "first stage (r x r PSF)")
        p.add_argument("--hysure-lambda", type=float, default=0.01, help="hysure: smoothness weight of the SRF and "
                       "PSF fits (default 0.01, tuned on simulated pairs; HySure's own is 10, safer on real pairs)")
        p.add_argument("--support", help="a nominal sensor (name, CSV or .npy) restricting each MSI band to the HSI "
                       "bands where it responds >= 1%% of its peak (needs HSI wavelengths)")
        p.add_argument("--bands", type=lambda s: [b for b in s.split(",") if b], help="bands of --support to use")
        _read_options(p)
        p.add_argument("--overwrite", action="store_true", help="replace a previous output folder of this command")
        p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("estimate", help="blind PSF and SRF estimation from a real pair",
                       description="Estimate the PSF and the SRF of an HSI/MSI pair and write OUTDIR/physics.json "
                       "(for 'hsfuse fuse --physics'), psf.csv ('--psf'), srf.npy ('--srf', with --srf-normalize "
                       "none), srf.csv and plots. The SRF is in the files' own units (it carries the gain between "
                       "the two sensors); the PSF sums to one.")
    pair_options(p)
    p.add_argument("--kernel-size", type=_positive_int, help="hysure: PSF side (default 2r+1)")
    p.add_argument("--iterations", type=_positive_int, help="udaln: stage-1 iterations (default 20000)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("pair", help="real pair end to end: mask, estimate, check registration, fuse, no-reference "
                       "scores, figures",
                       description="The blind-fusion workflow for a real pair with no reference (see "
                       "hsfuse.workflows.real_pair): no-data masking, PSF/SRF estimation, co-registration check, "
                       "fusion with each method, QNR and consistency scores, figures; all into OUTDIR.")
    pair_options(p)
    p.add_argument("--methods", nargs="+", default=["fuse", "udaln"], help="fusion methods (default: fuse udaln)")
    p.add_argument("--schedule", choices=["paper", "fast"], default="fast", help="UDALN schedule (default fast)")
    p.add_argument("--shift-threshold", type=float, default=0.5, help="co-registration warning threshold in HSI "
                   "pixels (default 0.5)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_pair)

    p = sub.add_parser("bench", help="methods x scenes x ratios -> CSV/JSON/Markdown table",
                       description="Simulate each case with one preset, fuse with each method, evaluate with one "
                       "metric preset; record wall time and peak memory. Cases are SCENE:SENSOR[:BANDS] with scenes "
                       "from the shared data folder ($HSFUSE_DATA) or 'synthetic'.")
    p.add_argument("--case", action="append", help="SCENE:SENSOR[:BAND,...] (repeatable); default: pavia_u with "
                   "IKONOS B,G,R,NIR; indian_pines with Landsat-8 OLI B1-B7; jasper_ridge with Sentinel-2A 10/20 m bands")
    p.add_argument("--methods", nargs="+", help="methods (default: all classical)")
    p.add_argument("--ratios", nargs="+", type=_positive_int, default=[4, 8])
    p.add_argument("--simulation-preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse")
    p.add_argument("--preset", choices=sorted(PRESETS), default="hsfuse", help="metric preset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="bench-results", help="output folder")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("synth", help="synthetic HSIs by unmixing and diffusion: train-unmixing | unmix | "
                       "train-diffusion | sample | make | report",
                       description="'Unmixing Before Fusion' (Yu et al., CVPR 2024): learn RGB -> abundances and "
                       "endmembers from real HSIs, unmix RGB images, train a diffusion model on the abundance maps, "
                       "sample new maps, synthesise HSIs = endmembers x abundances, and judge their realism.")
    synth = p.add_subparsers(dest="synth_command", required=True, metavar="SYNTH_COMMAND")

    def synth_common(q: argparse.ArgumentParser, output: str) -> None:
        q.add_argument("-o", "--output", required=True, help=output)
        q.add_argument("-q", "--quiet", action="store_true", help="no progress messages or bars")

    def synth_run(q: argparse.ArgumentParser) -> None:
        """Options every synthesis training command shares (checkpoints, seed, device, resume, output)."""
        q.add_argument("--ckpt-every", type=_positive_int, help="checkpoint every N steps (default 500)")
        q.add_argument("--seed", type=int, help="seed (default 0)")
        q.add_argument("--device", help="cpu (default) or cuda[:N]")
        q.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
        synth_common(q, "run folder")

    q = synth.add_parser("train-unmixing", help="learn RGB -> abundances and the endmembers from real HSIs",
                         description="Train the unmixing network on real HSIs (each scaled to a maximum of 1) and "
                         "their RGB simulated through a camera response (or three bands). Resumable. With one "
                         "--scene that has reference unmixing (jasper_ridge, samson), RUN/accuracy.json scores the "
                         "learned endmembers and abundances against it.")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", nargs="+", metavar="SRC", help="real HSI files or folders (any supported format)")
    src.add_argument("--scene", nargs="+", metavar="NAME", help="shared scenes (e.g. jasper_ridge samson pavia_u)")
    rgb = q.add_mutually_exclusive_group()
    rgb.add_argument("--sensor", help="camera response for the training RGB (default canon_eos_5d_mark_ii; see "
                     "'hsfuse srf list')")
    rgb.add_argument("--rgb-bands", nargs=3, type=int, metavar=("R", "G", "B"),
                     help="use these three HSI bands (0-based) as the RGB instead of a camera response")
    q.add_argument("--config", choices=["paper", "small", "tiny"], help="network size (default small)")
    q.add_argument("--endmembers", type=_positive_int, help="K, the number of endmembers (default: the config's)")
    q.add_argument("--steps", type=_positive_int, help="optimiser steps (default 2000)")
    q.add_argument("--batch-size", type=_positive_int, help="patches per step (default 16)")
    q.add_argument("--patch-size", type=_positive_int, help="patch side (default 64; clipped to the scenes)")
    q.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4, x0.1 after 75 %% of the steps)")
    q.add_argument("--init", choices=["atgp", "random"], help="endmember start: ATGP pixels (default) or random")
    synth_run(q)
    q.set_defaults(func=cmd_synth_train_unmixing)

    q = synth.add_parser("unmix", help="abundance maps of RGB images with a trained unmixing network",
                         description="Write DIR/<name>.npz (key 'abundances', H x W x K) per image, index.json and "
                         "preview.png. Images: PNG/JPEG/TIFF/BMP files or folders (alpha dropped, grey skipped).")
    q.add_argument("--weights", required=True, help="run folder of 'hsfuse synth train-unmixing' (its last "
                   "checkpoint) or a checkpoint folder")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--rgb", nargs="+", metavar="SRC", help="RGB image files or folders")
    src.add_argument("--example", choices=["skimage", "houston2018"], help="skimage: scikit-image's colour photos "
                     "(needs hsfuse[synth]); houston2018: the shared Houston RGB (has a no-data patch)")
    q.add_argument("--scales", nargs="+", type=float, default=[1.0], help="also (or only) use each image "
                   "down-scaled by these factors in (0, 1], area averaging (default 1)")
    q.add_argument("--rgb-transfer", choices=("linear", "srgb"), default="linear",
                   help="srgb: decode gamma-encoded photographs (most 8-bit PNG/JPEG) to linear values first; the "
                   "network was trained on RGB simulated linearly from radiance (default: linear, values as stored)")
    q.add_argument("--tile", type=_positive_int, help="cut into N x N tiles; tiles touching no-data pixels (all "
                   "channels 0) are dropped")
    q.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    q.add_argument("--overwrite", action="store_true", help="replace a previous output folder of this command")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_synth_unmix)

    q = synth.add_parser("train-diffusion", help="train the abundance diffusion model (DDPM) on abundance maps",
                         description="Train the denoiser on random crops of the abundance maps in DIR (output of "
                         "'unmix', 'sample' or a synthetic dataset). Resumable; --resume with a larger --steps "
                         "continues a finished run (the same weights as one run of that length).")
    q.add_argument("--abundances", nargs="+", required=True, metavar="DIR", help="folders of abundance maps")
    q.add_argument("--config", choices=["paper", "small", "tiny"], help="denoiser size (default small)")
    q.add_argument("--steps", type=_positive_int, help="optimiser steps (default 5000)")
    q.add_argument("--batch-size", type=_positive_int, help="crops per step (default 8)")
    q.add_argument("--crop", type=_positive_int, help="crop side, a multiple of the U-Net's (default 64)")
    q.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4)")
    q.add_argument("--T", type=_positive_int, help="diffusion steps of the noise schedule (default 2000)")
    q.add_argument("--loss", choices=["l1", "l2"], help="noise loss (default l1, the paper's)")
    q.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and sample "
                   "with it; default 0: none, as in the authors' code")
    synth_run(q)
    q.set_defaults(func=cmd_synth_train_diffusion)

    q = synth.add_parser("sample", help="generate abundance maps with a trained diffusion model",
                         description="Write DIR/samples.json and one batch_NNNNN.npz per batch (key 'abundances', "
                         "b x S x S x K, projected onto the simplex). A killed run keeps its finished batches; "
                         "--resume continues it with the same options (batch b uses seed + b).")
    q.add_argument("--weights", required=True, help="run folder of 'hsfuse synth train-diffusion' or a checkpoint")
    q.add_argument("-n", type=_positive_int, required=True, help="number of maps")
    q.add_argument("--size", type=_positive_int, required=True, help="map side in pixels (a multiple of the U-Net's)")
    q.add_argument("--sampler", choices=["ddim", "ancestral"], default="ddim", help="DDIM (default) or the full "
                   "ancestral chain (T steps)")
    q.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps (default 50)")
    q.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic (default), 1 DDPM-like")
    q.add_argument("--seed", type=int, default=0, help="seed of batch 0 (default 0)")
    q.add_argument("--batch", type=_positive_int, default=8, help="maps per batch file (default 8)")
    q.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    q.add_argument("--resume", action="store_true", help="continue an unfinished sample folder")
    q.add_argument("--overwrite", action="store_true", help="replace a previous sample folder")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_synth_sample)

    q = synth.add_parser("make", help="synthesise HSIs = endmembers x abundances into a dataset folder",
                         description="One cube per abundance map (hsi/), with its abundances (abundances/), the "
                         "endmembers (endmembers.csv), optionally the simulated MSI (msi/), and dataset.json.")
    q.add_argument("--unmixing", required=True, help="run folder of 'hsfuse synth train-unmixing' (the endmembers)")
    q.add_argument("--abundances", required=True, help="folder of abundance maps ('sample' or 'unmix' output)")
    q.add_argument("--format", choices=["npz", "mat", "tif", "hdr", "npy"], default="npz", help="cube format "
                   "(default npz)")
    q.add_argument("--msi-sensor", help="also write each cube's simulated MSI/RGB for this sensor (name or CSV)")
    q.add_argument("--msi-bands", nargs="+", metavar="BAND", help="keep only these sensor bands (names)")
    q.add_argument("--drop-uncovered", action="store_true",
                   help="drop sensor bands outside the cubes' wavelength range (with a warning) instead of refusing")
    q.add_argument("--overwrite", action="store_true", help="replace a previous dataset folder")
    synth_common(q, "dataset folder")
    q.set_defaults(func=cmd_synth_make)

    q = synth.add_parser("report", help="realism of a synthetic dataset against real HSIs",
                         description="Per-band statistics, principal subspaces and spectral angles of the "
                         "synthetic cubes against real ones (hsfuse.metrics.realism); writes report.json, report.md, "
                         "realism.png, previews.png, abundances.png.")
    q.add_argument("--synthetic", required=True, help="dataset folder of 'hsfuse synth make'")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", nargs="+", metavar="SRC", help="real HSI files or folders (same bands)")
    src.add_argument("--scene", nargs="+", metavar="NAME", help="shared scenes (same bands)")
    q.add_argument("--n-components", type=_positive_int, default=5, help="principal components compared (default 5)")
    q.add_argument("--overwrite", action="store_true", help="replace a previous report folder")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_synth_report)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hsfuse`` console command; returns the exit status."""
    from .errors import HsfuseError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HsfuseError as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, MemoryError) as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hsfuse {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: keep the message short unless asked for the traceback
        if os.environ.get("HSFUSE_DEBUG"):
            raise
        print(f"hsfuse {args.command}: unexpected error ({type(exc).__name__}: {exc}). This is a bug in hsfuse; "
              "rerun with HSFUSE_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
