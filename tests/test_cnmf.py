"""CNMF (hsfuse.methods.cnmf) and VCA / VD (hsfuse.methods.vca)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods.cnmf import (CnmfOptions, _hs_nmf_ite, cnmf_cost, cnmf_endmember_count, cnmf_sum_to_one,
                                 cnmf_update_h, cnmf_update_w, fuse_cnmf)
from hsfuse.methods.vca import vca, vca_snr_threshold, virtual_dimensionality
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf


def _mixture(bands=30, p=5, n=400, seed=0):
    """Exact linear mixture with pure pixels at columns 7, 50, ... (one per endmember)."""
    g = np.random.default_rng(seed)
    e = g.uniform(0.05, 1.0, size=(bands, p))
    a = g.dirichlet(np.ones(p) * 0.7, size=n).T  # (p, n)
    pure = np.arange(p) * 43 + 7
    a[:, pure] = np.eye(p)
    return e, a, pure


def _angle_deg(u, v):
    c = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


@pytest.mark.parametrize("variant", ["original", "cnmf"])
def test_vca_finds_the_pure_pixels(variant):
    e, a, pure = _mixture()
    x = torch.from_numpy(e @ a)
    res = vca(x, e.shape[1], seed=3, variant=variant)
    assert bool(res.projective[0])  # noise-free: infinite SNR, projective projection
    assert sorted(res.indices[0].tolist()) == sorted(pure.tolist())
    found = res.endmembers[0].numpy()
    for j in range(e.shape[1]):
        assert min(_angle_deg(e[:, j], found[:, k]) for k in range(found.shape[1])) < 1.0


def test_vca_low_snr_branch_and_determinism():
    e, a, pure = _mixture(seed=1)
    g = np.random.default_rng(5)
    x = torch.from_numpy(e @ a + g.normal(0, 0.05, size=(e.shape[0], a.shape[1])))
    r1 = vca(x, 5, seed=11)
    assert not bool(r1.projective[0]) and float(r1.snr_db[0]) < vca_snr_threshold(5)
    found = r1.endmembers[0].numpy()
    assert max(min(_angle_deg(e[:, j], found[:, k]) for k in range(5)) for j in range(5)) < 10.0
    r2 = vca(x, 5, seed=11)
    assert torch.equal(r1.indices, r2.indices) and torch.equal(r1.endmembers, r2.endmembers)
    r3 = vca(x, 5, generator=torch.Generator().manual_seed(11))
    assert torch.equal(r1.indices, r3.indices)
    batch = vca(torch.stack([x, x]), 5, seed=11)
    assert batch.indices.shape == (2, 5) and batch.endmembers.shape == (2, x.shape[0], 5)
    with pytest.raises(InputError):
        vca(x, x.shape[0] + 1)


def test_virtual_dimensionality_and_endmember_count():
    e, a, _ = _mixture(bands=40, p=6, n=2000, seed=2)
    x = torch.from_numpy(e @ a + np.random.default_rng(0).normal(0, 1e-3, size=(40, 2000)))
    vd = int(virtual_dimensionality(x, 5e-2)[0])
    assert 1 <= vd <= 40
    # CNMF: at least min(30, L)
    assert int(cnmf_endmember_count(x[None])[0]) == max(30, vd)
    assert int(cnmf_endmember_count(x[None, :20])[0]) == max(20, int(virtual_dimensionality(x[:20], 5e-2)[0]))


# ------------------------------------------------------------------------------------------ the multiplicative updates


def _augmented(k, p, m, seed, delta=0.3):
    g = np.random.default_rng(seed)
    w = g.uniform(0.1, 1, size=(k, m))
    v = g.uniform(0, 1, size=(k, p))
    h = g.uniform(0.1, 1, size=(m, p))
    wa = np.vstack([w, delta * np.ones((1, m))])
    va = np.vstack([v, delta * np.ones((1, p))])
    return wa, va, h


def _objective_np(wa, va, h):
    return float(np.sum((va - wa @ h) ** 2))  # the augmented objective both updates decrease


def test_multiplicative_updates_decrease_their_objective():
    wa, va, h = _augmented(12, 60, 4, seed=0)
    w_t, v_t, h_t = (torch.from_numpy(a)[None] for a in (wa, va, h))
    last = _objective_np(wa, va, h)
    for _ in range(30):
        h_t = cnmf_update_h(w_t, v_t, h_t)
        obj = _objective_np(w_t[0].numpy(), va, h_t[0].numpy())
        assert obj <= last * (1 + 1e-12)
        last = obj
        w_t = cnmf_update_w(w_t, v_t, h_t)
        obj = _objective_np(w_t[0].numpy(), va, h_t[0].numpy())
        assert obj <= last * (1 + 1e-12)
        last = obj
    assert np.allclose(w_t[0, -1].numpy(), wa[-1])  # the sum-to-one row is never updated
    assert torch.all(h_t >= 0) and torch.all(w_t >= 0)


def _hs_ite_numpy(hyper, w_hyper, h_hyper, i_in, delta_h, multi_band):
    """A NumPy transcription of CNMF_ite.m's HS unmixing (1-based loops kept, MATLAB evaluation order)."""
    band = hyper.shape[0] - 1
    w_hyper = w_hyper.copy()
    cost0 = 0.0
    for i in range(1, i_in + 1):
        if i == 1:
            cost0 = 0.0
            for q in range(1, i_in + 1):
                w_old = w_hyper.copy()
                num = hyper[:band] @ h_hyper.T
                den = (w_hyper[:band] @ h_hyper) @ h_hyper.T
                w_hyper[:band] = w_hyper[:band] * num / den
                cost = np.sum((hyper[:band] - w_hyper[:band] @ h_hyper) ** 2)
                if q > 1 and (cost0 - cost) / cost < delta_h:
                    w_hyper = w_old
                    break
                cost0 = cost
        else:
            h_old = h_hyper.copy()
            if multi_band > 3:
                h_hyper = h_hyper * (w_hyper.T @ hyper) / ((w_hyper.T @ w_hyper) @ h_hyper)
            w_old = w_hyper.copy()
            num = hyper[:band] @ h_hyper.T
            den = (w_hyper[:band] @ h_hyper) @ h_hyper.T
            w_hyper[:band] = w_hyper[:band] * num / den
            cost = np.sum((hyper[:band] - w_hyper[:band] @ h_hyper) ** 2)
            if (cost0 - cost) / cost < delta_h:
                h_hyper, w_hyper = h_old, w_old
                break
            cost0 = cost
    return w_hyper, h_hyper


