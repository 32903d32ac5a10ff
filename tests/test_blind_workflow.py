"""The real-pair workflow (workflows/real_pair.py) and the ``hsfuse estimate`` / ``hsfuse pair`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsfuse.cli import main
from hsfuse.errors import InputError
from hsfuse.io import read_cube, write_cube
from hsfuse.methods.udaln import Stage, UdalnSchedule
from hsfuse.physics.serialize import load_observation
from hsfuse.types import Cube
from hsfuse.workflows.real_pair import in_original_units, prepare_pair, run_real_pair

HSI_UNITS, MSI_UNITS = 4000.0, 200.0  # the two files' own scales differ, as on a real pair


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A noise-free pair simulated from a real scene, in two different units, as files (+ its truth)."""
    from hsfuse.data.paths import data_root
    from hsfuse.data.scenes import load_scene
    from hsfuse.data.simulation import simulate
    from hsfuse.physics.srf_library import srf_matrix

    if not (data_root() / "derived").is_dir():
        pytest.skip("shared data not found")
    cube = load_scene("pavia_u")
    cube = Cube(cube.data[:64, :64], wavelengths=cube.wavelengths)
    matrix, names = srf_matrix(str(data_root() / "srf" / "ikonos_5nm.csv"), cube.wavelengths,
                               bands=["Blue", "Green", "Red", "NIR"], normalize="none")
    sim = simulate(cube, matrix, ratio=4, preset="hsfuse", srf_band_names=names)
    folder = tmp_path_factory.mktemp("pair")
    hsi = Cube(sim.hsi.data * HSI_UNITS, wavelengths=cube.wavelengths)
    msi = Cube(sim.msi.data * MSI_UNITS, band_names=names)
    write_cube(hsi, folder / "hsi.npz")
    write_cube(msi, folder / "msi.npz")
    return folder, sim, hsi, msi


def test_prepare_pair_scales_and_masks():
    hsi = Cube(np.full((4, 4, 3), 10.0))
    msi = Cube(np.full((8, 8, 2), 3.0), nodata=0.0)
    msi.data[0, 0] = 0.0
    hsi.data[3, 3, :] = np.nan
    prep = prepare_pair(hsi, msi)
    assert prep.ratio == 2 and prep.hsi_scale == 10.0 and prep.msi_scale == 3.0
    expected = np.ones((8, 8), bool)
    expected[0, 0] = False
    expected[6:, 6:] = False  # under the HSI's NaN pixel
    np.testing.assert_array_equal(prep.valid.numpy(), expected)
    assert float(prep.y.hsi.max()) == 1.0 and torch.isfinite(prep.y.hsi).all()
    with pytest.raises(InputError, match="ratio 3 disagrees"):
        prepare_pair(hsi, msi, ratio=3)


