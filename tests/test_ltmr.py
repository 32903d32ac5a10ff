"""LTMR as a fusion method (issue 17): t-SVD shrinkage and one ADMM step against NumPy, quality on Pavia, contract."""

from __future__ import annotations

import dataclasses
import inspect
import time

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods.ltmr import (LtmrOptions, extract_patches, fuse_ltmr, join_patches, kmeans, ltmr_admm,
                                 patch_starts, tensor_nuclear_norm, tsvd_shrink)
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.physics.spatial import blur
from hsfuse.types import FusionMeasurement

EPS = np.finfo(np.float64).eps


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small per-image solvers, one torch thread


# --------------------------------------------------------------------------------------------- NumPy reference

def np_shrink_values(s: np.ndarray, tau: float, kind: str) -> np.ndarray:
    if kind == "soft":  # prox_tnn.m
        return np.maximum(s - tau, 0)
    t = (s - EPS) ** 2 - 4 * (tau - EPS * s)  # ClosedWNNM.m with C = tau, oureps = eps
    return np.where(t > 0, np.maximum(s - EPS + np.sqrt(np.maximum(t, 0)), 0) / 2, 0.0)


def np_tsvd_shrink(x: np.ndarray, tau: float, kind: str) -> np.ndarray:
    """FFT along the third axis, SVD shrinkage of every frontal slice, inverse FFT (Log_prox_tnn.m / prox_tnn.m)."""
    spec = np.fft.fft(x, axis=2)
    out = np.zeros_like(spec)
    for f in range(x.shape[2]):
        u, s, vh = np.linalg.svd(spec[:, :, f], full_matrices=False)
        out[:, :, f] = (u * np_shrink_values(s, tau, kind)) @ vh
    res = np.fft.ifft(out, axis=2)
    assert np.abs(res.imag).max() < 1e-10
    return res.real


def _threshold(sv: np.ndarray, kind: str) -> float:
    """tau whose cut-off (soft: tau, log: 2 sqrt(tau)) lies half-way between the two middle singular values
    (away from the kink of the log rule, where g(sigma) is infinitely steep; conjugate slices have equal values)."""
    v = np.unique(np.round(sv.ravel(), 8))
    cut = 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])
    return cut if kind == "soft" else (cut / 2) ** 2


def np_singular_values(x: np.ndarray) -> np.ndarray:
    spec = np.fft.fft(x, axis=2)
    return np.stack([np.linalg.svd(spec[:, :, f], compute_uv=False) for f in range(x.shape[2])])


@pytest.mark.parametrize("kind", ["soft", "log"])
@pytest.mark.parametrize("n3", [7, 8])
def test_tsvd_shrink_matches_numpy(kind, n3):
    rng = np.random.default_rng(n3)
    x = rng.standard_normal((9, 5, n3))
    tau = _threshold(np_singular_values(x), kind)
    sv = np_singular_values(x)
    expected = np_tsvd_shrink(x, tau, kind)
    assert (np_shrink_values(sv, tau, kind) > 0).any() and (np_shrink_values(sv, tau, kind) == 0).any()
    got = tsvd_shrink(torch.from_numpy(x), tau, shrinkage=kind)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10, rtol=0)
    # groups: every label's rows form their own tensor (a small chunk size exercises the frequency split)
    labels = rng.integers(0, 3, 9)
    grouped = tsvd_shrink(torch.from_numpy(x), tau, shrinkage=kind, groups=torch.from_numpy(labels), n_groups=4,
                          chunk_bytes=1)
    for k in range(3):
        np.testing.assert_allclose(grouped.numpy()[labels == k], np_tsvd_shrink(x[labels == k], tau, kind),
                                   atol=1e-10, rtol=0)


