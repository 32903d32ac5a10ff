"""``hsfuse synth ...``: synthetic HSIs by unmixing and diffusion ("Unmixing Before Fusion", Yu et al., CVPR 2024)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ._common import ProgressBar, add_quiet, positive_int, print_table, say_printer

__all__ = ["register"]


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line (``None`` = keep the library default)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def cmd_train_unmixing(args: argparse.Namespace) -> int:
    from ..synthesis.unmixing import UnmixingTrainOptions
    from ..workflows.synth import train_unmixing_from

    options = UnmixingTrainOptions(**_given(args, ("config", "endmembers", "steps", "batch_size", "patch_size", "lr",
                                                   "init", "seed", "device", "ckpt_every")))
    with ProgressBar("train unmixing", quiet=args.quiet) as progress:
        _, acc = train_unmixing_from(args.output, scenes=args.scene or (), data=args.data or (), sensor=args.sensor,
                                     rgb_bands=args.rgb_bands, options=options, resume=args.resume,
                                     progress=progress, say=say_printer(args.quiet))
    if acc is not None:
        print(f"{acc['scene']}: mean SAD to the reference endmembers {acc['mean_sad_deg']:.2f} deg, abundance "
              f"RMSE {acc['abundance_rmse']:.4f}, reconstruction PSNR {acc['reconstruction_psnr_db']:.2f} dB "
              f"(wrote {args.output}/accuracy.json)")
    return 0


def cmd_unmix(args: argparse.Namespace) -> int:
    from ..workflows.synth import unmix_to_folder

    with ProgressBar("images", quiet=args.quiet) as progress:
        count = unmix_to_folder(args.weights, args.output, rgb=args.rgb or (), example=args.example,
                                scales=args.scales, tile=args.tile, transfer=args.rgb_transfer, device=args.device,
                                overwrite=args.overwrite, progress=progress, say=say_printer(args.quiet))
    print(f"wrote {args.output}: {count} abundance map file(s), index.json, preview.png")
    return 0


def cmd_train_diffusion(args: argparse.Namespace) -> int:
    from ..synthesis.diffusion import DiffusionTrainOptions
    from ..workflows.synth import train_diffusion_from

    options = DiffusionTrainOptions(**_given(args, ("config", "steps", "batch_size", "crop", "lr", "T", "loss", "ema",
                                                    "seed", "device", "ckpt_every")))
    with ProgressBar("train diffusion", quiet=args.quiet) as progress:
        train_diffusion_from(args.abundances, args.output, options=options, resume=args.resume, progress=progress,
                             say=say_printer(args.quiet))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ..workflows.synth import sample_from_weights

    with ProgressBar("denoising", quiet=args.quiet) as progress:
        meta = sample_from_weights(args.weights, args.output, device=args.device, n=args.n, size=args.size,
                                   sampler=args.sampler, steps=args.steps, eta=args.eta, seed=args.seed,
                                   batch=args.batch, resume=args.resume, overwrite=args.overwrite, progress=progress,
                                   say=say_printer(args.quiet))
    print(f"wrote {args.output}: {args.n} map(s) in {meta['batches']} batch file(s); raw samples off the simplex "
          f"before projection: {100 * meta['raw_fraction_invalid']:.2f} % of pixels (min {meta['raw_min']:.3g})")
    return 0


def cmd_make(args: argparse.Namespace) -> int:
    from ..workflows.synth import make_dataset

    say_printer(args.quiet)(f"synthesising cubes from {args.abundances} with the endmembers of {args.unmixing}")
    out = make_dataset(args.unmixing, args.abundances, args.output, ext=args.format, msi_sensor=args.msi_sensor,
                       msi_bands=args.msi_bands, drop_uncovered=args.drop_uncovered, overwrite=args.overwrite)
    meta = json.loads((out / "dataset.json").read_text())
    print(f"wrote {out}: {meta['cubes']} cube(s) with {meta['bands']} bands ({meta['endmembers']} endmembers)"
          + (f", MSI for {args.msi_sensor}" if args.msi_sensor else "")
          + f"; train a fusion network with: hsfuse train --data {out}/hsi ...")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..workflows.synth import realism

    say_printer(args.quiet)(f"comparing {args.synthetic} with {', '.join(args.scene or args.real)}")
    r = realism(args.synthetic, args.real, args.output, scenes=args.scene or (), n_components=args.n_components,
                overwrite=args.overwrite)
    base = r["sam_real_baseline_deg"]
    rows = [{"metric": "mean gap", "value": r["mean_gap"]},
            {"metric": "captured variance", "value": r["captured_variance"]},
            {"metric": "real explained (top k)", "value": float(sum(r["real_explained"]))},
            {"metric": "SAM to nearest real, mean (deg)", "value": r["sam_to_real_deg"]["mean"]},
            {"metric": "baseline real to real, mean (deg)", "value": None if base is None else base["mean"]}]
    print_table(rows, title=f"realism of {args.synthetic} ({r['bands']} bands)")
    print(f"wrote {args.output}: report.md, report.json, realism.png, previews.png, abundances.png")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthetic HSIs by unmixing and diffusion: train-unmixing | unmix | "
                       "train-diffusion | sample | make | report",
                       description="'Unmixing Before Fusion' (Yu et al., CVPR 2024): learn RGB -> abundances and "
                       "endmembers from real HSIs, unmix RGB images, train a diffusion model on the abundance maps, "
                       "sample new maps, synthesise HSIs = endmembers x abundances, and judge their realism.")
    synth = p.add_subparsers(dest="synth_command", required=True, metavar="SYNTH_COMMAND")

    def synth_common(q: argparse.ArgumentParser, output: str) -> None:
        q.add_argument("-o", "--output", required=True, help=output)
        add_quiet(q)

    def synth_run(q: argparse.ArgumentParser) -> None:
        """Options every synthesis training command shares (checkpoints, seed, device, resume, output)."""
        q.add_argument("--ckpt-every", type=positive_int, help="checkpoint every N steps (default 500)")
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
    q.add_argument("--endmembers", type=positive_int, help="K, the number of endmembers (default: the config's)")
    q.add_argument("--steps", type=positive_int, help="optimiser steps (default 2000)")
    q.add_argument("--batch-size", type=positive_int, help="patches per step (default 16)")
    q.add_argument("--patch-size", type=positive_int, help="patch side (default 64; clipped to the scenes)")
    q.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4, x0.1 after 75 %% of the steps)")
    q.add_argument("--init", choices=["atgp", "random"], help="endmember start: ATGP pixels (default) or random")
    synth_run(q)
    q.set_defaults(func=cmd_train_unmixing)

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
    q.add_argument("--tile", type=positive_int, help="cut into N x N tiles; tiles touching no-data pixels (all "
                   "channels 0) are dropped")
    q.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    q.add_argument("--overwrite", action="store_true", help="replace a previous output folder of this command")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_unmix)

    q = synth.add_parser("train-diffusion", help="train the abundance diffusion model (DDPM) on abundance maps",
                         description="Train the denoiser on random crops of the abundance maps in DIR (output of "
                         "'unmix', 'sample' or a synthetic dataset). Resumable; --resume with a larger --steps "
                         "continues a finished run (the same weights as one run of that length).")
    q.add_argument("--abundances", nargs="+", required=True, metavar="DIR", help="folders of abundance maps")
    q.add_argument("--config", choices=["paper", "small", "tiny"], help="denoiser size (default small)")
    q.add_argument("--steps", type=positive_int, help="optimiser steps (default 5000)")
    q.add_argument("--batch-size", type=positive_int, help="crops per step (default 8)")
    q.add_argument("--crop", type=positive_int, help="crop side, a multiple of the U-Net's (default 64)")
    q.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4)")
    q.add_argument("--T", type=positive_int, help="diffusion steps of the noise schedule (default 2000)")
    q.add_argument("--loss", choices=["l1", "l2"], help="noise loss (default l1, the paper's)")
    q.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and sample "
                   "with it; default 0: none, as in the authors' code")
    synth_run(q)
    q.set_defaults(func=cmd_train_diffusion)

    q = synth.add_parser("sample", help="generate abundance maps with a trained diffusion model",
                         description="Write DIR/samples.json and one batch_NNNNN.npz per batch (key 'abundances', "
                         "b x S x S x K, projected onto the simplex). A killed run keeps its finished batches; "
                         "--resume continues it with the same options (batch b uses seed + b).")
    q.add_argument("--weights", required=True, help="run folder of 'hsfuse synth train-diffusion' or a checkpoint")
    q.add_argument("-n", type=positive_int, required=True, help="number of maps")
    q.add_argument("--size", type=positive_int, required=True, help="map side in pixels (a multiple of the U-Net's)")
    q.add_argument("--sampler", choices=["ddim", "ancestral"], default="ddim", help="DDIM (default) or the full "
                   "ancestral chain (T steps)")
    q.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (default 50)")
    q.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic (default), 1 DDPM-like")
    q.add_argument("--seed", type=int, default=0, help="seed of batch 0 (default 0)")
    q.add_argument("--batch", type=positive_int, default=8, help="maps per batch file (default 8)")
    q.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    q.add_argument("--resume", action="store_true", help="continue an unfinished sample folder")
    q.add_argument("--overwrite", action="store_true", help="replace a previous sample folder")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_sample)

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
    q.set_defaults(func=cmd_make)

    q = synth.add_parser("report", help="realism of a synthetic dataset against real HSIs",
                         description="Per-band statistics, principal subspaces and spectral angles of the "
                         "synthetic cubes against real ones (hsfuse.metrics.realism); writes report.json, report.md, "
                         "realism.png, previews.png, abundances.png.")
    q.add_argument("--synthetic", required=True, help="dataset folder of 'hsfuse synth make'")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--real", nargs="+", metavar="SRC", help="real HSI files or folders (same bands)")
    src.add_argument("--scene", nargs="+", metavar="NAME", help="shared scenes (same bands)")
    q.add_argument("--n-components", type=positive_int, default=5, help="principal components compared (default 5)")
    q.add_argument("--overwrite", action="store_true", help="replace a previous report folder")
    synth_common(q, "output folder")
    q.set_defaults(func=cmd_report)
