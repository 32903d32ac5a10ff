"""Tests of hsfuse.viz.blind_figures: PSF/SRF/convergence/real-pair figures, centred padding, default pixels.

Independent sources: padded kernels and picked pixels are worked out by hand in the comments; PNG validity
and size come from matplotlib's own PNG reader (``matplotlib.image.imread``), compared with figsize * dpi.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError, OutputExistsError
from hsfuse.types import Cube
from hsfuse.viz.blind_figures import (
    _row_normalized,
    default_pixels,
    pad_centred,
    plot_convergence,
    plot_psf,
    plot_real_pair,
    plot_srf,
)

mpl_image = pytest.importorskip("matplotlib.image")


def _png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, read back by matplotlib."""
    img = mpl_image.imread(path, format="png")
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img.shape[1], img.shape[0]


def _gauss(k, s):
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * s * s))
    return g / g.sum()


def _history():
    return [{"iteration": i, "seconds": 0.1 * i, "stage": "psf" if i < 6 else "joint", "loss": 1.0 / (i + 1),
             "hsi_psnr": 30.0 + i, **({"msi_psnr": 35.0 + i} if i % 2 else {})} for i in range(10)]


def _pair(h=4, w=5, r=2, L=6, m=3, seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(420.0, 900.0, L)
    fused = rng.uniform(0.1, 0.9, (h * r, w * r, L))
    hsi = fused.reshape(h, r, w, r, L).mean(axis=(1, 3))
    msi = fused[..., :m].copy()
    return (Cube(hsi, wavelengths=wl), Cube(msi, band_names=["Blue", "green", "RED"][:m]),
            Cube(fused, wavelengths=wl))


# ------------------------------------------------------------------------------------------------ helpers


def test_pad_centred_keeps_the_centre():
    # 3x3 (centre 1) to 5x5 (centre 2): one zero ring. 2x2 (centre 1, taps at offsets -1, 0) to 3x3 (centre 1):
    # nothing before, one row/col after. 4x4 (centre 2) to 5x5 (centre 2): nothing before, one after.
    k3 = np.arange(9.0).reshape(3, 3) + 1
    p = pad_centred(k3, 5)
    assert p.shape == (5, 5) and p[2, 2] == k3[1, 1] and p.sum() == k3.sum()
    np.testing.assert_array_equal(p[1:4, 1:4], k3)
    np.testing.assert_array_equal(pad_centred(np.ones((2, 2)), 3), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    p4 = pad_centred(np.ones((4, 4)), 5)
    assert p4[:4, :4].sum() == 16 and p4[4].sum() == 0 and p4[:, 4].sum() == 0
    with pytest.raises(InputError, match="smaller"):
        pad_centred(np.ones((5, 5)), 3)


def test_default_pixels_by_hand():
    # 8x8, left half unusable, 2 pixels: targets (7/3, 7/3) and (14/3, 14/3). Nearest usable (col >= 4):
    # (2, 4) (distance^2 1/9 + 25/9) and (5, 5) (1/9 + 1/9).
    m = np.ones((8, 8), bool)
    m[:, :4] = False
    assert default_pixels(m, count=2) == [(2, 4), (5, 5)]
    # Only column 4 unusable. Without a ratio (5, 5) is usable and nearest the second target. With ratio 2
    # the 2x2 blocks over columns 4-5 are not whole, so the candidates skip columns 4, 5: the nearest to
    # (14/3, 14/3) is then (5, 6) (1/9 + 16/9) rather than (5, 3) (1/9 + 25/9); the first target gives (2, 2).
    m = np.ones((8, 8), bool)
    m[:, 4] = False
    assert default_pixels(m, count=2) == [(2, 2), (5, 5)]
    assert default_pixels(m, ratio=2, count=2) == [(2, 2), (5, 6)]
    # One usable pixel: every target lands on it, duplicates dropped.
    one = np.zeros((6, 6), bool)
    one[0, 5] = True
    assert default_pixels(one, ratio=2) == [(0, 5)]


def test_row_normalized_by_hand():
    np.testing.assert_allclose(_row_normalized(np.array([[1.0, 3.0], [0.0, 0.0], [2.0, -1.0]])),
                               [[0.25, 0.75], [0.0, 0.0], [2.0, -1.0]])


# ------------------------------------------------------------------------------------------------ writers


def test_plot_psf_sizes_and_inputs(tmp_path):
    p = plot_psf(_gauss(5, 1.0), path=tmp_path / "a.png", figsize=(6, 2), dpi=50)
    assert p == tmp_path / "a.png" and _png_size(p) == (300, 100)
    # tensor input, a true PSF of another (even) size, default size (3.2 * 3 panels, 3.2 + 0.3 title) at 30 dpi
    p = plot_psf(torch.from_numpy(_gauss(3, 0.7)), path=tmp_path / "b.png", true_psf=_gauss(6, 1.2), title="t",
                 dpi=30)
    assert _png_size(p) == (round(9.6 * 30), round(3.5 * 30))
    # a large kernel (no tap labels), default size (3.2 * 2, 3.2)
    assert _png_size(plot_psf(_gauss(13, 2.0), path=tmp_path / "c.png", dpi=20)) == (128, 64)
    for bad, match in ((np.ones((3, 4)), "square"), (np.ones((2, 2, 2)), "2-D"),
                       (np.full((3, 3), np.nan), "NaN"), ("psf", "array")):
        with pytest.raises(InputError, match=match):
            plot_psf(bad, path=tmp_path / "x.png")
    with pytest.raises(InputError, match="true_psf"):
        plot_psf(_gauss(3, 1.0), path=tmp_path / "x.png", true_psf=np.ones((3, 2)))
    assert not (tmp_path / "x.png").exists()


def test_plot_srf_sizes_and_inputs(tmp_path):
    rng = np.random.default_rng(1)
    R = rng.uniform(0, 1, (3, 8))
    p = plot_srf(R, path=tmp_path / "a.png", figsize=(4, 3), dpi=40)
    assert _png_size(p) == (160, 120)
    p = plot_srf(torch.from_numpy(R), path=tmp_path / "b.png", wavelengths_nm=list(np.linspace(400, 700, 8)),
                 band_names=["b", "g", "r"], true_srf=R * 0.9, normalize=True, title="srf", dpi=20)
    assert _png_size(p) == (120, round(3.7 * 20))  # default (6.0, 3.4 + 0.3 title)
    assert _png_size(plot_srf(rng.uniform(0, 1, (12, 8)), path=tmp_path / "c.png", dpi=20)) == (120, 68)
    with pytest.raises(InputError, match="same"):
        plot_srf(R, path=tmp_path / "x.png", true_srf=R[:2])
    with pytest.raises(InputError, match="8 HSI bands"):
        plot_srf(R, path=tmp_path / "x.png", wavelengths_nm=np.arange(7.0))
    with pytest.raises(InputError, match="band_names"):
        plot_srf(R, path=tmp_path / "x.png", band_names=["a", "b"])
    with pytest.raises(InputError, match="2-D"):
        plot_srf(R[0], path=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_convergence_sizes_and_inputs(tmp_path):
    h = _history()
    # default keys: loss, hsi_psnr, msi_psnr -> 1 x 3 subplots, default (9.6, 2.6) inches
    assert _png_size(plot_convergence(h, path=tmp_path / "a.png", dpi=20)) == (192, 52)
    # 4 keys -> 2 rows of 3 columns: (9.6, 5.2 + 0.3 title)
    h4 = [dict(rec, psnr=40.0) for rec in h]
    assert _png_size(plot_convergence(h4, path=tmp_path / "b.png", title="t", dpi=20)) == (192, 110)
    p = plot_convergence(h, path=tmp_path / "c.png", keys=["msi_psnr"], x="seconds", figsize=(3, 2), dpi=30)
    assert _png_size(p) == (90, 60)
    no_stage = [{"iteration": i, "loss": -1.0 + i} for i in range(3)]  # no stage, non-positive loss: linear axis
    assert _png_size(plot_convergence(no_stage, path=tmp_path / "d.png", figsize=(2, 2), dpi=20)) == (40, 40)
    for bad, kw, match in (([], {}, "non-empty"), ({"iteration": 1}, {}, "list of dicts"),
                           ([1, 2], {}, "dict"), ([{"loss": 1.0}], {}, "'iteration'"),
                           (h, {"keys": ["nope"]}, "'nope'"), (h, {"x": "epoch"}, "x must be"),
                           ([{"iteration": 0, "stage": "a"}], {}, "numeric key"), (h, {"keys": "loss"}, "keys")):
        with pytest.raises(InputError, match=match):
            plot_convergence(bad, path=tmp_path / "x.png", **kw)
    assert not (tmp_path / "x.png").exists()


def test_plot_real_pair_sizes_and_inputs(tmp_path):
    hsi, msi, fused = _pair()
    valid = np.ones((8, 10), bool)
    valid[:, :4] = False
    data = fused.data.copy()
    data[0, 0, :] = np.nan  # no-data under the invalid region
    p = plot_real_pair(hsi, msi, fused.replace(data=data), path=tmp_path / "a.png", valid=valid,
                       figsize=(8, 5), dpi=25)
    assert _png_size(p) == (200, 125)
    # plain arrays (no wavelengths, no band names), torch mask, explicit pixels: default (max(9, 7.2), 6.4)
    p = plot_real_pair(hsi.data, msi.data, fused.data, path=tmp_path / "b.png", valid=torch.from_numpy(valid),
                       pixels=[(0, 5), (7, 9), (3, 6)], dpi=20)
    assert _png_size(p) == (180, 128)
    # 4 pixels -> width max(9, 9.6); one MSI band shown as grey
    p = plot_real_pair(hsi, msi.replace(data=msi.data[..., :1], band_names=None), fused, path=tmp_path / "c.png",
                       pixels=[(0, 0), (1, 1), (2, 2), (3, 3)], title="t", dpi=20)
    assert _png_size(p) == (192, 134)
    x = tmp_path / "x.png"
    with pytest.raises(InputError, match="MSI grid"):
        plot_real_pair(hsi, msi, fused.replace(data=fused.data[:6]), path=x)
    with pytest.raises(InputError, match="bands"):
        plot_real_pair(hsi, msi, fused.replace(data=fused.data[..., :5], wavelengths=None), path=x)
    with pytest.raises(InputError, match="ratio"):
        plot_real_pair(hsi.replace(data=hsi.data[:3]), msi, fused, path=x)
    with pytest.raises(InputError, match="boolean 8x10"):
        plot_real_pair(hsi, msi, fused, path=x, valid=valid[:4])
    with pytest.raises(InputError, match="boolean"):
        plot_real_pair(hsi, msi, fused, path=x, valid=valid.astype(int))
    with pytest.raises(InputError, match="no pixel"):
        plot_real_pair(hsi, msi, fused, path=x, valid=np.zeros((8, 10), bool))
    with pytest.raises(InputError, match="outside"):
        plot_real_pair(hsi, msi, fused, path=x, pixels=[(8, 0)])
    with pytest.raises(InputError, match="out of range"):
        plot_real_pair(hsi, msi, fused, path=x, msi_bands=(0, 1, 3))
    assert not x.exists()


@pytest.mark.parametrize("writer", ["psf", "srf", "convergence", "real_pair"])
def test_existing_file_is_refused_and_left_intact(tmp_path, writer):
    hsi, msi, fused = _pair()
    calls = {
        "psf": lambda **kw: plot_psf(_gauss(3, 1.0), dpi=20, **kw),
        "srf": lambda **kw: plot_srf(np.eye(3, 5), dpi=20, **kw),
        "convergence": lambda **kw: plot_convergence(_history(), dpi=20, **kw),
        "real_pair": lambda **kw: plot_real_pair(hsi, msi, fused, dpi=20, **kw),
    }
    path = tmp_path / "fig.png"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        calls[writer](path=path)
    assert path.read_bytes() == b"keep me"
    assert calls[writer](path=path, overwrite=True) == path
    assert _png_size(path)[0] > 0
    assert sorted(os.listdir(tmp_path)) == ["fig.png"]  # no temporary file left behind
    with pytest.raises(InputError, match=".png"):
        calls[writer](path=tmp_path / "fig.jpg")