def test_tensor_nuclear_norm_drops_as_expected_on_low_tubal_rank_plus_noise():
    rng = np.random.default_rng(1)
    n1, n2, n3, r = 20, 15, 8, 3
    a = np.fft.fft(rng.standard_normal((n1, r, n3)), axis=2)
    b = np.fft.fft(rng.standard_normal((r, n2, n3)), axis=2)
    clean = np.fft.ifft(np.einsum("irf,rjf->ijf", a, b), axis=2).real  # t-product: tubal rank r
    noisy = clean + 0.01 * rng.standard_normal(clean.shape)
    sv = np_singular_values(noisy)
    tau = 0.5
    assert (sv[:, :r] > 5 * tau).all() and (sv[:, r:] < tau).all()  # signal above, noise below the threshold
    tnn_noisy = float(tensor_nuclear_norm(torch.from_numpy(noisy)))
    np.testing.assert_allclose(tnn_noisy, sv.sum() / n3, rtol=1e-12)
    out = tsvd_shrink(torch.from_numpy(noisy), tau, shrinkage="soft").numpy()
    # each slice loses tau per surviving singular value and all of its noise ones: TNN - r tau - noise TNN
    expected = tnn_noisy - r * tau - sv[:, r:].sum() / n3
    np.testing.assert_allclose(float(tensor_nuclear_norm(torch.from_numpy(out))), expected, rtol=1e-12)
    sv_out = np_singular_values(out)
    assert (sv_out[:, r:] < 1e-9).all() and (sv[:, r:] > 1e-3).all()  # tubal rank r (the noisy tensor: full)
    np.testing.assert_allclose(sv_out[:, :r], sv[:, :r] - tau, rtol=1e-10)


def test_patches_kmeans_and_join():
    assert patch_starts(10, 4, 3) == [0, 3, 6, 6]  # the last start again, as ExtractBlocks1.m
    assert patch_starts(11, 4, 3) == [0, 3, 6, 7]
    x = torch.arange(2 * 3 * 10 * 11, dtype=torch.float64).reshape(2, 3, 10, 11)
    p = extract_patches(x, 4, 3)
    assert p.shape == (2, 16, 3, 16)
    # patch (row start 3, column start 7), pixel (row 1, column 2) is element 1 + 4 * 2 (column-major)
    assert p[1, 1 * 4 + 3, 2, 1 + 4 * 2] == x[1, 2, 3 + 1, 7 + 2]
    torch.testing.assert_close(join_patches(p, (10, 11), 4, 3), x, atol=0, rtol=0)
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(30, 2, generator=g) * 0.1 + c for c in (0.0, 5.0, 10.0)])
    lab = kmeans(pts, 3, seed=0)
    assert torch.equal(lab, kmeans(pts, 3, seed=0))
    assert {tuple(torch.unique(lab[i * 30:(i + 1) * 30]).tolist()) for i in range(3)} == {(0,), (1,), (2,)}
    assert kmeans(pts[:2], 5, seed=0).max() <= 1  # K clipped to the point count


# --------------------------------------------------------------------------------------------- one ADMM step

def np_blur(x: np.ndarray, psf: np.ndarray) -> np.ndarray:
    k = psf.shape[0]
    c = k // 2
    out = np.zeros_like(x)
    for a in range(k):
        for b in range(k):
            out += psf[a, b] * np.roll(x, (a - c, b - c), axis=(-2, -1))
    return out


def np_step(v, g, hsi, msi, E, R, psf, r, o, labels, s, step, eta, mu, kind):
    """One iteration of TSVD_Subpace_FUS.m, densely: normal equations, patch groups, t-SVD shrink, average."""
    p, H, W = v.shape
    n = H * W
    eye = np.eye(n)
    T = np_blur(eye.reshape(n, H, W), psf).reshape(n, n).T  # column j = blur of pixel j
    keep = (np.arange(H)[:, None] % r == o) & (np.arange(W)[None] % r == o)
    T = T[keep.reshape(-1)]  # decimation after the blur
    Kh = np.kron(E, T)  # vec(E A T^T) = (E kron T) vec(A), row-major vec
    Km = np.kron(R @ E, np.eye(n))
    lhs = Kh.T @ Kh + Km.T @ Km + mu * np.eye(p * n)
    rhs = Kh.T @ hsi.reshape(-1) + Km.T @ msi.reshape(-1) + mu * (v + g / (2 * mu)).reshape(-1)
    a = np.linalg.solve(lhs, rhs).reshape(p, H, W)
    b = a - g / (2 * mu)
    rows, cols = patch_starts(H, s, step), patch_starts(W, s, step)
    blocks = np.stack([b[:, i:i + s, j:j + s].transpose(0, 2, 1).reshape(p, s * s) for i in rows for j in cols])
    out = np.zeros_like(blocks)
    for k in np.unique(labels):
        out[labels == k] = np_tsvd_shrink(blocks[labels == k], eta / (2 * mu), kind)
    acc, cnt = np.zeros_like(b), np.zeros((H, W))
    idx = 0
    for i in rows:
        for j in cols:
            acc[:, i:i + s, j:j + s] += out[idx].reshape(p, s, s).transpose(0, 2, 1)
            cnt[i:i + s, j:j + s] += 1
            idx += 1
    v_new = acc / cnt
    return a, v_new, g + 2 * mu * (v_new - a), blocks