@pytest.mark.parametrize("threshold", [1e-8, 5e-3])
def test_inner_update_equals_numpy_transcription(threshold):
    wa, va, h = _augmented(9, 40, 3, seed=4)
    # one alternating step (H then W, as CNMF_ite's second phase)
    h1 = h * (wa.T @ va) / ((wa.T @ wa) @ h)
    w1 = wa.copy()
    w1[:-1] = wa[:-1] * (va[:-1] @ h1.T) / ((wa[:-1] @ h1) @ h1.T)
    h_t = cnmf_update_h(torch.from_numpy(wa)[None], torch.from_numpy(va)[None], torch.from_numpy(h)[None])
    w_t = cnmf_update_w(torch.from_numpy(wa)[None], torch.from_numpy(va)[None], h_t)
    np.testing.assert_allclose(h_t[0].numpy(), h1, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(w_t[0].numpy(), w1, rtol=1e-8, atol=1e-12)
    assert float(cnmf_cost(w_t, torch.from_numpy(va)[None], h_t)[0]) == pytest.approx(
        np.sum((va[:-1] - w1[:-1] @ h1) ** 2), rel=1e-8)
    # the whole HS unmixing loop of an outer iteration, with its stopping rule
    w_np, h_np = _hs_ite_numpy(va, wa, h, 25, threshold, multi_band=4)
    w_t, h_t = _hs_nmf_ite(torch.from_numpy(wa)[None], torch.from_numpy(va)[None], torch.from_numpy(h)[None],
                           iterations=25, threshold=threshold, msi_bands=4)
    np.testing.assert_allclose(w_t[0].numpy(), w_np, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(h_t[0].numpy(), h_np, rtol=1e-8, atol=1e-12)


def test_sum_to_one_parameter():
    msi = torch.full((1, 4, 6, 6), 0.7455)
    assert float(cnmf_sum_to_one(msi)[0]) == pytest.approx(2.0 / 64)


# ------------------------------------------------------------------------------------------------------ the method


def _tiny_problem(dtype=torch.float32, n=1):
    g = torch.Generator().manual_seed(0)
    e = torch.rand(12, 4, generator=g, dtype=torch.float64)
    a = torch.distributions.Dirichlet(torch.ones(4, dtype=torch.float64)).sample((n, 16, 16)).permute(0, 3, 1, 2)
    z = torch.einsum("lp,npij->nlij", e, a)
    obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(5, fwhm=2.0)),
                            SpectralResponse(torch.rand(5, 12, generator=g), normalize="sum"))
    y = obs.A(z.to(dtype))
    return z, y, obs


