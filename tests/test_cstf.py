"""CSTF as a fusion method: its steps and the whole loop against a NumPy transcription of the original's MATLAB
(CSTF_FUS.m, sparse_tucker2.m, DIC_CG1.m, DIC_CG.m, PTx.m, PTPx.m), the normal equations / optimality each step
solves, refusals, batching, quality on Pavia."""

from __future__ import annotations

import dataclasses
import inspect
import time

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods import get_method
from hsfuse.methods.cstf import (CstfOptions, cstf_fit, degrade_1d, dictionary_cg_spatial, dictionary_cg_spectral,
                                 fuse_cstf, initial_dictionaries, otf_1d, separable_kernels, sparse_tucker)
from hsfuse.methods.vca import vca
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small per-image solvers, one torch thread


# --------------------------------------------------------------------------------------------- NumPy transcription
# MATLAB tensors are M x N x L (rows, columns, bands); 1-based s0 = offset + 1.

def np_unfold(x, i):
    """Unfold.m: reshape(shiftdim(X, i-1), dim(i), []) (column-major)."""
    k = i - 1
    return np.transpose(x, [(k + j) % 3 for j in range(3)]).reshape(x.shape[k], -1, order="F")


def np_ttm(x, u, mode):
    """ttm(tensor(X), U, mode) with 1-based mode."""
    return np.moveaxis(np.tensordot(u, x, axes=(1, mode - 1)), 0, mode - 1)


