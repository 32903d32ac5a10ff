"""HySure as a fusion method (issue 17): quality on Pavia, objective, one ADMM step against dense NumPy, contract."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods.hysure import HysureOptions, HysureState, fuse_hysure, hysure_admm, hysure_objective
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.physics.spatial import blur
from hsfuse.types import FusionMeasurement


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small per-image solvers, one torch thread


# --------------------------------------------------------------------------------------------- NumPy reference

def np_blur(x: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Circular convolution of each image of ``x`` ``(..., H, W)``: ``sum_t psf[t] x[i - t + c]``."""
    k = psf.shape[0]
    c = k // 2
    out = np.zeros_like(x)
    for a in range(k):
        for b in range(k):
            out += psf[a, b] * np.roll(x, (a - c, b - c), axis=(-2, -1))
    return out


def np_objective(x, hsi, msi, E, R, psf, r, o, lambda_phi, lambda_m):
    """HySure's objective for one image: x (p, H, W), hsi (L, h, w), msi (m, H, W)."""
    xb = np_blur(x, psf)[:, o::r, o::r]
    res_h = hsi - np.einsum("lp,phw->lhw", E, xb)
    res_m = msi - np.einsum("ml,lp,phw->mhw", R, E, x)
    dh = x - np.roll(x, -1, axis=-1)
    dv = x - np.roll(x, -1, axis=-2)
    tv = np.sqrt((dh**2 + dv**2).sum(axis=0)).sum()
    return 0.5 * (res_h**2).sum() + 0.5 * lambda_m * (res_m**2).sum() + lambda_phi * tv


def dense_circulant(psf: np.ndarray, H: int, W: int) -> np.ndarray:
    """``(HW, HW)`` matrix of the circular convolution (column vectors, row-major pixels)."""
    k = psf.shape[0]
    c = k // 2
    B = np.zeros((H * W, H * W))
    for i in range(H):
        for j in range(W):
            for a in range(k):
                for b in range(k):
                    B[i * W + j, ((i - a + c) % H) * W + (j - b + c) % W] += psf[a, b]
    return B


def dense_difference(H: int, W: int, axis: str) -> np.ndarray:
    D = np.eye(H * W)
    for i in range(H):
        for j in range(W):
            n = i * W + (j + 1) % W if axis == "h" else ((i + 1) % H) * W + j
            D[i * W + j, n] -= 1.0
    return D


def dense_step(s, hsi, msi, E, R, psf, r, o, lambda_phi, lambda_m, mu):
    """One iteration of data_fusion.m with dense matrices; ``s``: dict of (p, HW) arrays."""
    p = E.shape[1]
    H, W = msi.shape[-2:]
    B = dense_circulant(psf, H, W)
    Dh, Dv = dense_difference(H, W, "h"), dense_difference(H, W, "v")
    A = B.T @ B + np.eye(H * W) + Dh.T @ Dh + Dv.T @ Dv
    rhs = ((s["v1"] + s["d1"]) @ B + (s["v2"] + s["d2"]) + (s["v3"] + s["d3"]) @ Dh + (s["v4"] + s["d4"]) @ Dv)
    x = np.linalg.solve(A, rhs.T).T  # rows: channels; x @ B.T = blurred rows
    kept = np.array([i * W + j for i in range(o, H, r) for j in range(o, W, r)])
    yh = hsi.reshape(hsi.shape[0], -1)
    ym = msi.reshape(msi.shape[0], -1)
    nu1 = x @ B.T - s["d1"]
    v1 = nu1.copy()
    v1[:, kept] = np.linalg.solve(E.T @ E + mu * np.eye(p), E.T @ yh + mu * nu1[:, kept])
    nu2 = x - s["d2"]
    RE = R @ E
    v2 = np.linalg.solve(lambda_m * RE.T @ RE + mu * np.eye(p), lambda_m * RE.T @ ym + mu * nu2)
    nu3, nu4 = x @ Dh.T - s["d3"], x @ Dv.T - s["d4"]
    tau = lambda_phi / mu
    nrm = np.sqrt((nu3**2 + nu4**2).sum(axis=0))
    a = np.maximum(nrm - tau, 0)
    v3, v4 = a / (a + tau) * nu3, a / (a + tau) * nu4
    return {"x": x, "v1": v1, "v2": v2, "v3": v3, "v4": v4, "d1": v1 - nu1, "d2": v2 - nu2, "d3": v3 - nu3,
            "d4": v4 - nu4}, nrm, tau