def test_estimate_command_writes_operators_in_file_units(pair, tmp_path, capsys):
    folder, sim, hsi, msi = pair
    out = tmp_path / "ops"
    assert main(["estimate", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "-o", str(out),
                 "-q"]) == 0
    assert {p.name for p in out.iterdir()} == {"physics.json", "psf.csv", "srf.npy", "srf.csv", "psf.png", "srf.png"}
    obs = load_observation(out / "physics.json")
    assert abs(float(obs.spatial.psf.sum()) - 1) < 1e-9 and float(obs.spatial.psf.min()) >= 0
    psf = sim.physics.spatial.psf
    assert obs.spatial.psf.shape == psf.shape == (9, 9)  # 2r + 1 by default
    assert float((obs.spatial.psf - psf).norm() / psf.norm()) < 0.05
    # the SRF is in the files' units: applied to the true scene (in HSI units) it gives the MSI file. (Its
    # individual entries are not identifiable from Pavia's strongly correlated bands; R applied to them is.)
    scene = torch.from_numpy(sim.reference.data * HSI_UNITS).permute(2, 0, 1)[None].double()
    predicted = obs.spectral.A(scene)
    observed = torch.from_numpy(msi.data).permute(2, 0, 1)[None].double()
    assert float((predicted - observed).norm() / observed.norm()) < 0.01
    np.testing.assert_allclose(np.loadtxt(out / "psf.csv", delimiter=","), obs.spatial.psf.numpy(), atol=1e-9)
    # 'hsfuse fuse --physics' takes it: the CLI result equals FUSE called with the loaded operators
    from hsfuse.methods.sylvester import fuse_fuse
    from hsfuse.types import FusionMeasurement
    from hsfuse.workflows.real_pair import estimate_operators, prepare_pair

    fused = tmp_path / "fused.npz"
    assert main(["fuse", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "--method", "fuse",
                 "--physics", str(out / "physics.json"), "-o", str(fused), "-q"]) == 0
    files = FusionMeasurement(read_cube(folder / "hsi.npz").to_tensor(), read_cube(folder / "msi.npz").to_tensor())
    api = fuse_fuse(files, obs.to(dtype=torch.float32))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(read_cube(fused).data, api, rtol=1e-5, atol=1e-5 * HSI_UNITS)
    # ... and so do --psf psf.csv --srf srf.npy (with the gain kept: --srf-normalize none), identically
    fused2 = tmp_path / "fused2.npz"
    assert main(["fuse", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "--method", "fuse",
                 "--psf", str(out / "psf.csv"), "--srf", str(out / "srf.npy"), "--srf-normalize", "none",
                 "-o", str(fused2), "-q"]) == 0
    np.testing.assert_allclose(read_cube(fused2).data, read_cube(fused).data, rtol=1e-5, atol=1e-5 * HSI_UNITS)
    # and the estimate is as good as the truth for fusion: FUSE on the max-scaled pair (as 'hsfuse pair' runs
    # it) with the estimated operators vs FUSE with the true operators on the simulated pair
    prep = prepare_pair(hsi, msi)
    ops = estimate_operators(prep.y)
    est = fuse_fuse(prep.y, ops.to_observation())[0].permute(1, 2, 0).numpy() * prep.hsi_scale / HSI_UNITS
    truth = fuse_fuse(sim.measurement(), sim.physics)[0].permute(1, 2, 0).numpy()
    ref = sim.reference.data

    def rmse(a):
        return float(np.sqrt(np.mean((a - ref) ** 2)))

    assert rmse(est) < 1.1 * rmse(truth), f"FUSE RMSE with estimated operators {rmse(est):.4g}, true {rmse(truth):.4g}"
    # an existing folder is refused and left intact
    before = (out / "physics.json").read_bytes()
    assert main(["estimate", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "-o", str(out),
                 "-q"]) == 2
    assert (out / "physics.json").read_bytes() == before
    assert "exists" in capsys.readouterr().err


def test_estimate_command_errors(pair, tmp_path, capsys):
    folder, _, _, _ = pair
    out = tmp_path / "o"
    assert main(["estimate", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "-o", str(out),
                 "--estimator", "hysure", "--iterations", "5", "-q"]) == 2
    assert "--iterations is for the udaln estimator" in capsys.readouterr().err
    assert main(["estimate", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "-o", str(out),
                 "--ratio", "3", "-q"]) == 2
    assert "ratio 3 disagrees" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # refused by the parser, before the images are read
        main(["estimate", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "-o", str(out),
              "--hysure-lambda", "-1", "-q"])
    assert refused.value.code == 2 and "--hysure-lambda: '-1' is not a finite number >= 0" in capsys.readouterr().err
    assert not out.exists()


