"""Benchmark of the FUSE / R-FUSE closed-form solver against its floor and a plain NumPy/SciPy version.

    python benchmarks/bench_fuse_solver.py [--device cpu] [--size 512] [--bands 31] [--ratio 8] [--repeats 10]

Synthetic data made with :mod:`hsfuse.physics` (random cube, Gaussian PSF of FWHM ``r`` and size
``2 round(r/2) + 1`` as in the FUSE wrapper, random sum-normalised SRF, circular boundary, default offset).
Reported, all measured in this one run:

* median / min / quartiles of the wall time of :func:`hsfuse.methods.fuse_fuse` and of the straightforward
  NumPy/SciPy implementation of the same algorithm below (timed in alternating blocks, so load drifts hit
  both);
  their ratio, and their output agreement;
* peak memory of one solve: peak-RSS increase in a fresh subprocess (CPU: ``VmHWM`` after resetting it
  through ``/proc/self/clear_refs``; ``ru_maxrss`` is inherited across fork/exec and reads 0) or
  ``torch.cuda.max_memory_allocated`` increase (GPU);
* the machine's rates: a 2048^3 sgemm, an rfft2 of ``p`` channels at the benchmark size, a large memory copy;
* the FLOP and byte counts of the algorithm as implemented (formulas in :func:`cost_model`), the floors they
  imply at the measured rates, and measured time / floor.

Results go to ``benchmarks/results/fuse_solver.{json,md}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.fft as sfft
import torch

from hsfuse.methods import fuse_fuse
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------------------
# data


def make_problem(size: int, bands: int, ratio: int, msi_bands: int, *, seed: int = 0):
    """Synthetic measurement + physics at ``size x size x bands``, float32."""
    g = torch.Generator().manual_seed(seed)
    k = 2 * round(ratio / 2) + 1
    obs = FusionObservation(
        SpatialDegradation(ratio=ratio, psf=gaussian_psf(k, fwhm=float(ratio)), boundary="circular"),
        SpectralResponse(torch.rand(msi_bands, bands, generator=g, dtype=torch.float64), normalize="sum"),
    )
    z = torch.rand(1, bands, size, size, generator=g)
    y = obs.A(z)
    return FusionMeasurement(y.hsi.contiguous(), y.msi.contiguous()), obs


# --------------------------------------------------------------------------------------------------------
# straightforward NumPy/SciPy implementation of the same algorithm (independent code path)


def _keys_np(s: np.ndarray) -> np.ndarray:
    a, t = -0.5, np.abs(s)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def fuse_numpy(y_hsi: np.ndarray, y_msi: np.ndarray, srf: np.ndarray, psf: np.ndarray, ratio: int, offset: int,
               p: int, lam: float, workers: int) -> np.ndarray:
    """FUSE with unit noise weights, one image, float32/complex64, full complex FFTs.

    Follows the MATLAB code's structure: the MSI is shifted circularly so that the decimation offset becomes
    0 (``BayesianFusion.m``), the right-hand side takes ``2p`` forward FFTs (zero-filled projected HSI and
    projected MSI), the Woodbury step sums the ``r x r`` alias blocks with a reshape, ``p`` inverse FFTs,
    then the result is shifted back. ``y_hsi (L, h, w)``, ``y_msi (m, H, W)`` -> ``(L, H, W)``.
    """
    L, h, w = y_hsi.shape
    m, H, W = y_msi.shape
    r, d, o = ratio, ratio * ratio, offset
    Y = y_hsi.reshape(L, -1).astype(np.float64)
    _, vecs = np.linalg.eigh(Y @ Y.T / Y.shape[1])
    E = vecs[:, ::-1][:, :p]  # uncentred PCA basis (idHSsub)
    RE = srf @ E
    mu, Q = np.linalg.eigh(RE.T @ RE + lam * np.eye(p))  # C1 = (RE)^T RE + lam I since E^T E = I
    proj_h = (Q.T @ E.T / mu[:, None]).astype(np.float32)
    proj_m = (Q.T @ RE.T / mu[:, None]).astype(np.float32)
    # operators in the shifted frame (offset 0)
    k = psf.shape[0]
    pad = np.zeros((H, W))
    pad[:k, :k] = psf
    D = sfft.fft2(np.roll(pad, (-(k // 2), -(k // 2)), axis=(0, 1))).astype(np.complex64)
    t1 = np.arange(-(2 * r - 1), 2 * r)
    gh, gw = np.zeros(H), np.zeros(W)
    np.add.at(gh, t1 % H, _keys_np(t1 / r))
    np.add.at(gw, t1 % W, _keys_np(t1 / r))
    G = np.outer(sfft.fft(gh), sfft.fft(gw)).astype(np.complex64)
    ym = np.roll(y_msi, (-o, -o), axis=(1, 2))
    # right-hand side / mu: HSI branch + prior (same zero-filled image) and MSI branch
    zf = np.zeros((p, H, W), np.float32)
    zf[:, ::r, ::r] = (proj_h @ y_hsi.reshape(L, -1)).reshape(p, h, w)
    F = sfft.fft2(zf, workers=workers) * (np.conj(D) + np.float32(lam) * G)
    F += sfft.fft2((proj_m @ ym.reshape(m, -1)).reshape(p, H, W), workers=workers)
    # Woodbury
    power = (np.abs(D) ** 2).reshape(r, h, r, w).sum(axis=(0, 2)) / d
    t = (F * D).reshape(p, r, h, r, w).sum(axis=(1, 3)) / d
    u = t / (mu.astype(np.float32)[:, None, None] + power)
    F -= np.tile(u, (1, r, r)) * np.conj(D)
    x = sfft.ifft2(F, workers=workers).real
    z = ((E @ Q).astype(np.float32) @ x.reshape(p, -1)).reshape(L, H, W)
    return np.roll(z, (o, o), axis=(1, 2))


# --------------------------------------------------------------------------------------------------------
# cost model


def cost_model(size: int, bands: int, ratio: int, msi_bands: int, p: int) -> dict[str, Any]:
    """FLOPs and bytes of :func:`hsfuse.methods.sylvester.sylvester_solve` as implemented, per image.

    ``N = S^2`` pixels, ``n = N / r^2`` LR pixels, ``Nh = S (S/2 + 1)`` half-spectrum bins, ``log = log2 N``.
    An FFT of a real channel of ``N`` points counts ``2.5 N log2 N`` (half the ``5 N log2 N`` of a complex
    FFT); a complex FFT of ``n`` points ``5 n log2 n``; a complex multiply-add 8 flops.

    * FFTs: ``(m + p + 1) * 2.5 N log`` (MSI forward, coefficients back, PSF) + ``p * 5 n log2 n`` (LR).
    * GEMM-like: MSI projection ``2 p m (2 Nh)``, reconstruction ``2 L p N``, LR projection ``2 p L n``,
      PCA Gram ``2 L^2 n``.
    * pointwise: RHS term, alias fold, update: ``3 * 8 p Nh``; column fold / divide ``~ 2 p N / r + 8 p n``.
    * bytes, compulsory: read ``Y_m`` (``4 m N``) and ``Y_h`` (``4 L n``), write ``Z`` (``4 L N``).
    * bytes, as implemented (float32/complex64): rfft2 of ``Y_m`` (read ``4mN``, write ``8 m Nh``);
      projection (read ``8 m Nh``, write ``8 p Nh``); RHS addcmul, Woodbury fold, Woodbury update (read
      ``8 p Nh`` each, two of them also write it); irfft2 (copy of the input ``2 x 8 p Nh``, read, write
      ``4 p N``); reconstruction (read ``4 p N``, write ``4 L N``).
    """
    N = size * size
    n = N // (ratio * ratio)
    Nh = size * (size // 2 + 1)
    lg = math.log2(N)
    m, L = msi_bands, bands
    fft = (m + p + 1) * 2.5 * N * lg + p * 5 * n * math.log2(max(n, 2))
    gemm = 2 * p * m * 2 * Nh + 2 * L * p * N + 2 * p * L * n + 2 * L * L * n
    pointwise = 3 * 8 * p * Nh + 2 * p * N / ratio + 8 * p * n
    compulsory = 4 * m * N + 4 * L * n + 4 * L * N
    traffic = (4 * m * N + 8 * m * Nh) + (8 * m * Nh + 8 * p * Nh) + 8 * p * Nh * (2 + 1 + 2) \
        + (2 * 8 * p * Nh + 8 * p * Nh + 4 * p * N) + (4 * p * N + 4 * L * N)
    return {"flop_fft": fft, "flop_gemm": gemm, "flop_pointwise": pointwise, "flop_total": fft + gemm + pointwise,
            "bytes_compulsory": compulsory, "bytes_as_implemented": traffic}


# --------------------------------------------------------------------------------------------------------
# machine


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn, device: str, repeats: int) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_rates(device: str, size: int, p: int) -> dict[str, float]:
    """Measured sgemm GFLOP/s, rfft2 GFLOP/s (2.5 N log2 N per channel) and copy GB/s (read + write)."""
    a = torch.rand(2048, 2048, device=device)
    b = torch.rand(2048, 2048, device=device)
    t = _median_time(lambda: a @ b, device, 5)
    gemm = 2 * 2048**3 / t / 1e9
    x = torch.rand(p, size, size, device=device)
    t = _median_time(lambda: torch.fft.rfft2(x), device, 7)
    fft = p * 2.5 * size * size * math.log2(size * size) / t / 1e9
    src = torch.rand(64 * 2**20, device=device)  # 256 MiB
    dst = torch.empty_like(src)
    t = _median_time(lambda: dst.copy_(src), device, 5)
    copy = 2 * src.numel() * 4 / t / 1e9
    return {"sgemm_gflops": gemm, "rfft2_gflops": fft, "copy_gbps": copy}


def machine_description(device: str) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = {"cpu": cpu, "logical_cores": os.cpu_count(),
            "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "python": platform.python_version(), "device": device}
    if device.startswith("cuda"):
        desc["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return desc


# --------------------------------------------------------------------------------------------------------
# peak memory in a fresh process


def _peak_rss_reset() -> int:
    """Reset this process's peak-RSS mark (``/proc/self/clear_refs``, value 5) and return the current RSS.

    ``ru_maxrss`` is not used: Linux carries it over fork and exec, so a child of a large parent reports the
    parent's peak and a zero increase. Falls back to ``ru_maxrss`` where ``/proc`` is unavailable.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_rss() -> int:
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def _child(args: argparse.Namespace) -> None:
    """Load the saved problem, solve once, print the peak-memory increase (bytes) as JSON."""
    saved = torch.load(args.child_input, weights_only=False)
    y, obs = saved["y"], saved["obs"]
    if args.child == "numpy":
        arrays = (y.hsi[0].numpy(), y.msi[0].numpy(), obs.spectral.matrix.numpy(), obs.spatial.psf.numpy())
        before = _peak_rss_reset()
        fuse_numpy(*arrays, obs.ratio, obs.spatial.offset, args.subspace, 1e-3, torch.get_num_threads())
        peak = _peak_rss() - before
    elif args.device.startswith("cuda"):
        y = FusionMeasurement(y.hsi.to(args.device), y.msi.to(args.device))
        obs = obs.to(args.device)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fuse_fuse(y, obs, subspace_dim=args.subspace)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        before = _peak_rss_reset()
        fuse_fuse(y, obs, subspace_dim=args.subspace)
        peak = _peak_rss() - before
    print(json.dumps({"peak_bytes": int(peak)}))