def test_one_admm_step_matches_dense_numpy():
    rng = np.random.default_rng(3)
    L, m, p, r, o, H, W = 5, 2, 3, 2, 1, 8, 8
    psf = rng.random((3, 3))
    psf /= psf.sum()  # asymmetric: catches a flipped kernel
    E = rng.standard_normal((L, p))  # not orthonormal: exercises E^T E
    R = rng.random((m, L))
    hsi = rng.random((L, H // r, W // r))
    msi = rng.random((m, H, W))
    state = {k: rng.standard_normal((p, H * W)) for k in HysureState._fields}
    lambda_phi, lambda_m, mu = 0.1, 0.7, 0.05
    # the dense convolution is the physics' blur
    probe = rng.random((2, H, W))
    np.testing.assert_allclose(
        blur(torch.from_numpy(probe)[None], torch.from_numpy(psf), boundary="circular")[0].numpy(),
        (dense_circulant(psf, H, W) @ probe.reshape(2, -1).T).T.reshape(2, H, W), atol=1e-13)
    np.testing.assert_allclose(np_blur(probe, psf),
                               blur(torch.from_numpy(probe)[None], torch.from_numpy(psf))[0].numpy(), atol=1e-13)
    expected, nrm, tau = dense_step(state, hsi, msi, E, R, psf, r, o, lambda_phi, lambda_m, mu)
    assert (nrm < tau).any() and (nrm > tau).any()  # both branches of the soft threshold are exercised
    init = HysureState(*(torch.from_numpy(state[k].reshape(1, p, H, W)) for k in HysureState._fields))
    res = hysure_admm(torch.from_numpy(hsi)[None], torch.from_numpy(msi)[None], basis=torch.from_numpy(E),
                      srf=torch.from_numpy(R), psf=torch.from_numpy(psf), ratio=r, offset=o, lambda_phi=lambda_phi,
                      lambda_m=lambda_m, mu=mu, iterations=1, init=init)
    for k in HysureState._fields:
        got = getattr(res.state, k)
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got[0].reshape(p, -1).numpy(), expected[k], atol=1e-8, rtol=0, err_msg=k)
    np.testing.assert_allclose(res.z[0].numpy(), np.einsum("lp,phw->lhw", E, expected["x"].reshape(p, H, W)),
                               atol=1e-8)


# --------------------------------------------------------------------------------------------- Pavia


def test_pavia_beats_bicubic_and_is_close_to_fuse(pavia_r4, pavia_psnr):
    from hsfuse.methods.bicubic import fuse_bicubic
    from hsfuse.methods.sylvester import fuse_fuse

    y = pavia_r4.measurement()
    base = pavia_psnr(fuse_bicubic(y, pavia_r4.physics))
    fuse = pavia_psnr(fuse_fuse(y, pavia_r4.physics))
    t0 = time.perf_counter()
    z = fuse_hysure(y, pavia_r4.physics)
    seconds = time.perf_counter() - t0
    hysure = pavia_psnr(z)
    t0 = time.perf_counter()
    blind = pavia_psnr(fuse_hysure(y, pavia_r4.physics, estimate_operators=True))
    blind_s = time.perf_counter() - t0
    print(f"\nPavia r=4 (noise-free, circular) PSNR: bicubic {base:.2f} dB, FUSE {fuse:.2f} dB, "
          f"HySure {hysure:.2f} dB ({seconds:.2f} s), HySure with estimated PSF/SRF {blind:.2f} dB ({blind_s:.2f} s)")
    assert z.dtype == torch.float32  # (pavia_psnr checks the shape)
    assert hysure > base + 10.0
    assert hysure > fuse - 2.0
    assert blind > base + 6.0


def test_objective_decreases_and_matches_numpy(pavia_r4):
    from hsfuse.methods.subspace import pca_subspace

    y = pavia_r4.measurement(dtype=torch.float64)
    phys = pavia_r4.physics
    E = pca_subspace(y.hsi, dim=10)
    psf = phys.spatial.psf.double()
    R = phys.spectral.matrix.double()
    kw = dict(basis=E, srf=R, psf=psf, ratio=phys.ratio, offset=phys.spatial.offset, lambda_phi=5e-4, lambda_m=1.0)
    res = hysure_admm(y.hsi, y.msi, iterations=200, record=True, **kw)
    hist = res.history[:, 0].numpy()
    assert hist.shape == (200,)
    expected = np_objective(res.state.x[0].numpy(), y.hsi[0].numpy(), y.msi[0].numpy(), E[0].numpy(), R.numpy(),
                            psf.numpy(), phys.ratio, phys.spatial.offset, 5e-4, 1.0)
    assert math.isclose(hist[-1], expected, rel_tol=1e-9)
    assert math.isclose(float(hysure_objective(res.state.x, y.hsi, y.msi, **kw)[0]), expected, rel_tol=1e-9)
    marks = [hist[i - 1] for i in (1, 10, 50, 100, 200)]
    print("\nobjective at iterations 1, 10, 50, 100, 200: " + ", ".join(f"{v:.5g}" for v in marks))
    # ADMM is not a descent method step by step (the early iterates oscillate); it decreases across the run and
    # monotonically once it has settled
    assert marks[0] > marks[2] > marks[3] > marks[4] and marks[1] > marks[4]
    assert hist[-1] < 0.01 * hist[0]
    assert hist[-1] <= hist.min() * (1 + 1e-6)
    assert np.all(np.diff(hist[-50:]) <= 1e-4 * hist[-50:-1])  # small ripples remain (~1e-5 relative)


# --------------------------------------------------------------------------------------------- contract

def _tiny(dtype=torch.float32, boundary="circular"):
    g = torch.Generator().manual_seed(0)
    obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0), boundary=boundary),
                            SpectralResponse(torch.rand(3, 8, generator=g, dtype=torch.float64), normalize="sum"))
    z = torch.nn.functional.avg_pool2d(torch.rand(2, 8, 20, 20, generator=g, dtype=torch.float64), 3, 1)
    y = obs.A(z)
    return obs, FusionMeasurement(y.hsi.to(dtype), y.msi.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(dtype):
    obs, y = _tiny(dtype)
    seen = []
    z = fuse_hysure(y, obs, subspace_dim=4, iterations=7, progress=lambda d, t: seen.append((d, t)))
    assert z.shape == (2, 8, 18, 18) and z.dtype == dtype and torch.isfinite(z).all()
    assert seen[-1] == (7, 7)
    # a batch is the images one by one
    one = fuse_hysure(FusionMeasurement(y.hsi[1:], y.msi[1:]), obs, subspace_dim=4, iterations=7)
    torch.testing.assert_close(z[1:], one, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    est = fuse_hysure(y, obs, subspace_dim=4, iterations=3, estimate_operators=True)
    assert est.shape == z.shape and est.dtype == dtype


def test_options_match_signature_and_defaults():
    params = {k: v for k, v in inspect.signature(fuse_hysure).parameters.items()
              if v.kind is inspect.Parameter.KEYWORD_ONLY and k != "progress"}
    fields = {f.name: f.default for f in dataclasses.fields(HysureOptions)}
    assert fields == {k: v.default for k, v in params.items()}
    assert fields == {"subspace_dim": 10, "lambda_phi": 5e-4, "lambda_m": 1.0, "mu": 0.05, "iterations": 200,
                      "basis": "svd", "seed": 0, "estimate_operators": False, "border": "circular", "pad": None}
    assert all(HysureOptions.field_help().values())


@pytest.mark.parametrize("options, match", [
    ({"lambda_m": 0.0}, "lambda_m"), ({"mu": -1.0}, "mu"), ({"lambda_phi": float("nan")}, "lambda_phi"),
    ({"lambda_phi": -1e-3}, "lambda_phi"), ({"iterations": 0}, "iterations"), ({"subspace_dim": 0}, "subspace_dim"),
    ({"estimate_operators": "yes"}, "estimate_operators"), ({"basis": "pca"}, "basis"), ({"seed": -1}, "seed"),
])
def test_bad_options_refused(options, match):
    obs, y = _tiny()
    with pytest.raises(InputError, match=match):
        fuse_hysure(y, obs, iterations=options.pop("iterations", 2), **options)


def test_bad_physics_or_data_refused():
    obs, y = _tiny(boundary="reflect")
    with pytest.raises(InputError, match="circular"):
        fuse_hysure(y, obs, iterations=2)
    assert fuse_hysure(y, obs, iterations=2, subspace_dim=3, estimate_operators=True).shape == (2, 8, 18, 18)
    obs, y = _tiny()
    psf = torch.stack([gaussian_psf(3, fwhm=1.0 + 0.1 * i) for i in range(8)])
    per_band = FusionObservation(SpatialDegradation(ratio=2, psf=psf), obs.spectral)
    with pytest.raises(InputError, match="one PSF"):
        fuse_hysure(y, per_band, iterations=2)
    bad = y.hsi.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        fuse_hysure(FusionMeasurement(bad, y.msi), obs, iterations=2)
    with pytest.raises(InputError):
        fuse_hysure(FusionMeasurement(y.hsi[:, :5], y.msi), obs, iterations=2)


def test_chunked_hysure_is_within_five_hundredths_of_a_db_of_the_whole_image(pavia_r4):
    import copy

    from hsfuse.chunked import fuse_chunked

    y = pavia_r4.measurement()
    ref = pavia_r4.reference.data.transpose(2, 0, 1).astype(np.float64)
    with torch.no_grad():
        whole = fuse_hysure(y, copy.deepcopy(pavia_r4.physics).float())[0].numpy().astype(np.float64)
    res = fuse_chunked(y.hsi[0].numpy(), y.msi[0].numpy(), method="hysure", physics=pavia_r4.physics, chunk=48)
    out = res.output.values.astype(np.float64)
    assert len(res.grid) > 1

    def psnr(x):
        return float(np.mean([10 * np.log10(1 / np.mean((x[b] - ref[b]) ** 2)) for b in range(ref.shape[0])]))

    assert abs(psnr(out) - psnr(whole)) < 0.05, (psnr(out), psnr(whole))


# --------------------------------------------------------------------------------------------- VCA basis

def test_vca_basis_is_the_largest_volume_run_and_finds_the_pure_pixels():
    """data_fusion.m's VCA branch: 20 runs with SNR = 0 (the SVD projection, whatever the data's SNR), the largest
    |det(E^T E)| kept. On an exact mixture with pure pixels the kept set is the true endmembers (<1 deg each), and
    its volume is the maximum over the same 20 runs drawn again from one generator seeded alike."""
    from hsfuse.methods.hysure import VCA_RUNS, vca_basis
    from hsfuse.methods.vca import vca

    g = np.random.default_rng(0)
    L, p, side = 24, 4, 12
    e = g.uniform(0.05, 1.0, size=(L, p))
    a = g.dirichlet(np.ones(p) * 0.5, size=side * side).T
    a[:, [3, 40, 77, 120]] = np.eye(p)
    hsi = torch.from_numpy((e @ a).reshape(1, L, side, side))
    E = vca_basis(hsi, p, seed=7)[0].numpy()
    for j in range(p):
        cos = max(float(e[:, j] @ E[:, k] / np.linalg.norm(e[:, j]) / np.linalg.norm(E[:, k])) for k in range(p))
        assert math.degrees(math.acos(min(1.0, cos))) < 1.0
    gen = torch.Generator().manual_seed(7)
    runs = [vca(hsi[0].reshape(L, -1), p, generator=gen, snr_db=0.0) for _ in range(VCA_RUNS)]
    assert not any(bool(r.projective[0]) for r in runs)  # SNR = 0 forces the SVD projection
    vols = [abs(float(torch.linalg.det(r.endmembers[0].T @ r.endmembers[0]))) for r in runs]
    assert abs(float(np.linalg.det(E.T @ E)) - max(vols)) <= 1e-9 * max(vols)


def test_hysure_with_the_vca_basis_runs_batched_and_seeded():
    obs, y = _tiny()
    z = fuse_hysure(y, obs, basis="vca", subspace_dim=3, iterations=3)
    assert z.shape == (2, 8, *y.msi.shape[-2:]) and bool(torch.isfinite(z).all())
    torch.testing.assert_close(fuse_hysure(y, obs, basis="vca", subspace_dim=3, iterations=3), z, atol=0, rtol=0)


def test_chunked_engine_refuses_the_vca_basis_with_the_fix():
    from hsfuse.chunked import fuse_chunked

    obs, y = _tiny(torch.float64)
    with pytest.raises(InputError, match="basis='svd'"):
        fuse_chunked(y.hsi[0].numpy(), y.msi[0].numpy(), method="hysure", physics=obs, chunk=8,
                     options={"basis": "vca"})
