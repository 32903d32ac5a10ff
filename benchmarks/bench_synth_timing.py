"""Seconds per unit of work for each stage of the synthesis pipeline, paper and small configurations.

    python benchmarks/bench_synth_timing.py [--device cpu] [--repeats 3] [-o benchmarks/results/synth_timing]

Measured in one process, side by side, after one warm-up call each (median of ``--repeats``):

* unmixing: one training step (Adam, the paper's loss; batch 16 of 64 x 64 RGB patches, 103 output bands)
  and inference on a 512 x 512 RGB image;
* diffusion: one training step (batch 8 of 64 x 64 crops for ``small``; batch 2 of the paper's 256 x 256
  maps for ``paper``, the paper's batch 8 does not fit a small machine's memory) and one denoiser evaluation on 8 maps of 64 x 64 (a DDIM-50 sample costs 50 evaluations, an
  ancestral one ``T = 2000``);
* synthesis: ``Y = E A`` and writing one 256 x 256 x 103 cube as ``.npz``.

Results: ``results.json`` and ``results.md`` with the machine described.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hsfuse.bench.machine import machine_description
from hsfuse.models.base import count_parameters
from hsfuse.models.ddpm_unet import SR3UNet
from hsfuse.models.diffusion import linear_schedule, q_sample, training_noise_levels
from hsfuse.models.unmixing import UnmixingNet, unmixing_loss
from hsfuse.synthesis.dataset import synthesize, write_dataset


def timed(fn: Callable[[], object], *, repeats: int, device: str) -> float:
    def run() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    run()  # warm-up
    return statistics.median(run() for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configs", nargs="+", default=["small", "paper"])
    ap.add_argument("-o", "--output", default="benchmarks/results/synth_timing")
    args = ap.parse_args(argv)
    dev = args.device
    torch.manual_seed(0)
    rows = []
    C = 103
    for cfg in args.configs:
        net = UnmixingNet(in_bands=3, hsi_bands=C, config=cfg, endmembers=torch.rand(C, 5)).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=2e-4)
        x, y = torch.rand(16, 3, 64, 64, device=dev), torch.rand(16, C, 64, 64, device=dev)

        def unmix_step() -> None:
            _, rec = net(x)
            loss, _ = unmixing_loss(rec, y, net.endmembers)
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.project_()

        rgb = torch.rand(1, 3, 512, 512, device=dev)
        with torch.no_grad():
            infer = timed(lambda: net.abundances(rgb), repeats=args.repeats, device=dev)
        rows.append({"stage": "unmixing train step (16 x 64^2)", "config": cfg, "params": count_parameters(net),
                     "seconds": timed(unmix_step, repeats=args.repeats, device=dev)})
        rows.append({"stage": "unmixing inference (512^2 RGB)", "config": cfg, "params": count_parameters(net),
                     "seconds": infer})

        den = SR3UNet(channels=5, config=cfg).to(dev)
        dopt = torch.optim.Adam(den.parameters(), lr=1e-4)
        schedule = linear_schedule(2000)
        crop = den.config.image_size
        gen = torch.Generator().manual_seed(0)
        nb = 2 if cfg == "paper" else 8  # the paper's 256^2 maps: batch 2 keeps CPU memory in bounds
        x0 = (torch.rand(nb, 5, crop, crop) * 2 - 1).to(dev)

        def ddpm_step() -> None:
            g = training_noise_levels(schedule, nb, generator=gen).to(dev)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            loss = (den(q_sample(x0, g, noise), g) - noise).abs().mean()
            dopt.zero_grad()
            loss.backward()
            dopt.step()

        rows.append({"stage": f"diffusion train step ({nb} x {crop}^2)", "config": cfg,
                     "params": count_parameters(den), "seconds": timed(ddpm_step, repeats=args.repeats, device=dev)})
        xs = torch.randn(8, 5, 64, 64, device=dev)
        gam = torch.full((8,), 0.5, device=dev)
        with torch.no_grad():
            ev = timed(lambda: den.eval()(xs, gam), repeats=args.repeats, device=dev)
        rows.append({"stage": "denoiser evaluation (8 x 64^2)", "config": cfg, "params": count_parameters(den),
                     "seconds": ev, "ddim50_per_sample_s": ev * 50 / 8, "ancestral2000_per_sample_s": ev * 2000 / 8})
        del den, dopt, net, opt

    E = np.random.rand(C, 5).astype(np.float32)
    A = np.random.dirichlet(np.ones(5), size=(256, 256)).astype(np.float32)
    rows.append({"stage": "synthesis Y = E A (256^2 x 103)", "config": "-", "params": None,
                 "seconds": timed(lambda: synthesize(E, A), repeats=args.repeats, device="cpu")})
    with tempfile.TemporaryDirectory() as tmp:
        k = iter(range(10**6))
        rows.append({"stage": "write one cube + abundances (.npz)", "config": "-", "params": None,
                     "seconds": timed(lambda: write_dataset(Path(tmp) / f"d{next(k)}", endmembers=E, abundances=[A]),
                                      repeats=args.repeats, device="cpu")})
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_description(dev)
    (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = ["# Synthesis pipeline: seconds per unit of work", "",
             f"Machine: {', '.join(f'{k}={v}' for k, v in machine.items())}", "",
             "| stage | config | parameters | seconds | DDIM-50 s/sample | ancestral s/sample |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['config']} | {r['params'] or ''} | {r['seconds']:.4g} | "
                     f"{r.get('ddim50_per_sample_s', '') and format(r['ddim50_per_sample_s'], '.3g')} | "
                     f"{r.get('ancestral2000_per_sample_s', '') and format(r['ancestral2000_per_sample_s'], '.3g')} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
