"""``hsfuse train``: a supervised fusion network on reference HSIs."""

from __future__ import annotations

import argparse

from ._common import ProgressBar, add_quiet, band_list, positive_int, say_printer

__all__ = ["register"]


def cmd_train(args: argparse.Namespace) -> int:
    from ..workflows.train import train_from_files

    say = say_printer(args.quiet)
    with ProgressBar(f"train {args.method}", quiet=args.quiet) as progress:
        result = train_from_files(
            args.data, args.output, method=args.method, srf=args.srf, ratio=args.ratio, bands=args.bands,
            srf_family=args.srf_family or (), psf_fwhm_range=args.psf_fwhm_range, preset=args.preset,
            snr_hsi_db=args.snr_hsi, snr_msi_db=args.snr_msi, config=args.config, steps=args.steps,
            batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr, val=args.val or (),
            val_fraction=args.val_fraction, val_every=args.val_every, ckpt_every=args.ckpt_every,
            augment=not args.no_augment, variable=args.variable, device=args.device, amp=args.amp, seed=args.seed,
            ema=args.ema, resume=args.resume, init_from=args.init_from, progress=progress, say=say)
    if result.best_metrics:
        say("best validation: " + ", ".join(f"{k} {v:.4g}" for k, v in result.best_metrics.items()))
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.best or result.last}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.simulation import SIMULATION_PRESETS
    from ..models.catalog import MODELS

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
    p.add_argument("--bands", type=band_list, help="sensor bands to use")
    p.add_argument("--srf-family", nargs="+", help="further SRFs drawn at random per sample (blind training)")
    p.add_argument("--psf-fwhm-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="draw each sample's Gaussian PSF FWHM in [LO, HI] x ratio (blind training)")
    p.add_argument("--ratio", type=positive_int, required=True, help="integer resolution ratio")
    p.add_argument("--preset", choices=sorted(SIMULATION_PRESETS), default="hsfuse", help="simulation preset")
    p.add_argument("--snr-hsi", type=float, help="HSI noise, SNR in dB")
    p.add_argument("--snr-msi", type=float, help="MSI noise, SNR in dB")
    p.add_argument("--config", default="paper", help="architecture: paper (default), tiny, or a JSON file of options")
    p.add_argument("--steps", type=positive_int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=positive_int, help="samples per step per process (default: the paper's)")
    p.add_argument("--patch-size", type=positive_int, help="HR patch side, a multiple of the ratio")
    p.add_argument("--lr", type=float, help="base learning rate (default: the paper's; its schedule is rescaled "
                   "to --steps)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY", help="keep an exponential moving average of "
                   "the weights with this decay (e.g. 0.999), checkpointed and resumed; default 0: none")
    p.add_argument("--val", nargs="+", help="held-out reference HSIs for validation")
    p.add_argument("--val-fraction", type=float, help="hold out this fraction of each scene's rows (bottom) instead")
    p.add_argument("--val-every", type=positive_int, default=200)
    p.add_argument("--ckpt-every", type=positive_int, default=200)
    p.add_argument("--no-augment", action="store_true", help="no random flips and rotations")
    p.add_argument("--variable", help="variable name inside .mat/.npz files")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in RUNDIR from its last checkpoint")
    p.add_argument("--init-from", metavar="WEIGHTS", help="start from these weights (same method, config, bands and "
                   "ratio), e.g. a network pre-trained on 'hsfuse synth make' data; fine-tuning")
    p.add_argument("-o", "--output", required=True, help="run folder")
    add_quiet(p)
    p.set_defaults(func=cmd_train)