def np_psf2otf_1d(kernel, n):
    pad = np.zeros(n)
    pad[: len(kernel)] = kernel
    return np.fft.fft(np.roll(pad, -(len(kernel) // 2)))


def np_blur_down(d, otf, s0, sf):
    """D_1 = ifft(fft(D1) .* repmat(BW, ...)); D_1 = D_1(s0:sf:end, :)."""
    return np.real(np.fft.ifft(np.fft.fft(d, axis=0) * otf[:, None], axis=0))[s0 - 1 :: sf]


def np_ptx(a, otf, s0, sf):
    z = np.zeros((sf * a.shape[0], a.shape[1]))
    z[s0 - 1 :: sf] = a
    return np.real(np.fft.ifft(np.fft.fft(z, axis=0) * np.conj(otf)[:, None], axis=0))


def np_ptpx(a, otf, s0, sf):
    hx = np.real(np.fft.ifft(np.fft.fft(a, axis=0) * otf[:, None], axis=0))
    z = np.zeros_like(a)
    z[s0 - 1 :: sf] = hx[s0 - 1 :: sf]
    return np.real(np.fft.ifft(np.fft.fft(z, axis=0) * np.conj(otf)[:, None], axis=0))


def np_chain(x, us, transpose):
    for i, u in enumerate(us):
        x = np_ttm(x, u.T if transpose else u, i + 1)
    return x


def np_sparse_tucker2(d1, d2, x, y, lam, a0, mu1):
    """sparse_tucker2.m, line by line (T = 60, internal mu = 0.01, A starts at zero)."""
    mu = 0.01
    shape = (d1[0].shape[1], d1[1].shape[1], d1[2].shape[1])

    def prepare(ds, data):
        dtx = np_chain(data, ds, True)
        wt = np.ones(1)
        ps = [None] * 3
        for i in (2, 1, 0):
            g = ds[i].T @ ds[i]
            s, u = np.linalg.eigh((g + g.T) / 2)  # MATLAB's eig takes the symmetric solver for D'*D
            ps[i] = u
            wt = np.outer(s, wt).ravel(order="F")
        wt = (wt + mu).reshape(shape, order="F")
        return ps, wt, np_chain(np_chain(dtx, ps, True) / wt, ps, False)

    p, wt, bbb = prepare(d1, x)
    p1, wt1, bbb1 = prepare(d2, y)
    a = np.zeros(shape)
    v1 = np.zeros(shape)
    v2 = np.zeros(shape)
    for _ in range(60):
        s = bbb + np_chain(np_chain(mu * (a - v1), p, True) / wt, p, False)
        s1 = bbb1 + np_chain(np_chain(mu * (a - v2), p1, True) / wt1, p1, False)
        d = (mu * (s + v1 + s1 + v2) + mu1 * a0) / (2 * mu + mu1)
        t = lam / (4 * mu + 2 * mu1)
        a = np.sign(d) * np.maximum(np.abs(d) - t, 0)
        v1 = v1 + (s - a)
        v2 = v2 + (s1 - a)
    return a


def np_cg(h, e0, apply, iters=30):
    r0 = h - apply(e0)
    p0 = r0
    e = e0
    for _ in range(iters):
        pp = apply(p0)
        a = (r0.ravel() @ r0.ravel()) / (p0.ravel() @ pp.ravel())
        e = e0 + a * p0
        r1 = r0 - a * pp
        b1 = (r1.ravel() @ r1.ravel()) / (r0.ravel() @ r0.ravel())
        p0 = r1 + b1 * p0
        r0 = r1
        e0 = e
    return e


def np_dic_cg1(y, e0, b, z, sf, s0, fft_b, a, mu1):
    """DIC_CG1.m."""
    a1 = a @ a.T
    b1 = b @ b.T + mu1 * np.eye(b.shape[0])
    h = np_ptx(z, fft_b, s0, sf) @ a.T + mu1 * e0 + y @ b.T
    return np_cg(h, e0, lambda e: e @ b1 + np_ptpx(e, fft_b, s0, sf) @ a1)


def np_dic_cg(y, e0, b, z, p, a, mu1):
    """DIC_CG.m."""
    p1 = p.T @ p
    a1 = a @ a.T
    b1 = b @ b.T + mu1 * np.eye(b.shape[0])
    h = p.T @ z @ a.T + mu1 * e0 + y @ b.T
    return np_cg(h, e0, lambda e: e @ b1 + p1 @ e @ a1)


def np_cstf_fus(hsi, msi, t, bw, bh, sf, s0, lam, d1, d2, d3, outer=3):
    """CSTF_FUS.m from given initial dictionaries (the svds / vca lines replaced by D1, D2, D3)."""
    mu = 0.001
    hsi1, hsi2, hsi3 = (np_unfold(hsi, i) for i in (1, 2, 3))
    msi1, msi2, msi3 = (np_unfold(msi, i) for i in (1, 2, 3))
    d_1, d_2, d_3 = np_blur_down(d1, bw, s0, sf), np_blur_down(d2, bh, s0, sf), t @ d3
    c = np.zeros((d1.shape[1], d2.shape[1], d3.shape[1]))
    c = np_sparse_tucker2([d_1, d_2, d3], [d1, d2, d_3], hsi, msi, lam, c, mu)
    for _ in range(outer):
        cc2 = np_unfold(np_ttm(np_ttm(c, d2, 2), d_3, 3), 1)
        cc4 = np_unfold(np_ttm(np_ttm(c, d_2, 2), d3, 3), 1)
        d1 = np_dic_cg1(msi1, d1, cc2, hsi1, sf, s0, bw, cc4, mu)
        d_1 = np_blur_down(d1, bw, s0, sf)
        cc2 = np_unfold(np_ttm(np_ttm(c, d1, 1), d_3, 3), 2)
        cc4 = np_unfold(np_ttm(np_ttm(c, d_1, 1), d3, 3), 2)
        d2 = np_dic_cg1(msi2, d2, cc2, hsi2, sf, s0, bh, cc4, mu)
        d_2 = np_blur_down(d2, bh, s0, sf)
        cc2 = np_unfold(np_ttm(np_ttm(c, d_1, 1), d_2, 2), 3)
        cc4 = np_unfold(np_ttm(np_ttm(c, d1, 1), d2, 2), 3)
        d3 = np_dic_cg(hsi3, d3, cc2, msi3, t, cc4, mu)
        d_3 = t @ d3
        c = np_sparse_tucker2([d_1, d_2, d3], [d1, d2, d_3], hsi, msi, lam, c, mu)
    return np_chain(c, [d1, d2, d3], False), c


# --------------------------------------------------------------------------------------------- tiny problem

KA = np.array([0.2, 0.5, 0.3])  # 1-D kernels of the separable PSF: rows, columns
KB = np.array([0.25, 0.45, 0.3])


def _tiny(dtype=torch.float64, boundary="circular", n=1, psf=None, size=(12, 8), ratio=2, offset=1):
    g = torch.Generator().manual_seed(0)
    if psf is None:
        psf = torch.from_numpy(np.outer(KA, KB))
    obs = FusionObservation(SpatialDegradation(ratio=ratio, psf=psf, offset=offset, boundary=boundary),
                            SpectralResponse(torch.rand(3, 8, generator=g, dtype=torch.float64), normalize="sum"))
    z = torch.nn.functional.avg_pool2d(torch.rand(n, 8, size[0] + 2, size[1] + 2, generator=g,
                                                  dtype=torch.float64), 3, 1)
    y = obs.A(z)
    return obs, FusionMeasurement(y.hsi.to(dtype), y.msi.to(dtype))


def _matlab(t):
    """(L, H, W) torch -> M x N x L numpy."""
    return t.numpy().transpose(1, 2, 0)


def test_separable_kernels_and_one_dimensional_degradation():
    a, b = separable_kernels(torch.from_numpy(np.outer(KA, KB)))
    np.testing.assert_allclose(np.outer(a.numpy(), b.numpy()), np.outer(KA, KB), atol=1e-15)
    d = np.random.default_rng(1).standard_normal((12, 5))
    got = degrade_1d(torch.from_numpy(d)[None], otf_1d(torch.from_numpy(KA), 12), ratio=3, offset=2)[0]
    np.testing.assert_allclose(got.numpy(), np_blur_down(d, np_psf2otf_1d(KA, 12), 3, 3), atol=1e-14)
    # a circular blur with the outer product, then decimation, = the two 1-D degradations (physics conventions)
    obs, _ = _tiny()
    x = torch.rand(1, 1, 12, 8, dtype=torch.float64)
    want = obs.spatial.A(x)[0, 0].numpy()
    rows = np_blur_down(x[0, 0].numpy(), np_psf2otf_1d(KA, 12), 2, 2)
    np.testing.assert_allclose(np_blur_down(rows.T, np_psf2otf_1d(KB, 8), 2, 2).T, want, atol=1e-14)


def test_core_step_matches_numpy():
    rng = np.random.default_rng(2)
    lr = [rng.standard_normal(s) for s in ((6, 5), (4, 4), (8, 3))]
    hr = [rng.standard_normal(s) for s in ((12, 5), (8, 4), (3, 3))]
    x, y = rng.standard_normal((6, 4, 8)), rng.standard_normal((12, 8, 3))
    prev = rng.standard_normal((5, 4, 3))
    lam = 0.3  # large enough for the threshold to zero a part of the core
    want = np_sparse_tucker2(lr, hr, x, y, lam, prev, 1e-3)
    assert 0 < (want == 0).mean() < 1
    t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    got = sparse_tucker(t(x), t(y), tuple(map(t, lr)), tuple(map(t, hr)), lam=lam, previous=t(prev))[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-9 * np.abs(want).max())


def test_core_step_converges_to_the_least_squares_core():
    """lam = 0: the ADMM's fixed point minimises 1/2||x - K_h c||^2 + 1/2||y - K_m c||^2 + mu1/2||c - c0||^2."""
    rng = np.random.default_rng(3)

    def mat(rows, cols):  # singular values 0.3..0.6: Kronecker Grams near rho = 0.01, where the ADMM converges fast
        return np.linalg.qr(rng.standard_normal((rows, cols)))[0] * rng.uniform(0.3, 0.6, cols)

    lr = [mat(*s) for s in ((3, 3), (2, 2), (5, 2))]
    hr = [mat(*s) for s in ((6, 3), (4, 2), (2, 2))]
    x, y = rng.standard_normal((3, 2, 5)), rng.standard_normal((6, 4, 2))
    prev = rng.standard_normal((3, 2, 2))
    kron = lambda ds: np.kron(np.kron(ds[2], ds[1]), ds[0])  # noqa: E731  (column-major vec)
    kh, km = kron(lr), kron(hr)
    vec = lambda a: a.ravel(order="F")  # noqa: E731
    lhs = kh.T @ kh + km.T @ km + 1e-3 * np.eye(12)
    want = np.linalg.solve(lhs, kh.T @ vec(x) + km.T @ vec(y) + 1e-3 * vec(prev)).reshape((3, 2, 2), order="F")
    t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    got = sparse_tucker(t(x), t(y), tuple(map(t, lr)), tuple(map(t, hr)), lam=0.0, previous=t(prev),
                        iterations=300)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("iterations, tol", [(30, 1e-9), (400, None)])
def test_spatial_dictionary_step(iterations, tol):
    rng = np.random.default_rng(4)
    n, k, sf, s0 = 12, 5, 3, 2
    y, e0, b = rng.standard_normal((n, 7)), rng.standard_normal((n, k)), rng.standard_normal((k, 7))
    z, a = rng.standard_normal((n // sf, 9)), rng.standard_normal((k, 9))
    otf = np_psf2otf_1d(KA, n)
    t = lambda v: torch.from_numpy(v)[None]  # noqa: E731
    got = dictionary_cg_spatial(t(y), t(e0), t(b), t(z), t(a), otf=otf_1d(torch.from_numpy(KA), n), ratio=sf,
                                offset=s0 - 1, iterations=iterations)[0].numpy()
    if tol is not None:
        want = np_dic_cg1(y, e0, b, z, sf, s0, otf, a, 1e-3)
        np.testing.assert_allclose(got, want, atol=tol * np.abs(want).max())
    else:  # many iterations: the solution of the normal equations, from a dense Kronecker system
        pm = np_blur_down(np.eye(n), otf, s0, sf)  # P as a matrix
        lhs = np.kron((b @ b.T + 1e-3 * np.eye(k)).T, np.eye(n)) + np.kron((a @ a.T).T, pm.T @ pm)
        rhs = pm.T @ z @ a.T + 1e-3 * e0 + y @ b.T
        want = np.linalg.solve(lhs, rhs.ravel(order="F")).reshape((n, k), order="F")
        np.testing.assert_allclose(got, want, atol=1e-8 * np.abs(want).max())


def test_spectral_dictionary_step_matches_numpy():
    rng = np.random.default_rng(5)
    y, e0, b = rng.standard_normal((8, 11)), rng.standard_normal((8, 4)), rng.standard_normal((4, 11))
    z, a, p = rng.standard_normal((3, 20)), rng.standard_normal((4, 20)), rng.random((3, 8))
    t = lambda v: torch.from_numpy(v)[None]  # noqa: E731
    got = dictionary_cg_spectral(t(y), t(e0), t(b), t(z), t(a), srf=torch.from_numpy(p))[0].numpy()
    want = np_dic_cg(y, e0, b, z, p, a, 1e-3)
    np.testing.assert_allclose(got, want, atol=1e-9 * np.abs(want).max())


def test_whole_method_matches_numpy_transcription():
    """fuse_cstf vs CSTF_FUS.m in NumPy: D1, D2 from NumPy's SVD of the Grams (other signs: the result does not
    depend on them), D3 from hsfuse's VCA with the same seed (CSTF's vca.m is the CNMF toolbox's variant).

    Dictionary sizes well below the image's: with n_r, n_c close to H, W the original itself is chaotic (30 CG
    steps on systems of condition ~1e5; a 1e-14 relative change of the input moves its output by ~3e-5 at
    atoms 10, 7, 4 here), and the two transcriptions differ by exactly that much."""
    obs, y = _tiny()
    kw = dict(atoms_rows=5, atoms_cols=4, atoms_spectral=3, lam=1e-3)
    z = fuse_cstf(y, obs, **kw)
    hsi, msi = _matlab(y.hsi[0]), _matlab(y.msi[0])
    m1, m2 = np_unfold(msi, 1), np_unfold(msi, 2)
    d1 = np.linalg.svd(m1 @ m1.T)[0][:, :5]
    d2 = np.linalg.svd(m2 @ m2.T)[0][:, :4]
    d3 = vca(y.hsi[0].reshape(8, -1), 3, seed=0, variant="cnmf").endmembers[0].numpy()
    _, _, init3 = initial_dictionaries(y.hsi, y.msi, atoms=(5, 4, 3))
    np.testing.assert_array_equal(init3[0].numpy(), d3)
    t = obs.spectral.matrix.numpy()
    want, core = np_cstf_fus(hsi, msi, t, np_psf2otf_1d(KA, 12), np_psf2otf_1d(KB, 8), 2, 2, 1e-3, d1, d2, d3)
    assert 0 < (core == 0).mean() < 1  # the L1 threshold is active
    np.testing.assert_allclose(_matlab(z[0]), want, atol=1e-7 * np.abs(want).max())  # measured 2.7e-10
    # and the low-level solver from the NumPy dictionaries gives the same core
    res = cstf_fit(y.hsi, y.msi, dictionaries=tuple(torch.from_numpy(d)[None] for d in (d1, d2, d3)),
                   srf=obs.spectral.matrix, kernels=(torch.from_numpy(KA), torch.from_numpy(KB)), ratio=2, offset=1,
                   lam=1e-3)
    np.testing.assert_allclose(res.core[0].numpy(), core, atol=1e-7 * np.abs(core).max())


def test_refusals():
    obs, y = _tiny(boundary="reflect")
    with pytest.raises(InputError, match="circular"):
        fuse_cstf(y, obs, iterations=1)
    psf = torch.tensor([[0.1, 0.2, 0.0], [0.05, 0.3, 0.1], [0.0, 0.05, 0.2]], dtype=torch.float64)
    obs, y = _tiny(psf=psf)
    with pytest.raises(InputError, match="not .*separable|separable PSF"):
        fuse_cstf(y, obs, iterations=1)
    # separable="nearest": the rank-1 (Frobenius) approximation (NumPy's SVD as the reference)
    u, sv, vh = np.linalg.svd(psf.numpy())
    a, b = separable_kernels(psf, tolerance=float("inf"))
    np.testing.assert_allclose(np.outer(a.numpy(), b.numpy()), sv[0] * np.outer(u[:, 0], vh[0]), atol=1e-14)
    assert torch.isfinite(fuse_cstf(y, obs, iterations=1, separable="nearest")).all()
    with pytest.raises(InputError, match="separable must be"):
        fuse_cstf(y, obs, iterations=1, separable="maybe")
    with pytest.raises(InputError, match="one PSF"):
        per_band = torch.stack([gaussian_psf(3, fwhm=1.0 + 0.1 * i) for i in range(8)])
        fuse_cstf(y, FusionObservation(SpatialDegradation(ratio=2, psf=per_band), obs.spectral), iterations=1)
    obs, y = _tiny()
    for options, match in [({"lam": -1.0}, "lam"), ({"proximal": 0.0}, "proximal"), ({"atoms_rows": 0}, "atoms_rows"),
                           ({"admm_iterations": 0}, "admm_iterations"), ({"seed": -1}, "seed")]:
        with pytest.raises(InputError, match=match):
            fuse_cstf(y, obs, **options)
    with pytest.raises(InputError):
        fuse_cstf(FusionMeasurement(y.hsi[:, :5], y.msi), obs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_dtype_progress_and_registry(dtype):
    obs, y = _tiny(dtype, n=2, psf=gaussian_psf(5, fwhm=2.0), size=(16, 12), ratio=4, offset=1)
    seen = []
    z = fuse_cstf(y, obs, atoms_spectral=4, progress=lambda d, t: seen.append((d, t)))  # atoms clipped to 16, 12
    assert z.shape == (2, 8, 16, 12) and z.dtype == dtype and torch.isfinite(z).all() and seen[-1] == (4, 4)
    one = fuse_cstf(FusionMeasurement(y.hsi[1:], y.msi[1:]), obs, atoms_spectral=4)
    torch.testing.assert_close(z[1:], one, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    torch.testing.assert_close(get_method("cstf").run(y, obs, options={"atoms_spectral": 4}), z, atol=0, rtol=0)


def test_options_match_signature_and_defaults():
    params = {k: v for k, v in inspect.signature(fuse_cstf).parameters.items()
              if v.kind is inspect.Parameter.KEYWORD_ONLY and k != "progress"}
    fields = {f.name: f.default for f in dataclasses.fields(CstfOptions)}
    assert fields == {k: v.default for k, v in params.items()}
    assert fields == {"atoms_rows": 240, "atoms_cols": 240, "atoms_spectral": 9, "lam": 1e-5, "proximal": 1e-3,
                      "penalty": 1e-2, "admm_iterations": 60, "cg_iterations": 30, "iterations": 3, "seed": 0,
                      "separable": "require", "border": "circular", "pad": None}
    spec = get_method("cstf")
    assert spec.options is CstfOptions and spec.needs_psf and spec.needs_srf


# --------------------------------------------------------------------------------------------- Pavia


def test_pavia_beats_bicubic(pavia_r4, pavia_psnr):
    from hsfuse.methods.bicubic import fuse_bicubic

    y = pavia_r4.measurement()
    base = pavia_psnr(fuse_bicubic(y, pavia_r4.physics))
    t0 = time.perf_counter()
    z = fuse_cstf(y, pavia_r4.physics)
    seconds = time.perf_counter() - t0
    cstf = pavia_psnr(z)
    print(f"\nPavia r=4 {tuple(z.shape[1:])} (noise-free, circular) PSNR: bicubic {base:.2f} dB, CSTF {cstf:.2f} dB "
          f"({seconds:.2f} s, 1 thread)")
    # measured: bicubic 26.58 dB, CSTF 41.97 dB (float32, ~1.6 s on one thread)
    assert z.dtype == torch.float32  # (pavia_psnr checks the shape)
    assert cstf > 39.0 and cstf > base + 12.0