def test_contract_shapes_dtypes_and_refusals():
    z, y, obs = _tiny_problem()
    out = fuse_cnmf(y, obs, endmembers=4, inner_iterations=20)
    assert out.shape == z.shape and out.dtype == torch.float32
    z64, y64, obs64 = _tiny_problem(torch.float64, n=2)
    out64 = fuse_cnmf(y64, obs64, endmembers=4, inner_iterations=20, outer_iterations=3)
    assert out64.shape == z64.shape and out64.dtype == torch.float64 and torch.isfinite(out64).all()
    # default endmember count: max(min(30, L), VD) = L here
    assert fuse_cnmf(y, obs, inner_iterations=3).shape == z.shape
    # deterministic in the seed
    assert torch.equal(fuse_cnmf(y, obs, endmembers=4, inner_iterations=20), out)
    for bad in (dict(endmembers=0), dict(endmembers=13), dict(endmembers=2.0), dict(inner_iterations=0),
                dict(outer_iterations=0), dict(threshold=-1.0), dict(threshold=float("nan")),
                dict(outer_threshold="x"), dict(seed=-1), dict(seed=True)):
        with pytest.raises(InputError):
            fuse_cnmf(y, obs, **bad)
    # options dataclass = keyword options, same defaults
    params = {k: p.default for k, p in inspect.signature(fuse_cnmf).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert params == {f.name: f.default for f in dataclasses.fields(CnmfOptions)}
    assert fuse_cnmf(y, obs, **CnmfOptions(endmembers=4, inner_iterations=5).as_kwargs()).shape == z.shape


def test_beats_bicubic_on_a_mixture_and_outer_iterations_help():
    from hsfuse.methods.bicubic import fuse_bicubic

    z, y, obs = _tiny_problem(torch.float64)

    def err(x):
        return float(((x - z) ** 2).mean().sqrt() / z.abs().mean())

    one = err(fuse_cnmf(y, obs, endmembers=4))
    five = err(fuse_cnmf(y, obs, endmembers=4, outer_iterations=5))
    assert one < 0.85 * err(fuse_bicubic(y, obs)) and five < one, (one, five)



def test_pavia_beats_bicubic_by_eight_db(pavia_r4, pavia_psnr):
    from hsfuse.methods.bicubic import fuse_bicubic
    from hsfuse.methods.gsa import fuse_gsa
    from hsfuse.methods.sylvester import fuse_fuse

    sim = pavia_r4
    y = sim.measurement()
    base = pavia_psnr(fuse_bicubic(y, sim.physics))
    gsa = pavia_psnr(fuse_gsa(y, sim.physics))
    fuse = pavia_psnr(fuse_fuse(y, sim.physics))
    t0 = time.perf_counter()
    z = fuse_cnmf(y, sim.physics)
    seconds = time.perf_counter() - t0
    cnmf = pavia_psnr(z)
    print(f"\nPavia r=4 (noise-free) PSNR: bicubic {base:.2f} dB, GSA {gsa:.2f} dB, FUSE {fuse:.2f} dB, "
          f"CNMF {cnmf:.2f} dB ({seconds:.2f} s)")
    assert z.dtype == torch.float32  # (pavia_psnr checks the shape)
    assert cnmf > base + 8.0
