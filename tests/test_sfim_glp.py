"""SFIM-HS and MTF-GLP-HS (issue 17): NumPy transcriptions of the toolbox code, quality, contract, chunked plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods.glp import fir23_taps, fuse_glp, upsample_fir23
from hsfuse.methods.gsa import degrade_msi
from hsfuse.methods.sfim import SFIM_CHUNKED, fuse_sfim, nnls_gram
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.physics.spatial import blur, decimate


def small_obs(r=3, L=9, m=3, boundary="reflect", seed=0):
    g = torch.Generator().manual_seed(seed)
    return FusionObservation(
        SpatialDegradation(ratio=r, psf=gaussian_psf(2 * r + 1, fwhm=float(r)), boundary=boundary),
        SpectralResponse(torch.rand(m, L, generator=g, dtype=torch.float64), normalize="sum"))


def _pair(r=3, L=9, m=3, boundary="reflect", n=2, h=7, w=5):
    obs = small_obs(r=r, L=L, m=m, boundary=boundary, seed=3)
    g = torch.Generator().manual_seed(5)
    z = 0.1 + torch.rand(n, L, r * h, r * w, dtype=torch.float64, generator=g)
    return obs, obs.A(z)


# ------------------------------------------------------------------------------------------------ transcriptions

def _nn_up(x, r):  # imresize(x, r, 'nearest') at an integer scale
    return np.kron(x, np.ones((r, r)))


def _coefficients_np(hs, ms_lr, mode):
    """SFIM.m / MTF_GLP_wrapper.m: X ((m+1) x L) of the synthetic PANs; mode 1 returns the band indices."""
    L, m = hs.shape[0], ms_lr.shape[0]
    A = np.column_stack([ms_lr.reshape(m, -1).T, np.ones(ms_lr[0].size)])
    Y = hs.reshape(L, -1).T
    if mode == 1:
        cc = np.array([[np.corrcoef(Y[:, j], A[:, i])[0, 1] for j in range(L)] for i in range(m)])
        return np.argmax(cc, axis=0)
    if mode == 2:
        return np.linalg.solve(A.T @ A, A.T) @ Y
    from scipy.optimize import lsq_linear  # an independent solver for quadprog(H, f, lb = 0)

    return np.column_stack([lsq_linear(A, Y[:, i], bounds=(0, np.inf), method="bvls", tol=1e-14).x
                            for i in range(L)])


def sfim_reference_np(hs, ms, ms_lr, mode):
    """SFIM.m step by step (``low_res_ms`` given: the physics' degradation instead of imresize bilinear)."""
    L = hs.shape[0]
    m, H, W = ms.shape
    r = H // hs.shape[1]
    X = _coefficients_np(hs, ms_lr, mode)
    A = np.column_stack([ms_lr.reshape(m, -1).T, np.ones(ms_lr[0].size)])
    A2 = np.column_stack([ms.reshape(m, -1).T, np.ones(H * W)])
    out = np.zeros((L, H, W))
    for i in range(L):
        tmp1 = _nn_up(hs[i], r)
        if mode == 1:
            tmp2, tmp3 = ms[X[i]], ms_lr[X[i]]
        else:
            tmp2 = (A2 @ X[:, i]).reshape(H, W)
            tmp3 = (A @ X[:, i]).reshape(hs.shape[1:])
        tmp3 = _nn_up(tmp3, r)
        out[i] = tmp2 * tmp1 / tmp3
    return out


def interp23_np(x, r, offset):
    """interp23tapGeneral.m: zero-filled HR image with x at (offset + r i), circular 45-tap filtering (rows, cols)."""
    from scipy.signal import firwin  # = fir1(44, 1/r): Hamming window, unit DC gain

    base = r * firwin(45, 1.0 / r)
    h, w = x.shape
    up = np.zeros((r * h, r * w))
    up[offset::r, offset::r] = x
    for axis in (0, 1):
        n = up.shape[axis]
        up = sum(base[t] * np.take(up, (np.arange(n) + t - 22) % n, axis=axis) for t in range(45))
    return up


def glp_reference_np(hs, ms, ms_lr, lp_fn, offset, mode):
    """MTF_GLP_wrapper.m + MTF_GLP.m step by step, one phase (the physics'), per band, with lp_fn = S G."""
    L = hs.shape[0]
    m, H, W = ms.shape
    r = H // hs.shape[1]
    X = _coefficients_np(hs, ms_lr, mode)
    A2 = np.column_stack([ms.reshape(m, -1).T, np.ones(H * W)])
    top = 2.0 ** (hs.max() ** 0.5)
    out = np.zeros((L, H, W))
    for j in range(L):
        pan = ms[X[j]] if mode == 1 else (A2 @ X[:, j]).reshape(H, W)
        hsu = interp23_np(hs[j], r, offset)
        pan_lp = interp23_np(lp_fn(pan), r, offset)
        C = np.cov(hsu.ravel(), pan_lp.ravel())
        fused = hsu + C[0, 1] / C[1, 1] * (pan - pan_lp)
        out[j] = np.clip(fused, 0, top)
    return out


@pytest.mark.parametrize("synthesis, mode", [("nnls", 3), ("ls", 2), ("select", 1)])
@pytest.mark.parametrize("degrade", ["physics", "block_mean"])
def test_sfim_matches_numpy_transcription_of_sfim_m(synthesis, mode, degrade):
    obs, y = _pair()
    out = fuse_sfim(y, obs, synthesis=synthesis, degrade=degrade)
    ms_lr = degrade_msi(y.msi, obs, degrade=degrade)
    for n in range(2):
        ref = sfim_reference_np(y.hsi[n].numpy(), y.msi[n].numpy(), ms_lr[n].numpy(), mode)
        np.testing.assert_allclose(out[n].numpy(), ref, rtol=1e-6, atol=1e-8)


def test_nnls_gram_active_constraints_and_kkt():
    g = np.random.default_rng(0)
    A = g.normal(size=(50, 5))
    y = A @ np.array([1.0, -2.0, 0.5, 0.0, -1.0]) + 0.01 * g.normal(size=50)
    x = nnls_gram(A.T @ A, A.T @ y)[:, 0]
    from scipy.optimize import nnls

    np.testing.assert_allclose(x, nnls(A, y)[0], atol=1e-10)
    assert (x >= 0).all() and (x == 0).sum() >= 2  # negative directions are held at the bound


@pytest.mark.parametrize("r", [3, 4])
def test_fir23_is_fir1_and_upsampling_matches_interp23tapgeneral(r):
    from scipy.signal import firwin

    np.testing.assert_allclose(fir23_taps(r).numpy(), r * firwin(45, 1.0 / r), rtol=0, atol=1e-15)
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    for offset in range(r):
        up = upsample_fir23(x, ratio=r, offset=offset)
        for c in range(2):
            np.testing.assert_allclose(up[0, c].numpy(), interp23_np(x[0, c].numpy(), r, offset), atol=1e-13)


@pytest.mark.parametrize("synthesis, mode", [("ls", 2), ("nnls", 3), ("select", 1)])
@pytest.mark.parametrize("lowpass", ["physics", "gaussian"])
@pytest.mark.parametrize("r", [3, 4])
def test_glp_matches_numpy_transcription_of_mtf_glp(synthesis, mode, lowpass, r):
    obs, y = _pair(r=r, boundary="circular" if r == 4 else "reflect")
    out = fuse_glp(y, obs, synthesis=synthesis, lowpass=lowpass)
    ms_lr = degrade_msi(y.msi, obs)
    sp = obs.spatial
    psf = sp.psf if lowpass == "physics" else gaussian_psf(2 * r + 1, sigma=r / 2.35482)

    def lp_fn(pan):  # S G pan, one band at a time (the module filters the MSI bands and combines)
        t = torch.from_numpy(pan)[None, None]
        return decimate(blur(t, psf, boundary=sp.boundary), ratio=r, offset=sp.offset)[0, 0].numpy()

    for n in range(2):
        ref = glp_reference_np(y.hsi[n].numpy(), y.msi[n].numpy(), ms_lr[n].numpy(), lp_fn, sp.offset, mode)
        np.testing.assert_allclose(out[n].numpy(), ref, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------------------------ real scene

@pytest.fixture(scope="module")
def sim(pavia_r4):
    return pavia_r4


def test_sfim_and_glp_beat_bicubic_on_pavia(sim, pavia_psnr):
    from hsfuse.methods.bicubic import fuse_bicubic

    y = sim.measurement()
    base = pavia_psnr(fuse_bicubic(y, sim.physics))
    scores = {name: pavia_psnr(f(y, sim.physics)) for name, f in (("sfim", fuse_sfim), ("glp", fuse_glp))}
    print(f"\nPavia r=4 PSNR: bicubic {base:.2f} dB, " + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
    assert 20.0 < base < 35.0
    for name, score in scores.items():
        assert score > base + 8.0, f"{name}: {score:.2f} dB vs bicubic {base:.2f} dB"


def test_sfim_chunked_equals_whole_image(sim):
    import copy

    from hsfuse.chunked import fuse_chunked
    from hsfuse.methods import get_method

    assert get_method("sfim").chunked is SFIM_CHUNKED
    y = sim.measurement()
    for options in ({}, {"synthesis": "ls", "degrade": "block_mean"}):
        whole = fuse_sfim(y, copy.deepcopy(sim.physics).float(), **options)[0].numpy()
        res = fuse_chunked(y.hsi[0].numpy(), y.msi[0].numpy(), method="sfim", physics=sim.physics,
                           options=options, chunk=32)
        assert len(res.grid) > 1
        np.testing.assert_allclose(res.output.values, whole, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ contract

@pytest.mark.parametrize("fn", [fuse_sfim, fuse_glp])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype(fn, dtype):
    obs, y = _pair(r=2, n=1)
    out = fn(type(y)(y.hsi.to(dtype), y.msi.to(dtype)), obs)
    assert out.shape == (1, 9, 14, 10) and out.dtype == dtype and torch.isfinite(out).all()


@pytest.mark.parametrize("fn, bad", [(fuse_sfim, {"synthesis": "pca"}), (fuse_sfim, {"degrade": "bilinear"}),
                                     (fuse_glp, {"lowpass": "mtf"}), (fuse_glp, {"clip": "max"})])
def test_bad_options_are_refused(fn, bad):
    obs, y = _pair(n=1)
    with pytest.raises(InputError):
        fn(y, obs, **bad)


@pytest.mark.parametrize("fn", [fuse_sfim, fuse_glp])
def test_non_finite_and_mismatched_inputs_are_refused(fn):
    obs, y = _pair(n=1)
    hsi = y.hsi.clone()
    hsi[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        fn(type(y)(hsi, y.msi), obs)
    with pytest.raises(InputError):
        fn(type(y)(y.hsi, y.msi[..., :-1]), obs)


def test_sfim_zero_synthetic_pan_keeps_the_upsampled_band():
    obs, y = _pair(n=1)
    msi = y.msi.clone()
    msi[..., :6, :] = 0.0  # MSI dark at the top: a synthetic PAN of zero there (no negative coefficients)
    hsi = y.hsi.clone()
    out = fuse_sfim(type(y)(hsi, msi), obs, synthesis="select", degrade="block_mean")
    assert torch.isfinite(out).all()
