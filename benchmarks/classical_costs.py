"""Arithmetic floor of the classical fusion methods: FLOPs of their dominant steps as implemented, and the floor.

Issue 17 item 3: "for each method count the arithmetic of its dominant steps and report measured time over floor,
as the FUSE solver benchmark does" (``benchmarks/bench_fuse_solver.py``). A plain module (no package imports of
``benchmarks``); ``benchmarks/bench_classical.py`` loads it by file path::

    spec = importlib.util.spec_from_file_location("classical_costs", HERE / "classical_costs.py")
    costs = importlib.util.module_from_spec(spec); spec.loader.exec_module(costs)
    rates = costs.machine_rates()                                    # once per run
    counts = costs.measure_counts(name, y, physics, options)         # optional: data-dependent counts
    row.update(costs.report(name, (H, W, L, m, ratio, psf_size), seconds, rates, options=opts, counts=counts))

API:

* :func:`cost` ``(method, *, H, W, L, m, ratio, psf_size, options=None, counts=None) -> dict``: ``flop_fft``,
  ``flop_gemm`` (matrix products, incl. convolutions, as multiply-adds x 2), ``flop_other`` (pointwise work, matrix-
  vector products, small dense factorisations), ``flop_total``, ``bytes_compulsory`` (read both inputs once, write
  the output once, float32), ``formula`` (the counted steps), ``dtype`` (the working precision, which picks the
  rates), ``assumptions``, ``steps`` (name -> kind, flops) and ``flop_torch_counted`` (what
  ``torch.utils.flop_counter.FlopCounterMode`` reports for the same run: the ``mm``/``bmm``/convolution steps, a
  complex product counted as 2 per complex multiply-add as torch does, i.e. a quarter of its real flops).
* :func:`floor` ``(cost, rates) -> {compute_s, memory_s, floor_s}``: as ``bench_fuse_solver``: compute =
  FFT flops / FFT rate + (gemm + other) flops / GEMM rate, memory = compulsory bytes / copy rate, floor = max.
  float64 methods use the float64 rates when ``rates`` has them (``dgemm_gflops``, ``rfft2_f64_gflops``).
* :func:`machine_rates` ``(size=256, channels=10) -> rates``: measured 2048^3 sgemm and dgemm, rfft2 (float32,
  float64) of ``channels x size^2`` counted as ``2.5 N log2 N`` per channel, and a 256 MiB copy (read + write);
  the same keys as ``bench_fuse_solver.machine_rates`` plus the float64 ones. Any dict with ``sgemm_gflops``,
  ``rfft2_gflops``, ``copy_gbps`` works.
* :func:`measure_counts` ``(method, y, physics, options=None) -> counts``: runs the method once with counting hooks
  (no file is changed: module attributes are patched for the run) and returns its data-dependent counts: CNMF's
  endmember count and the NMF updates actually made, LTMR's k-means iterations and cluster count, GSA's band-group
  sizes, FUSE's working dtype and weight branch. Without counts, :func:`cost` uses the documented defaults (see
  ``assumptions``: CNMF's loops at their caps, k-means at its cap of 500 iterations, i.e. upper bounds there).
* :func:`report` ``(method, shape, measured_s, rates, *, options=None, counts=None) -> dict``: measured / floor.

Conventions (as ``bench_fuse_solver.cost_model``): an FFT of ``N`` points (``N``: all points of the 1-D or 2-D
transform) counts ``2.5 N log2 N`` when torch runs it real-to-complex or complex-to-real (``rfft*``, ``irfft*``,
1-D ``fft`` of a real tensor) and ``5 N log2 N`` when complex-to-complex (``ifft``, and ``fft2`` of a real tensor,
which torch promotes to complex); a real multiply-add 2 flops, a complex one 8; a transposed convolution counts
input elements x taps (what it computes, and what torch's flop counter counts); a symmetric eigendecomposition
with vectors ``9 n^3`` (QR algorithm, Golub & Van Loan; a complex Hermitian one 4 x that), without ``4/3 n^3``,
an inverse ``2 n^3``, a Cholesky ``n^3 / 3``.
Pointwise counts are approximate (a few flops per element per pass, as listed in each formula); they are small
next to the products and FFTs everywhere except GSA / SFIM / GLP / bicubic, which are memory-light one-pass methods.

``python benchmarks/classical_costs.py [--ratio 4] [--methods ...]`` times every method once (one thread, after a
warm-up that also measures the counts) on the Pavia U case and prints measured / floor.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from typing import Any
from unittest import mock

import torch

__all__ = ["cost", "floor", "machine_rates", "measure_counts", "report", "METHODS"]

#: the methods this module models (registry names)
METHODS = ("bicubic", "gsa", "sfim", "glp", "hysure", "cnmf", "fuse", "ltmr", "cstf")

#: float64-only methods (computed in float64 whatever the input)
_FLOAT64 = {"gsa", "sfim", "glp", "cnmf"}


def _lg(n: float) -> float:
    return math.log2(max(float(n), 2.0))


def rfft_flops(n: float) -> float:
    """A real FFT of ``n`` points (1-D or 2-D with ``n`` points in all)."""
    return 2.5 * n * _lg(n)


def cfft_flops(n: float) -> float:
    """A complex FFT of ``n`` points."""
    return 5.0 * n * _lg(n)


def eigh_flops(n: float) -> float:
    return 9.0 * n**3


class _Tally:
    """Named steps with their kind (fft, gemm, other) and flops."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}

    def add(self, name: str, kind: str, flops: float, *, complex_gemm: bool = False, torch_counted: bool = True
            ) -> None:
        assert kind in ("fft", "gemm", "other")
        s = self.steps.setdefault(name, {"kind": kind, "flops": 0.0, "complex": complex_gemm,
                                         "torch_counted": kind == "gemm" and torch_counted})
        s["flops"] += float(flops)

    def total(self, kind: str) -> float:
        return sum(s["flops"] for s in self.steps.values() if s["kind"] == kind)

    def torch_counted(self) -> float:
        return sum(s["flops"] / (4.0 if s["complex"] else 1.0) for s in self.steps.values() if s["torch_counted"])