def peak_memory(kind: str, args: argparse.Namespace, path: str) -> int:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--child-input", path,
           "--device", args.device, "--subspace", str(args.subspace)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


# --------------------------------------------------------------------------------------------------------
# main


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    y_cpu, obs_cpu = make_problem(args.size, args.bands, args.ratio, args.msi_bands)
    y = FusionMeasurement(y_cpu.hsi.to(device), y_cpu.msi.to(device))
    obs = obs_cpu.to(device)
    p = args.subspace
    workers = torch.get_num_threads()
    np_args = (y_cpu.hsi[0].numpy(), y_cpu.msi[0].numpy(), obs_cpu.spectral.matrix.numpy(),
               obs_cpu.spatial.psf.numpy(), args.ratio, obs_cpu.spatial.offset, p, 1e-3, workers)

    def solve_torch():
        return fuse_fuse(y, obs, subspace_dim=p, lam=1e-3)

    z_torch = solve_torch()
    z_np = fuse_numpy(*np_args)
    _sync(device)
    ref = z_torch[0].double().cpu().numpy()
    agreement = float(np.linalg.norm(z_np - ref) / np.linalg.norm(ref))

    t_torch, t_numpy = [], []
    for _ in range(2):  # warm-up
        solve_torch()
        fuse_numpy(*np_args)
    # Alternating blocks (torch x block, NumPy x block, ...), so that load drifts hit both while each is
    # timed warm. Strict one-by-one interleaving measured torch ~2x slower on 2 cores (probably because
    # after a NumPy run the allocator hands out freshly mapped pages again, and idle OpenBLAS/OpenMP worker
    # threads busy-wait for a while); the pause before each block lets such threads go to sleep.
    while len(t_torch) < args.repeats:
        time.sleep(args.pause)
        for _ in range(min(args.block, args.repeats - len(t_torch))):
            _sync(device)
            t0 = time.perf_counter()
            solve_torch()
            _sync(device)
            t_torch.append(time.perf_counter() - t0)
        time.sleep(args.pause)
        for _ in range(min(args.block, args.repeats - len(t_numpy))):
            t0 = time.perf_counter()
            fuse_numpy(*np_args)
            t_numpy.append(time.perf_counter() - t0)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    rates = machine_rates(device, args.size, p)
    cost = cost_model(args.size, args.bands, args.ratio, args.msi_bands, p)
    compute_floor = cost["flop_fft"] / (rates["rfft2_gflops"] * 1e9) + \
        (cost["flop_gemm"] + cost["flop_pointwise"]) / (rates["sgemm_gflops"] * 1e9)
    memory_floor = cost["bytes_compulsory"] / (rates["copy_gbps"] * 1e9)
    traffic_time = cost["bytes_as_implemented"] / (rates["copy_gbps"] * 1e9)
    floor = max(compute_floor, memory_floor)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "problem.pt")
        torch.save({"y": y_cpu, "obs": obs_cpu}, path)
        mem_torch = peak_memory("torch", args, path)
        mem_numpy = peak_memory("numpy", args, path)

    def stats(ts):
        q = np.percentile(ts, [25, 50, 75])
        return {"median_s": float(q[1]), "min_s": float(min(ts)), "q25_s": float(q[0]), "q75_s": float(q[2]),
                "all_s": [float(t) for t in ts]}

    med = statistics.median(t_torch)
    return {
        "config": {"size": args.size, "bands": args.bands, "ratio": args.ratio, "msi_bands": args.msi_bands,
                   "subspace_dim": p, "lam": 1e-3, "repeats": args.repeats, "block": args.block, "dtype": "float32",
                   "psf": f"gaussian {2 * round(args.ratio / 2) + 1}x{2 * round(args.ratio / 2) + 1}, "
                          f"fwhm {args.ratio}", "offset": obs_cpu.spatial.offset, "scipy_workers": workers},
        "machine": {**machine_description(device), "load_average_1min_at_start": load_before,
                    "load_average_1min_after_timing": load_after},
        "torch_solver": stats(t_torch),
        "numpy_reference": stats(t_numpy),
        "speedup_numpy_over_torch_median": statistics.median(t_numpy) / med,
        "relative_difference_numpy_vs_torch": agreement,
        "peak_memory_bytes": {"torch": mem_torch, "numpy": mem_numpy,
                              "method": "torch.cuda.max_memory_allocated increase" if device.startswith("cuda")
                              else "peak RSS (VmHWM, reset before the solve) minus RSS before, fresh subprocess"},
        "rates": rates,
        "cost": cost,
        "floor": {"compute_s": compute_floor, "memory_compulsory_s": memory_floor, "floor_s": floor,
                  "traffic_as_implemented_s": traffic_time, "measured_over_floor": med / floor,
                  "achieved_gflops": cost["flop_total"] / med / 1e9},
    }


