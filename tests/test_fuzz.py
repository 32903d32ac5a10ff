"""A standing, table-driven fuzz suite of bad inputs (issue 18, item 2; first part: the readers and ``fuse``).

Every case builds a bad file (truncated, garbage, lying header, impossible sizes, wrong types or layouts, NaN/Inf,
no-data) with a generator below and runs a command on it in-process. Each must end in exit status 2 with exactly
one ``hsfuse CMD: error: ...`` line on stderr, no traceback, and no file created or changed in the folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hsfuse.cli import main

Maker = Callable[[Path], Path]


def _cube(h: int = 8, w: int = 8, b: int = 5, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).random((h, w, b)).astype(dtype)


def _npz(name: str, **arrays) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)
        return p
    return make


def _npy(name: str, array) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        with open(p, "wb") as fh:
            np.save(fh, array, allow_pickle=True)
        return p
    return make


def _bytes(name: str, content: bytes) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(content)
        return p
    return make


def _truncated(name: str, writer: Callable[[Path], None], keep: float = 0.5) -> Maker:
    def make(d: Path) -> Path:
        p = d / name
        writer(p)
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])
        return p
    return make


def _envi(header_edit: Callable[[str], str] | None = None, *, drop_img: bool = False, img_bytes: int | None = None,
          name: str = "e") -> Maker:
    def make(d: Path) -> Path:
        from hsfuse.io import write_cube
        from hsfuse.types import Cube

        write_cube(Cube(_cube()), d / f"{name}.hdr")
        hdr, img = d / f"{name}.hdr", d / f"{name}.img"
        if header_edit is not None:
            hdr.write_text(header_edit(hdr.read_text()))
        if drop_img:
            img.unlink()
        elif img_bytes is not None:
            img.write_bytes(img.read_bytes()[:img_bytes])
        return hdr
    return make


def _sub(pattern: str, repl: str) -> Callable[[str], str]:
    return lambda text: re.sub(pattern, repl, text)


def _tif_writer(p: Path) -> None:
    from hsfuse.io import write_cube
    from hsfuse.types import Cube

    write_cube(Cube(_cube()), p)


def _mat_writer(p: Path) -> None:
    import scipy.io

    scipy.io.savemat(p, {"cube": _cube()})


def _png_writer(p: Path) -> None:
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)).save(p)


#: name -> file maker: files no reader should accept
BAD_FILES: dict[str, Maker] = {
    # empty and garbage files, one per extension the readers know
    **{f"empty{ext}": _bytes(f"empty{ext}", b"") for ext in (".npz", ".npy", ".mat", ".hdr", ".tif", ".png")},
    **{f"garbage{ext}": _bytes(f"garbage{ext}", bytes(range(256)) * 8)
       for ext in (".npz", ".npy", ".mat", ".hdr", ".tif", ".png")},
    "text_as_tif": _bytes("text.tif", b"this is not a tiff\n" * 20),
    "unknown_extension": _bytes("cube.xyz", b"\x00" * 64),
    # truncated valid files
    "truncated_npz": _truncated("t.npz", lambda p: np.savez(p, cube=_cube())),
    "truncated_npy": _truncated("t.npy", lambda p: np.save(p, _cube())),
    "truncated_mat": _truncated("t.mat", _mat_writer),
    "truncated_tif": _truncated("t.tif", _tif_writer),
    "truncated_png": _truncated("t.png", _png_writer, keep=0.4),
    # wrong types and layouts
    "npy_1d": _npy("v.npy", np.arange(10.0)),
    "npy_2d": _npy("m.npy", np.zeros((4, 5))),
    "npy_4d": _npy("x.npy", np.zeros((2, 3, 4, 5))),
    "npy_complex": _npy("c.npy", np.zeros((4, 4, 3), complex)),
    "npy_strings": _npy("s.npy", np.array([[["a"]]])),
    "npy_object": _npy("o.npy", np.array([[[None]]], dtype=object)),
    "npy_empty": _npy("z.npy", np.zeros((0, 4, 3))),
    "npz_no_arrays": _npz("n.npz"),
    "npz_only_1d": _npz("w.npz", wavelengths=np.arange(5.0)),
    "npz_bool_cube": _npz("b.npz", cube=np.ones((4, 4, 3), bool)),
    "mat_no_cube": _bytes("nc.mat", b""),  # replaced below by a MAT file without a 3-D variable
    # lying ENVI headers
    "envi_too_many_bands": _envi(_sub(r"bands = \d+", "bands = 1000")),
    "envi_huge_size": _envi(_sub(r"samples = \d+", "samples = 1000000000")),
    "envi_negative_size": _envi(_sub(r"lines = \d+", "lines = -3")),
    "envi_bad_data_type": _envi(_sub(r"data type = \d+", "data type = 99")),
    "envi_no_data_file": _envi(drop_img=True),
    "envi_truncated_data": _envi(img_bytes=100),
    "envi_bad_interleave": _envi(_sub(r"interleave = \w+", "interleave = zigzag")),
}


def _mat_without_cube(d: Path) -> Path:
    import scipy.io

    p = d / "nc.mat"
    scipy.io.savemat(p, {"vector": np.arange(5.0), "name": "x"})
    return p


BAD_FILES["mat_no_cube"] = _mat_without_cube


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes and every folder (as ``b"<folder>"``) under ``folder``, hidden ones included."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<folder>"
            for p in sorted(folder.rglob("*"))}


def _one_error_line(err: str, command: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith(f"hsfuse {command}: error: ") and "Traceback" not in err


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_info_refuses_every_bad_file_with_one_line(case, tmp_path, capsys):
    path = BAD_FILES[case](tmp_path)
    before = _snapshot(tmp_path)
    code = main(["info", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err, "info"), (case, code, err)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_fuse_refuses_every_bad_hsi_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    path = BAD_FILES[case](tmp_path)
    msi = tmp_path / "msi.npz"
    np.savez(msi, cube=_cube(32, 32, 3))
    before = _snapshot(tmp_path)
    code = main(["fuse", "--hsi", str(path), "--msi", str(msi), "--method", "bicubic", "--ratio", "4",
                 "-o", str(tmp_path / "out.npz")])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err, "fuse"), (case, code, err)
    assert _snapshot(tmp_path) == before


#: cubes a reader accepts but fusion must not: non-finite values, sizes that do not pair
BAD_PAIRS: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {
    "hsi_nan": (np.where(np.arange(8)[:, None, None] == 3, np.nan, _cube()), _cube(32, 32, 3), []),
    "hsi_inf": (np.where(np.arange(8)[:, None, None] == 3, np.inf, _cube()), _cube(32, 32, 3), []),
    "msi_nan": (_cube(), np.where(np.arange(32)[:, None, None] == 3, np.nan, _cube(32, 32, 3)), []),
    "ratio_not_integer": (_cube(), _cube(30, 30, 3), []),
    "msi_smaller": (_cube(), _cube(4, 4, 3), []),
    "ratio_disagrees": (_cube(), _cube(32, 32, 3), ["--ratio", "3"]),
    "more_msi_than_hsi_bands": (_cube(b=2), _cube(32, 32, 3), ["--method", "fuse", "--srf", "nikon_d700_dhsis"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PAIRS))
def test_fuse_refuses_every_bad_pair_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    hsi, msi, extra = BAD_PAIRS[case]
    np.savez(tmp_path / "h.npz", cube=hsi)
    np.savez(tmp_path / "m.npz", cube=msi)
    before = _snapshot(tmp_path)
    argv = ["fuse", "--hsi", str(tmp_path / "h.npz"), "--msi", str(tmp_path / "m.npz"), "-o", str(tmp_path / "o.npz")]
    argv += extra if "--method" in extra else ["--method", "bicubic", *extra]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err, "fuse"), (case, code, err)
    assert _snapshot(tmp_path) == before


@pytest.fixture
def good_pair(tmp_path):
    np.savez(tmp_path / "h.npz", cube=_cube(8, 8, 31), wavelengths=np.arange(400, 710, 10, dtype=np.float64))
    np.savez(tmp_path / "m.npz", cube=_cube(32, 32, 3))
    return tmp_path / "h.npz", tmp_path / "m.npz"


#: command-line options that must be refused (argparse's refusals included: one line too, see cli._Parser)
BAD_OPTIONS: dict[str, list[str]] = {
    "ratio_zero": ["--ratio", "0"],
    "ratio_negative": ["--ratio", "-2"],
    "ratio_text": ["--ratio", "four"],
    "ratio_fraction": ["--ratio", "2.5"],
    "unknown_method": ["--method", "magic"],
    "unknown_option": ["--option", "nosuch=1"],
    "option_wrong_type": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--option", "subspace_dim=ten"],
    "option_no_value": ["--option", "lam"],
    "option_of_other_method": ["--option", "ltmr:eta=1"],
    "negative_weight": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--option", "lam=-1"],
    "nan_weight": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--option", "lam=nan"],
    "bad_border": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--option", "border=mirror"],
    "unknown_sensor": ["--method", "fuse", "--srf", "no_such_sensor"],
    "bad_psf_spec": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--psf", "gaussian:width=2"],
    "missing_psf_file": ["--method", "fuse", "--srf", "nikon_d700_dhsis", "--psf", "/nonexistent/psf.npy"],
    "device_unknown": ["--device", "tpu9"],
    "offset_too_large": ["--offset", "7"],
    "boundary_unknown": ["--boundary", "mirror"],
    "physics_missing": ["--physics", "/nonexistent/physics.json"],
}


def _refusal(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """Run ``argv``; return the exit status (argparse's refusal included), stderr and its ``error:`` lines, after
    asserting exit 2 with no traceback and no usage text."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "usage:" not in err, (argv, code, err)
    return code, err, [line for line in err.splitlines() if "error:" in line]


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_fuse_refuses_every_bad_option_before_any_work(case, good_pair, tmp_path, capsys):
    hsi, msi = good_pair
    before = _snapshot(tmp_path)
    argv = ["fuse", "--hsi", str(hsi), "--msi", str(msi), "-o", str(tmp_path / "o.npz")]
    extra = BAD_OPTIONS[case]
    argv += extra if "--method" in extra else ["--method", "bicubic", *extra]
    _, err, errors = _refusal(argv, capsys)
    # exactly one error line (progress notes such as "fusing ..." may precede a value refused by the method itself)
    assert len(errors) == 1 and errors[0].startswith("hsfuse fuse: error: "), (case, err)
    if case in ("nan_weight", "negative_weight"):  # refused when the options are made, before the images are read
        assert "fusing" not in err, err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_simulate_refuses_every_bad_reference_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    path = BAD_FILES[case](tmp_path)
    before = _snapshot(tmp_path)
    code = main(["simulate", str(path), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(tmp_path / "sim")])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err, "simulate"), (case, code, err)
    assert _snapshot(tmp_path) == before and not (tmp_path / "sim").exists()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_evaluate_refuses_every_bad_estimate_with_one_line(case, tmp_path, capsys):
    path = BAD_FILES[case](tmp_path)
    np.savez(tmp_path / "ref.npz", cube=_cube())
    before = _snapshot(tmp_path)
    code = main(["evaluate", "--reference", str(tmp_path / "ref.npz"), "--estimate", str(path), "--ratio", "4"])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err, "evaluate"), (case, code, err)
    assert _snapshot(tmp_path) == before