@pytest.mark.parametrize("kind", ["log", "soft"])
def test_one_admm_step_matches_dense_numpy(kind):
    rng = np.random.default_rng(5)
    L, m, p, r, o, H, W, s, overlap = 5, 2, 3, 2, 1, 8, 8, 4, 2
    psf = rng.random((3, 3))
    psf /= psf.sum()  # asymmetric: catches a flipped kernel
    E = np.linalg.qr(rng.standard_normal((L, p)))[0]  # orthonormal, as the SVD basis
    R = rng.random((m, L))
    hsi = rng.random((L, H // r, W // r))
    msi = rng.random((m, H, W))
    v, g = rng.standard_normal((p, H, W)), 0.01 * rng.standard_normal((p, H, W))
    probe = rng.random((2, H, W))
    np.testing.assert_allclose(np_blur(probe, psf), blur(torch.from_numpy(probe)[None], torch.from_numpy(psf),
                                                          boundary="circular")[0].numpy(), atol=1e-13)
    n_patches = len(patch_starts(H, s, s - overlap)) ** 2
    labels = rng.integers(0, 3, n_patches)
    mu = 1e-3
    # a threshold in the middle of the singular values, so both branches of the shrinkage are exercised
    _, _, _, blocks = np_step(v, g, hsi, msi, E, R, psf, r, o, labels, s, s - overlap, 0.0, mu, kind)
    sv = np.concatenate([np_singular_values(blocks[labels == k]).ravel() for k in range(3)])
    tau = _threshold(sv, kind)
    eta = 2 * mu * tau
    a, v_new, g_new, _ = np_step(v, g, hsi, msi, E, R, psf, r, o, labels, s, s - overlap, eta, mu, kind)
    assert (np_shrink_values(sv, tau, kind) > 0).any() and (np_shrink_values(sv, tau, kind) == 0).any()
    t = lambda x: torch.from_numpy(x)[None]  # noqa: E731
    res = ltmr_admm(t(hsi), t(msi), basis=torch.from_numpy(E), srf=torch.from_numpy(R), psf=torch.from_numpy(psf),
                    ratio=r, offset=o, labels=t(labels), patch_size=s, overlap=overlap, eta=eta, mu=mu,
                    iterations=1, shrinkage=kind, init=(t(v), t(g)))
    for name, got, want in (("a", res.state.a, a), ("v", res.state.v, v_new), ("g", res.state.g, g_new)):
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got[0].numpy(), want, atol=1e-8, rtol=0, err_msg=name)
    np.testing.assert_allclose(res.z[0].numpy(), np.einsum("lp,phw->lhw", E, a), atol=1e-8)


# --------------------------------------------------------------------------------------------- Pavia


def test_pavia_beats_bicubic(pavia_r4, pavia_psnr):
    from hsfuse.methods.bicubic import fuse_bicubic
    from hsfuse.methods.hysure import fuse_hysure
    from hsfuse.methods.sylvester import fuse_fuse

    y = pavia_r4.measurement()
    base = pavia_psnr(fuse_bicubic(y, pavia_r4.physics))
    fuse = pavia_psnr(fuse_fuse(y, pavia_r4.physics))
    t0 = time.perf_counter()
    hysure = pavia_psnr(fuse_hysure(y, pavia_r4.physics))
    hysure_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    z = fuse_ltmr(y, pavia_r4.physics)
    seconds = time.perf_counter() - t0
    ltmr = pavia_psnr(z)
    print(f"\nPavia r=4 {tuple(z.shape[1:])} (noise-free, circular) PSNR: bicubic {base:.2f} dB, FUSE {fuse:.2f} dB, "
          f"HySure {hysure:.2f} dB ({hysure_s:.2f} s), LTMR {ltmr:.2f} dB ({seconds:.2f} s, 1 thread)")
    assert z.dtype == torch.float32  # (pavia_psnr checks the shape)
    assert ltmr > base + 10.0


# --------------------------------------------------------------------------------------------- contract

def _tiny(dtype=torch.float64, boundary="circular"):
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
    kw = dict(subspace_dim=4, clusters=5, iterations=4)
    z = fuse_ltmr(y, obs, progress=lambda d, t: seen.append((d, t)), **kw)
    assert z.shape == (2, 8, 18, 18) and z.dtype == dtype and torch.isfinite(z).all()
    assert seen[-1] == (4, 4)
    one = fuse_ltmr(FusionMeasurement(y.hsi[1:], y.msi[1:]), obs, **kw)  # a batch is its images one by one
    torch.testing.assert_close(z[1:], one, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    torch.testing.assert_close(fuse_ltmr(y, obs, **kw), z, atol=0, rtol=0)  # seeded: reproducible
    assert fuse_ltmr(y, obs, **{**kw, "clusters": 1, "shrinkage": "soft", "eta": 1e-3}).shape == z.shape


def test_options_match_signature_and_defaults():
    params = {k: v for k, v in inspect.signature(fuse_ltmr).parameters.items()
              if v.kind is inspect.Parameter.KEYWORD_ONLY and k != "progress"}
    fields = {f.name: f.default for f in dataclasses.fields(LtmrOptions)}
    assert fields == {k: v.default for k, v in params.items()}
    # eta: the noise-aware "auto" (the code's 1e-3 is ORIGINAL_ETA)
    assert fields == {"subspace_dim": 10, "patch_size": 7, "overlap": 4, "clusters": 200, "eta": "auto", "mu": 1e-3,
                      "iterations": 100, "shrinkage": "log", "seed": 0, "border": "circular", "pad": None}
    assert all(LtmrOptions.field_help().values())


@pytest.mark.parametrize("options, match", [
    ({"mu": 0.0}, "mu"), ({"eta": -1e-3}, "eta"), ({"eta": float("nan")}, "eta"), ({"iterations": 0}, "iterations"),
    ({"subspace_dim": 0}, "subspace_dim"), ({"patch_size": 0}, "patch_size"), ({"patch_size": 19}, "patch_size"),
    ({"overlap": 7}, "overlap"), ({"overlap": -1}, "overlap"), ({"clusters": 0}, "clusters"), ({"seed": -1}, "seed"),
    ({"shrinkage": "hard"}, "shrinkage"), ({"clusters": 2.0}, "clusters"),
])
def test_bad_options_refused(options, match):
    obs, y = _tiny()
    with pytest.raises(InputError, match=match):
        fuse_ltmr(y, obs, iterations=options.pop("iterations", 2), **options)


def test_bad_physics_or_data_refused():
    obs, y = _tiny(boundary="reflect")
    with pytest.raises(InputError, match="circular"):
        fuse_ltmr(y, obs, iterations=2)
    obs, y = _tiny()
    psf = torch.stack([gaussian_psf(3, fwhm=1.0 + 0.1 * i) for i in range(8)])
    with pytest.raises(InputError, match="one PSF"):
        fuse_ltmr(y, FusionObservation(SpatialDegradation(ratio=2, psf=psf), obs.spectral), iterations=2)
    bad = y.hsi.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        fuse_ltmr(FusionMeasurement(bad, y.msi), obs, iterations=2)
    with pytest.raises(InputError):
        fuse_ltmr(FusionMeasurement(y.hsi[:, :5], y.msi), obs, iterations=2)
