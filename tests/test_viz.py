"""Tests of hsfuse.viz.figures: band choice, stretch, error maps, PNG writers, overwrite refusal.

Independent sources: band choices and stretches are computed by hand or with numpy here; SAM is checked
with hand-made vectors of known angle and with the textbook ``arccos`` of the normalised dot product
(the implementation uses the atan2 form); PNG validity and size come from Pillow.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from hsfuse.errors import InputError, OutputExistsError
from hsfuse.types import Cube
from hsfuse.viz.figures import (
    composite_bands,
    demo_figure,
    error_maps,
    false_colour,
    plot_composites,
    plot_error_maps,
    plot_spectra,
)

pytest.importorskip("matplotlib")

WL = np.arange(400.0, 701.0, 10.0)


def _cube(h=13, w=11, b=31, seed=0, wavelengths=True) -> Cube:
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.05, 0.9, size=(h, w, b)).astype(np.float32)
    return Cube(data, wavelengths=np.linspace(400, 700, b) if wavelengths else None)


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes the whole file: truncated files fail here
        return im.size


# ---------------------------------------------------------------------------------------------- bands


def test_composite_bands_nearest_wavelength():
    cube = _cube()
    # 640, 550, 460 nm on 400:10:700 are bands (640-400)/10 = 24, 15 and 6.
    assert composite_bands(cube) == (24, 15, 6)
    # 644 -> 640 (index 24); 556 -> 560 (16); 401 -> 400 (0)
    assert composite_bands(cube, wavelengths_nm=(644, 556, 401)) == (24, 16, 0)
    # A tie (510 between 500 and 520) takes the lower index; far outside the range clamps to an end band.
    tie = Cube(np.zeros((2, 2, 2)), wavelengths=[500.0, 520.0])
    assert composite_bands(tie, wavelengths_nm=(510, 300, 900)) == (0, 0, 1)


def test_composite_bands_indices_and_errors():
    cube = _cube(wavelengths=False)
    assert composite_bands(cube, bands=(3, -1, 0)) == (3, 30, 0)
    with pytest.raises(InputError, match="no wavelengths"):
        composite_bands(cube)
    with pytest.raises(InputError, match="out of range"):
        composite_bands(cube, bands=(0, 1, 31))
    with pytest.raises(InputError, match="three band indices"):
        composite_bands(cube, bands=(0, 1))
    with pytest.raises(InputError, match="three finite wavelengths"):
        composite_bands(_cube(), wavelengths_nm=(600, 500))
    with pytest.raises(InputError, match="Cube"):
        composite_bands([[1, 2, 3]])


# --------------------------------------------------------------------------------------------- stretch


def test_false_colour_min_max_stretch_by_hand():
    data = np.zeros((2, 2, 3))
    data[..., 0] = [[0.0, 1.0], [2.0, 4.0]]  # red: min 0, max 4
    data[..., 1] = 7.0  # green: flat -> 0
    data[..., 2] = [[1.0, 1.0], [3.0, 2.0]]  # blue: min 1, max 3
    cube = Cube(data, wavelengths=[460.0, 550.0, 640.0])
    out = false_colour(cube, bands=(0, 1, 2), stretch=(0, 100))
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(out[..., 1], 0.0)
    np.testing.assert_allclose(out[..., 2], [[0.0, 0.0], [1.0, 0.5]])
    # By wavelength the default (640, 550, 460) is bands (2, 1, 0): channels swap.
    np.testing.assert_allclose(false_colour(cube, stretch=(0, 100))[..., 0], out[..., 2])


def test_false_colour_percentiles_and_limits():
    cube = _cube(h=15, w=17, seed=4)
    out = false_colour(cube, stretch=(2, 98))
    assert out.shape == (15, 17, 3) and out.min() >= 0 and out.max() <= 1
    x = cube.data[..., 24].astype(np.float64)
    lo, hi = np.percentile(x, [2, 98])
    np.testing.assert_allclose(out[..., 0], np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-12)
    limits = np.array([[0.0, 1.0], [0.0, 2.0], [0.5, 1.0]])
    fixed = false_colour(cube, limits=limits)
    np.testing.assert_allclose(fixed[..., 1], np.clip(cube.data[..., 15] / 2.0, 0, 1), atol=1e-7)
    np.testing.assert_allclose(fixed[..., 2], np.clip((cube.data[..., 6] - 0.5) / 0.5, 0, 1), atol=1e-6)


def test_false_colour_invalid_pixels_are_black_and_do_not_set_the_stretch():
    data = np.full((3, 3, 3), 0.5)
    data[0, 0] = -9999.0
    data[1, 1, 0] = 0.75
    data[2, 2, 0] = np.nan
    cube = Cube(data, nodata=-9999.0)
    out = false_colour(cube, bands=(0, 1, 2), stretch=(0, 100))
    assert np.all(out[0, 0] == 0) and np.all(out[2, 2] == 0)
    assert out[1, 1, 0] == 1.0 and out[0, 1, 0] == 0.0


@pytest.mark.parametrize("stretch", [(98, 2), (-1, 50), (0, 101), (5,), "ab"])
def test_false_colour_bad_stretch(stretch):
    with pytest.raises(InputError, match="stretch"):
        false_colour(_cube(), stretch=stretch)


def test_false_colour_bad_limits():
    with pytest.raises(InputError, match=r"\(3, 2\)"):
        false_colour(_cube(), limits=np.zeros((2, 2)))


# ------------------------------------------------------------------------------------------ error maps


def test_error_maps_by_hand():
    ref = np.array([[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    est = np.array([[[0.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0]]])
    maps = error_maps(Cube(ref), Cube(est))
    # RMSE: sqrt((1+1+0)/3), sqrt((1+1+0)/3), sqrt(9/3), sqrt(1/3)
    np.testing.assert_allclose(maps["rmse"], [[np.sqrt(2 / 3), np.sqrt(2 / 3), np.sqrt(3.0), np.sqrt(1 / 3)]])
    # SAM: orthogonal 90 deg, parallel 0 deg, zero-norm reference -> 0 by convention, [1,0] vs [1,1] 45 deg
    np.testing.assert_allclose(maps["sam_deg"], [[90.0, 0.0, 0.0, 45.0]], atol=1e-12)
    assert maps["rmse"].dtype == np.float64 and maps["rmse"].shape == (1, 4)


def test_error_maps_against_independent_formulas():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (9, 7, 5))
    y = x + 0.1 * rng.standard_normal(x.shape)
    maps = error_maps(x, y)  # plain arrays are accepted
    rmse = np.sqrt(((x - y) ** 2).sum(-1) / 5)
    cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
    sam = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    np.testing.assert_allclose(maps["rmse"], rmse, rtol=1e-12)
    np.testing.assert_allclose(maps["sam_deg"], sam, atol=1e-6)
    assert sam.mean() > 1.0  # angles well away from 0, where arccos is accurate


def test_error_maps_errors():
    with pytest.raises(InputError, match="differ"):
        error_maps(_cube(h=5), _cube(h=6))
    bad = _cube()
    bad.data[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        error_maps(_cube(), bad)


# ---------------------------------------------------------------------------------------------- writers


def test_plot_composites_png_size_and_overwrite(tmp_path):
    ref, est = _cube(seed=1), _cube(seed=2)
    lr = Cube(ref.data[::3, ::3], wavelengths=ref.wavelengths)
    path = tmp_path / "comp.png"
    out = plot_composites({"ref": ref, "lr": lr, "est": est}, path, figsize=(6, 2.5), dpi=40, title="t")
    assert out == path
    assert _png_size(path) == (240, 100)  # figsize * dpi
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        plot_composites({"ref": ref}, path)
    assert path.read_bytes() == before
    plot_composites({"ref": ref}, path, overwrite=True, shared_stretch=False)
    assert _png_size(path) == (260, 290)  # documented default (2.6 n, 2.9) inches at 100 dpi
    assert sorted(os.listdir(tmp_path)) == ["comp.png"]  # no temporary file left behind


def test_plot_spectra(tmp_path):
    ref, est = _cube(seed=1), _cube(seed=2)
    lr = Cube(ref.data[::2, ::2], wavelengths=ref.wavelengths)
    path = plot_spectra({"ref": ref, "lr": lr, "est": est}, [(0, 0), (12, 10)], tmp_path / "s.png", dpi=30)
    assert _png_size(path) == (round(3.2 * 2 * 30), round(2.8 * 30))
    nowl = plot_spectra({"a": _cube(wavelengths=False)}, [(1, 1)], tmp_path / "b.png", figsize=(3, 2), dpi=20)
    assert _png_size(nowl) == (60, 40)
    with pytest.raises(InputError, match="outside"):
        plot_spectra({"ref": ref}, [(13, 0)], tmp_path / "x.png")
    with pytest.raises(InputError, match="non-empty list"):
        plot_spectra({"ref": ref}, [], tmp_path / "x.png")
    with pytest.raises(InputError, match="empty"):
        plot_spectra({}, [(0, 0)], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_error_maps(tmp_path):
    ref = _cube(seed=1)
    ests = {"a": _cube(seed=2), "b": Cube(ref.data * 0.9, wavelengths=ref.wavelengths)}
    path = plot_error_maps(ref, ests, tmp_path / "e.png", figsize=(5, 4), dpi=30)
    assert _png_size(path) == (150, 120)
    with pytest.raises(InputError, match="shape"):
        plot_error_maps(ref, {"small": _cube(h=5)}, tmp_path / "f.png")
    with pytest.raises(InputError, match="positive"):
        plot_error_maps(ref, ests, tmp_path / "f.png", rmse_max=0)
    with pytest.raises(OutputExistsError):
        plot_error_maps(ref, ests, path)


def test_demo_figure(tmp_path):
    ref = _cube(h=16, w=12, seed=1)
    ests = {"m1": _cube(h=16, w=12, seed=2), "m2": Cube(ref.data * 0.95, wavelengths=ref.wavelengths)}
    lr = Cube(ref.data.reshape(4, 4, 3, 4, 31).mean(axis=(1, 3)), wavelengths=ref.wavelengths)
    path = demo_figure(ref, ests, tmp_path / "demo.png", lr_hsi=lr, figsize=(8, 9), dpi=25)
    assert _png_size(path) == (200, 225)
    path2 = demo_figure(ref, ests, tmp_path / "demo2.png", pixels=[(0, 0), (15, 11)], dpi=20)
    assert _png_size(path2) == (round((2.3 * 3 + 0.9) * 20), round(10.4 * 20))
    with pytest.raises(OutputExistsError):
        demo_figure(ref, ests, path)
    with pytest.raises(InputError, match="integer ratio"):
        demo_figure(ref, ests, tmp_path / "x.png", lr_hsi=_cube(h=5, w=5))
    with pytest.raises(InputError, match="outside"):
        demo_figure(ref, ests, tmp_path / "x.png", pixels=[(16, 0)])
    with pytest.raises(InputError, match="names another panel"):
        demo_figure(ref, {"reference": ref}, tmp_path / "x.png")


def test_writers_reject_bad_paths_and_sizes(tmp_path):
    ref = _cube()
    with pytest.raises(InputError, match=".png"):
        plot_composites({"ref": ref}, tmp_path / "c.jpg")
    with pytest.raises(InputError, match="figsize"):
        plot_composites({"ref": ref}, tmp_path / "c.png", figsize=(0, 2))
    with pytest.raises(InputError, match="dpi"):
        plot_composites({"ref": ref}, tmp_path / "c.png", dpi=-1)
    with pytest.raises(InputError, match="dict"):
        plot_composites([ref], tmp_path / "c.png")
    with pytest.raises(InputError, match="does not exist"):
        plot_composites({"ref": ref}, tmp_path / "missing" / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_no_global_matplotlib_state_change(tmp_path):
    import matplotlib

    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    plot_composites({"ref": _cube()}, tmp_path / "c.png", dpi=20)
    assert matplotlib.get_backend() == backend
    after = dict(matplotlib.rcParams)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}