@pytest.fixture
def workspace(tmp_path):
    """Good inputs for every command: an LR HSI with wavelengths, an MSI, a reference, a training folder, a
    garbage file, an invalid JSON file and a results folder holding a previous result."""
    rng = np.random.default_rng(0)
    wl = np.arange(400, 710, 10, dtype=np.float64)
    np.savez(tmp_path / "h.npz", cube=rng.random((8, 8, 31)).astype(np.float32), wavelengths=wl)
    np.savez(tmp_path / "h_nowl.npz", cube=rng.random((8, 8, 31)).astype(np.float32))
    np.savez(tmp_path / "m.npz", cube=rng.random((32, 32, 3)).astype(np.float32))
    np.savez(tmp_path / "ref.npz", cube=rng.random((32, 32, 31)).astype(np.float32), wavelengths=wl)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "a.npz", cube=rng.random((32, 32, 31)).astype(np.float32), wavelengths=wl)
    (tmp_path / "bad.npz").write_bytes(b"garbage" * 10)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.md").write_text("a previous result")
    return tmp_path


_TRAIN = ["train", "--method", "dbin", "--data", "{d}/data", "--srf", "nikon_d700_dhsis", "--ratio", "4",
          "-o", "{d}/run"]
_PAIR = ["--hsi", "{d}/h.npz", "--msi", "{d}/m.npz"]

