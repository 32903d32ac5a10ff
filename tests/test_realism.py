"""Tests of hsfuse.metrics.realism (realism report of synthetic HSI datasets) and hsfuse.viz.synthesis_figures.

Independent sources: nearest angles against a brute-force double loop with ``np.arccos``; principal angles and
captured variance on hand-made subspaces with known rotation angles and variance shares; per-band statistics
with ``np.mean``/``np.std`` of the concatenated pixels; explained variance with ``np.linalg.eigvalsh`` of the
covariance; abundance violations counted by hand; PNG validity and size with Pillow.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hsfuse.errors import InputError, OutputExistsError
from hsfuse.metrics.realism import RealismReport, abundance_validity, nearest_angles, realism_report

# --------------------------------------------------------------------------------------------------------
# nearest_angles
# --------------------------------------------------------------------------------------------------------


def _brute_nearest(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    out = []
    for x in q:
        nx = math.sqrt(float(x @ x))
        if nx == 0:
            out.append(math.nan)
            continue
        best = math.inf
        for y in r:
            ny = math.sqrt(float(y @ y))
            if ny == 0:
                continue
            c = min(1.0, max(-1.0, float(x @ y) / (nx * ny)))
            best = min(best, math.degrees(math.acos(c)))
        out.append(best)
    return np.array(out)


def test_nearest_angles_matches_brute_force_with_zero_rows():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(7, 5))
    r = rng.normal(size=(9, 5))
    q[3] = 0.0
    r[2] = 0.0  # ignored as a reference
    r[5] = 1e-3 * r[5]  # scale does not matter
    expected = _brute_nearest(q, r)
    for chunk in (4096, 2, 1):
        got = nearest_angles(q, r, chunk=chunk)
        assert got.shape == (7,)
        assert np.isnan(got[3]) and np.isnan(expected[3])
        ok = ~np.isnan(expected)
        np.testing.assert_allclose(got[ok], expected[ok], rtol=0, atol=1e-7)
    # a zero reference row must not be chosen even though its "angle" would be undefined: drop it and compare
    np.testing.assert_allclose(nearest_angles(q, np.delete(r, 2, axis=0))[ok], expected[ok], atol=1e-7)


def test_nearest_angles_identical_sets_are_zero():
    x = np.random.default_rng(2).uniform(0.1, 1.0, size=(50, 8))
    np.testing.assert_array_equal(nearest_angles(x, x), np.zeros(50))
    np.testing.assert_array_equal(nearest_angles(x, x, chunk=7), np.zeros(50))


def test_nearest_angles_known_angle():
    q = np.array([[1.0, 0.0, 0.0]])
    r = np.array([[0.0, 1.0, 0.0], [math.cos(0.3), math.sin(0.3), 0.0]])
    np.testing.assert_allclose(nearest_angles(q, r), [math.degrees(0.3)], atol=1e-12)


def test_nearest_angles_bad_inputs():
    with pytest.raises(InputError, match="query has 3 bands but reference has 4"):
        nearest_angles(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(InputError, match="only zero-norm"):
        nearest_angles(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(InputError, match="2-D"):
        nearest_angles(np.ones((2, 3, 1)), np.ones((2, 3)))
    with pytest.raises(InputError, match="NaN/inf"):
        nearest_angles(np.array([[1.0, np.nan]]), np.ones((2, 2)))
    with pytest.raises(InputError, match="chunk"):
        nearest_angles(np.ones((2, 3)), np.ones((2, 3)), chunk=0)


# --------------------------------------------------------------------------------------------------------
# Subspaces
# --------------------------------------------------------------------------------------------------------


def _in_plane(rng, n: int, u: np.ndarray, v: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``n`` spectra ``offset + 3 a u + b v`` (a, b standard normal) as a ``10 x n/10 x B`` cube."""
    a, b = rng.normal(size=(2, n, 1))
    pix = offset + 3.0 * a * u + b * v
    return pix.reshape(10, n // 10, -1)


def test_principal_angles_of_rotated_plane():
    rng = np.random.default_rng(3)
    e = np.eye(4)
    theta = 25.0
    t = math.radians(theta)
    offset = np.full(4, 5.0)
    real = _in_plane(rng, 200, e[0], e[1], offset)
    # the real plane rotated by theta about the e1 axis (e2 -> cos t e2 + sin t e3)
    syn = _in_plane(rng, 200, e[0], math.cos(t) * e[1] + math.sin(t) * e[2], offset)
    rep = realism_report(syn, real, n_components=2)
    assert len(rep.principal_angles_deg) == 2
    np.testing.assert_allclose(rep.principal_angles_deg, [0.0, theta], atol=1e-6)
    # n_components beyond the rank (2) is capped: still the two meaningful angles
    rep3 = realism_report(syn, real, n_components=3)
    np.testing.assert_allclose(rep3.principal_angles_deg, [0.0, theta], atol=1e-6)
    assert len(rep3.real_explained) == 3 and rep3.real_explained[2] < 1e-20


def test_captured_variance_inside_and_partial():
    rng = np.random.default_rng(4)
    e = np.eye(3)
    offset = np.full(3, 5.0)
    real = _in_plane(rng, 100, e[0], e[1], offset)
    inside = _in_plane(rng, 100, (e[0] + e[1]) / math.sqrt(2), e[0] - 2 * e[1], 2.0 * offset)
    assert realism_report(inside, real, n_components=2).captured_variance == pytest.approx(1.0, abs=1e-12)
    # +-2 along e1 (in the real plane) and +-1 along e3 (orthogonal): captured = 2*4 / (2*4 + 2*1) = 0.8
    a, c = 2.0, 1.0
    syn = offset + np.array([[a, 0, 0], [-a, 0, 0], [0, 0, c], [0, 0, -c]])
    rep = realism_report(syn.reshape(2, 2, 3), real, n_components=2)
    assert rep.captured_variance == pytest.approx(a**2 / (a**2 + c**2), abs=1e-12)


def test_explained_variance_matches_covariance_eigenvalues():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(12, 10, 6)) * np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.2]) + 4.0
    syn = rng.uniform(1.0, 5.0, size=(8, 8, 6))
    rep = realism_report(syn, real, n_components=4)
    for cube, got in ((real, rep.real_explained), (syn, rep.synthetic_explained)):
        lam = np.sort(np.linalg.eigvalsh(np.cov(cube.reshape(-1, 6), rowvar=False)))[::-1]
        np.testing.assert_allclose(got, (lam / lam.sum())[:4], rtol=1e-10)