def markdown(res: dict[str, Any]) -> str:
    c, m, r, cost, fl = res["config"], res["machine"], res["rates"], res["cost"], res["floor"]
    ms = lambda s: f"{1e3 * s:.1f} ms"  # noqa: E731
    t, n = res["torch_solver"], res["numpy_reference"]
    lines = [
        "# FUSE closed-form solver benchmark",
        "",
        f"`python benchmarks/bench_fuse_solver.py --device {m['device']} --size {c['size']} --bands {c['bands']} "
        f"--ratio {c['ratio']} --repeats {c['repeats']}`",
        "",
        f"Problem: {c['size']}x{c['size']}x{c['bands']}, ratio {c['ratio']}, {c['msi_bands']} MSI bands, subspace "
        f"p = {c['subspace_dim']}, {c['psf']}, offset {c['offset']}, circular, {c['dtype']}.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['affinity_cores']} usable), torch "
        f"{m['torch']} ({m['torch_threads']} threads), numpy {m['numpy']}, scipy {m['scipy']} "
        f"(workers {c['scipy_workers']}); device {m['device']}{' ' + m['gpu'] if 'gpu' in m else ''}; "
        f"1-min load average {m['load_average_1min_at_start']:.2f} before, "
        f"{m['load_average_1min_after_timing']:.2f} after the timing (other jobs on the machine inflate the times).",
        "",
        "| implementation | median | min | quartiles | peak memory |",
        "|---|---|---|---|---|",
        f"| hsfuse `fuse_fuse` (torch, rfft, Woodbury) | {ms(t['median_s'])} | {ms(t['min_s'])} | "
        f"{ms(t['q25_s'])} - {ms(t['q75_s'])} | {res['peak_memory_bytes']['torch'] / 2**20:.0f} MiB |",
        f"| plain NumPy/SciPy, same algorithm (c2c FFTs) | {ms(n['median_s'])} | {ms(n['min_s'])} | "
        f"{ms(n['q25_s'])} - {ms(n['q75_s'])} | {res['peak_memory_bytes']['numpy'] / 2**20:.0f} MiB |",
        "",
        f"Speed ratio (NumPy median / torch median, alternating blocks of {c['block']} runs): "
        f"**{res['speedup_numpy_over_torch_median']:.2f}x**. Outputs agree to a relative difference of "
        f"{res['relative_difference_numpy_vs_torch']:.1e}. Peak memory: {res['peak_memory_bytes']['method']}.",
        "",
        "## Floor",
        "",
        f"Measured rates in this run: sgemm 2048^3 {r['sgemm_gflops']:.1f} GFLOP/s; rfft2 of p x {c['size']}^2 "
        f"{r['rfft2_gflops']:.1f} GFLOP/s (2.5 N log2 N per channel); copy {r['copy_gbps']:.1f} GB/s (read + write).",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| FLOP, FFTs ((m + p + 1) 2.5 N log2 N + p 5 n log2 n) | {cost['flop_fft'] / 1e9:.3f} G |",
        f"| FLOP, products (2pm 2Nh + 2LpN + 2pLn + 2L^2 n) | {cost['flop_gemm'] / 1e9:.3f} G |",
        f"| FLOP, pointwise (24 p Nh + 2pN/r + 8pn) | {cost['flop_pointwise'] / 1e9:.3f} G |",
        f"| FLOP, total | {cost['flop_total'] / 1e9:.3f} G |",
        f"| bytes, compulsory (read Y_m, Y_h; write Z) | {cost['bytes_compulsory'] / 1e6:.1f} MB |",
        f"| bytes, as implemented (passes over full-size arrays) | {cost['bytes_as_implemented'] / 1e6:.1f} MB |",
        f"| compute floor (FFT FLOP / FFT rate + other FLOP / sgemm rate) | {ms(fl['compute_s'])} |",
        f"| memory floor (compulsory bytes / copy rate) | {ms(fl['memory_compulsory_s'])} |",
        f"| traffic time as implemented (bytes / copy rate) | {ms(fl['traffic_as_implemented_s'])} |",
        f"| floor = max(compute, memory) | {ms(fl['floor_s'])} |",
        f"| measured median / floor | **{fl['measured_over_floor']:.1f}x** |",
        f"| achieved rate (total FLOP / median) | {fl['achieved_gflops']:.1f} GFLOP/s |",
        "",
        "N = S^2 pixels, n = N/r^2, Nh = S(S/2+1) half-spectrum bins, L bands, m MSI bands, p subspace dim. "
        "See `cost_model` in the script for the byte formula.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--bands", type=int, default=31)
    ap.add_argument("--ratio", type=int, default=8)
    ap.add_argument("--msi-bands", type=int, default=3)
    ap.add_argument("--subspace", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--block", type=int, default=5, help="runs per block of one implementation")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds of sleep before each block")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", choices=["torch", "numpy"], help=argparse.SUPPRESS)
    ap.add_argument("--child-input", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    if args.size % args.ratio:
        ap.error(f"--size {args.size} must be a multiple of --ratio {args.ratio}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda requested but torch sees no CUDA device")
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuse_solver.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    (args.out / "fuse_solver.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
