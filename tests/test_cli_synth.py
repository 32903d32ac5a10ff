"""``hsfuse synth`` end to end on a 40 x 40 crop of the shared Jasper Ridge scene, with tiny networks.

Train the unmixing network -> unmix RGB images (a PNG and the Houston example, tiled) -> train the abundance
diffusion model -> sample (and resume) -> make a dataset with a simulated Sentinel-2 MSI -> realism report.
Expected values come from independent computations in the tests (block means instead of the area resize,
the Sentinel-2 SRF applied by hand, spectral angles recomputed over all permutations), not from the
commands' own printout.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hsfuse.cli import main

N_SAMPLES, SAMPLE_BATCH, SAMPLE_SIZE = 3, 2, 16


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hsfuse synth: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, data_root):
    """Run train-unmixing, unmix (PNG + Houston tiles), train-diffusion and sample once for the module."""
    import torch
    from PIL import Image

    from hsfuse.data.scenes import load_scene
    from hsfuse.io import write_cube
    from hsfuse.types import Cube

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("synth")
    scene = load_scene("jasper_ridge")
    write_cube(Cube(scene.data[:40, :40], wavelengths=scene.wavelengths), root / "jasper40.npz")
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    rgb = np.stack([yy, xx, 1 - 0.5 * (yy + xx)], axis=-1)
    rgb = np.round(20 + 200 * rgb).astype(np.uint8)
    Image.fromarray(rgb).save(root / "rgb.png")
    p = {"root": root, "rgb": rgb, "unmixing": root / "unmixing", "ab": root / "ab", "houston": root / "houston",
         "diffusion": root / "diffusion", "samples": root / "samples"}
    commands = [
        ["synth", "train-unmixing", "--data", root / "jasper40.npz", "--config", "tiny", "--endmembers", "4",
         "--steps", "10", "--batch-size", "2", "--patch-size", "16", "-q", "-o", p["unmixing"]],
        ["synth", "unmix", "--weights", p["unmixing"], "--rgb", root / "rgb.png", "-q", "-o", p["ab"]],
        ["synth", "unmix", "--weights", p["unmixing"], "--example", "houston2018", "--tile", "64", "--scales", "0.25",
         "-q", "-o", p["houston"]],
        ["synth", "train-diffusion", "--abundances", p["ab"], p["houston"], "--config", "tiny", "--crop", "16",
         "--steps", "5", "--batch-size", "2", "--ema", "0.9", "-q", "-o", p["diffusion"]],
        ["synth", "sample", "--weights", p["diffusion"], "-n", str(N_SAMPLES), "--size", str(SAMPLE_SIZE),
         "--sampler", "ddim", "--steps", "3", "--batch", str(SAMPLE_BATCH), "-q", "-o", p["samples"]],
    ]
    try:
        for argv in commands:
            assert main([str(a) for a in argv]) == 0, argv
    finally:
        torch.set_num_threads(threads)
    return p


@pytest.fixture
def one_thread_torch():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_help_for_every_synth_command(capsys):
    for cmd in (["synth"], *(["synth", c] for c in ("train-unmixing", "unmix", "train-diffusion", "sample", "make",
                                                     "report"))):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: hsfuse synth" in capsys.readouterr().out


def test_train_diffusion_ema_option_is_stored_and_checkpointed(pipeline):
    run = json.loads((pipeline["diffusion"] / "run.json").read_text())
    assert run["options"]["ema"] == 0.9
    last = pipeline["diffusion"] / json.loads((pipeline["diffusion"] / "last.json").read_text())["checkpoint"]
    assert (last / "averaged.safetensors").is_file()


def test_load_rgb_images_drops_alpha_and_skips_grey(tmp_path):
    from PIL import Image

    from hsfuse.workflows.synth import load_rgb_images

    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., :3] = np.arange(240, dtype=np.uint8).reshape(8, 10, 3)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "grey.png")
    messages: list[str] = []
    images = load_rgb_images([tmp_path], say=messages.append)
    assert [n for n, _ in images] == ["a"]
    assert images[0][1].dtype == np.float32
    np.testing.assert_array_equal(images[0][1], rgba[..., :3].astype(np.float32))
    assert any("grey" in m for m in messages)
    # scale 0.5: block means of 2 x 2 pixels
    (name, half), = load_rgb_images([tmp_path / "a.png"], scales=[0.5])
    assert name == "a_s0.5"
    expected = rgba[..., :3].astype(np.float64).reshape(4, 2, 5, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(half, expected, rtol=1e-6)


def test_unmix_png(pipeline):
    from hsfuse.synthesis.unmixing import infer_abundances, load_unmixing

    ab = pipeline["ab"]
    assert sorted(p.name for p in ab.iterdir()) == ["index.json", "preview.png", "rgb.npz"]
    with np.load(ab / "rgb.npz") as z:
        a = z["abundances"]
    assert a.shape == (32, 32, 4) and a.dtype == np.float32
    assert a.min() >= 0 and np.allclose(a.sum(-1), 1.0, atol=1e-5)
    model = load_unmixing(pipeline["unmixing"])
    np.testing.assert_allclose(a, infer_abundances(model, pipeline["rgb"]), atol=1e-6)
    index = json.loads((ab / "index.json").read_text())
    assert index["K"] == 4 and [i["name"] for i in index["images"]] == ["rgb"]
    assert index["images"][0]["shape"] == [32, 32, 4]


def test_unmix_houston_drops_nodata_tiles(pipeline, data_root):
    from hsfuse.synthesis.unmixing import infer_abundances, load_unmixing

    with np.load(data_root / "derived" / "houston2018.npz") as z:
        rgb = z["rgb"].astype(np.float64)
    nodata = np.all(rgb == 0, axis=-1)
    assert nodata.any()
    # a 64-pixel tile at scale 0.25 covers 256 x 256 original pixels; it is kept when none of them is no-data
    kept = [i * 2 + j for i in range(2) for j in range(2)
            if not nodata[i * 256:(i + 1) * 256, j * 256:(j + 1) * 256].any()]
    assert 0 < len(kept) < 4
    files = sorted(p.name for p in pipeline["houston"].glob("*.npz"))
    assert files == [f"houston2018_s0.25_t{k}.npz" for k in kept]
    # tile content: the 4 x 4 block means of the original, unmixed
    small = rgb.reshape(128, 4, 128, 4, 3).mean(axis=(1, 3))
    k = kept[0]
    i, j = divmod(k, 2)
    expected = infer_abundances(load_unmixing(pipeline["unmixing"]), small[i * 64:(i + 1) * 64, j * 64:(j + 1) * 64])
    with np.load(pipeline["houston"] / f"houston2018_s0.25_t{k}.npz") as z:
        np.testing.assert_allclose(z["abundances"], expected, atol=1e-4)


def test_sample_folder_and_resume(pipeline, tmp_path, capsys, one_thread_torch):
    from hsfuse.synthesis.diffusion import load_diffusion, sample_abundances

    samples = pipeline["samples"]
    meta = json.loads((samples / "samples.json").read_text())
    assert meta["complete"] is True and meta["n"] == N_SAMPLES and meta["batches"] == 2
    first = {}
    for f in sorted(samples.glob("batch_*.npz")):
        with np.load(f) as z:
            first[f.name] = z["abundances"].copy()
    assert [a.shape for a in first.values()] == [(2, 16, 16, 4), (1, 16, 16, 4)]
    # the batches are what one sample_abundances call with the same seed and batch gives
    direct = sample_abundances(load_diffusion(pipeline["diffusion"]), n=N_SAMPLES, size=SAMPLE_SIZE, steps=3,
                               seed=0, batch=SAMPLE_BATCH)
    np.testing.assert_array_equal(np.concatenate(list(first.values())), direct.abundances)

    copy = tmp_path / "samples"
    shutil.copytree(samples, copy)
    (copy / "batch_00001.npz").unlink()
    def args(steps: int = 3) -> list:
        return ["synth", "sample", "--weights", pipeline["diffusion"], "-n", str(N_SAMPLES), "--size",
                str(SAMPLE_SIZE), "--steps", str(steps), "--batch", str(SAMPLE_BATCH), "-q", "-o", copy]

    # an existing sample folder needs --resume or --overwrite
    code, _, err = run(capsys, *args())
    assert code == 2 and "--resume" in _error_line(err)
    assert not (copy / "batch_00001.npz").exists()
    code, _, err = run(capsys, *args(), "--resume")
    assert code == 0, err
    for name, a in first.items():
        with np.load(copy / name) as z:
            np.testing.assert_array_equal(z["abundances"], a)
    assert json.loads((copy / "samples.json").read_text())["complete"] is True
    # different settings with --resume: refused, nothing changed
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    code, _, err = run(capsys, *args(steps=4), "--resume")
    assert code == 2 and "different settings" in _error_line(err)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_make_dataset_with_msi(pipeline, tmp_path, capsys):
    from hsfuse.io import read_cube
    from hsfuse.physics.srf_library import srf_matrix
    from hsfuse.synthesis.unmixing import load_unmixing

    out = tmp_path / "dataset"
    code, _, err = run(capsys, "synth", "make", "--unmixing", pipeline["unmixing"], "--abundances",
                       pipeline["samples"], "--msi-sensor", "sentinel2a", "-q", "-o", out)
    assert code == 0, err
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["cubes"] == N_SAMPLES and meta["bands"] == 198 and meta["endmembers"] == 4
    assert meta["provenance"]["abundance_source"]["maps"] == N_SAMPLES
    model = load_unmixing(pipeline["unmixing"])
    maps = []
    for f in sorted(pipeline["samples"].glob("batch_*.npz")):
        with np.load(f) as z:
            maps.extend(z["abundances"])
    for i, a in enumerate(maps):
        hsi = read_cube(out / "hsi" / f"synth_{i:05d}.npz")
        msi = read_cube(out / "msi" / f"synth_{i:05d}.npz")
        np.testing.assert_allclose(hsi.wavelengths, model.wavelengths_nm)
        np.testing.assert_allclose(hsi.data, a.astype(np.float64) @ model.endmembers.T.astype(np.float64),
                                   atol=1e-5)
        R, _ = srf_matrix("sentinel2a", hsi.wavelengths, normalize="sum")
        np.testing.assert_allclose(msi.data, hsi.data.astype(np.float64) @ np.asarray(R).T, atol=1e-5)


def test_report(pipeline, tmp_path, capsys):
    dataset = tmp_path / "dataset"
    assert run(capsys, "synth", "make", "--unmixing", pipeline["unmixing"], "--abundances", pipeline["samples"],
               "-q", "-o", dataset)[0] == 0
    out = tmp_path / "report"
    code, stdout, err = run(capsys, "synth", "report", "--synthetic", dataset, "--scene", "jasper_ridge",
                            "--n-components", "3", "-q", "-o", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["abundances.png", "previews.png", "realism.png", "report.json",
                                                     "report.md"]
    r = json.loads((out / "report.json").read_text())
    for key in ("bands", "mean_gap", "std_ratio", "principal_angles_deg", "captured_variance", "sam_to_real_deg",
                "sam_real_baseline_deg", "abundance", "inputs"):
        assert key in r
    assert r["bands"] == 198
    assert r["n_synthetic_pixels"] == N_SAMPLES * SAMPLE_SIZE**2 and r["n_real_pixels"] == 100 * 100
    assert len(r["principal_angles_deg"]) == 3 and r["abundance"]["K"] == 4
    assert r["abundance"]["invalid_fraction"] == 0.0
    assert "mean gap" in (out / "report.md").read_text()


def test_unmix_refuses_a_diffusion_run(pipeline, tmp_path, capsys):
    code, _, err = run(capsys, "synth", "unmix", "--weights", pipeline["diffusion"], "--rgb",
                       pipeline["root"] / "rgb.png", "-o", tmp_path / "ab")
    assert code == 2 and "not an unmixing checkpoint" in _error_line(err)
    assert not (tmp_path / "ab").exists()


def test_existing_output_is_kept_without_overwrite(pipeline, tmp_path, capsys):
    out = tmp_path / "ab"
    shutil.copytree(pipeline["ab"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run(capsys, "synth", "unmix", "--weights", pipeline["unmixing"], "--example", "houston2018",
                       "--scales", "0.25", "-o", out)
    assert code == 2 and "exists" in _error_line(err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _, err = run(capsys, "synth", "train-unmixing", "--data", pipeline["root"] / "jasper40.npz", "--config",
                       "tiny", "--steps", "1", "-o", pipeline["unmixing"])
    assert code == 2 and "--resume" in _error_line(err)


def _reference(data_root: Path):
    with np.load(data_root / "derived" / "jasper_ridge.npz") as z:
        return z["endmembers"], z["abundances"], z["wavelengths_nm"]


def test_unmixing_accuracy_of_the_reference_endmembers_is_zero(data_root, one_thread_torch):
    import torch

    from hsfuse.models.unmixing import UNMIXING_CONFIGS, UnmixingNet
    from hsfuse.synthesis.unmixing import UNMIXING_KIND, UnmixingModel, rgb_response
    from hsfuse.workflows.synth import unmixing_accuracy

    ref_e, _, wl = _reference(data_root)
    torch.manual_seed(0)
    net = UnmixingNet(in_bands=3, hsi_bands=198, config=dataclasses.replace(UNMIXING_CONFIGS["tiny"], endmembers=4))
    net.endmembers.data = torch.tensor(ref_e[:, ::-1].copy(), dtype=torch.float32)  # learned order reversed
    card = {"kind": UNMIXING_KIND, "wavelengths_nm": wl.tolist(), "response": rgb_response(wl).to_dict()}
    acc = unmixing_accuracy(UnmixingModel(net=net.eval(), card=card, path=Path("by-hand")), "jasper_ridge")
    assert acc["mean_sad_deg"] < 1e-4
    assert [(p["reference_index"], p["learned_index"]) for p in acc["pairs"]] == [(0, 3), (1, 2), (2, 1), (3, 0)]
    assert [p["reference"] for p in acc["pairs"]] == ["tree", "water", "dirt", "road"]
    assert 0 <= acc["abundance_rmse"] <= 1 and np.isfinite(acc["reconstruction_psnr_db"])
    json.dumps(acc)


def test_train_unmixing_on_a_scene_writes_accuracy(tmp_path, data_root, capsys, one_thread_torch):
    from hsfuse.synthesis.unmixing import load_unmixing

    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "synth", "train-unmixing", "--scene", "jasper_ridge", "--config", "tiny",
                         "--steps", "2", "--batch-size", "1", "--patch-size", "16", "-q", "-o", run_dir)
    assert code == 0, err
    acc = json.loads((run_dir / "accuracy.json").read_text())
    assert "mean SAD" in out
    # independent: the best of all pairings of the reference endmembers with the learned ones, by spectral angle
    ref_e, _, _ = _reference(data_root)
    e = load_unmixing(run_dir).endmembers.astype(np.float64)
    assert e.shape[1] >= ref_e.shape[1]
    cos = (ref_e / np.linalg.norm(ref_e, axis=0)).T @ (e / np.linalg.norm(e, axis=0))
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    best = min(np.mean([angles[r, j] for r, j in enumerate(perm)])
               for perm in itertools.permutations(range(e.shape[1]), ref_e.shape[1]))
    assert acc["mean_sad_deg"] == pytest.approx(best, abs=1e-6)
