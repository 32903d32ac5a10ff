"""Tests for the classical methods' registry, cubic upsampling, GSA, and quality on a real scene.

Independent sources of the numbers asserted:
* cubic upsampling: a direct NumPy evaluation of the Keys (1981) formula written here, and exact reproduction
  of linear/quadratic ramps (Keys' kernel with a = -0.5 reproduces polynomials of degree <= 2);
* GSA: a NumPy re-implementation of ``GSA_wrapper.m`` / ``GSA.m`` written here (``np.corrcoef``,
  ``np.linalg.lstsq``, ``np.cov``), fed with the same upsampled / degraded inputs;
* real-scene quality: scikit-image's ``peak_signal_noise_ratio`` on the ROSIS Pavia University crop, with the
  IKONOS SRF interpolated here with ``np.interp``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsfuse.data.paths import data_root
from hsfuse.errors import InputError
from hsfuse.methods import METHODS, MethodSpec, fuse, fuse_bicubic, fuse_gsa, get_method, upsample_cubic

# networks: tests/test_models_contract.py; per-image optimisers (udaln): tests/test_udaln.py
CLASSICAL = sorted(n for n, s in METHODS.items() if s.direct)
from hsfuse.methods.gsa import band_groups, degrade_msi
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement

# ----------------------------------------------------------------------------------------------------------
# helpers


def keys_np(s: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(s)
    return np.where(
        t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1, np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0)
    )


def cubic_matrix_np(n_lr: int, r: int, o: int, boundary: str) -> np.ndarray:
    """(r*n_lr, n_lr) matrix of 1-D Keys interpolation at HR pixel X from LR coordinate (X - o) / r."""
    M = np.zeros((r * n_lr, n_lr))
    for X in range(r * n_lr):
        u = (X - o) / r
        for j in range(int(np.floor(u)) - 1, int(np.floor(u)) + 3):
            if boundary == "replicate":
                jj = min(max(j, 0), n_lr - 1)
            elif boundary == "reflect":
                jj = -j if j < 0 else (2 * (n_lr - 1) - j if j > n_lr - 1 else j)
            else:
                jj = j % n_lr
            M[X, jj] += keys_np(np.array(u - j))
    return M


def small_obs(*, r: int = 3, L: int = 7, m: int = 2, boundary: str = "reflect", dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    srf = torch.rand(m, L, generator=g, dtype=torch.float64)
    return FusionObservation(
        SpatialDegradation(ratio=r, psf=gaussian_psf(2 * r + 1, fwhm=float(r)), boundary=boundary),
        SpectralResponse(srf, normalize="sum"),
    )


# ----------------------------------------------------------------------------------------------------------
# cubic upsampling


@pytest.mark.parametrize("r", [2, 3, 4])
def test_cubic_reproduces_linear_and_quadratic_ramps_in_the_interior(r):
    h, w = 9, 7
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    for o in range(r):
        # HR pixel X sits at LR coordinate (X - o) / r, so the ramp a*u + b*v + c continues exactly
        U = (torch.arange(r * h, dtype=torch.float64)[:, None] - o) / r
        V = (torch.arange(r * w, dtype=torch.float64)[None, :] - o) / r
        for f in (lambda u, v: 0.3 * u - 1.7 * v + 2.0, lambda u, v: 0.5 * u * u - 0.25 * u * v + v):
            lr = f(i, j).expand(1, 1, h, w)
            up = upsample_cubic(lr, ratio=r, offset=o)[0, 0]
            inner_r = slice(o + r, o + r * (h - 2) + 1)  # LR coordinate in [1, h-2]: no padded sample used
            inner_c = slice(o + r, o + r * (w - 2) + 1)
            expected = f(U, V)
            assert torch.allclose(up[inner_r, inner_c], expected[inner_r, inner_c], atol=1e-12, rtol=0)
            # interpolating: the sample grid offset::r returns the LR pixels exactly, borders included
            assert torch.equal(up[o::r, o::r], lr[0, 0])


@pytest.mark.parametrize("boundary", ["replicate", "reflect", "circular"])
@pytest.mark.parametrize(("r", "o"), [(2, 0), (2, 1), (3, 1), (4, 3), (5, 2)])
def test_cubic_matches_direct_keys_formula_everywhere(boundary, r, o):
    rng = np.random.default_rng(r * 10 + o)
    h, w = 5, 6
    x = rng.random((2, 3, h, w))
    ref = np.einsum("Xi,ncij,Yj->ncXY", cubic_matrix_np(h, r, o, boundary), x, cubic_matrix_np(w, r, o, boundary))
    out = upsample_cubic(torch.from_numpy(x), ratio=r, offset=o, boundary=boundary)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-13)


def test_cubic_default_offset_and_ratio_one():
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    assert torch.equal(upsample_cubic(x, ratio=4)[..., 1::4, 1::4], x)  # default offset (4 - 1) // 2 = 1
    assert torch.equal(upsample_cubic(x, ratio=1), x)


def test_cubic_errors():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(InputError, match="offset"):
        upsample_cubic(x, ratio=2, offset=2)
    with pytest.raises(InputError, match="boundary"):
        upsample_cubic(x, ratio=2, boundary="zeros")
    with pytest.raises(InputError, match="at least 3x3"):
        upsample_cubic(torch.rand(1, 1, 2, 5), ratio=2, boundary="reflect")
    with pytest.raises(InputError, match="ratio"):
        upsample_cubic(x, ratio=1.5)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        upsample_cubic(torch.rand(4, 4), ratio=2)


def test_fuse_bicubic_is_upsampling_on_the_physics_grid():
    obs = small_obs(r=4)
    y = obs.A(torch.rand(1, 7, 20, 12, dtype=torch.float64))
    z = fuse_bicubic(y, obs, boundary="reflect")
    assert torch.equal(z[..., obs.spatial.offset :: 4, obs.spatial.offset :: 4], y.hsi)


# ----------------------------------------------------------------------------------------------------------
# registry


def test_registry_entries_and_lookup():
    assert {"bicubic", "gsa", "fuse"} <= set(METHODS)
    for name, spec in METHODS.items():
        assert isinstance(spec, MethodSpec) and spec.name == name and callable(spec.function)
        assert spec.reference and spec.description
    assert not any(METHODS[n].needs_training for n in ("bicubic", "gsa", "fuse"))
    assert all(METHODS[n].needs_training for n in ("two_branch", "dbin", "edbin", "dhifnet"))
    assert METHODS["udaln"].fits_per_image and not METHODS["udaln"].direct  # left out of demo / default bench
    assert all(METHODS[n].direct for n in ("bicubic", "gsa", "fuse"))
    assert get_method("fuse").needs_psf and get_method("fuse").needs_srf
    assert not get_method("gsa").needs_srf and not get_method("bicubic").needs_psf
    with pytest.raises(InputError, match="bicubic, cnmf, cstf, dbin, dhifnet, edbin, fuse, glp, gsa, hysure, ltmr, sfim, two_branch"):
        get_method("nope")


def test_registry_fuse_forwards_options_and_rejects_unknown_ones():
    obs = small_obs(r=2, boundary="circular")
    y = obs.A(torch.rand(1, 7, 10, 8, dtype=torch.float64))
    assert torch.equal(fuse("bicubic", y, obs, boundary="circular"), fuse_bicubic(y, obs, boundary="circular"))
    with pytest.raises(InputError, match="no option.*lambda.*lam"):
        fuse("fuse", y, obs, **{"lambda": 1.0})


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_method_contract_shape_dtype_device_finite(name, dtype):
    obs = small_obs(r=3, L=7, m=2, boundary="circular")
    z = torch.rand(2, 7, 15, 9, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y = obs.A(z)
    out = fuse(name, y, obs)
    assert out.shape == z.shape and out.dtype == dtype and out.device == z.device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", CLASSICAL)
def test_every_method_rejects_inconsistent_inputs(name):
    obs = small_obs(r=3, L=7, m=2, boundary="circular")
    y = obs.A(torch.rand(1, 7, 15, 9, dtype=torch.float64))
    with pytest.raises(InputError, match="HSI 5x3 and MSI 12x9 are not related by one integer ratio"):
        fuse(name, FusionMeasurement(y.hsi, y.msi[..., :12, :]), obs)
    with pytest.raises(InputError, match="7 bands"):
        fuse(name, FusionMeasurement(y.hsi[:, :6], y.msi), obs)
    with pytest.raises(InputError, match="2 bands"):
        fuse(name, FusionMeasurement(y.hsi, y.msi[:, :1]), obs)
    with pytest.raises(InputError, match="batch"):
        fuse(name, FusionMeasurement(y.hsi, y.msi.expand(2, -1, -1, -1)), obs)
    if name != "bicubic":  # bicubic only reads the HSI
        bad = y.msi.clone()
        bad[0, 0, 0, 0] = float("nan")
        with pytest.raises(InputError, match="NaN"):
            fuse(name, FusionMeasurement(y.hsi, bad), obs)


# ----------------------------------------------------------------------------------------------------------
# GSA


def gsa_reference_np(hs_lr, hs_up, ms, ms_lr):
    """GSA_wrapper.m + GSA.m in NumPy (one image; arrays are bands x rows x cols)."""
    L, m = hs_lr.shape[0], ms.shape[0]
    A = np.array([[np.corrcoef(ms_lr[i].ravel(), hs_lr[j].ravel())[0, 1] for j in range(L)] for i in range(m)])
    groups = A.argmax(axis=0)
    out = np.zeros_like(hs_up)
    for j in range(m):
        idx = np.flatnonzero(groups == j)
        if idx.size == 0:
            continue
        lr0 = hs_lr[idx] - hs_lr[idx].mean(axis=(1, 2), keepdims=True)
        up0 = hs_up[idx] - hs_up[idx].mean(axis=(1, 2), keepdims=True)
        pan = ms[j]
        design = np.concatenate([lr0.reshape(idx.size, -1).T, np.ones((lr0[0].size, 1))], axis=1)
        alpha = np.linalg.lstsq(design, (ms_lr[j] - pan.mean()).ravel(), rcond=None)[0]
        intensity = np.tensordot(alpha[:-1], up0, axes=1) + alpha[-1]
        i0 = intensity - intensity.mean()
        gains = np.array([np.cov(i0.ravel(), b.ravel())[0, 1] / np.var(i0.ravel(), ddof=1) for b in up0])
        fused = up0 + gains[:, None, None] * (pan - pan.mean() - i0)[None]
        out[idx] = fused - fused.mean(axis=(1, 2), keepdims=True) + hs_up[idx].mean(axis=(1, 2), keepdims=True)
    return out, groups


@pytest.mark.parametrize("degrade", ["physics", "block_mean"])
def test_gsa_matches_numpy_reference_of_the_matlab_code(degrade):
    obs = small_obs(r=3, L=9, m=3, boundary="reflect", seed=3)
    g = torch.Generator().manual_seed(5)
    z = torch.rand(2, 9, 21, 15, dtype=torch.float64, generator=g)
    y = obs.A(z)
    out = fuse_gsa(y, obs, degrade=degrade)
    ms_lr = degrade_msi(y.msi, obs, degrade=degrade)
    hs_up = upsample_cubic(y.hsi, ratio=3, offset=obs.spatial.offset)
    for n in range(2):
        ref, groups = gsa_reference_np(y.hsi[n].numpy(), hs_up[n].numpy(), y.msi[n].numpy(), ms_lr[n].numpy())
        assert len(set(groups.tolist())) > 1  # several groups exercised
        np.testing.assert_array_equal(band_groups(y.hsi, ms_lr)[n].numpy(), groups)
        np.testing.assert_allclose(out[n].numpy(), ref, rtol=0, atol=1e-10)


def test_gsa_degrade_block_mean_is_block_average():
    obs = small_obs(r=2)
    msi = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4)
    expected = torch.tensor([[2.5, 4.5], [10.5, 12.5]], dtype=torch.float64)  # hand-computed 2x2 block means
    assert torch.equal(degrade_msi(msi, obs, degrade="block_mean")[0, 0], expected)


def test_gsa_errors():
    obs = small_obs(r=3)
    y = obs.A(torch.rand(1, 7, 15, 9, dtype=torch.float64))
    with pytest.raises(InputError, match="degrade"):
        fuse_gsa(y, obs, degrade="bilinear")


# ----------------------------------------------------------------------------------------------------------
# real scene: both fusion methods must clearly beat the bicubic floor


@pytest.fixture(scope="module")
def pavia():
    root = data_root()
    scene, srf_csv = root / "derived" / "paviaU_subset.npz", root / "srf" / "ikonos_5nm.csv"
    if not scene.exists() or not srf_csv.exists():
        pytest.skip(f"shared data not found under {root} (set HSFUSE_DATA)")
    data = np.load(scene)
    r = 4
    cube = data["cube"].astype(np.float64)
    cube = cube[: cube.shape[0] // r * r, : cube.shape[1] // r * r]
    cube /= cube.max()
    table = np.genfromtxt(srf_csv, delimiter=",", names=True, skip_header=1)
    srf = np.stack([np.interp(data["wavelengths_nm"], table["wavelength_nm"], table[b], left=0, right=0)
                    for b in ("Blue", "Green", "Red", "NIR")])
    z = torch.from_numpy(np.ascontiguousarray(np.moveaxis(cube, 2, 0)))[None]
    return z, torch.from_numpy(srf), r


def psnr(est: torch.Tensor, ref: torch.Tensor) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(ref.numpy(), est.double().numpy(), data_range=1.0))


@pytest.mark.parametrize(("name", "boundary"), [("gsa", "reflect"), ("gsa", "circular"), ("fuse", "circular")])
def test_methods_beat_bicubic_on_pavia(pavia, name, boundary):
    z, srf, r = pavia
    obs = FusionObservation(
        SpatialDegradation(ratio=r, psf=gaussian_psf(2 * r + 1, fwhm=float(r)), boundary=boundary),
        SpectralResponse(srf, normalize="sum"),
    )
    y = obs.A(z.float())
    base = psnr(fuse("bicubic", y, obs), z)
    score = psnr(fuse(name, y, obs), z)
    assert 20.0 < base < 35.0  # sanity: the scene is a real, textured image
    assert score > base + 8.0, f"{name}: {score:.2f} dB vs bicubic {base:.2f} dB"
