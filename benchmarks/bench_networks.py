"""Forward time and peak memory of every registered fusion network, whole image and tiled, with FLOP counts.

    python benchmarks/bench_networks.py [--device cpu] [--size 512] [--bands 31] [--ratio 8] [--msi-bands 3]
        [--config paper] [--repeats N] [--methods NAME ...] [--threads N] [--tile-memory-gb 2] -o benchmarks/results

For each network of :data:`hsfuse.models.catalog.MODELS` (built with the named configuration, untrained
weights, eval mode, ``torch.inference_mode``), on seeded random inputs ``hsi (1, L, S/r, S/r)``,
``msi (1, m, S, S)`` (uniform in [0, 1), i.e. already in the networks' scaled units):

* an untimed warm-up forward on a small ``P x P`` input (``P = min(128, S)``), then a second, measured
  forward at that size (the *probe*): its peak memory times ``(S / P)^2`` estimates the whole-image peak;
  if that exceeds ``--max-memory-gb`` the whole-image run is skipped (so the OS does not kill the run)
  and only the tiled run is reported;
* whole-image :func:`hsfuse.models.inference.run_network` (``tile=None``): wall time (median of
  ``--repeats``; the first call at full size is included, there is no full-size warm-up) and peak memory
  above the level before the call;
* tiled :func:`run_network` with the tile that :func:`hsfuse.models.tiling.choose_tile` picks for a
  ``--tile-memory-gb`` budget and ``--overlap`` LR pixels of overlap: tile size, number of tiles, work factor
  (sum of tile pixels / image pixels), time and peak;
* FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` on one forward at ``P x P`` and at ``P/2 x P/2``
  (counted under ``no_grad``: the counter's module tracker fails on parameters created under
  ``inference_mode`` with parametrisations, as EDBIN's spectral norm). The networks are fully convolutional,
  so FLOPs scale with the pixel count: the ``S x S`` figure is the ``P x P`` count times ``(S/P)^2``, and the
  ratio ``flops(P) / (4 flops(P/2))`` (reported as ``linearity``, 1 if exact) checks that. The counter counts
  matrix products and convolutions (2 FLOP per multiply-add), not pointwise ops, pooling or interpolation;
* parameter counts: ours (:func:`hsfuse.models.base.count_parameters`) and the authors' released code in
  their paper setting (``ModelSpec.authors_parameters``, counted by hand), with that setting;
* the floor: FLOP / the machine's sgemm rate (one 2048^3 float32 matmul, median of 5) and measured time /
  floor (the gap). Convolutions reach at best about the sgemm rate, so the floor is optimistic.

Each network runs in a fresh subprocess (this script with ``--single NAME``, JSON on its last stdout line),
so the peak memory of one does not raise the baseline of the next, and a network that is killed for memory
is reported as such. Peak memory on CPU: the larger of the sampled resident-set growth
(:func:`hsfuse.bench.machine.measure`) and the kernel's high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` before the call) minus the RSS before it; on CUDA the increase of
``torch.cuda.max_memory_allocated``. Results go to ``networks.json`` and ``networks.md`` in ``--output``,
written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hsfuse.bench.machine import machine_description, measure
from hsfuse.io import atomic_outputs
from hsfuse.models.base import count_parameters
from hsfuse.models.inference import run_network
from hsfuse.models.catalog import MODELS, build_model, get_model_spec
from hsfuse.models.tiling import choose_tile, tile_starts

HERE = Path(__file__).resolve().parent
GIB = 2**30


# --------------------------------------------------------------------------------------------------------
# measurement helpers


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def _reset_hwm() -> int | None:
    """Reset the peak-RSS mark (``clear_refs`` 5) and return the current RSS in bytes, or None if impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except OSError:
        return None


def _cpu_seconds() -> float:
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def timed(fn: Callable[[], Any], device: str) -> tuple[float, int, float]:
    """``(wall s, peak memory bytes above the level before, CPU use)`` of one call of ``fn``.

    CPU use is this process's CPU time over ``wall * torch threads`` (about 1 when the threads had the cores
    to themselves; well below 1 when other work competed for them, or when the work is not parallel).
    """
    if device.startswith("cuda"):
        c0 = _cpu_seconds()
        _, wall, peak = measure(fn, device=device)
        return wall, int(peak.bytes), (_cpu_seconds() - c0) / (wall * torch.get_num_threads())
    import gc

    gc.collect()
    before = _reset_hwm()
    c0 = _cpu_seconds()
    _, wall, peak = measure(fn, device=device)
    cpu = (_cpu_seconds() - c0) / (wall * torch.get_num_threads())
    hwm = 0
    if before is not None:
        try:
            hwm = _status_kib("VmHWM") * 1024 - before
        except OSError:
            hwm = 0
    return wall, int(max(peak.bytes, hwm)), cpu