# --------------------------------------------------------------------------------------------------------
# Band statistics, sampling, spectral-angle statistics
# --------------------------------------------------------------------------------------------------------


def test_band_statistics_match_numpy_on_all_pixels():
    rng = np.random.default_rng(6)
    syn = [rng.uniform(0, 1, (5, 7, 6)), rng.uniform(0, 2, (3, 4, 6)).astype(np.float32)]
    real = [rng.uniform(0.2, 0.8, (6, 6, 6)), rng.integers(0, 5, (2, 9, 6))]
    rep = realism_report(syn, real, n_components=3, max_pixels=1000)
    ps = np.concatenate([c.reshape(-1, 6).astype(np.float64) for c in syn])
    pr = np.concatenate([c.reshape(-1, 6).astype(np.float64) for c in real])
    assert (rep.n_synthetic_pixels, rep.n_real_pixels, rep.bands) == (47, 54, 6)
    np.testing.assert_allclose(rep.synthetic_mean, ps.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rep.synthetic_std, ps.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rep.real_mean, pr.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rep.real_std, pr.std(axis=0), rtol=1e-12)
    gap = np.mean(np.abs(ps.mean(0) - pr.mean(0))) / np.mean(pr.mean(0))
    assert rep.mean_gap == pytest.approx(gap, rel=1e-12)
    np.testing.assert_allclose(rep.std_ratio, ps.std(0) / pr.std(0), rtol=1e-12)