# --------------------------------------------------------------------------------------------------------------
# shared pieces


def _cubic_upsample(t: _Tally, name: str, channels: int, h: int, w: int, r: int) -> None:
    """``upsample_cubic``: two transposed 1-D convolutions with ``4r - 1`` taps on the 2-pixel padded image."""
    k = 4 * r - 1
    t.add(name, "gemm", 2 * channels * k * (h + 4) * (w + 4) + 2 * channels * k * (r * h) * (w + 4))


def _fir23_upsample(t: _Tally, name: str, channels: int, h: int, w: int, r: int) -> None:
    """``upsample_fir23``: two transposed 1-D convolutions with 45 taps on the circularly padded image."""
    k, half = 45, 22
    p = -(-half // r) + 1
    t.add(name, "gemm", 2 * channels * k * (h + 2 * p) * (w + 2 * p) + 2 * channels * k * (r * h) * (w + 2 * p))


def _pca(t: _Tally, L: int, n: int) -> None:
    """``pca_subspace``: uncentred Gram of the LR pixels (float64) and its eigendecomposition."""
    t.add("PCA Gram Y_h Y_h^T", "gemm", 2 * L * L * n)
    t.add("PCA eigh (L x L)", "other", eigh_flops(L))


def _vca(t: _Tally, L: int, n: int, p: int, prefix: str) -> None:
    """VCA (either projection): SNR Gram + projection, projection Gram + projection, ``p`` selection products."""
    t.add(f"{prefix} VCA Grams (2 x L x L)", "gemm", 2 * (2 * L * L * n))
    t.add(f"{prefix} VCA projections (2 x p x L)", "gemm", 2 * (2 * p * L * n))
    t.add(f"{prefix} VCA selection f^T Y (p times)", "gemm", 2 * p * p * n)
    t.add(f"{prefix} VCA endmembers U X[:, idx]", "gemm", 2 * L * p * p)
    t.add(f"{prefix} VCA eighs and centring", "other", 2 * eigh_flops(L) + 4 * L * n)


# --------------------------------------------------------------------------------------------------------------
# per method


def _bicubic(t, a, c, o):
    _cubic_upsample(t, "cubic upsampling (transposed conv)", a["L"], a["h"], a["w"], a["r"])
    t.add("replicate padding", "other", 0.0)
    return ("transposed conv, 4r-1 taps, rows then columns: 2 L (4r-1) [(h+4)(w+4) + r h (w+4)]", [])


def _msi_blur(t, a, name="MSI blur (depthwise conv, full HR grid)"):
    t.add(name, "gemm", 2 * a["m"] * a["N"] * a["k"] ** 2)


def _gsa(t, a, c, o):
    L, m, n, N, h, w, r = a["L"], a["m"], a["n"], a["N"], a["h"], a["w"], a["r"]
    assumptions = []
    if o["degrade"] == "physics":
        _msi_blur(t, a)
    else:
        t.add("MSI block means", "other", m * N)
    _cubic_upsample(t, "cubic upsampling of the HSI (transposed conv)", L, h, w, r)
    t.add("band groups: standardised MSI_lr x HSI^T", "gemm", 2 * m * L * n)
    t.add("band groups: standardise", "other", 4 * (m + L) * n)
    groups = c.get("gsa_groups")
    if groups is None:
        groups = [L / m] * m
        assumptions.append(f"GSA band groups assumed equal (L/m = {L / m:.1f} bands each); measure_counts gives them")
    t.add("group LR covariances (sum g^2)", "gemm", sum(2 * g * g * n for g in groups))
    t.add("group eigh (sum 9 g^3)", "other", sum(eigh_flops(g) for g in groups))
    t.add("intensities alpha^T U(H_k) (1 x g by g x N)", "gemm", 2 * L * N)
    t.add("gains U(H_k) i0 (mat-vec), LR cross terms", "other", 2 * L * N + 2 * L * n)
    t.add("centring, injection, mean reset", "other", 7 * L * N + 2 * L * n + 4 * m * N)
    return ("MSI blur 2 m k^2 N; cubic upsampling of L bands; groups 2 m L n; per group 2 g^2 n + 2 g N (intensity) "
            "+ 2 g N (gains, mat-vec); ~7 L N pointwise", assumptions)


def _synthesis(t, a, o):
    """``_design_sums`` + the (nn)ls solve of SFIM / GLP."""
    L, m, n = a["L"], a["m"], a["n"]
    t.add("design sums A^T A", "gemm", 2 * (m + 1) ** 2 * n)
    t.add("design sums A^T H", "gemm", 2 * (m + 1) * L * n)
    t.add("synthesis solve ((m+1) x (m+1))", "other", 10 * (m + 1) ** 3 * (L if o["synthesis"] == "nnls" else 1))


def _sfim(t, a, c, o):
    L, m, n, N = a["L"], a["m"], a["n"], a["N"]
    if o["degrade"] == "physics":
        _msi_blur(t, a)
    else:
        t.add("MSI block means", "other", m * N)
    _synthesis(t, a, o)
    t.add("LR synthetic PANs [MSI_lr, 1] x", "gemm", 2 * m * L * n)
    t.add("HR synthetic PANs [MSI, 1] x", "gemm", 2 * m * L * N)
    t.add("ratio H / P_lr, nearest upsampling, modulation", "other", 3 * L * n + 4 * L * N)
    return ("MSI blur 2 m k^2 N; normal equations 2 (m+1)(m+1+L) n; synthetic PANs 2 m L (n + N); ~4 L N pointwise",
            [])


def _glp(t, a, c, o):
    L, m, N, h, w, r = a["L"], a["m"], a["N"], a["h"], a["w"], a["r"]
    if o["degrade"] == "physics":
        _msi_blur(t, a, "MSI blur for the regression (depthwise conv)")
    else:
        t.add("MSI block means", "other", m * N)
    if o["lowpass"] == "physics":
        _msi_blur(t, a, "MSI low-pass (depthwise conv)")
    else:
        t.add("MSI low-pass (depthwise conv)", "gemm", 2 * m * N * (2 * r + 1) ** 2)
    _fir23_upsample(t, "23-tap upsampling of S G [Y_m, 1] (transposed conv)", m + 1, h, w, r)
    _fir23_upsample(t, "23-tap upsampling of the HSI (transposed conv)", L, h, w, r)
    _synthesis(t, a, o)
    t.add("covariances HSU u^T and u u^T", "gemm", 2 * L * (m + 1) * N + 2 * (m + 1) ** 2 * N)
    t.add("injection (x g)^T detail", "gemm", 2 * (m + 1) * L * N)
    t.add("detail, centring, add, clip", "other", 3 * (m + 1) * N + 3 * L * N)
    return ("2 MSI blurs 2 m k^2 N each; 45-tap transposed-conv upsampling of m+1 and L bands; normal equations; "
            "covariances 2 (m+1)(L+m+1) N; injection 2 (m+1) L N; ~3 L N pointwise", [])


def _hysure(t, a, c, o):
    L, m, n, N, H, W = a["L"], a["m"], a["n"], a["N"], a["H"], a["W"]
    p = min(o["subspace_dim"], L, n)
    it = o["iterations"]
    Nh = H * (W // 2 + 1)
    assumptions = []
    if o["basis"] == "svd":
        _pca(t, L, n)
    else:
        for i in range(20):
            _vca(t, L, n, p, "VCA basis")
        assumptions.append("basis=vca: 20 VCA runs counted")
    if o["estimate_operators"]:
        assumptions.append("estimate_operators=true: the estimator's cost is not counted")
    t.add("setup: E^T Y_h, (lambda_m ...)^-1 (RE)^T Y_m", "gemm", 2 * p * L * n + 2 * p * m * N)
    t.add("setup: OTF, denominator", "fft", rfft_flops(N))
    t.add("ADMM: 2 rfft2 + 2 irfft2 of p channels", "fft", it * 4 * p * rfft_flops(N))
    t.add("ADMM: V1 p x p on the kept pixels", "gemm", it * 2 * p * p * n)
    t.add("ADMM: V2 p x p on every pixel", "gemm", it * 2 * p * p * N)
    t.add("ADMM: spectra (conj(FB) mult, add, divide; FB mult)", "other", it * 16 * p * Nh)
    t.add("ADMM: differences, shrinkage, duals (~24 p N)", "other", it * 24 * p * N)
    t.add("output E X", "gemm", 2 * L * p * N)
    return (f"{it} iterations x [4 p real FFTs of N points + 2 p^2 (n + N) + ~16 p Nh + ~24 p N pointwise]; "
            "PCA 2 L^2 n; output 2 L p N", assumptions)


def _cnmf_default_counts(a, o, M):
    """NMF updates when every inner loop runs to its cap (``outer_iterations`` blocks, no early stop)."""
    m = a["m"]
    I1 = o["inner_iterations"] if o["inner_iterations"] is not None else (75 if m == 1 else 200)
    O = o["outer_iterations"]
    wm = m > 3
    h_hsi = 3 * I1 + (I1 - 1) + O * ((I1 - 1) if wm else 0)
    w_hsi = (I1 - 1) + O * (I1 + I1 - 1)
    cost_hsi = 3 * I1 + (I1 - 1) + 1 + O * (I1 + I1 - 1 + 1)
    msi_blocks = 1 + (O if O > 1 else 0)
    h_msi = msi_blocks * (I1 + I1 - 1)
    w_msi = msi_blocks * ((I1 - 1) if wm else 0)
    cost_msi = msi_blocks * (I1 + I1 - 1 + 1)
    return {"h_hsi": h_hsi, "w_hsi": w_hsi, "cost_hsi": cost_hsi, "h_msi": h_msi, "w_msi": w_msi,
            "cost_msi": cost_msi, "downsamples": O}


def _cnmf(t, a, c, o):
    L, m, n, N, h, w, r, k = a["L"], a["m"], a["n"], a["N"], a["h"], a["w"], a["r"], a["k"]
    assumptions = []
    M = c.get("endmembers", o["endmembers"])
    if M is None:
        M = min(30, L)
        assumptions.append(f"CNMF endmembers M = min(30, L) = {M} (the rule's floor; VD may raise it: "
                           "measure_counts gives the real M)")
    if all(key in c for key in ("h_hsi", "w_hsi", "cost_hsi", "h_msi", "w_msi", "cost_msi")):
        u = {key: c[key] for key in ("h_hsi", "w_hsi", "cost_hsi", "h_msi", "w_msi", "cost_msi")}
        u["downsamples"] = c.get("downsamples", o["outer_iterations"])
        assumptions.append("CNMF NMF updates: measured counts")
    else:
        u = _cnmf_default_counts(a, o, M)
        assumptions.append("CNMF NMF updates counted at the loops' caps (no early stop): an upper bound")
    if o["endmembers"] is None:
        t.add("VD: correlation and covariance Grams", "gemm", 2 * (2 * L * L * n))
        t.add("VD: eigvalsh x 2, centring", "other", 2 * (4 / 3) * L**3 + 2 * L * n)
    _vca(t, L, n, M, "endmembers:")

    def h_update(K, P):  # augmented W (K+1) x M, V (K+1) x P, H M x P
        return 2 * M * (K + 1) * P + 2 * M * M * (K + 1) + 2 * M * M * P, 4 * M * P

    def w_update(K, P):
        return 2 * K * P * M + 2 * M * M * P + 2 * K * M * M, 4 * K * M

    def cost_eval(K, P):
        return 2 * K * M * P, 3 * K * P

    for side, K, P in (("hsi", L, n), ("msi", m, N)):
        for kind, f in (("h", h_update), ("w", w_update), ("cost", cost_eval)):
            count = u[f"{kind}_{side}"]
            g, pw = f(K, P)
            label = {"h": "H updates", "w": "W updates", "cost": "cost evaluations"}[kind]
            t.add(f"{side.upper()} NMF {label} ({count})", "gemm", count * g)
            t.add(f"{side.upper()} NMF {label}: factors and residuals (pointwise)", "other", count * pw)
    t.add("W_m = R W_h", "gemm", 2 * m * L * M)
    _cubic_upsample(t, "abundance cubic upsampling (transposed conv)", M, h, w, r)
    t.add("abundance blur + decimation S B H_m (strided conv)", "gemm", u["downsamples"] * 2 * M * k * k * n)
    t.add("output W_h H_m", "gemm", 2 * L * M * N)
    formula = (f"M = {M} endmembers; per NMF H update 2 M (K+1) P + 2 M^2 (K+1) + 2 M^2 P, W update 2 K P M + "
               f"2 M^2 P + 2 K M^2, cost 2 K M P (HSI: K = L, P = n; MSI: K = m, P = N); updates: HSI "
               f"{u['h_hsi']} H / {u['w_hsi']} W / {u['cost_hsi']} costs, MSI {u['h_msi']} H / {u['w_msi']} W / "
               f"{u['cost_msi']} costs; VD + VCA ~8 L^2 n; output 2 L M N")
    return formula, assumptions


def _sylvester(t, a, *, p, prior_given, two_branches, prefix, times=1):
    """One ``sylvester_solve``: FFTs, products and Woodbury pointwise work (``times`` calls)."""
    L, m, n, N, H, W = a["L"], a["m"], a["n"], a["N"], a["H"], a["W"]
    Nh = H * (W // 2 + 1)
    q = 2 * p if two_branches else p
    t.add(f"{prefix}p x p algebra (RE, G, K, Cholesky, eigh, projections)", "gemm",
          times * (2 * m * L * p + 2 * p * p * L + 2 * p * p * m + 6 * p**3 + 4 * L * p * p + 2 * p * p * L
                   + 2 * p * p * m + (0 if prior_given else 2 * p * p * L)))
    t.add(f"{prefix}p x p factorisations", "other", times * (p**3 / 3 + p**3 + eigh_flops(p)))
    t.add(f"{prefix}FFTs: OTF, rfft2 of the m MSI bands, irfft2 of p channels"
          + (", rfft2 of the p prior channels" if prior_given else ""), "fft",
          times * ((1 + m + p + (p if prior_given else 0)) * rfft_flops(N)))
    t.add(f"{prefix}FFTs: fft2 of {'2p' if two_branches else 'p'} LR channels (complex: fft2 promotes)"
          + ("" if prior_given else ", 1-D cubic spectra"), "fft",
          times * (q * cfft_flops(n) + (0 if prior_given else rfft_flops(H) + rfft_flops(W))))
    t.add(f"{prefix}MSI projection on the spectrum (p x m, real GEMM on re/im)", "gemm", times * 2 * p * m * 2 * Nh)
    t.add(f"{prefix}HSI projection ({'2p' if two_branches else 'p'} x L on LR pixels)", "gemm",
          times * 2 * q * L * n)
    if prior_given:
        t.add(f"{prefix}prior projection on the spectrum (p x p)", "gemm", times * 2 * p * p * 2 * Nh)
    t.add(f"{prefix}reconstruction E x (L x p)", "gemm", times * 2 * L * p * N)
    t.add(f"{prefix}Woodbury: RHS addcmul(s), alias fold, update (8 flops per complex madd)", "other",
          times * ((3 + (1 if two_branches or prior_given else 0)) * 8 * p * Nh + 12 * p * n + 3 * Nh))


def _fuse(t, a, c, o):
    L, m, n, N, H, W, r, h, w = a["L"], a["m"], a["n"], a["N"], a["H"], a["W"], a["r"], a["h"], a["w"]
    assumptions = []
    p = min(o["subspace_dim"], L, n)
    if o["subspace"] is None:
        _pca(t, L, n)
    auto = o["lam"] == "auto" and o["prior"] == "cubic"
    solve_a = a
    if o["border"] == "pad":  # the solve runs on the smoothly padded images (margin in LR pixels)
        margin = o["pad"] if o["pad"] is not None else max(2, -(-3 * a["k"] // r))
        hp, wp = h + 2 * margin, w + 2 * margin
        solve_a = {**a, "h": hp, "w": wp, "n": hp * wp, "H": r * hp, "W": r * wp, "N": r * r * hp * wp}
        t.add("border=pad: smooth periodic extension of both images", "other",
              3 * (L * (hp * wp - n) + m * r * r * (hp * wp - n)))
        assumptions.append(f"border=pad: solve on the padded {r * hp} x {r * wp} grid (margin {margin} LR pixels)")
    if o["prior"] == "original":
        t.add("original prior: correlation, eigenvalues, coefficients", "gemm",
              2 * L * L * n + 2 * L * L * p + 2 * p * L * n)
        t.add("original prior: spline mean (two 1-D matrix products)", "gemm", 2 * p * H * h * w + 2 * p * H * W * w)
        _sylvester(t, a, p=p, prior_given=True, two_branches=False, prefix="solve: ")
        return ("prior=original: PCA 2 L^2 n; spline mean 2 p H w (h + W); one Sylvester solve with a given prior "
                "mean: (1 + m + 2p) rfft2 of N points + p fft2 of n points; 2 p m 2Nh + 2 p L n + 2 p^2 2Nh "
                "+ 2 L p N; Woodbury ~32 p Nh", assumptions)
    if auto:
        sigma_given_h, sigma_given_m = o["sigma_hsi"] is not None, o["sigma_msi"] is not None
        if not sigma_given_h:  # estimate_noise_sigma(hsi)
            nb = 16
            if L < nb and (h - 2) * (w - 2) >= 2 * (9 * L + 1):
                P, cnt = 9 * L + 1, (h - 2) * (w - 2)
                t.add("noise (HSI): Gram of neighbour features", "gemm", 2 * P * P * cnt)
                t.add("noise (HSI): inverse", "other", 2 * P**3)
            else:
                P, cnt = L + 1, n
                t.add("noise (HSI): Gram of [bands; 1]", "gemm", 2 * P * P * cnt)
                if cnt >= 2 * (L + 1):
                    t.add("noise (HSI): inverse", "other", 2 * P**3)
                else:
                    q = (cnt // 2 - 2) // 2
                    t.add("noise (HSI): windowed inverses", "other", L * 2 * (2 * q + 2) ** 3)
        if not sigma_given_m:  # estimate_noise_sigma(msi)
            if m < 16 and (H - 2) * (W - 2) >= 2 * (9 * m + 1):
                P, cnt = 9 * m + 1, (H - 2) * (W - 2)
                t.add("noise (MSI): Gram of 3x3-neighbour features", "gemm", 2 * P * P * cnt)
                t.add("noise (MSI): inverse, feature copies", "other", 2 * P**3 + P * cnt)
            else:
                P, cnt = m + 1, N
                t.add("noise (MSI): Gram of [bands; 1]", "gemm", 2 * P * P * cnt)
                t.add("noise (MSI): inverse", "other", 2 * P**3)
        t.add("lam=auto: coefficients E^T Y_h", "gemm", 2 * p * L * n)
        _cubic_upsample(t, "lam=auto: cubic U(E^T Y_h) of the p coefficients (transposed conv, float64)", p, h, w, r)
        t.add("lam=auto: residual Y_m - R E U(E^T Y_h), R E (twice)", "gemm", 2 * m * p * N + 2 * 2 * m * L * p)
        t.add("lam=auto: residual energy", "other", 3 * m * N)
    two = c.get("fuse_two_branches")
    if two is None:
        two = auto and o["sigma_hsi"] is None
        assumptions.append("FUSE weight branch inferred: per-band estimated HSI noise -> separate prior and HSI "
                           "projections (2p LR channels)" if two else "FUSE weight branch: equal HSI weights")
    _sylvester(t, solve_a, p=p, prior_given=False, two_branches=two, prefix="solve: ")
    formula = ("PCA 2 L^2 n; " + ("noise regressions 2 (L+1)^2 n + 2 (9m+1)^2 (H-2)(W-2) + inverses; lam: 2 p L n + "
                                 "cubic U(E^T Y_h) + 2 m p N; " if auto else "")
               + f"one Sylvester solve: (1 + m + p) rfft2 of N points + {'2p' if two else 'p'} fft2 of n points; "
               f"products 2 p m 2Nh + 2 {'(2p)' if two else 'p'} L n + 2 L p N; Woodbury ~{32 if two else 24} p Nh")
    return formula, assumptions


def _ltmr(t, a, c, o):
    L, m, n, N, H, W, r, h, w = a["L"], a["m"], a["n"], a["N"], a["H"], a["W"], a["r"], a["h"], a["w"]
    assumptions = []
    p = min(o["subspace_dim"], L, n)
    s, step, T = o["patch_size"], o["patch_size"] - o["overlap"], o["iterations"]
    nr = len(range(0, H - s + 1, step)) + 1
    nc = len(range(0, W - s + 1, step)) + 1
    P = nr * nc
    d = m * s * s
    K0 = min(o["clusters"], P)
    _pca(t, L, n)
    if K0 > 1:
        if "kmeans_assign_k" in c:
            assign_k, iters = c["kmeans_assign_k"], c["kmeans_iterations"]
            assumptions.append(f"k-means: measured {iters} Lloyd iterations")
        else:
            iters = 500
            assign_k = K0 * (iters + 1)
            assumptions.append("k-means counted at its cap of 500 Lloyd iterations (an upper bound; measure_counts "
                               "gives the real count)")
        t.add("k-means assignments x c^T (P x d by d x K)", "gemm", 2 * P * d * assign_k)
        t.add("k-means argmax, centroid sums and norms", "other", 2 * P * assign_k + iters * 3 * P * d)
    G = c.get("clusters_final", K0)
    _cubic_upsample(t, "start: cubic upsampling (transposed conv)", L, h, w, r)
    t.add("start: V = E^T U(Y_h)", "gemm", 2 * p * L * N)
    _sylvester(t, a, p=p, prior_given=True, two_branches=False, prefix="ADMM data step: ", times=T)
    t.add("ADMM: A = E^T Z", "gemm", T * 2 * p * L * N)
    nf = s * s // 2 + 1
    t.add("ADMM t-SVD: rfft / irfft along the s^2 patch pixels", "fft", T * 2 * P * p * rfft_flops(s * s))
    t.add("ADMM t-SVD: group Grams (outer products + index_add, complex)", "other", T * 8 * nf * P * p * p)
    t.add("ADMM t-SVD: eigh of the f x G Hermitian p x p Grams (~4 x 9 p^3)", "other", T * nf * G * 4 * eigh_flops(p))
    t.add("ADMM t-SVD: V diag(g/sigma) V^H per group (complex)", "gemm", T * 8 * nf * G * p**3, complex_gemm=True)
    t.add("ADMM t-SVD: patch rows times their group's matrix (complex)", "gemm", T * 8 * nf * P * p * p,
          complex_gemm=True)
    t.add("ADMM: prox argument, patch join (index_add, average), dual update", "other",
          T * (2 * p * N + P * p * s * s + p * N + 3 * p * N + 2 * p * N))
    formula = (f"PCA 2 L^2 n; k-means 2 P d K per Lloyd iteration (P = {P} patches, d = m s^2 = {d}, K = {K0}); "
               f"{T} iterations x [Sylvester solve with a given prior ((1 + m + 2p) rfft2 of N + p fft2 of n; "
               f"2 p m 2Nh + 2 p L n + 2 p^2 2Nh + 2 L p N) + E^T Z 2 p L N + t-SVD of {G} groups over "
               f"{nf} frequencies: 8 f G p^3 + 8 f P p^2 (complex) + Grams 8 f P p^2 + eigh]")
    return formula, assumptions


def _cstf(t, a, c, o):
    L, m, n, N, H, W, h, w = a["L"], a["m"], a["n"], a["N"], a["H"], a["W"], a["h"], a["w"]
    nr, nc, ns = min(o["atoms_rows"], H), min(o["atoms_cols"], W), min(o["atoms_spectral"], L)
    T, cg, outer = o["admm_iterations"], o["cg_iterations"], o["iterations"]
    Sc = nr * nc * ns
    # start
    t.add("start: MSI mode-1/mode-2 Grams", "gemm", 2 * H * H * W * m + 2 * W * W * H * m)
    t.add("start: eigh of the mode Grams", "other", eigh_flops(H) + eigh_flops(W))
    _vca(t, L, n, ns, "start: D3 =")
    n_degrade = 1 + outer  # degraded dictionaries P1 D1, P2 D2: initial + after each outer step

    def sparse_tucker(times):
        solves = 2 + 2 * T
        t.add("core step: eigenbasis Grams of the 6 dictionaries", "gemm",
              times * (2 * nr * nr * (h + H) + 2 * nc * nc * (w + W) + 2 * ns * ns * (L + m)))
        t.add("core step: 6 eighs", "other", times * 2 * (eigh_flops(nr) + eigh_flops(nc) + eigh_flops(ns)))
        t.add("core step: projections of Y_h and Y_m onto the dictionaries", "gemm",
              times * (2 * nr * h * w * L + 2 * nc * nr * w * L + 2 * ns * nr * nc * L
                       + 2 * nr * H * W * m + 2 * nc * nr * W * m + 2 * ns * nr * nc * m))
        t.add("core step: (K^T K + rho I)^-1 solves, 6 mode products each (2 + 2T per step)", "gemm",
              times * solves * 4 * (nr + nc + ns) * Sc)
        t.add("core step: ADMM pointwise (~24 per core entry per iteration)", "other",
              times * (T * 24 * Sc + solves * Sc))

    sparse_tucker(1 + outer)
    # a 1-D circular blur of real columns: fft of a real signal (r2c) + complex inverse
    blur_h, blur_w = rfft_flops(H) + cfft_flops(H), rfft_flops(W) + cfft_flops(W)
    t.add("1-D OTFs and degraded dictionaries P1 D1, P2 D2 (a blur per atom)", "fft",
          rfft_flops(H) + rfft_flops(W) + n_degrade * (nr * blur_h + nc * blur_w))
    t.add("R D3", "gemm", (1 + outer) * 2 * m * L * ns)
    applies = 1 + cg
    # D1 / D2 steps
    for name, D, d, na, nb, D2, d2 in (("D1", H, h, nr, nc, W, w), ("D2", W, w, nc, nr, H, h)):
        t.add(f"{name} step: coefficient tensors G, F (4 mode products)", "gemm",
              outer * (2 * D2 * nb * na * ns + 2 * m * ns * na * D2 + 2 * d2 * nb * na * ns + 2 * L * ns * na * d2))
        t.add(f"{name} step: G G^T, F F^T, Z F^T, Y G^T", "gemm",
              outer * (2 * na * na * D2 * m + 2 * na * na * d2 * L + 2 * d * d2 * L * na + 2 * D * D2 * m * na))
        t.add(f"{name} step: CG operator, 2 products x {applies}", "gemm", outer * applies * 4 * D * na * na)
        blur = rfft_flops(D) + cfft_flops(D)
        t.add(f"{name} step: CG operator P^T P (2 blurs per atom) x {applies}, RHS adjoint (1 blur)", "fft",
              outer * (applies * 2 + 1) * na * blur)
        t.add(f"{name} step: CG vector updates", "other", outer * (cg * 10 * D * na + applies * 8 * D * na))
    # D3 step
    t.add("D3 step: coefficient tensors G, F (4 mode products)", "gemm",
          outer * (2 * h * nr * nc * ns + 2 * w * nc * h * ns + 2 * H * nr * nc * ns + 2 * W * nc * H * ns))
    t.add("D3 step: G G^T, F F^T, R^T R, Z F^T, R^T ., Y G^T", "gemm",
          outer * (2 * ns * ns * n + 2 * ns * ns * N + 2 * L * L * m + 2 * m * N * ns + 2 * L * m * ns
                   + 2 * L * n * ns))
    t.add(f"D3 step: CG operator x {applies}", "gemm", outer * applies * (4 * L * ns * ns + 2 * L * L * ns))
    t.add("output C x1 D1 x2 D2 x3 D3", "gemm", 2 * H * nr * nc * ns + 2 * W * nc * H * ns + 2 * L * ns * N)
    formula = (f"core {nr} x {nc} x {ns}; {1 + outer} core steps x (2 + 2 x {T}) eigenbasis solves of 4 (n_r + n_c "
               f"+ n_s) |C| flops + projections; {outer} x [D1, D2: {applies} CG applies of 4 H n_r^2 (resp. "
               f"W n_c^2) + 2 circular 1-D blurs per atom (r2c + c2c FFT); D3: {applies} x (4 L n_s^2 + 2 L^2 n_s); "
               "Grams, RHS and "
               "coefficient tensors]; start: mode Grams 2 H W m (H + W) + VCA; output 2 n_s (H n_r n_c + H W n_c "
               "+ L H W)")
    return formula, []


_MODELS = {"bicubic": _bicubic, "gsa": _gsa, "sfim": _sfim, "glp": _glp, "hysure": _hysure, "cnmf": _cnmf,
           "fuse": _fuse, "ltmr": _ltmr, "cstf": _cstf}


def _options(method: str, options: dict | None) -> dict[str, Any]:
    """The method's options with its defaults (the registry's options dataclass; unknown keys refused)."""
    from hsfuse.methods.registry import get_method

    return get_method(method).make_options(dict(options or {})).as_kwargs()


def cost(method: str, *, H: int, W: int, L: int, m: int, ratio: int, psf_size: int,
         options: dict | None = None, counts: dict | None = None) -> dict[str, Any]:
    """FLOPs and compulsory bytes of ``method`` (a registry name in :data:`METHODS`) on an ``H x W`` MSI with ``m``
    bands and an ``(H/r) x (W/r)`` HSI with ``L`` bands, a ``psf_size``-tap square PSF; ``options``: the method's
    options (defaults filled in from its options dataclass); ``counts``: data-dependent counts from
    :func:`measure_counts` (else the defaults in the result's ``assumptions``). See the module docstring."""
    if method not in _MODELS:
        raise ValueError(f"no cost model for {method!r}; modelled: {', '.join(METHODS)}")
    r = int(ratio)
    if H % r or W % r:
        raise ValueError(f"{H}x{W} is not a multiple of the ratio {r}")
    h, w = H // r, W // r
    a = {"H": H, "W": W, "L": L, "m": m, "r": r, "h": h, "w": w, "n": h * w, "N": H * W, "k": int(psf_size)}
    o = _options(method, options)
    c = dict(counts or {})
    tally = _Tally()
    formula, assumptions = _MODELS[method](tally, a, c, o)
    dtype = "float64" if method in _FLOAT64 else c.get("dtype", "float32")
    if method == "fuse" and "dtype" not in c:
        if o["prior"] == "original":
            dtype = "float64"
        else:
            assumptions = [*assumptions, "FUSE working dtype assumed float32 (lam=auto on clean data switches the "
                           "solve to float64: measure_counts tells)"]
    fft, gemm, other = tally.total("fft"), tally.total("gemm"), tally.total("other")
    return {"method": method, "flop_fft": fft, "flop_gemm": gemm, "flop_other": other, "flop_total": fft + gemm + other,
            "bytes_compulsory": 4 * (m * H * W + L * h * w + L * H * W), "formula": formula, "dtype": dtype,
            "assumptions": assumptions, "flop_torch_counted": tally.torch_counted(),
            "steps": {k: {"kind": v["kind"], "flops": v["flops"]} for k, v in tally.steps.items()}}


# --------------------------------------------------------------------------------------------------------------
# floor, machine rates, report


def floor(cost: dict[str, Any], rates: dict[str, float]) -> dict[str, float]:
    """``compute_s`` (FFT flops / FFT rate + other flops / GEMM rate), ``memory_s`` (compulsory bytes / copy rate),
    ``floor_s`` = their maximum. float64 methods use ``dgemm_gflops`` / ``rfft2_f64_gflops`` when present."""
    f64 = cost.get("dtype") == "float64"
    gemm_rate = rates.get("dgemm_gflops", rates["sgemm_gflops"]) if f64 else rates["sgemm_gflops"]
    fft_rate = rates.get("rfft2_f64_gflops", rates["rfft2_gflops"]) if f64 else rates["rfft2_gflops"]
    compute = cost["flop_fft"] / (fft_rate * 1e9) + (cost["flop_gemm"] + cost["flop_other"]) / (gemm_rate * 1e9)
    memory = cost["bytes_compulsory"] / (rates["copy_gbps"] * 1e9)
    return {"compute_s": compute, "memory_s": memory, "floor_s": max(compute, memory)}


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_rates(size: int = 256, channels: int = 10) -> dict[str, float]:
    """Measured rates on the CPU with torch's current thread count (see the module docstring)."""
    out: dict[str, float] = {}
    for dt, key in ((torch.float32, "sgemm_gflops"), (torch.float64, "dgemm_gflops")):
        a, b = torch.rand(2048, 2048, dtype=dt), torch.rand(2048, 2048, dtype=dt)
        out[key] = 2 * 2048**3 / _median_time(lambda: a @ b, 3) / 1e9
    for dt, key in ((torch.float32, "rfft2_gflops"), (torch.float64, "rfft2_f64_gflops")):
        x = torch.rand(channels, size, size, dtype=dt)
        out[key] = channels * rfft_flops(size * size) / _median_time(lambda: torch.fft.rfft2(x), 7) / 1e9
    src = torch.rand(64 * 2**20)
    dst = torch.empty_like(src)
    out["copy_gbps"] = 2 * src.numel() * 4 / _median_time(lambda: dst.copy_(src), 5) / 1e9
    return out


def report(method: str, shape: tuple[int, int, int, int, int, int], measured_s: float, rates: dict[str, float], *,
           options: dict | None = None, counts: dict | None = None) -> dict[str, Any]:
    """Measured time over the floor: ``shape = (H, W, L, m, ratio, psf_size)``. Returns the floor, the ratio, the
    counts behind it and the achieved rate (total flops / measured time)."""
    H, W, L, m, ratio, psf_size = shape
    c = cost(method, H=H, W=W, L=L, m=m, ratio=ratio, psf_size=psf_size, options=options, counts=counts)
    f = floor(c, rates)
    return {"method": method, "measured_s": measured_s, **f, "measured_over_floor": measured_s / f["floor_s"],
            "flop_fft": c["flop_fft"], "flop_gemm": c["flop_gemm"], "flop_other": c["flop_other"],
            "flop_total": c["flop_total"], "bytes_compulsory": c["bytes_compulsory"], "dtype": c["dtype"],
            "achieved_gflops": c["flop_total"] / measured_s / 1e9, "formula": c["formula"],
            "assumptions": c["assumptions"]}


# --------------------------------------------------------------------------------------------------------------
# data-dependent counts


def kmeans_count(x: torch.Tensor, k: int, *, seed: int, max_iterations: int = 500) -> dict[str, Any]:
    """Lloyd's loop of :func:`hsfuse.methods.ltmr.kmeans`, re-run to count: ``labels``, ``iterations`` (loop
    iterations run), ``assign_k`` (sum over the assignment products of the current centroid count)."""
    x = x.to(torch.float64)
    n = x.shape[0]
    k = min(k, n)
    if k <= 1:
        return {"labels": torch.zeros(n, dtype=torch.long), "iterations": 0, "assign_k": 0}
    gen = torch.Generator().manual_seed(int(seed))
    c = x[torch.randperm(n, generator=gen)[:k]]
    assign_k = c.shape[0]
    labels = torch.argmax(x @ c.T - 0.5 * (c * c).sum(1), dim=1)
    iterations = 0
    for _ in range(max_iterations):
        iterations += 1
        _, labels = torch.unique(labels, return_inverse=True)
        count = torch.bincount(labels).to(x.dtype)
        sums = torch.zeros(count.shape[0], x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
        c = sums / count[:, None]
        assign_k += c.shape[0]
        new = torch.argmax(x @ c.T - 0.5 * (c * c).sum(1), dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return {"labels": labels, "iterations": iterations, "assign_k": assign_k}


def measure_counts(method: str, y: Any, physics: Any, options: dict | None = None, *,
                   return_output: bool = False) -> dict[str, Any]:
    """Run ``method`` once on ``(y, physics)`` with counting hooks and return its data-dependent counts (module
    docstring). The hooks wrap module functions for the duration of the run and call the originals, so the output
    is the method's own (``return_output=True`` adds it as ``"output"``)."""
    from hsfuse.methods import cnmf as cnmf_mod
    from hsfuse.methods import gsa as gsa_mod
    from hsfuse.methods import ltmr as ltmr_mod
    from hsfuse.methods import sylvester as syl_mod
    from hsfuse.methods.registry import get_method

    counts: dict[str, Any] = {}
    patches: list = []
    if method == "gsa":
        orig = gsa_mod._gsa_group
        counts["gsa_groups"] = []

        def group(hs_lr, *args, **kw):
            counts["gsa_groups"].append(int(hs_lr.shape[0]))
            return orig(hs_lr, *args, **kw)

        patches.append(mock.patch.object(gsa_mod, "_gsa_group", group))
    elif method == "cnmf":
        HW = int(y.msi.shape[-2] * y.msi.shape[-1])
        for key in ("h_hsi", "w_hsi", "cost_hsi", "h_msi", "w_msi", "cost_msi"):
            counts[key] = 0
        counts["downsamples"] = 0

        def counter(kind, orig):
            def f(w, v, h):
                counts[f"{kind}_{'msi' if v.shape[-1] == HW else 'hsi'}"] += 1
                return orig(w, v, h)
            return f

        orig_factors = cnmf_mod.cnmf_factors

        def factors(*args, **kw):
            counts["endmembers"] = int(kw["endmembers"])
            down = kw["downsample"]

            def downsample(x):
                counts["downsamples"] += 1
                return down(x)

            return orig_factors(*args, **{**kw, "downsample": downsample})

        patches += [mock.patch.object(cnmf_mod, "cnmf_update_h", counter("h", cnmf_mod.cnmf_update_h)),
                    mock.patch.object(cnmf_mod, "cnmf_update_w", counter("w", cnmf_mod.cnmf_update_w)),
                    mock.patch.object(cnmf_mod, "cnmf_cost", counter("cost", cnmf_mod.cnmf_cost)),
                    mock.patch.object(cnmf_mod, "cnmf_factors", factors)]
    elif method == "ltmr":
        orig_km = ltmr_mod.kmeans

        def kmeans(x, k, *, seed, **kw):
            labels = orig_km(x, k, seed=seed, **kw)
            with torch.utils._python_dispatch._disable_current_modes():  # not counted by an outer flop counter
                rec = kmeans_count(x.detach().cpu(), k, seed=seed, **kw)
            counts["kmeans_iterations"] = rec["iterations"]
            counts["kmeans_assign_k"] = rec["assign_k"]
            counts["kmeans_labels_match"] = bool(torch.equal(rec["labels"], labels.cpu()))
            counts["clusters_final"] = int(labels.max()) + 1
            return labels

        patches.append(mock.patch.object(ltmr_mod, "kmeans", kmeans))
    elif method == "fuse":
        orig_solve = syl_mod.sylvester_solve

        def solve(y_hsi, *args, **kw):
            counts["dtype"] = "float64" if y_hsi.dtype == torch.float64 else "float32"
            s = torch.as_tensor(kw.get("sigma_hsi", 1.0)).reshape(-1)
            counts["fuse_two_branches"] = kw.get("prior_mean") is None and not bool(torch.all(s == s[0]))
            return orig_solve(y_hsi, *args, **kw)

        patches.append(mock.patch.object(syl_mod, "sylvester_solve", solve))
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        with torch.no_grad():
            out = get_method(method).run(y, physics, options=options)
    if return_output:
        counts["output"] = out
    return counts


# --------------------------------------------------------------------------------------------------------------
# Pavia table


def pavia_table(*, ratio: int = 4, methods: tuple[str, ...] = METHODS, threads: int = 1) -> list[dict[str, Any]]:
    """Every method once on the Pavia U case (known operators, clean, float32): counts + warm-up run, then one timed
    run with ``threads`` torch threads; returns the :func:`report` rows."""
    from hsfuse.bench.runner import DEFAULT_CASES, prepare_case
    from hsfuse.methods.registry import get_method

    torch.set_num_threads(threads)
    sim = prepare_case(DEFAULT_CASES[0], ratio=ratio)
    y = sim.measurement()
    physics = sim.physics.to(dtype=torch.float32)
    H, W = y.msi.shape[-2:]
    L, m = y.hsi.shape[1], y.msi.shape[1]
    shape = (H, W, L, m, ratio, int(physics.spatial.psf.shape[-1]))
    rates = machine_rates()
    rows = []
    for name in methods:
        counts = measure_counts(name, y, physics)  # also the warm-up
        with torch.no_grad():
            t0 = time.perf_counter()
            get_method(name).run(y, physics)
            seconds = time.perf_counter() - t0
        counts = {k: v for k, v in counts.items() if k != "kmeans_labels_match"}
        rows.append({**report(name, shape, seconds, rates, counts=counts), "counts": counts})
        print(f"{name:8s} {seconds:9.3f} s  floor {rows[-1]['floor_s']:.4f} s  "
              f"ratio {rows[-1]['measured_over_floor']:7.1f}  ({rows[-1]['flop_total'] / 1e9:.2f} GFLOP, "
              f"{rows[-1]['dtype']})", flush=True)
    return [{**row, "rates": rates, "shape": shape, "threads": threads} for row in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=int, default=4)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    rows = pavia_table(ratio=args.ratio, methods=tuple(s for s in args.methods.split(",") if s), threads=args.threads)
    r = rows[0]["rates"]
    print(f"\nrates: sgemm {r['sgemm_gflops']:.1f}, dgemm {r['dgemm_gflops']:.1f}, rfft2 {r['rfft2_gflops']:.2f} / "
          f"{r['rfft2_f64_gflops']:.2f} (f32/f64) GFLOP/s, copy {r['copy_gbps']:.1f} GB/s")
    print("| method | measured s | floor s | measured/floor | GFLOP (fft/gemm/other) | dtype |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['measured_s']:.3f} | {row['floor_s']:.4f} | {row['measured_over_floor']:.1f} "
              f"| {row['flop_fft'] / 1e9:.3f} / {row['flop_gemm'] / 1e9:.3f} / {row['flop_other'] / 1e9:.3f} "
              f"| {row['dtype']} |")
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