def sgemm_gflops(device: str, n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul rate ``2 n^3 / t`` (median of ``repeats`` after one warm-up)."""
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    a @ b
    ts = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(ts) / 1e9


def count_flops(net: torch.nn.Module, hsi: torch.Tensor, msi: torch.Tensor) -> int:
    """FLOPs of one forward as counted by ``FlopCounterMode`` (matmuls and convolutions, 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(hsi, msi)
    return int(counter.get_total_flops())


def tile_work(lr_size: int, tile: int, overlap: int) -> tuple[int, float]:
    """``(number of tiles, sum of tile pixels / image pixels)`` for a square image of ``lr_size`` LR pixels."""
    starts = tile_starts(lr_size, tile, overlap)
    side = min(tile, lr_size)
    return len(starts) ** 2, (len(starts) * side / lr_size) ** 2


# --------------------------------------------------------------------------------------------------------
# one network (runs in the child process)


def bench_network(name: str, *, size: int, bands: int, ratio: int, msi_bands: int, config: str = "paper",
                  device: str = "cpu", repeats: int = 1, tile_memory_bytes: int = 2 * GIB, overlap: int = 4,
                  max_memory_bytes: int = 18 * GIB, probe_size: int = 128, seed: int = 0) -> dict[str, Any]:
    """Benchmark one network in this process; returns a JSON-ready row (see the module docstring)."""
    spec = get_model_spec(name)
    lr = size // ratio
    torch.manual_seed(seed)
    net = build_model(name, hsi_bands=bands, msi_bands=msi_bands, ratio=ratio, config=config).to(device).eval()
    row: dict[str, Any] = {
        "name": name,
        "class": type(net).__name__,
        "config": config,
        "parameters": count_parameters(net),
        "authors_parameters": (None if spec.authors_parameters is None else
                               {"count": spec.authors_parameters[0], "setting": spec.authors_parameters[1]}),
    }
    gen = torch.Generator().manual_seed(seed)
    hsi = torch.rand(1, bands, lr, lr, generator=gen).to(device)
    msi = torch.rand(1, msi_bands, size, size, generator=gen).to(device)

    # probe (and warm-up) at P x P HR pixels, P a multiple of 2 r
    p_lr = max(1, min(probe_size, size) // ratio)
    p_small = max(1, p_lr // 2)
    p_hsi, p_msi = hsi[..., :p_lr, :p_lr], msi[..., :ratio * p_lr, :ratio * p_lr]
    run_network(net, p_hsi, p_msi, tile=None)  # untimed warm-up
    probe_s, probe_peak, _ = timed(lambda: run_network(net, p_hsi, p_msi, tile=None), device)
    scale = (lr / p_lr) ** 2
    estimate = int(probe_peak * scale)
    row["probe"] = {"size": ratio * p_lr, "time_s": probe_s, "peak_bytes": probe_peak,
                    "estimated_whole_peak_bytes": estimate}

    flops_p = count_flops(net, p_hsi, p_msi)
    flops_half = count_flops(net, hsi[..., :p_small, :p_small], msi[..., :ratio * p_small, :ratio * p_small])
    row["flops"] = {
        "total": int(flops_p * scale),
        "counted_at": ratio * p_lr,
        "counted": flops_p,
        "counted_at_half": ratio * p_small,
        "counted_half": flops_half,
        "linearity": flops_p / (flops_half * (p_lr / p_small) ** 2) if flops_half else None,
    }

    # whole image
    whole: dict[str, Any] = {"status": "ok"}
    limit = max_memory_bytes
    if device.startswith("cuda"):
        limit = min(limit, torch.cuda.mem_get_info()[0])
    if estimate > limit:
        whole = {"status": "skipped",
                 "reason": f"estimated peak {estimate / GIB:.1f} GiB (probe at {ratio * p_lr}x{ratio * p_lr} "
                           f"scaled by pixels) exceeds the {limit / GIB:.1f} GiB limit"}
    else:
        try:
            runs = [timed(lambda: run_network(net, hsi, msi, tile=None), device) for _ in range(repeats)]
            whole.update(times_s=[t for t, _, _ in runs], median_s=statistics.median(t for t, _, _ in runs),
                         peak_bytes=max(p for _, p, _ in runs), cpu_use=[c for _, _, c in runs])
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            whole = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    row["whole"] = whole

    # tiled
    tile = choose_tile(net, hsi_bands=bands, msi_bands=msi_bands, ratio=ratio, memory_bytes=tile_memory_bytes,
                       device=device, overlap=overlap)
    tiled: dict[str, Any] = {"tile_lr": tile, "tile_hr": ratio * min(tile, lr), "overlap_lr": overlap,
                             "budget_bytes": int(tile_memory_bytes)}
    if tile >= lr:
        tiled.update(status="whole", reason="the chosen tile covers the whole image: tiling = whole image",
                     tiles=1, work_factor=1.0)
    else:
        n_tiles, factor = tile_work(lr, tile, overlap)
        try:
            runs = [timed(lambda: run_network(net, hsi, msi, tile=tile, overlap=overlap), device)
                    for _ in range(repeats)]
            tiled.update(status="ok", tiles=n_tiles, work_factor=factor, times_s=[t for t, _, _ in runs],
                         median_s=statistics.median(t for t, _, _ in runs), peak_bytes=max(p for _, p, _ in runs),
                         cpu_use=[c for _, _, c in runs])
        except (RuntimeError, MemoryError) as exc:
            tiled.update(status="failed", tiles=n_tiles, work_factor=factor,
                         reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    row["tiled"] = tiled
    return row


def add_floor(row: dict[str, Any], gflops: float) -> dict[str, Any]:
    """Add the floor (FLOP / sgemm rate), the gaps (time / floor) and achieved GFLOP/s to a row, in place."""
    if "flops" not in row:
        return row
    floor = row["flops"]["total"] / (gflops * 1e9)
    row["floor_s"] = floor
    whole, tiled = row.get("whole", {}), row.get("tiled", {})
    if whole.get("status") == "ok":
        whole["gap"] = whole["median_s"] / floor
        whole["achieved_gflops"] = row["flops"]["total"] / whole["median_s"] / 1e9
    if tiled.get("status") == "ok":
        work = row["flops"]["total"] * tiled["work_factor"]
        tiled["floor_s"] = work / (gflops * 1e9)
        tiled["gap"] = tiled["median_s"] / tiled["floor_s"]
        tiled["achieved_gflops"] = work / tiled["median_s"] / 1e9
    return row


# --------------------------------------------------------------------------------------------------------
# parent: one subprocess per network


def _child_args(args: argparse.Namespace, name: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--single", name, "--device", args.device,
            "--size", str(args.size), "--bands", str(args.bands), "--ratio", str(args.ratio),
            "--msi-bands", str(args.msi_bands), "--config", args.config, "--repeats", str(args.repeats),
            "--tile-memory-gb", str(args.tile_memory_gb), "--overlap", str(args.overlap),
            "--max-memory-gb", str(args.max_memory_gb), "--probe-size", str(args.probe_size),
            "--seed", str(args.seed)] + (["--threads", str(args.threads)] if args.threads else [])


def run_single_subprocess(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Run ``--single name`` in a fresh interpreter; a crash or kill becomes a row with the reason."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(_child_args(args, name), capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {args.timeout} s"}
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        row = json.loads(lines[-1])
        row["subprocess_wall_s"] = wall
        return row
    why = f"exit code {proc.returncode}"
    if proc.returncode in (-9, 137):
        why += " (SIGKILL: probably killed for memory)"
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return {"name": name, "error": f"{why}: {tail[-400:]}"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = args.methods or list(MODELS)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    gflops = sgemm_gflops(args.device)
    rows = []
    for name in names:
        print(f"[bench_networks] {name} ...", file=sys.stderr, flush=True)
        rows.append(add_floor(run_single_subprocess(args, name), gflops))
        print(f"[bench_networks] {name}: {json.dumps(rows[-1])[:300]}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = machine_description(args.device)
    if args.threads:
        machine["torch_threads"] = args.threads
    return {
        "config": {"size": args.size, "bands": args.bands, "ratio": args.ratio, "msi_bands": args.msi_bands,
                   "config": args.config, "repeats": args.repeats, "tile_memory_bytes": int(args.tile_memory_gb * GIB),
                   "overlap_lr": args.overlap, "max_memory_bytes": int(args.max_memory_gb * GIB),
                   "probe_size": args.probe_size, "seed": args.seed, "dtype": "float32",
                   "inputs": "uniform random in [0, 1), band scaling band_max (run_network default)"},
        "machine": {**machine, "load_average_1min_at_start": load_before, "load_average_1min_at_end": load_after},
        "rates": {"sgemm_gflops": gflops, "sgemm": "2048x2048 float32 matmul, median of 5"},
        "rows": rows,
    }


# --------------------------------------------------------------------------------------------------------
# report


def _t(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"


def _mem(b: int | None) -> str:
    if b is None:
        return "-"
    return f"{b / GIB:.2f} GiB" if b >= GIB else f"{b / 2**20:.0f} MiB"


def _use(part: dict[str, Any]) -> str:
    return f"{max(part['cpu_use']):.2f}" if part.get("cpu_use") else "-"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def markdown(res: dict[str, Any]) -> str:
    c, m = res["config"], res["machine"]
    S = c["size"]
    lines = [
        "# Network forward benchmark",
        "",
        f"`python benchmarks/bench_networks.py --device {m['device']} --size {S} --bands {c['bands']} "
        f"--ratio {c['ratio']} --msi-bands {c['msi_bands']} --config {c['config']} --repeats {c['repeats']} "
        f"--tile-memory-gb {c['tile_memory_bytes'] / GIB:g}`",
        "",
        f"Inputs: HSI 1x{c['bands']}x{S // c['ratio']}x{S // c['ratio']}, MSI 1x{c['msi_bands']}x{S}x{S} "
        f"(ratio {c['ratio']}), {c['inputs']}, {c['dtype']}; `{c['config']}` configurations, untrained weights, "
        "eval mode, `torch.inference_mode` (`run_network`). Each network in a fresh subprocess.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['affinity_cores']} usable), "
        f"{m['memory_gib']} GiB RAM, torch {m['torch']} ({m['torch_threads']} threads); device {m['device']}"
        f"{' ' + m['gpu'] if 'gpu' in m else ''}; sgemm 2048^3 {res['rates']['sgemm_gflops']:.1f} GFLOP/s; "
        f"1-min load average {m['load_average_1min_at_start']:.2f} at the start, "
        f"{m['load_average_1min_at_end']:.2f} at the end.",
        "",
        f"| network | params (ours) | params (authors' code) | GFLOP @ {S}^2 | whole: time | whole: peak | "
        f"tiled: tile (LR px), tiles, work | tiled: time | tiled: peak | floor | gap whole / tiled | "
        "CPU use whole / tiled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in res["rows"]:
        if "error" in row:
            lines.append(f"| {row['name']} | - | - | - | failed | - | - | - | - | - | - | - |")
            notes.append(f"- {row['name']}: {row['error']}")
            continue
        a = row["authors_parameters"]
        authors = "-" if a is None else f"{_count(a['count'])} ({a['setting']})"
        w, t = row["whole"], row["tiled"]
        if w["status"] == "ok":
            w_time, w_peak = _t(w["median_s"]), _mem(w["peak_bytes"])
        else:
            w_time, w_peak = w["status"], "-"
            notes.append(f"- {row['name']}, whole image {w['status']}: {w['reason']}.")
        if t["status"] == "whole":
            tile_txt, t_time, t_peak = f"whole image fits ({t['tile_lr']})", "= whole", "= whole"
        else:
            tile_txt = f"{t['tile_lr']}, {t['tiles']}, {t['work_factor']:.2f}x"
            t_time, t_peak = (_t(t["median_s"]), _mem(t["peak_bytes"])) if t["status"] == "ok" else (t["status"], "-")
        if t["status"] == "failed":
            notes.append(f"- {row['name']}, tiled run failed: {t['reason']}.")
        gap_w = f"{w['gap']:.1f}x" if "gap" in w else "-"
        gap_t = f"{t['gap']:.1f}x" if "gap" in t else "-"
        lines.append(
            f"| {row['name']} | {_count(row['parameters'])} | {authors} | {row['flops']['total'] / 1e9:.3g} | "
            f"{w_time} | {w_peak} | {tile_txt} | {t_time} | {t_peak} | {_t(row['floor_s'])} | {gap_w} / {gap_t} | "
            f"{_use(w)} / {_use(t)} |")
        lin = row["flops"]["linearity"]
        if lin is not None and abs(lin - 1) > 0.01:
            notes.append(f"- {row['name']}: FLOPs are not exactly proportional to pixels (count at "
                         f"{row['flops']['counted_at']}^2 / 4x count at {row['flops']['counted_at_half']}^2 = "
                         f"{lin:.3f}); the {S}^2 figure scales the {row['flops']['counted_at']}^2 count.")
    lines += [
        "",
        "Columns. *params*: trainable parameters of our model in this setting; the authors' count is for the "
        "setting in brackets (computed by hand from their layer list). *GFLOP*: `FlopCounterMode` count of "
        "matmuls and convolutions (2 FLOP per multiply-add; pointwise ops not counted) on one "
        f"{res['rows'][0].get('flops', {}).get('counted_at', c['probe_size'])}^2 forward, scaled by the pixel "
        f"count (the networks are fully convolutional). *whole*: `run_network(tile=None)`, median of "
        f"{c['repeats']} (no full-size warm-up; one small warm-up). *peak*: memory above the level before the "
        "call (CPU: max of sampled RSS growth and VmHWM growth; CUDA: max_memory_allocated growth). *tiled*: "
        f"`run_network` with the tile `choose_tile` picks for a {c['tile_memory_bytes'] / GIB:g} GiB budget "
        f"(its CPU estimate sums all module outputs, so it is conservative), overlap {c['overlap_lr']} LR px; "
        "*work* = sum of tile pixels / image pixels (overlap recomputation). *floor*: whole-image GFLOP / "
        "sgemm rate. *gap*: measured time / floor (tiled: over the floor of the tiled work). *CPU use*: process "
        "CPU time / (wall time x torch threads); well below 1 means the threads did not keep the cores busy "
        "(other jobs on the machine, or serial parts of the network). Whole-image runs "
        f"whose probe-scaled peak estimate exceeds {c['max_memory_bytes'] / GIB:g} GiB are skipped.",
        "",
    ]
    if notes:
        lines += ["Notes:", ""] + notes + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512, help="HR side in pixels")
    ap.add_argument("--bands", type=int, default=31)
    ap.add_argument("--ratio", type=int, default=8)
    ap.add_argument("--msi-bands", type=int, default=3)
    ap.add_argument("--config", default="paper", help="named configuration of every network")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default 1 on CPU, 5 on CUDA)")
    ap.add_argument("--methods", nargs="+", choices=sorted(MODELS), help="networks (default: all registered)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each child (default: torch's)")
    ap.add_argument("--tile-memory-gb", type=float, default=2.0, help="memory budget for choose_tile")
    ap.add_argument("--overlap", type=int, default=4, help="tile overlap in LR pixels")
    ap.add_argument("--max-memory-gb", type=float, default=18.0,
                    help="skip the whole-image run if its estimated peak exceeds this")
    ap.add_argument("--probe-size", type=int, default=128, help="HR side of the warm-up / probe / FLOP input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per network subprocess")
    ap.add_argument("-o", "--output", type=Path, default=HERE / "results")
    ap.add_argument("--single", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.size % args.ratio:
        ap.error(f"--size {args.size} must be a multiple of --ratio {args.ratio}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda requested but torch sees no CUDA device")
    if args.repeats is None:
        args.repeats = 5 if args.device.startswith("cuda") else 1
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if args.single:
        if args.threads:
            torch.set_num_threads(args.threads)
        row = bench_network(args.single, size=args.size, bands=args.bands, ratio=args.ratio,
                            msi_bands=args.msi_bands, config=args.config, device=args.device,
                            repeats=args.repeats, tile_memory_bytes=int(args.tile_memory_gb * GIB),
                            overlap=args.overlap, max_memory_bytes=int(args.max_memory_gb * GIB),
                            probe_size=args.probe_size, seed=args.seed)
        print(json.dumps(row))
        return 0
    res = run(args)
    args.output.mkdir(parents=True, exist_ok=True)
    md = markdown(res)
    with atomic_outputs([args.output / "networks.json", args.output / "networks.md"], overwrite=True) as (j, m):
        j.write_text(json.dumps(res, indent=1) + "\n")
        m.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
