"""The command line end to end: every command once, the error paths, and no partial output on failure.

Expected numbers come from independent computations in the test (metrics recomputed with scikit-image /
NumPy on the written files), not from the command's own printout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hsfuse.cli import main
from hsfuse.io import read_cube, write_cube
from hsfuse.types import Cube


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def reference_mat(tmp_path: Path) -> Path:
    """A 40 x 48 x 31 reflectance cube on 400:10:700 nm in a MATLAB v5 file (synthetic, seeded)."""
    from hsfuse.data.synthetic import synthetic_scene

    cube = synthetic_scene(height=40, width=48, seed=3)
    path = tmp_path / "ref.mat"
    scipy.io.savemat(path, {"ref": cube.data, "wavelengths": cube.wavelengths})
    return path


def test_help_for_every_command(capsys):
    for cmd in ([], ["demo"], ["simulate"], ["fuse"], ["evaluate"], ["info"], ["srf"], ["srf", "resample"],
                ["bench"], ["train"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: hsfuse" in capsys.readouterr().out


def test_simulate_fuse_evaluate_round_trip(tmp_path, reference_mat, capsys):
    sim_dir = tmp_path / "sim"
    code, _, err = run(capsys, "simulate", str(reference_mat), "--srf", "nikon_d700_dhsis", "--ratio", "4",
                       "-o", str(sim_dir))
    assert code == 0, err
    names = sorted(p.name for p in sim_dir.iterdir())
    assert names == ["hsi.npz", "msi.npz", "physics.json", "reference.npz"]
    hsi, msi, ref = (read_cube(sim_dir / f"{n}.npz") for n in ("hsi", "msi", "reference"))
    assert hsi.shape == (10, 12, 31) and msi.shape == (40, 48, 3) and ref.shape == (40, 48, 31)
    np.testing.assert_allclose(hsi.wavelengths, np.arange(400, 701, 10))
    physics = json.loads((sim_dir / "physics.json").read_text())
    assert physics["ratio"] == 4 and np.allclose(np.sum(physics["srf"], axis=1), 1.0)

    scores = {}
    for method in ("bicubic", "fuse"):
        out = tmp_path / f"{method}.npz"
        code, _, err = run(capsys, "fuse", "--hsi", str(sim_dir / "hsi.npz"), "--msi", str(sim_dir / "msi.npz"),
                           "--method", method, "--physics", str(sim_dir / "physics.json"), "-o", str(out))
        assert code == 0, err
        fused = read_cube(out)
        assert fused.shape == ref.shape
        np.testing.assert_allclose(fused.wavelengths, hsi.wavelengths)
        code, text, err = run(capsys, "evaluate", "--reference", str(sim_dir / "reference.npz"), "--estimate",
                              str(out), "--ratio", "4", "--json")
        assert code == 0, err
        scores[method] = json.loads(text)
        assert {"psnr", "ssim", "sam", "ergas", "rmse"} <= set(scores[method])
        # independent check of the printed PSNR: per-band PSNR with peak 1, averaged (NumPy)
        mse = np.mean((ref.data.astype(np.float64) - fused.data) ** 2, axis=(0, 1))
        assert scores[method]["psnr"] == pytest.approx(np.mean(10 * np.log10(1.0 / mse)), rel=1e-6)
    assert scores["fuse"]["psnr"] > scores["bicubic"]["psnr"] + 5


def test_fuse_with_explicit_srf_and_psf_keeps_msi_georeferencing(tmp_path, capsys):
    from hsfuse.data.simulation import simulate
    from hsfuse.physics.srf_library import srf_matrix
    from hsfuse.types import GeoInfo
    from hsfuse.data.synthetic import synthetic_scene

    ref = synthetic_scene(height=32, width=32, seed=1)
    ref = ref.replace(geo=GeoInfo("EPSG:32633", (1.0, 0.0, 500000.0, 0.0, -1.0, 4000000.0)))
    R, names = srf_matrix("nikon_d700_dhsis", ref.wavelengths, normalize="none")
    sim = simulate(ref, R, ratio=4, srf_band_names=names)
    write_cube(sim.hsi, tmp_path / "hsi.tif")
    write_cube(sim.msi, tmp_path / "msi.tif")
    code, _, err = run(capsys, "fuse", "--hsi", str(tmp_path / "hsi.tif"), "--msi", str(tmp_path / "msi.tif"),
                       "--method", "gsa", "--srf", "nikon_d700_dhsis", "--psf", "gaussian:fwhm=4,size=9",
                       "-o", str(tmp_path / "out.tif"))
    assert code == 0, err
    out = read_cube(tmp_path / "out.tif")
    assert out.geo.crs and "32633" in out.geo.crs
    assert out.geo.transform == pytest.approx(sim.msi.geo.transform)
    assert out.shape == (32, 32, 31)


def test_info_and_srf_commands(tmp_path, reference_mat, capsys):
    code, out, _ = run(capsys, "info", str(reference_mat))
    assert code == 0 and "40" in out and "48" in out and "31" in out
    code, out, _ = run(capsys, "srf", "list")
    assert code == 0 and "sentinel2a" in out and "nikon_d700_dhsis" in out
    code, out, _ = run(capsys, "srf", "show", "landsat8")
    assert code == 0 and ("B5" in out or "NIR" in out)
    csv = tmp_path / "srf.csv"
    code, _, err = run(capsys, "srf", "resample", "nikon_d700_dhsis", "--hsi", str(reference_mat),
                       "--normalize", "sum", "-o", str(csv))
    assert code == 0, err
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert table.shape == (31, 4)
    np.testing.assert_allclose(table[:, 1:].sum(axis=0), 1.0, rtol=1e-6)


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    code, text, err = run(capsys, "demo", "--size", "48", "-o", str(out), "-q")
    assert code == 0, err
    assert "fuse" in text and "psnr" in text
    assert (out / "demo.png").stat().st_size > 10_000
    results = json.loads((out / "metrics.json").read_text())["results"]
    psnr = {r["method"]: r["psnr"] for r in results}
    assert psnr["fuse"] > psnr["bicubic"] and psnr["gsa"] > psnr["bicubic"]
    page = (out / "report.html").read_text()  # the interactive report: every method's PSNR in its table
    assert all(f'<td data-v="{v!r}">' in page for v in psnr.values()) and (out / "physics.json").is_file()
    # second run: refused, outputs untouched
    before = (out / "metrics.json").read_bytes()
    code, _, err = run(capsys, "demo", "--size", "48", "-o", str(out), "-q")
    assert code == 2 and "--overwrite" in err
    assert (out / "metrics.json").read_bytes() == before


def test_bench_writes_tidy_tables(tmp_path, capsys):
    code, _, err = run(capsys, "bench", "--case", "synthetic:nikon_d700_dhsis", "--methods", "bicubic", "fuse",
                       "--ratios", "4", "-o", str(tmp_path / "b"), "-q")
    assert code == 0, err
    data = json.loads((tmp_path / "b" / "results.json").read_text())
    assert {"cpu", "torch", "logical_cores"} <= set(data["machine"])
    rows = data["rows"]
    assert [r["method"] for r in rows] == ["bicubic", "fuse"]
    assert all({"psnr", "sam", "ergas", "time_s", "peak_mem_mib"} <= set(r) for r in rows)
    assert "| scene |" in (tmp_path / "b" / "results.md").read_text()
    assert (tmp_path / "b" / "results.csv").read_text().startswith("scene,")


# ------------------------------------------------------------------------------------------ bad input


def _pair(tmp_path: Path, *, hsi_hw=(8, 10), msi_hw=(32, 40), bands=31) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    wl = np.linspace(400, 700, bands)
    hsi = Cube(rng.random((*hsi_hw, bands)).astype(np.float32), wavelengths=wl)
    msi = Cube(rng.random((*msi_hw, 3)).astype(np.float32))
    write_cube(hsi, tmp_path / "h.npz")
    write_cube(msi, tmp_path / "m.npz")
    return tmp_path / "h.npz", tmp_path / "m.npz"


def _fuse(capsys, h, m, out, *extra):
    return run(capsys, "fuse", "--hsi", str(h), "--msi", str(m), "--method", "fuse", "--srf", "nikon_d700_dhsis",
               "-o", str(out), *extra)


def test_inconsistent_sizes(tmp_path, capsys):
    h, m = _pair(tmp_path, msi_hw=(32, 36))
    code, _, err = _fuse(capsys, h, m, tmp_path / "o.npz")
    assert code == 2 and "integer ratio" in err and "Traceback" not in err
    assert not (tmp_path / "o.npz").exists()


def test_ratio_disagreeing_with_sizes_and_non_integer_ratio(tmp_path, capsys):
    h, m = _pair(tmp_path)
    code, _, err = _fuse(capsys, h, m, tmp_path / "o.npz", "--ratio", "8")
    assert code == 2 and "ratio 8 disagrees with the image sizes" in err
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(h), "--srf", "x", "--ratio", "2.5", "-o", str(tmp_path / "s")])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_nan_input_is_refused(tmp_path, capsys):
    h, m = _pair(tmp_path)
    cube = read_cube(h)
    data = cube.data.copy()
    data[2, 3, 4] = np.nan
    write_cube(cube.replace(data=data), h, overwrite=True)
    code, _, err = _fuse(capsys, h, m, tmp_path / "o.npz")
    assert code == 2 and "NaN" in err
    assert not (tmp_path / "o.npz").exists()


def test_srf_band_count_mismatch(tmp_path, capsys):
    h, m = _pair(tmp_path)
    code, _, err = run(capsys, "fuse", "--hsi", str(h), "--msi", str(m), "--method", "fuse", "--srf", "landsat8",
                       "--bands", "B2,B3", "-o", str(tmp_path / "o.npz"))
    assert code == 2 and "the SRF has 2 bands (B2, B3) but the MSI has 3" in err and "--bands" in err


def test_srf_without_overlap(tmp_path, capsys):
    rng = np.random.default_rng(0)
    swir = Cube(rng.random((8, 8, 20)).astype(np.float32), wavelengths=np.linspace(1500, 2400, 20))
    write_cube(swir, tmp_path / "swir.npz")
    code, _, err = run(capsys, "simulate", str(tmp_path / "swir.npz"), "--srf", "nikon_d700_dhsis", "--ratio", "2",
                       "-o", str(tmp_path / "s"))
    assert code == 2 and "nm" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "hsi.npz").exists()


def test_missing_ambiguous_and_corrupt_files(tmp_path, capsys):
    code, _, err = run(capsys, "info", str(tmp_path / "nope.mat"))
    assert code == 2 and "not found" in err
    scipy.io.savemat(tmp_path / "two.mat", {"a": np.zeros((4, 4, 5)), "b": np.ones((4, 4, 6))})
    code, _, err = run(capsys, "info", str(tmp_path / "two.mat"))
    assert code == 2 and "'a'" in err and "'b'" in err
    good = tmp_path / "good.mat"
    scipy.io.savemat(good, {"x": np.random.default_rng(0).random((20, 20, 8))})
    blob = good.read_bytes()
    (tmp_path / "cut.mat").write_bytes(blob[: len(blob) // 2])
    code, _, err = run(capsys, "info", str(tmp_path / "cut.mat"))
    assert code == 2 and "cut.mat" in err and "Traceback" not in err
    scipy.io.savemat(tmp_path / "empty.mat", {"x": np.zeros((0, 4, 5))})
    code, _, err = run(capsys, "info", str(tmp_path / "empty.mat"))
    assert code == 2


def test_existing_output_refused_and_kept(tmp_path, capsys):
    h, m = _pair(tmp_path)
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    code, _, err = _fuse(capsys, h, m, out)
    assert code == 2 and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    code, _, err = _fuse(capsys, h, m, out, "--overwrite")
    assert code == 0, err
    assert read_cube(out).shape == (32, 40, 31)


def test_unwritable_output_folder(tmp_path, capsys):
    h, m = _pair(tmp_path)
    code, _, err = _fuse(capsys, h, m, tmp_path / "no" / "such" / "dir" / "o.npz")
    assert code == 2 and "folder" in err.lower()
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:  # root can write anywhere
        locked.chmod(0o500)
        code, _, err = _fuse(capsys, h, m, locked / "o.npz")
        assert code == 2
        assert not list(locked.iterdir())


def test_evaluate_refuses_data_outside_the_preset_range(tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw = Cube((rng.random((40, 40, 5)) * 4000).astype(np.uint16))
    write_cube(raw, tmp_path / "r.npz")
    write_cube(raw, tmp_path / "e.npz")
    code, _, err = run(capsys, "evaluate", "--reference", str(tmp_path / "r.npz"), "--estimate",
                       str(tmp_path / "e.npz"), "--ratio", "4")
    assert code == 2 and "--data-range" in err
    noisy = Cube(raw.data + rng.integers(0, 3, raw.data.shape).astype(np.uint16))
    write_cube(noisy, tmp_path / "e.npz", overwrite=True)
    code, text, err = run(capsys, "evaluate", "--reference", str(tmp_path / "r.npz"), "--estimate",
                          str(tmp_path / "e.npz"), "--ratio", "4", "--data-range", "4000", "--json")
    assert code == 0, err
    mse = np.mean((raw.data.astype(np.float64) - noisy.data) ** 2, axis=(0, 1))  # hand per-band PSNR, peak 4000
    assert json.loads(text)["psnr"] == pytest.approx(np.mean(10 * np.log10(4000.0**2 / mse)), rel=1e-9)


def test_corrupt_srf_matrix_file(tmp_path, capsys):
    h, m = _pair(tmp_path)
    (tmp_path / "srf.npy").write_bytes(b"not a numpy file")
    code, _, err = run(capsys, "fuse", "--hsi", str(h), "--msi", str(m), "--method", "fuse", "--srf",
                       str(tmp_path / "srf.npy"), "-o", str(tmp_path / "o.npz"))
    assert code == 2 and "srf.npy" in err and "unexpected" not in err


def test_train_then_fuse_with_the_weights(tmp_path, reference_mat, capsys):
    """hsfuse train on a .mat reference (rows held out), then hsfuse fuse --weights on a simulated pair."""
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "--method", "dbin", "--config", "tiny", "--data", str(reference_mat),
                       "--srf", "nikon_d700_dhsis", "--ratio", "4", "--steps", "4", "--batch-size", "2",
                       "--patch-size", "16", "--val-fraction", "0.4", "--val-every", "2", "--ckpt-every", "2",
                       "-q", "-o", str(run_dir))
    assert code == 0, err
    assert (run_dir / "best.json").is_file() and (run_dir / "summary.json").is_file()
    sim_dir = tmp_path / "sim"
    assert run(capsys, "simulate", str(reference_mat), "--srf", "nikon_d700_dhsis", "--ratio", "4",
               "-o", str(sim_dir))[0] == 0
    out = tmp_path / "dbin.npz"
    base = ["fuse", "--hsi", str(sim_dir / "hsi.npz"), "--msi", str(sim_dir / "msi.npz"), "--method", "dbin"]
    code, _, err = run(capsys, *base, "--weights", str(run_dir), "--option", "tile=6", "--option", "overlap=2", "-q",
                       "-o", str(out))
    assert code == 0, err
    fused = read_cube(out)
    assert fused.shape == (40, 48, 31) and np.isfinite(fused.data).all()
    # the same result through the Python API with the same tiling (the CLI adds reading, scaling, writing)
    from hsfuse.models.checkpoint import load_model
    from hsfuse.models.inference import run_network

    net, card = load_model(run_dir)
    hsi, msi = read_cube(sim_dir / "hsi.npz").to_tensor(), read_cube(sim_dir / "msi.npz").to_tensor()
    api = run_network(net, hsi, msi, band_scaling=card.band_scaling, tile=6, overlap=2)[0].permute(1, 2, 0)
    np.testing.assert_allclose(fused.data, api.numpy(), rtol=1e-5, atol=1e-6)
    # errors: no weights, weights for a classical method, a checkpoint of another network, wrong band count
    code, _, err = run(capsys, *base, "-o", str(tmp_path / "x.npz"))
    assert code == 2 and "--weights" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, *base[:-1], "gsa", "--weights", str(run_dir), "-o", str(tmp_path / "x.npz"))
    assert code == 2 and "needs none" in err
    code, _, err = run(capsys, *base[:-1], "edbin", "--weights", str(run_dir), "-o", str(tmp_path / "x.npz"))
    assert code == 2 and "holds a dbin network" in err
    few = tmp_path / "few.npz"
    cube = read_cube(sim_dir / "hsi.npz")
    write_cube(Cube(cube.data[..., :20], wavelengths=cube.wavelengths[:20]), few)
    code, _, err = run(capsys, "fuse", "--hsi", str(few), "--msi", str(sim_dir / "msi.npz"), "--method", "dbin",
                       "--weights", str(run_dir), "-o", str(tmp_path / "x.npz"))
    assert code == 2 and "trained for 31 HSI bands" in err
    assert not (tmp_path / "x.npz").exists()
    code, _, err = run(capsys, "train", "--method", "dbin", "--config", "tiny", "--data", str(reference_mat),
                       "--srf", "nikon_d700_dhsis", "--ratio", "4", "--val", str(reference_mat), "--val-fraction",
                       "0.2", "-q", "-o", str(tmp_path / "both"))
    assert code == 2 and "not both" in err and not (tmp_path / "both").exists()
    # an existing run is not silently reused
    code, _, err = run(capsys, "train", "--method", "dbin", "--config", "tiny", "--data", str(reference_mat),
                       "--srf", "nikon_d700_dhsis", "--ratio", "4", "--steps", "4", "-q", "-o", str(run_dir))
    assert code == 2 and "--resume" in err
