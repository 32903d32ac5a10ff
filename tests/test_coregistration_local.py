"""Local co-registration (issue 16): a tie-point field of sub-pixel shifts (``estimate_shift_field``), its
correction (``warp_with_field``) and ``fuse_products(..., coregister="local")``, on real scenes whose MSI is moved by
a known, smoothly varying displacement.

The displacement, in HSI pixels at HSI coordinates ``(u, v)`` of an ``h x w`` image: ``dx = AMP_X v / (w - 1)`` (0 at
the left edge, ``AMP_X`` at the right) and ``dy = AMP_Y sin(pi u / (h - 1))`` (0 at the top and bottom, ``AMP_Y`` in
the middle). The displaced MSI at MSI pixel ``q`` holds the content of ``q - r D(q)`` (cubic spline), so the content
that belongs at ``p`` sits at ``p + r e(p)`` with ``e(p) = D(p + e(p))`` (:func:`_content_field`, within 0.03 pixel of
``D``): no single translation registers it (the best one leaves an RMS of 0.31 HSI pixel).

Independent sources: the displacement is built here (``scipy.ndimage.map_coordinates``), the HSI by the observation
model on the real scene (pavia_u; Jasper Ridge through the e2e fixture's truth), the expected fused image is the
fixture's reference scene.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from hsfuse.errors import InputError
from hsfuse.estimation.registration import ShiftField, check_coregistration, estimate_shift_field
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement

AMP_X, AMP_Y = 1.0, 0.4


def _true_field(h: int, w: int):
    def field(u, v):
        u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
        return AMP_Y * np.sin(np.pi * u / (h - 1)), AMP_X * v / (w - 1)

    return field


def _content_field(field):
    """Where the content that belongs at ``(u, v)`` sits, relative to ``(u, v)``: ``e(u) = D(u + e(u))`` (the image
    at ``q`` holds the content of ``q - D(q)``), by fixed-point iteration (|grad D| < 0.03: 4 steps reach 1e-6)."""
    def content(u, v):
        u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
        ey, ex = field(u, v)
        for _ in range(4):
            ey, ex = field(u + ey, v + ex)
        return ey, ex

    return content


def _displaced(msi: np.ndarray, r: int, field, origin: float) -> np.ndarray:
    """``msi`` (m, H, W) with its content moved by ``r * field`` (HSI pixels -> MSI pixels) at every MSI pixel."""
    H, W = msi.shape[1:]
    p = np.arange(H, dtype=np.float64)[:, None] + np.zeros((1, W))
    q = np.arange(W, dtype=np.float64)[None, :] + np.zeros((H, 1))
    dy, dx = field((p - origin) / r, (q - origin) / r)
    return np.stack([ndi.map_coordinates(c, [p - r * dy, q - r * dx], order=3, mode="nearest") for c in msi])


@pytest.fixture(scope="module")
def pavia(data_root):
    """Pavia University (140 x 80, 103 bands), r = 2: HSI S(B * Z) 70 x 40, a 4-band MSI R Z seen through a
    Gaussian MTF (sigma 0.6 MSI pixel: 0.17 at Nyquist, as a real MSI's; the crop of a 1.3 m urban scene is
    otherwise aliased enough that one cubic shift and back loses 2-3 %), moved by the field."""
    from hsfuse.data.scenes import load_scene

    cube = load_scene("pavia_u")
    z = np.ascontiguousarray(np.moveaxis(cube.data, 2, 0), dtype=np.float64)
    r = 2
    R = np.random.default_rng(5).random((4, cube.bands))
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=gaussian_psf(2 * r + 1, fwhm=float(r)), boundary="reflect"),
                            SpectralResponse(torch.from_numpy(R)))
    with torch.no_grad():
        hsi = obs.spatial.A(torch.from_numpy(z)[None])
    aligned = np.einsum("ml,lhw->mhw", obs.spectral.matrix.numpy(), z)
    aligned = np.stack([ndi.gaussian_filter(c, 0.6, mode="nearest") for c in aligned])
    h, w = hsi.shape[-2:]
    field = _true_field(h, w)
    moved = _displaced(aligned, r, field, obs.spatial.offset)
    return obs, hsi, aligned, moved, field


# ----------------------------------------------------------------------------------------------------------
# (a) the tie-point field


def test_the_field_is_recovered_where_one_translation_is_not(pavia):
    obs, hsi, _, moved, field = pavia
    field = _content_field(field)
    y = FusionMeasurement(hsi, torch.from_numpy(moved)[None])
    f = estimate_shift_field(y, obs, window=16, step=8)
    assert isinstance(f, ShiftField) and f.dy.shape == (7, 4) and f.n_accepted == f.n_total == 28
    assert f.ratio == 2 and f.hr_origin == 0.0 and f.peak.min() > 0.9
    np.testing.assert_allclose(f.rows, 10.5 + 8 * np.arange(7))  # windows of 16 every 8, centred on the 70 rows
    np.testing.assert_allclose(f.cols, 7.5 + 8 * np.arange(4))
    ty, tx = field(f.rows[:, None], f.cols[None, :])
    rms = float(np.sqrt(np.mean((f.dy - ty) ** 2 + (f.dx - tx) ** 2)))
    assert rms < 0.1, rms  # measured 0.073 (max 0.24: structure on one side of a window)
    # one translation (the check on the whole pair) leaves the field's variation
    g = check_coregistration(y, obs)
    u, v = np.mgrid[0:70, 0:40]
    gy, gx = field(u, v)
    residual = float(np.sqrt(np.mean((gy - g.shift_lr_px[0]) ** 2 + (gx - g.shift_lr_px[1]) ** 2)))
    assert residual > 0.2, residual  # measured 0.34
    # between the tie points, the interpolated field follows the true one too
    fy, fx = f.at(u[10:59, 8:32], v[10:59, 8:32])
    assert np.sqrt(np.mean((fy - gy[10:59, 8:32]) ** 2 + (fx - gx[10:59, 8:32]) ** 2)) < 0.1


def test_bad_tie_points_are_rejected_and_filled(pavia):
    """A masked strip (too few usable pixels) and an unmasked patch of unrelated content (no correlation)."""
    obs, hsi, _, moved, field = pavia
    garbage = moved.copy()
    patch = (slice(None), slice(64, 96), slice(24, 56))  # HSI rows 32-47, columns 12-27
    noise = ndi.gaussian_filter(np.random.default_rng(0).standard_normal((4, 32, 32)), (0, 1, 1))
    garbage[patch] = moved[patch].mean(axis=(1, 2), keepdims=True) + moved[patch].std(axis=(1, 2), keepdims=True) * (
        noise / noise.std(axis=(1, 2), keepdims=True))
    valid = np.ones(moved.shape[1:], bool)
    valid[:40, :] = False  # the top 20 HSI rows (and, through the footprint, row 20) unusable
    f = estimate_shift_field(FusionMeasurement(hsi, torch.from_numpy(garbage)[None]), obs, window=16, step=8,
                             valid=valid)
    # windows of rows 3-18 (none usable) and 11-26 (6 of 16 usable)
    assert f.rejected["valid"] == 8 and not f.accepted[:2].any() and (f.valid_fraction[:2] < 0.5).all()
    assert np.isnan(f.dy_raw[:2]).all() and (f.peak[:2] == 0).all()
    inside = (3, 1), (4, 1), (3, 2), (4, 2)  # windows mostly in the patch: no correlation
    assert not any(f.accepted[q] for q in inside) and f.rejected["failed"] + f.rejected["peak"] >= 4
    # a window a quarter in the patch still correlates (0.89) but its shift is biased by 0.45 pixel: an outlier
    assert not f.accepted[5, 2] and f.rejected["outlier"] >= 1
    # the cleaned field: the raw one where accepted, filled elsewhere; close to the truth over the rows with usable
    # pixels (measured RMS 0.08, max 0.19), at the last row of windows (rows 51-66, away from the patch) as without
    ty, tx = field(f.rows[:, None], f.cols[None, :])
    np.testing.assert_array_equal(f.dy[f.accepted], f.dy_raw[f.accepted])
    err = np.hypot(f.dy - ty, f.dx - tx)
    assert err[2:].max() < 0.25 and float(np.sqrt(np.mean(err[2:] ** 2))) < 0.15 and err[6].max() < 0.1, err


def test_an_outlier_is_rejected_against_its_neighbours(monkeypatch, pavia):
    """The rule itself, on shifts made up per window: an affine ramp, one tie point 0.5 pixel off (with a high
    correlation), one 0.8 pixel off and isolated among windows without structure. Every rejected tie point is
    filled with the ramp (the affine trend plus its accepted neighbours' median departure from it, here 0)."""
    import hsfuse.estimation.registration as reg

    obs, hsi, _, moved, _ = pavia
    calls = []

    def fake(a, b, *, valid=None, upsample=20):
        n = len(calls)
        calls.append(n)
        i, j = divmod(n, 4)
        if (i, j) in ((0, 1), (1, 0), (1, 1), (1, 2), (0, 2)):  # no structure around (0, 0)
            raise InputError("constant")
        dy, dx = 0.05 * i, 0.1 * j
        if (i, j) == (4, 2):
            dx += 0.5
        if (i, j) == (0, 0):
            dy += 0.8
        return dy, dx, 0.95

    monkeypatch.setattr(reg, "estimate_shift", fake)
    f = reg.estimate_shift_field(FusionMeasurement(hsi, torch.from_numpy(moved)[None]), obs, window=16, step=8)
    assert len(calls) == 28 and f.rejected == {"valid": 0, "failed": 5, "peak": 0, "outlier": 2}
    assert not f.accepted[4, 2] and not f.accepted[0, 0] and f.n_accepted == 21
    assert f.dy_raw[4, 2] == pytest.approx(0.2) and f.dx_raw[4, 2] == pytest.approx(0.7)
    assert np.isnan(f.dy_raw[1, 1]) and f.peak[1, 1] == 0.0
    i, j = np.mgrid[0:7, 0:4]
    np.testing.assert_allclose(f.dy, 0.05 * i, atol=1e-9)
    np.testing.assert_allclose(f.dx, 0.1 * j, atol=1e-9)


def test_the_field_is_bilinear_between_tie_points_and_constant_beyond():
    f = ShiftField(rows=np.array([10.0, 20.0]), cols=np.array([5.0, 15.0, 25.0]), dy_raw=np.zeros((2, 3)),
                   dx_raw=np.zeros((2, 3)), dy=np.array([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]),
                   dx=np.array([[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]), peak=np.ones((2, 3)),
                   valid_fraction=np.ones((2, 3)), accepted=np.ones((2, 3), bool), rejected={}, window=16, step=10,
                   ratio=4, hr_origin=1.0)
    dy, dx = f.at(np.array([[10.0], [15.0], [0.0], [99.0]]), np.array([[5.0, 10.0, -3.0, 40.0]]))
    np.testing.assert_allclose(dy, [[0, 0.5, 0, 2], [0.5, 1, 0.5, 2.5], [0, 0.5, 0, 2], [1, 1.5, 1, 3]])
    np.testing.assert_allclose(dx, [[0] * 4, [-0.5] * 4, [0] * 4, [-1] * 4])
    hy, hx = f.at_hr(np.array([61.0]), np.array([61.0]))  # MSI pixel 61 = HSI (61 - 1) / 4 = 15
    assert hy[0] == pytest.approx(4 * 1.5) and hx[0] == pytest.approx(4 * -0.5)


def test_field_errors(pavia):
    obs, hsi, _, moved, _ = pavia
    y = FusionMeasurement(hsi, torch.from_numpy(moved)[None])
    with pytest.raises(InputError, match="too small"):
        estimate_shift_field(y, obs, window=6)
    with pytest.raises(InputError, match="min_peak must be a non-negative number"):
        estimate_shift_field(y, obs, min_peak=-1)
    with pytest.raises(InputError, match="estimate_shift_field fits one image pair"):
        estimate_shift_field(FusionMeasurement(hsi.repeat(2, 1, 1, 1), y.msi.repeat(2, 1, 1, 1)), obs)


# ----------------------------------------------------------------------------------------------------------
# (b) warp_with_field


def _georef(arr: np.ndarray, transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)):
    """A north-up UTM DataArray (zone 10N) of ``arr`` on ``transform``."""
    pytest.importorskip("rioxarray")
    import xarray as xr
    from affine import Affine

    da = xr.DataArray(arr, dims=("band", "y", "x") if arr.ndim == 3 else ("y", "x"))
    da = da.assign_coords(y=transform[5] + transform[4] * (np.arange(arr.shape[-2]) + 0.5),
                          x=transform[2] + transform[0] * (np.arange(arr.shape[-1]) + 0.5))
    return da.rio.write_crs("EPSG:32610").rio.write_transform(Affine(*transform))


def test_warp_with_the_true_field_undoes_the_displacement(pavia):
    from hsfuse.geo import warp_with_field

    obs, _, aligned, moved, field = pavia
    field = _content_field(field)
    r, origin = 2, obs.spatial.offset

    def field_hr(rows, cols):
        dy, dx = field((rows - origin) / r, (cols - origin) / r)
        return r * dy, r * dx

    image = _georef(moved.astype(np.float32))
    back = warp_with_field(image, field_hr, chunk=48)  # several chunks and halos
    assert back.dims == image.dims and back.rio.crs == image.rio.crs and back.dtype == np.float32
    out = back.values.astype(np.float64)
    inner = (slice(None), slice(6, -6), slice(6, -6))
    rel = np.linalg.norm(out[inner] - aligned[inner]) / np.linalg.norm(aligned[inner])
    before = np.linalg.norm(moved[inner] - aligned[inner]) / np.linalg.norm(aligned[inner])
    assert rel < 0.02 and before > 5 * rel, (rel, before)  # measured 0.7 % (moved: 17 %)
    assert np.isnan(out[:, :, -1]).all() and np.isfinite(out[inner]).all()  # dx = 2 MSI px at the right edge
    whole = warp_with_field(image, field_hr, chunk=1000).values
    np.testing.assert_allclose(out, whole, atol=1e-5, equal_nan=True)  # chunking does not show


def test_a_constant_field_is_the_opposite_translation_of_warp_to_grid(pavia):
    from hsfuse.geo import grid_of, warp_to_grid, warp_with_field

    _, _, aligned, _, _ = pavia
    image = _georef(aligned.astype(np.float32))
    d = (1.6, -2.3)
    ours = warp_with_field(image, d, chunk=64).values.astype(np.float64)
    gdal = warp_to_grid(image, grid_of(image, "MSI"), shift=(-d[0], -d[1])).values.astype(np.float64)
    inner = (slice(None), slice(6, -6), slice(6, -6))
    rel = np.linalg.norm(ours[inner] - gdal[inner]) / np.linalg.norm(gdal[inner])
    assert rel < 0.02, rel  # cubic spline vs GDAL's cubic convolution: measured 0.7 %
    # exactly a shift of the content: out(p) = image(p + d)
    ref = np.stack([ndi.shift(c, (-d[0], -d[1]), order=3, mode="nearest") for c in aligned])
    np.testing.assert_allclose(ours[inner], ref[inner], atol=1e-5)
    # masks: nearest, True (unusable) outside and where the content came from a masked pixel
    mask = np.zeros(aligned.shape[1:], bool)
    mask[50:60, 20:30] = True
    moved = warp_with_field(_georef(mask), d).values
    expect = np.zeros_like(mask)
    expect[48:58, 22:32] = True  # out(p) = mask(p + d) rounded: rows 48..57, columns 22..31
    expect[:, :2] = expect[-2:, :] = True  # p + d rounds outside the image: columns < 1.8, rows > 137.9
    assert moved.dtype == bool
    np.testing.assert_array_equal(moved, expect)
    with pytest.raises(InputError, match="callable"):
        warp_with_field(image, "east")


# ----------------------------------------------------------------------------------------------------------
# (c) end to end through fuse_products


def _psnr(estimate: np.ndarray, reference: np.ndarray, keep: np.ndarray) -> float:
    err = (estimate[:, keep] - reference[:, keep]) ** 2
    return float(np.mean(10 * np.log10(1.0 / err.mean(axis=1))))


def test_fuse_products_local_removes_a_non_uniform_shift(tmp_path, data_root):
    """The e2e pair (Jasper Ridge, 30 m HSI + 10 m MSI bands B2, B3, B4, B8, UTM) without its global shift and
    cloud, the MSI moved by the field instead, given to ``fuse_products`` as georeferenced DataArrays."""
    from fixtures.products import make_e2e_pair as e2e

    from hsfuse.io.lazy import open_lazy
    from hsfuse.workflows.products import fuse_products

    t = e2e.make_e2e_pair(tmp_path / "pair", shift_hsi_px=(0.0, 0.0), cloud=False).truth
    sel = [t.msi_bands.index(b) for b in ("B2", "B3", "B4", "B8")]
    r = t.ratio
    moved = _displaced(t.msi_aligned[sel], r, _true_field(*t.hsi.shape[1:]), (r - 1) // 2)
    hsi = _georef(t.hsi.astype(np.float32), t.hsi_transform)
    msi = _georef(moved.astype(np.float32), t.hr_transform)
    srf = t.srf[sel][:, t.hsi_band_index]
    ref = t.reference[t.hsi_band_index]
    scores, reports, lines = {}, {}, []
    for mode in ("global", "local"):
        out = tmp_path / f"{mode}.tif"
        res = fuse_products(hsi, msi, out, method="gsa", srf=srf, psf=t.psf, coregister=mode, say=lines.append)
        z = open_lazy(out).values.astype(np.float64)
        keep = np.isfinite(z).all(axis=0)
        keep[:4], keep[-4:], keep[:, :4], keep[:, -4:] = False, False, False, False
        assert keep.mean() > 0.75
        scores[mode], reports[mode] = _psnr(z, ref, keep), res.report
    assert "registration_local" not in reports["global"]
    local = reports["local"]["registration_local"]
    assert local["applied"] and local["tie_points"]["total"] == 9 and local["tie_points"]["accepted"] == 9
    assert (local["window_hsi_px"], local["step_hsi_px"]) == (16, 8)  # 33 x 33 HSI pixels: small windows
    # what the global correction leaves, and what the local one leaves (both measured by the field)
    assert local["before"]["rms"] > 0.2 and local["before"]["max"] > 0.3, local  # measured 0.244, 0.426
    assert local["after"]["rms"] < 0.1 and local["after"]["max"] < 0.15, local  # measured 0.054, 0.091
    assert any(line.startswith("local co-registration: 9/9 tie points") for line in lines)
    assert scores["local"] > scores["global"] + 1.0, scores  # measured 28.91 -> 31.32 dB (GSA)