def test_subsampling_is_seeded_and_draws_real_pixels():
    rng = np.random.default_rng(7)
    syn = rng.uniform(0.1, 1, (20, 20, 5))
    real = rng.uniform(0.1, 1, (30, 30, 5))
    a = realism_report(syn, real, n_components=2, max_pixels=100, seed=3)
    b = realism_report(syn, real, n_components=2, max_pixels=100, seed=3)
    c = realism_report(syn, real, n_components=2, max_pixels=100, seed=4)
    assert (a.n_synthetic_pixels, a.n_real_pixels) == (100, 100)
    assert a.to_dict() == b.to_dict()
    assert a.real_mean != c.real_mean
    full = real.reshape(-1, 5)
    assert np.all(np.array(a.real_mean) >= full.min(0)) and np.all(np.array(a.real_mean) <= full.max(0))


def test_sam_statistics_known_directions():
    rng = np.random.default_rng(8)
    d1, d2 = np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0, 0.0])
    t = math.radians(10.0)
    d3 = math.cos(t) * d1 + math.sin(t) * np.array([0.0, 0.0, 1.0, 0.0])  # 10 deg from d1, > 80 deg from d2
    s = rng.uniform(0.5, 2.0, size=(200, 1))
    real = np.where(np.arange(200)[:, None] % 2 == 0, s * d1, s * d2).reshape(10, 20, 4)
    syn = (rng.uniform(0.5, 2.0, size=(60, 1)) * d3).reshape(6, 10, 4)
    rep = realism_report(syn, real, n_components=2)
    for key in ("mean", "p10", "p50", "p90", "max"):
        assert rep.sam_to_real_deg[key] == pytest.approx(10.0, abs=1e-9)
        assert rep.sam_real_baseline_deg[key] == pytest.approx(0.0, abs=1e-6)
    h = rep.sam_hist
    edges = np.asarray(h["edges"])
    assert len(edges) == 41 and len(h["synthetic"]) == 40 and len(h["baseline"]) == 40
    for dens in (h["synthetic"], h["baseline"]):
        assert float(np.sum(np.asarray(dens) * np.diff(edges))) == pytest.approx(1.0)


def test_synthetic_equal_to_real_reads_like_the_baseline():
    # real spectra all in distinct directions; synthetic = real. The reference half (M - M//2 = 21 of 41
    # spectra) is matched exactly (angle 0); the other half meets the same reference set as the baseline
    # queries, so the non-zero synthetic angles are exactly the baseline angles.
    real = np.random.default_rng(13).uniform(0.1, 1.0, size=(1, 41, 6))
    rep = realism_report(real, real, n_components=3)
    s, b = rep.sam_to_real_deg, rep.sam_real_baseline_deg
    assert s["p10"] == 0.0 and s["p50"] == 0.0  # 21 of 41 zeros: the 50th percentile is the 21st value
    assert b["p10"] > 0.0
    assert s["max"] == b["max"]
    assert s["mean"] == pytest.approx(b["mean"] * 20 / 41, rel=1e-12)