def test_real_pair_workflow_masks_nodata_and_reports(pair, tmp_path):
    folder, sim, hsi, msi = pair
    data = msi.data.copy()
    data[20:36, 8:30] = 0.0  # a black no-data patch, as in the Houston RGB
    holed = Cube(data, band_names=msi.band_names, nodata=0.0)
    tiny = UdalnSchedule(name="tiny", stage1=Stage(iterations=60, lr=1e-3, decay_start=30),
                         stage2=Stage(iterations=150, lr=1e-3, decay_start=100),
                         stage3=Stage(iterations=20, lr=6e-5, decay_start=10))
    out = tmp_path / "run"
    result = run_real_pair(hsi, holed, output=out, methods=("fuse", "gsa", "udaln"), options={"udaln": {"schedule": tiny}})
    report = json.loads((out / "report.json").read_text())
    assert report["nodata_msi_pixels"] == 16 * 22 and report["ratio"] == 4
    assert report["registration"]["ok"]
    for name in ("fuse", "gsa", "udaln"):
        m = report["methods"][name]
        assert 0 <= m["qnr"] <= 1 and np.isfinite(m["hsi_psnr"]) and np.isfinite(m["msi_psnr"])
        fused = read_cube(out / f"fused_{name}.npz")
        assert fused.shape == (64, 64, hsi.bands) and np.isfinite(fused.data).all()
        assert (out / f"overview_{name}.png").stat().st_size > 0
    # FUSE with the estimated operators is consistent with both inputs (noise-free pair)
    assert report["methods"]["fuse"]["hsi_psnr"] > 35
    assert (out / "udaln_convergence.png").is_file() and (out / "operators" / "physics.json").is_file()
    assert "| fuse |" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()  # the interactive report: the scores and a consistency map per method
    for name in ("fuse", "gsa", "udaln"):
        assert f'<td data-v="{report["methods"][name]["qnr"]!r}">' in page and f"MSI consistency RMSE: {name}" in page
    assert all(p.exists() for p in result.files)
    # a second run into the same folder needs --overwrite; with it the old run is replaced
    with pytest.raises(Exception, match="exists"):
        run_real_pair(hsi, holed, output=out, methods=("gsa",))
    run_real_pair(hsi, holed, output=out, methods=("gsa",), overwrite=True)
    assert not (out / "fused_fuse.npz").exists() and (out / "fused_gsa.npz").exists()


def test_real_pair_warns_on_misregistration(pair, tmp_path):
    folder, sim, hsi, msi = pair
    shifted = Cube(np.roll(msi.data, shift=(8, 0), axis=(0, 1)), band_names=msi.band_names)  # 2 HSI pixels
    result = run_real_pair(hsi, shifted, output=tmp_path / "run", methods=("gsa",))
    reg = result.report["registration"]
    assert not reg["ok"] and reg["magnitude_lr_px"] > 1.0


def test_pair_command_refuses_networks(pair, tmp_path, capsys):
    folder, _, _, _ = pair
    assert main(["pair", "--hsi", str(folder / "hsi.npz"), "--msi", str(folder / "msi.npz"), "--methods", "dbin",
                 "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "trained network" in capsys.readouterr().err


def test_srgb_decoding_by_the_standard_formula():
    from hsfuse.workflows.real_pair import srgb_to_linear

    # IEC 61966-2-1: linear segment below 0.04045, power 2.4 above; 0.5 -> 0.21404 (published tables)
    np.testing.assert_allclose(srgb_to_linear(np.array([0.0, 0.04045, 0.5, 1.0])),
                               [0.0, 0.04045 / 12.92, 0.214041, 1.0], atol=1e-6)
    hsi = Cube(np.full((2, 2, 3), 5.0))
    rgb = Cube(np.full((4, 4, 3), 128, dtype=np.uint8))
    prep = prepare_pair(hsi, rgb, msi_transfer="srgb")
    assert prep.msi_scale == pytest.approx(((128 / 255 + 0.055) / 1.055) ** 2.4)
    with pytest.raises(InputError, match="must lie in"):
        prepare_pair(hsi, Cube(np.full((4, 4, 3), 3.0)), msi_transfer="srgb")


def test_in_original_units_rescales_only_the_srf():
    from hsfuse.estimation.operators import EstimatedOperators
    from hsfuse.workflows.real_pair import PreparedPair

    ops = EstimatedOperators(psf=torch.ones(2, 2) / 4, srf=torch.ones(1, 3), ratio=2, offset=0, method="x")
    prep = PreparedPair(y=None, valid=None, ratio=2, hsi_scale=10.0, msi_scale=5.0)  # type: ignore[arg-type]
    out = in_original_units(ops, prep)
    torch.testing.assert_close(out.srf, torch.full((1, 3), 0.5))
    torch.testing.assert_close(out.psf, ops.psf)