#: bad inputs and options of the other commands ({d}: the workspace). Each must be refused before any work that
#: could take long (estimation, training, a benchmark) and without creating or changing a file.
BAD_COMMANDS: dict[str, list[str]] = {
    "pair_garbage_hsi": ["pair", "--hsi", "{d}/bad.npz", "--msi", "{d}/m.npz", "-o", "{d}/out"],
    "pair_no_msi": ["pair", "--hsi", "{d}/h.npz", "-o", "{d}/out"],
    "pair_ratio_zero": ["pair", *_PAIR, "--ratio", "0", "-o", "{d}/out"],
    "pair_unknown_method": ["pair", *_PAIR, "--methods", "magic", "-o", "{d}/out"],
    "pair_option_out_of_range": ["pair", *_PAIR, "--methods", "fuse", "--option", "fuse:lam=-1", "-o", "{d}/out"],
    "pair_option_without_method": ["pair", *_PAIR, "--option", "lam=1", "-o", "{d}/out"],
    "pair_negative_shift_threshold": ["pair", *_PAIR, "--shift-threshold", "-1", "-o", "{d}/out"],
    "pair_negative_hysure_lambda": ["pair", *_PAIR, "--hysure-lambda", "-1", "-o", "{d}/out"],
    "pair_nan_hysure_lambda": ["pair", *_PAIR, "--hysure-lambda", "nan", "-o", "{d}/out"],
    "pair_unknown_support": ["pair", *_PAIR, "--support", "no_such_sensor", "-o", "{d}/out"],
    "pair_bands_without_support": ["pair", *_PAIR, "--bands", "B2,B3", "-o", "{d}/out"],
    "pair_nodata_text": ["pair", *_PAIR, "--hsi-nodata", "abc", "-o", "{d}/out"],
    "pair_output_is_a_file": ["pair", *_PAIR, "-o", "{d}/h.npz"],
    "estimate_iterations_zero": ["estimate", *_PAIR, "--iterations", "0", "-o", "{d}/out"],
    "estimate_negative_kernel": ["estimate", *_PAIR, "--kernel-size", "-3", "-o", "{d}/out"],
    "estimate_kernel_larger_than_msi": ["estimate", *_PAIR, "--kernel-size", "999", "-o", "{d}/out"],
    "estimate_garbage_msi": ["estimate", "--hsi", "{d}/h.npz", "--msi", "{d}/bad.npz", "-o", "{d}/out"],
    "estimate_bands_without_support": ["estimate", *_PAIR, "--bands", "B2", "-o", "{d}/out"],
    "estimate_output_is_a_file": ["estimate", *_PAIR, "-o", "{d}/m.npz"],
    "train_steps_zero": [*_TRAIN, "--steps", "0"],
    "train_negative_lr": [*_TRAIN, "--lr", "-1"],
    "train_nan_lr": [*_TRAIN, "--lr", "nan"],
    "train_batch_zero": [*_TRAIN, "--batch-size", "0"],
    "train_patch_not_multiple_of_ratio": [*_TRAIN, "--patch-size", "3"],
    "train_patch_larger_than_scenes": [*_TRAIN, "--patch-size", "4096", "--steps", "1"],
    "train_ema_above_one": [*_TRAIN, "--ema", "1.5"],
    "train_val_fraction_above_one": [*_TRAIN, "--val-fraction", "2"],
    "train_nan_snr": [*_TRAIN, "--snr-hsi", "nan"],
    "train_missing_data": ["train", "--method", "dbin", "--data", "{d}/nope", "--srf", "nikon_d700_dhsis",
                           "--ratio", "4", "-o", "{d}/run"],
    "train_invalid_config": [*_TRAIN, "--config", "{d}/bad.json"],
    "train_cuda_absent_or_bad": [*_TRAIN, "--device", "tpu9"],
    "train_psf_range_reversed": [*_TRAIN, "--psf-fwhm-range", "3", "1"],
    "train_init_from_missing": [*_TRAIN, "--init-from", "{d}/none.safetensors"],
    "train_init_from_garbage": [*_TRAIN, "--init-from", "{d}/bad.npz"],
    "train_ckpt_every_zero": [*_TRAIN, "--ckpt-every", "0"],
    "bench_ratio_zero": ["bench", "--ratios", "0", "-o", "{d}/res"],
    "bench_unknown_method": ["bench", "--methods", "magic", "-o", "{d}/res"],
    "bench_bad_case": ["bench", "--case", "nope", "-o", "{d}/res"],
    "bench_weights_missing": ["bench", "--methods", "dbin", "--weights", "dbin={d}/none.safetensors", "-o",
                              "{d}/res"],
    "bench_weights_garbage": ["bench", "--methods", "dbin", "--weights", "dbin={d}/bad.npz", "-o", "{d}/res"],
    "bench_option_out_of_range": ["bench", "--methods", "fuse", "--option", "fuse:lam=-1", "-o", "{d}/res"],
    "bench_unknown_device": ["bench", "--device", "tpu9", "-o", "{d}/res"],
    "bench_output_is_a_file": ["bench", "-o", "{d}/h.npz"],
    "bench_previous_results_kept": ["bench", "-o", "{d}/results"],
    "srf_show_unknown_sensor": ["srf", "show", "no_such_sensor"],
    "srf_show_garbage_hsi": ["srf", "show", "sentinel2a_msi", "--hsi", "{d}/bad.npz"],
    "srf_resample_no_wavelengths": ["srf", "resample", "sentinel2a_msi", "--hsi", "{d}/h_nowl.npz"],
    "srf_resample_unknown_band": ["srf", "resample", "sentinel2a_msi", "--hsi", "{d}/h.npz", "--bands", "B99"],
    "synth_make_missing_weights": ["synth", "make", "--unmixing", "{d}/none", "--abundances", "{d}/none", "-o",
                                   "{d}/syn"],
    "synth_make_garbage_weights": ["synth", "make", "--unmixing", "{d}/bad.npz", "--abundances", "{d}/bad.npz",
                                   "-o", "{d}/syn"],
    "synth_unmix_missing_weights": ["synth", "unmix", "--weights", "{d}/none", "--rgb", "{d}/m.npz", "-o",
                                    "{d}/ab"],
    "evaluate_negative_data_range": ["evaluate", "--estimate", "{d}/ref.npz", "--reference", "{d}/ref.npz",
                                     "--data-range", "-1"],
    "evaluate_no_reference_no_pair": ["evaluate", "--estimate", "{d}/ref.npz"],
    "fuse_bands_without_srf": ["fuse", *_PAIR, "--method", "bicubic", "--bands", "B2,B3,B4", "-o", "{d}/o.npz"],
    "fuse_bands_with_physics": ["fuse", *_PAIR, "--method", "fuse", "--physics", "{d}/p.json", "--bands", "B2",
                                "-o", "{d}/o.npz"],
    "info_missing_file": ["info", "{d}/none.npz"],
    "report_missing_run": ["report", "{d}/none.npz", "-o", "{d}/r.html"],
    "report_not_html": ["report", "{d}/ref.npz", "-o", "{d}/r.png"],
    "report_folder_not_a_run": ["report", "{d}/data", "-o", "{d}/r.html"],
    "report_garbage_result": ["report", "{d}/bad.npz", "-o", "{d}/r.html"],
    "report_shapes_differ": ["report", "{d}/ref.npz", "{d}/h.npz", "-o", "{d}/r.html"],
    "report_hsi_not_the_results_reduced": ["report", "{d}/ref.npz", "--hsi", "{d}/m.npz", "-o", "{d}/r.html"],
    "report_bad_physics": ["report", "{d}/ref.npz", "--physics", "{d}/bad.json", "-o", "{d}/r.html"],
    "fuse_report_not_html": ["fuse", *_PAIR, "--method", "bicubic", "-o", "{d}/o.npz", "--report", "{d}/r.txt"],
    "evaluate_report_exists": ["evaluate", "--estimate", "{d}/ref.npz", "--reference", "{d}/ref.npz",
                               "--report", "{d}/bad.json"],
    "simulate_nan_snr": ["simulate", "{d}/ref.npz", "--srf", "nikon_d700_dhsis", "--ratio", "4", "--snr-hsi",
                         "nan", "-o", "{d}/sim"],
}


@pytest.mark.parametrize("case", sorted(BAD_COMMANDS))
def test_every_command_refuses_bad_input_with_one_line_and_writes_nothing(case, workspace, capsys):
    argv = [a.replace("{d}", str(workspace)) for a in BAD_COMMANDS[case]]
    before = _snapshot(workspace)
    _, err, errors = _refusal(argv, capsys)
    assert len(errors) == 1 and re.match(r"hsfuse [a-z]+: error: ", errors[0]), (case, err)
    # refused before the long work: no estimation, fusion, training step or benchmark case was started
    assert not re.search(r"estimated the PSF|fusing with|step \d|QNR", err), (case, err)
    assert _snapshot(workspace) == before, case