def test_no_baseline_with_one_nonzero_real_spectrum():
    real = np.zeros((2, 2, 3))
    real[0, 0] = (1.0, 0.0, 0.0)
    syn = np.array([[[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    rep = realism_report(syn, real, n_components=1)
    assert rep.sam_real_baseline_deg is None and rep.sam_hist["baseline"] == []
    assert rep.sam_to_real_deg["max"] == pytest.approx(45.0)
    assert rep.sam_to_real_deg["mean"] == pytest.approx(22.5)


# --------------------------------------------------------------------------------------------------------
# Abundances
# --------------------------------------------------------------------------------------------------------


def test_abundance_validity_hand_made():
    a = np.full((2, 3, 2), 0.5)  # 6 pixels, K = 2, all valid
    a[0, 0] = (1.2, -0.2)  # negative (sum ok)
    a[0, 1] = (0.6, 0.6)  # sum 1.2
    a[1, 2] = (0.5, 0.5 + 5e-5)  # sum error 5e-5 < tol: valid
    b = np.zeros((1, 2, 2))
    b[0, 0] = (1.0, -5e-5)  # a_k >= -tol but sum error 5e-5: valid
    b[0, 1] = (1.0, 0.0)
    got = abundance_validity([a, b])
    assert got["pixels"] == 8 and got["K"] == 2
    assert got["min"] == -0.2 and got["max"] == 1.2
    assert got["max_sum_error"] == pytest.approx(0.2)
    assert got["invalid_fraction"] == pytest.approx(2 / 8)
    assert abundance_validity(a, tol=0.3)["invalid_fraction"] == 0.0
    assert abundance_validity(b, tol=0.0)["invalid_fraction"] == 0.5


def test_abundance_validity_bad_inputs():
    with pytest.raises(InputError, match="tol"):
        abundance_validity(np.ones((2, 2, 1)), tol=-1.0)
    with pytest.raises(InputError, match=r"abundances\[1\] has 3 channels but abundances\[0\] has 2"):
        abundance_validity([np.ones((2, 2, 2)), np.ones((2, 2, 3))])


# --------------------------------------------------------------------------------------------------------
# Report output and input checks
# --------------------------------------------------------------------------------------------------------


def _report(**kw) -> RealismReport:
    rng = np.random.default_rng(9)
    syn = rng.uniform(0.1, 1, (8, 8, 6))
    real = rng.uniform(0.1, 1, (9, 9, 6))
    ab = rng.dirichlet(np.ones(3), size=(8, 8))
    return realism_report(syn, real, abundances=ab, n_components=3, wavelengths_nm=np.linspace(450, 700, 6), **kw)


def test_markdown_and_dict():
    rep = _report()
    md = rep.to_markdown()
    assert md.startswith("| quantity | value |")
    for value in (rep.mean_gap, rep.captured_variance, rep.sam_to_real_deg["p50"], rep.sam_to_real_deg["max"],
                  rep.sam_real_baseline_deg["p90"], rep.abundance["max_sum_error"], min(rep.std_ratio)):
        assert f"{value:.4g}" in md
    for value in rep.real_explained + rep.principal_angles_deg:
        assert f"{value:.3g}" in md
    assert f"{rep.n_real_pixels} / {rep.n_synthetic_pixels}" in md
    d = rep.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["mean_gap"] == rep.mean_gap
    assert d["wavelengths_nm"][0] == 450.0 and d["abundance"]["K"] == 3


def test_to_dict_non_finite_become_none():
    rng = np.random.default_rng(10)
    real = rng.uniform(0.1, 1, (5, 5, 3))
    real[:, :, 1] = 0.5  # constant real band, varying synthetic band: std ratio inf
    syn = rng.uniform(0.1, 1, (5, 5, 3))
    rep = realism_report(syn, real, n_components=2)
    assert rep.std_ratio[1] == math.inf
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["std_ratio"][1] is None


ONES = np.ones((2, 2, 3))
K2 = {"n_components": 2}


@pytest.mark.parametrize(
    "syn, real, kw, message",
    [
        (np.ones((2, 2, 31)), np.ones((2, 2, 30)), {}, "synthetic has 31 bands but real has 30"),
        (np.ones((4, 31)), np.ones((2, 2, 31)), {}, r"synthetic must be a 3-D array .* got shape \(4, 31\)"),
        (np.full((2, 2, 3), np.nan), ONES, K2, "synthetic contains 12 NaN/inf"),
        (ONES, [ONES, np.array([[[np.inf, 1, 1]]])], K2, r"real\[1\] contains 1 NaN/inf"),
        (ONES, ONES, {"n_components": 4}, "n_components=4 exceeds the 3 bands"),
        ([], ONES, K2, "synthetic is an empty list"),
        (np.ones((0, 2, 3)), ONES, K2, "synthetic is empty"),
        (ONES, ONES, K2, "real pixels are all identical"),
        (ONES, ONES, {"abundances": np.ones((3, 2, 2)), **K2}, "one H x W x K map per"),
        (ONES, ONES, {"wavelengths_nm": [1.0, 2.0], **K2}, "wavelengths_nm must be 3"),
        (ONES, ONES, {"max_pixels": 1, **K2}, "max_pixels must be an integer >= 2"),
        ("cube", ONES, K2, "synthetic must be an H x W x B NumPy array or a list"),
    ],
)
def test_report_bad_inputs(syn, real, kw, message):
    with pytest.raises(InputError, match=message):
        realism_report(syn, real, **kw)


# --------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------

pytest.importorskip("matplotlib")


def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _check_writer(write, path):
    out = write(path)
    assert out == path and path.stat().st_size > 0
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write(path)
    assert path.read_bytes() == before
    write(path, overwrite=True)
    return _png_size(path)


def test_plot_realism(tmp_path):
    from hsfuse.viz.synthesis_figures import plot_realism

    rep = _report()
    size = _check_writer(lambda p, **kw: plot_realism(rep, p, dpi=50, **kw), tmp_path / "realism.png")
    assert size == (550, 160)
    no_wl = realism_report(np.random.default_rng(0).uniform(0.1, 1, (4, 4, 3)), np.eye(3)[None], n_components=2)
    plot_realism(no_wl, tmp_path / "no_wl.png", dpi=40)
    with pytest.raises(InputError, match="report must be a RealismReport"):
        plot_realism(rep.to_dict(), tmp_path / "x.png")
    with pytest.raises(InputError, match="ending in .png"):
        plot_realism(rep, tmp_path / "x.jpg")


def test_plot_abundances(tmp_path):
    from hsfuse.viz.synthesis_figures import plot_abundances

    a = np.random.default_rng(11).dirichlet(np.ones(4), size=(6, 7))
    a[0, 0] = (1.3, -0.3, 0.0, 0.0)
    size = _check_writer(lambda p, **kw: plot_abundances(a, p, names=list("abcd"), columns=3, dpi=40, **kw),
                         tmp_path / "ab.png")
    assert size == (round((2.2 * 3 + 0.8) * 40), round(2.2 * 2 * 40))
    with pytest.raises(InputError, match="names must be a list of 4 labels"):
        plot_abundances(a, tmp_path / "x.png", names=["a", "b"])
    with pytest.raises(InputError, match="non-empty H x W x C"):
        plot_abundances(a[:, :, 0], tmp_path / "x.png")
    with pytest.raises(InputError, match="columns"):
        plot_abundances(a, tmp_path / "x.png", columns=0)


def test_plot_previews(tmp_path):
    from hsfuse.viz.synthesis_figures import plot_previews

    rng = np.random.default_rng(12)
    cubes = [rng.uniform(0, 1, (8, 8, 10)) for _ in range(3)] + [rng.uniform(0, 1, (5, 9, 10))]
    wl = np.linspace(420, 700, 10)
    size = _check_writer(lambda p, **kw: plot_previews(cubes, p, wavelengths_nm=wl, columns=3, dpi=40, **kw),
                         tmp_path / "prev.png")
    assert size == (round(2.4 * 3 * 40), round(2.5 * 2 * 40))
    plot_previews(cubes[:1], tmp_path / "no_wl.png", dpi=40)  # no wavelengths: bands at 3/4, 1/2, 1/4
    with pytest.raises(InputError, match="cubes is empty"):
        plot_previews([], tmp_path / "x.png")
    with pytest.raises(InputError, match=r"cubes\[0\] has 10 bands but wavelengths_nm has 3"):
        plot_previews(cubes, tmp_path / "x.png", wavelengths_nm=[500.0, 600.0, 700.0])
    with pytest.raises(InputError, match="list of H x W x B arrays"):
        plot_previews(cubes[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
