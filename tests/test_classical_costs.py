"""The arithmetic floor of the classical methods (``benchmarks/classical_costs.py``) against independent counts.

Independent sources:

* ``torch.utils.flop_counter.FlopCounterMode`` on actual runs of every method (32 x 32 HR, 20 bands, r = 4, m = 4,
  9-tap Gaussian PSF): the matrix products and convolutions torch executes (``mm``/``bmm``/convolution; it counts a
  complex product as 2 flops per multiply-add, and no mat-vec, FFT or pointwise work). The model's
  ``flop_torch_counted`` (its GEMM steps, complex ones at a quarter of their real flops) must agree within 2 %
  (measured: every method within 0.5 %; the residue is the models' omission of a few tiny ``p x p`` products).
  The data-dependent counts (CNMF's NMF updates and endmember count, LTMR's k-means iterations, GSA's band groups,
  FUSE's branch) come from ``measure_counts`` hooks on the same run: iteration counts, not flops.
* A dispatch-level FFT counter written here (every ``aten._fft_r2c`` / ``_fft_c2r`` / ``_fft_c2c`` with its
  transform size, ``2.5 N log2 N`` real-to-complex / complex-to-real, ``5 N log2 N`` complex): the model's
  ``flop_fft`` must agree within 2 %.
* Hand computations for one small case of bicubic and of FUSE (fixed ``lam``, unit noise).

Runs each method once on the small problem (about 15 s in all on one thread).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("classical_costs", ROOT / "benchmarks" / "classical_costs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cc = _load()

#: tolerance of the model against the counted products and FFTs (relative)
TOL = 0.02
#: the small problem
H, W, L, M_BANDS, R, K = 32, 32, 20, 4, 4, 9
#: options that keep the run short or exercise a data-dependent step (k-means with fewer clusters than patches)
OPTIONS = {"ltmr": {"clusters": 10, "iterations": 20}, "hysure": {"iterations": 50}, "cstf": {"admm_iterations": 20},
           "cnmf": {"inner_iterations": 60}}


def _problem(h=H, w=W, bands=L, m=M_BANDS, r=R, k=K, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=gaussian_psf(k, fwhm=float(r)), boundary="circular"),
                            SpectralResponse(torch.rand(m, bands, generator=g, dtype=torch.float64), normalize="sum"))
    abund = torch.rand(1, 5, h, w, generator=g)
    spectra = torch.rand(bands, 5, generator=g)
    z = torch.einsum("lk,nkhw->nlhw", spectra, abund) + 0.01 * torch.rand(1, bands, h, w, generator=g)
    y = obs.A(z)
    return FusionMeasurement(y.hsi.float().contiguous(), y.msi.float().contiguous()), obs.to(dtype=torch.float32)


class FftCounter(TorchDispatchMode):
    """Flops of every FFT torch runs: 2.5 N log2 N per real<->complex transform, 5 N log2 N per complex one."""

    def __init__(self):
        super().__init__()
        self.flops = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket)
        if name in ("aten._fft_r2c", "aten._fft_c2r", "aten._fft_c2c"):
            x, dims = args[0], list(args[1])
            shape = out.shape if name == "aten._fft_c2r" else x.shape  # c2r: the real output's sizes
            n = math.prod(shape[d] for d in dims)
            count = math.prod(shape) // n
            per = 5.0 if name == "aten._fft_c2c" else 2.5
            self.flops += count * per * n * math.log2(n) if n > 1 else 0.0
        return out


@pytest.fixture(scope="module")
def small():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _problem()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def counted(small):
    """Per method: FlopCounterMode total, FFT flops and the measured counts of one run."""
    y, obs = small
    out = {}
    for name in cc.METHODS:
        with FlopCounterMode(display=False) as fc, FftCounter() as ff:
            counts = cc.measure_counts(name, y, obs, OPTIONS.get(name))
        out[name] = (fc.get_total_flops(), ff.flops, counts)
    return out


def _cost(name, counts=None, **shape):
    args = dict(H=H, W=W, L=L, m=M_BANDS, ratio=R, psf_size=K)
    args.update(shape)
    return cc.cost(name, options=OPTIONS.get(name), counts=counts, **args)


@pytest.mark.parametrize("name", cc.METHODS)
def test_products_agree_with_flop_counter(counted, name):
    torch_flops, _, counts = counted[name]
    c = _cost(name, counts)
    assert torch_flops > 0
    assert c["flop_torch_counted"] == pytest.approx(torch_flops, rel=TOL), (name, c["flop_torch_counted"], torch_flops)
    # what torch does not count (mat-vec products, the real cost of complex products) is small or explained
    assert c["flop_gemm"] >= c["flop_torch_counted"]


@pytest.mark.parametrize("name", cc.METHODS)
def test_ffts_agree_with_dispatch_count(counted, name):
    _, fft_flops, counts = counted[name]
    c = _cost(name, counts)
    if fft_flops == 0:
        assert c["flop_fft"] == 0
    else:
        assert c["flop_fft"] == pytest.approx(fft_flops, rel=TOL), (name, c["flop_fft"], fft_flops)


def test_measured_counts_are_plausible(counted):
    _, _, gsa = counted["gsa"]
    assert sum(gsa["gsa_groups"]) == L
    _, _, cnmf = counted["cnmf"]
    assert cnmf["endmembers"] == min(30, L)
    _, _, ltmr = counted["ltmr"]
    assert ltmr["kmeans_labels_match"]  # the counting re-run of Lloyd's loop reproduces the method's clusters
    assert 1 <= ltmr["kmeans_iterations"] <= 500 and ltmr["clusters_final"] <= 10
    # at its caps the CNMF model is an upper bound of the measured run
    assert _cost("cnmf")["flop_gemm"] >= _cost("cnmf", cnmf)["flop_gemm"]


def test_bicubic_by_hand():
    # 1 band, 2 x 3 LR, r = 2: 7 taps; rows: padded 6 x 7 inputs x 7 taps; columns: 4 x 7 inputs x 7 taps
    c = cc.cost("bicubic", H=4, W=6, L=1, m=1, ratio=2, psf_size=3, options={})
    hand = 2 * 7 * (6 * 7) + 2 * 7 * (4 * 7)
    assert hand == 980
    assert c["flop_gemm"] == hand and c["flop_fft"] == 0 and c["flop_total"] == hand
    assert c["bytes_compulsory"] == 4 * (1 * 24 + 1 * 6 + 1 * 24)
    obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0)),
                            SpectralResponse(torch.ones(1, 1)))
    y = FusionMeasurement(torch.rand(1, 1, 2, 3), torch.rand(1, 1, 4, 6))
    with FlopCounterMode(display=False) as fc:
        cc.measure_counts("bicubic", y, obs)
    assert fc.get_total_flops() == hand


def test_fuse_by_hand():
    # FUSE with lam fixed and unit noise on H = W = 8, L = 6, m = 2, r = 2, p = 3 (n = 16, N = 64, Nh = 8 * 5)
    Hs, Ls, ms, r, p = 8, 6, 2, 2, 3
    n, N, Nh = 16, 64, 40
    opts = {"lam": 1e-3, "sigma_hsi": 1.0, "sigma_msi": 1.0, "subspace_dim": p}
    c = cc.cost("fuse", H=Hs, W=Hs, L=Ls, m=ms, ratio=r, psf_size=3, options=opts)
    gemm = (2 * Ls * Ls * n  # PCA Gram
            + 2 * ms * Ls * p + 2 * p * p * Ls + 2 * p * p * ms  # R E, G, K
            + 6 * p**3 + 4 * Ls * p * p  # whitened K, w_in, w_out
            + 2 * p * p * Ls + 2 * p * p * ms + 2 * p * p * Ls  # proj_h, proj_m, proj_p
            + 2 * p * ms * 2 * Nh  # MSI projection on the half spectrum (re, im)
            + 2 * p * Ls * n  # HSI projection (one branch: equal weights)
            + 2 * Ls * p * N)  # reconstruction
    assert gemm == 1152 + 72 + 108 + 36 + 162 + 216 + 108 + 36 + 108 + 960 + 576 + 2304 == 5838
    assert c["flop_gemm"] == gemm
    fft = (1 + ms + p) * 2.5 * N * 6 + p * 5 * n * 4 + 2 * (2.5 * 8 * 3)  # OTF, MSI, back; LR fft2; cubic 1-D
    assert c["flop_fft"] == pytest.approx(fft)
    g = torch.Generator().manual_seed(1)
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=gaussian_psf(3, fwhm=2.0)),
                            SpectralResponse(torch.rand(ms, Ls, generator=g, dtype=torch.float64), normalize="sum"))
    y = obs.to(dtype=torch.float32).A(torch.rand(1, Ls, Hs, Hs, generator=g))
    with FlopCounterMode(display=False) as fc, FftCounter() as ff:
        counts = cc.measure_counts("fuse", y, obs.to(dtype=torch.float32), opts)
    assert counts == {"dtype": "float32", "fuse_two_branches": False}
    assert fc.get_total_flops() == gemm
    assert ff.flops == pytest.approx(fft)


def test_floor_and_report():
    c = _cost("fuse")
    rates = {"sgemm_gflops": 100.0, "rfft2_gflops": 10.0, "copy_gbps": 10.0}
    f = cc.floor(c, rates)
    assert f["compute_s"] == pytest.approx(c["flop_fft"] / 1e10 + (c["flop_gemm"] + c["flop_other"]) / 1e11)
    assert f["memory_s"] == pytest.approx(c["bytes_compulsory"] / 1e10)
    assert f["floor_s"] == max(f["compute_s"], f["memory_s"])
    # float64 methods take the float64 rates when given
    f64 = cc.floor(_cost("cnmf"), {**rates, "dgemm_gflops": 50.0, "rfft2_f64_gflops": 5.0})
    assert f64["compute_s"] == pytest.approx(cc.floor(_cost("cnmf"), rates)["compute_s"] * 2)
    row = cc.report("fuse", (H, W, L, M_BANDS, R, K), 2 * f["floor_s"], rates)
    assert row["measured_over_floor"] == pytest.approx(2.0)
    assert row["formula"] and row["floor_s"] == f["floor_s"]


def test_every_method_has_a_formula_and_refuses_unknowns():
    for name in cc.METHODS:
        c = _cost(name)
        assert c["formula"] and c["flop_total"] == c["flop_fft"] + c["flop_gemm"] + c["flop_other"] > 0
    with pytest.raises(ValueError):
        cc.cost("udaln", H=H, W=W, L=L, m=M_BANDS, ratio=R, psf_size=K, options={})
    with pytest.raises(Exception):
        cc.cost("fuse", H=H, W=W, L=L, m=M_BANDS, ratio=R, psf_size=K, options={"no_such_option": 1})


@pytest.mark.parametrize("opts", [{"prior": "original", "subspace_dim": 15}, {"border": "pad"},
                                  {"border": "pad", "pad": 3, "lam": 1e-2}])
def test_fuse_variants(small, opts):
    y, obs = small
    with FlopCounterMode(display=False) as fc, FftCounter() as ff:
        counts = cc.measure_counts("fuse", y, obs, opts)
    c = cc.cost("fuse", H=H, W=W, L=L, m=M_BANDS, ratio=R, psf_size=K, options=opts, counts=counts)
    assert c["flop_torch_counted"] == pytest.approx(fc.get_total_flops(), rel=TOL)
    assert c["flop_fft"] == pytest.approx(ff.flops, rel=TOL)
