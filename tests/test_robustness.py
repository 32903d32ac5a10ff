"""Nothing lost, nothing silently wrong (issue 18): cases found by trying hsfuse adversarially, each a test that
failed before its fix. The standing fuzz suite is tests/test_fuzz.py; interruptions at every write step are in
tests/test_interruption.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hsfuse.cli import main
from hsfuse.errors import OutputExistsError
from hsfuse.io.atomic import atomic_outputs


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------- atomic groups


def test_a_group_is_replaced_as_one_unit_when_interrupted_between_renames(tmp_path, monkeypatch):
    """Ctrl-C after the new .hdr is in place but before the .img: the old pair is put back, nothing else left."""
    hdr, img = tmp_path / "f.hdr", tmp_path / "f.img"
    hdr.write_text("old header")
    img.write_text("old data")
    real_replace = os.replace
    placed = []

    def replace(src, dst):
        if Path(dst) in (hdr, img) and ".tmp" in Path(src).name:
            placed.append(dst)
            if len(placed) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with atomic_outputs([hdr, img], overwrite=True) as (th, ti):
            th.write_text("new header")
            ti.write_text("new data")
    assert hdr.read_text() == "old header" and img.read_text() == "old data"
    assert _files(tmp_path) == ["f.hdr", "f.img"]


def test_leftovers_of_a_killed_write_are_cleaned_or_restored_by_the_next_write(tmp_path):
    # a SIGKILL during the write of k.npz left its temporary: the next write removes it
    (tmp_path / ".k.0123abcd.tmp.npz").write_bytes(b"partial")
    with atomic_outputs([tmp_path / "k.npz"], overwrite=False) as (t,):
        t.write_bytes(b"new")
    assert _files(tmp_path) == ["k.npz"]
    # a SIGKILL between "old aside" and "new in": the target is missing beside its .old copy, which comes back
    # (and then counts as an existing output)
    (tmp_path / ".f.89abcdef.old.hdr").write_text("old header")
    (tmp_path / "f.img").write_text("old data")
    with pytest.raises(OutputExistsError):
        with atomic_outputs([tmp_path / "f.hdr", tmp_path / "f.img"], overwrite=False):
            pass
    assert (tmp_path / "f.hdr").read_text() == "old header"
    assert _files(tmp_path) == ["f.hdr", "f.img", "k.npz"]


# --------------------------------------------------------------------------------------------- simulate


@pytest.fixture
def reference(tmp_path):
    g = np.random.default_rng(0)
    cube = g.random((16, 16, 31)).astype(np.float32)
    path = tmp_path / "ref.npz"
    np.savez(path, data=cube, wavelengths=np.arange(400, 710, 10, dtype=np.float64))
    return path


def test_simulate_interrupted_while_writing_leaves_nothing_and_reruns(tmp_path, reference, monkeypatch, capsys):
    import hsfuse.workflows.simulate as sim_mod

    real_write = sim_mod.write_cube
    calls = []

    def write(cube, path, **kw):
        calls.append(path)
        if len(calls) == 2:  # after hsi was written (ENVI pair), during msi
            raise KeyboardInterrupt
        return real_write(cube, path, **kw)

    monkeypatch.setattr(sim_mod, "write_cube", write)
    out = tmp_path / "sim"
    argv = ["simulate", str(reference), "--srf", "nikon_d700_dhsis", "--ratio", "4", "--format", "hdr", "-o", str(out)]
    assert main(argv) == 130
    assert "outputs are as they were" in capsys.readouterr().err
    assert not out.exists()  # the folder this run created is gone with everything in it
    monkeypatch.setattr(sim_mod, "write_cube", real_write)
    assert main(argv) == 0
    assert _files(out) == ["hsi.hdr", "hsi.img", "msi.hdr", "msi.img", "physics.json", "reference.hdr",
                           "reference.img"]


def test_simulate_into_an_existing_file_is_refused_before_any_work(tmp_path, reference, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    assert main(["simulate", str(reference), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "error: cannot write folder" in err and "a file of that name exists" in err and "Traceback" not in err
    assert target.read_text() == "keep me"


# --------------------------------------------------------------------------------------------- fuse pre-flight


@pytest.fixture
def pair(tmp_path, reference):
    out = tmp_path / "pair"
    assert main(["simulate", str(reference), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(out), "-q"]) == 0
    return out


@pytest.mark.parametrize("name, message", [
    ("out", "has no extension"), ("x.png", "8/16-bit image format"), ("f.hdr", "f.img exists"),
])
def test_fuse_refuses_an_unwritable_output_before_fusing(pair, tmp_path, monkeypatch, capsys, name, message):
    import hsfuse.workflows.fusion as fusion_mod

    def never(*a, **k):
        raise AssertionError("the method ran before the output was checked")

    monkeypatch.setattr(fusion_mod, "fuse", never)
    (tmp_path / "f.img").write_text("someone's data")
    code = main(["fuse", "--hsi", str(pair / "hsi.npz"), "--msi", str(pair / "msi.npz"), "--physics",
                 str(pair / "physics.json"), "--method", "gsa", "-o", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert (tmp_path / "f.img").read_text() == "someone's data" and not (tmp_path / name).exists()


@pytest.mark.parametrize("psf", ["zero", "negative"])
def test_fuse_refuses_a_physics_file_with_an_impossible_psf(pair, tmp_path, capsys, psf):
    desc = json.loads((pair / "physics.json").read_text())
    kernel = np.asarray(desc["psf"])
    desc["psf"] = (np.zeros_like(kernel) if psf == "zero" else -kernel).tolist()
    bad = tmp_path / "physics.json"
    bad.write_text(json.dumps(desc))
    code = main(["fuse", "--hsi", str(pair / "hsi.npz"), "--msi", str(pair / "msi.npz"), "--physics", str(bad),
                 "--method", "gsa", "-o", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "psf must be finite and non-negative and sum to 1" in err
    assert not (tmp_path / "f.npz").exists()


# --------------------------------------------------------------------------------------------- messages, signals


def test_warnings_print_as_one_warning_line(monkeypatch, capsys):
    import warnings

    import hsfuse.cli.fusion as fusion_cli

    def warns(args):
        warnings.warn("ERGAS is Inf for a zero-mean band", UserWarning)
        return 0

    monkeypatch.setattr(fusion_cli, "cmd_methods", warns)
    assert main(["methods"]) == 0
    err = capsys.readouterr().err
    assert err == "hsfuse methods: warning: ERGAS is Inf for a zero-mean band\n"


def test_sigterm_exits_143_with_one_line(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, time
        import hsfuse.cli as cli
        import hsfuse.cli.fusion as fusion_cli
        def slow(args):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            return 0
        fusion_cli.cmd_methods = slow
        sys.exit(cli.main(["methods"]))
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 143
    assert p.stderr.strip() == "hsfuse methods: terminated (SIGTERM); outputs are as they were (nothing half-written " \
                               "is kept; a large-scene run keeps its partial output for --resume)"


def test_simulate_refuses_no_data_pixels_instead_of_blurring_them(tmp_path, capsys):
    """A uint16 cube whose 65535 marks a few pixels was blurred into its neighbours (values up to 77,940 for data
    of 28..798) and the outputs still declared nodata=65535; now refused, and a cube that only declares a no-data
    value gives simulated images that do not."""
    from hsfuse.io import read_cube

    g = np.random.default_rng(1)
    cube = g.integers(28, 799, size=(16, 16, 31)).astype(np.uint16)
    wl = np.arange(400, 710, 10, dtype=np.float64)
    clean = tmp_path / "clean.npz"
    np.savez(clean, data=cube, wavelengths=wl, nodata=np.uint16(65535))
    holed = tmp_path / "holed.npz"
    cube[3, 5, :] = 65535
    cube[9, 9, :] = 65535
    np.savez(holed, data=cube, wavelengths=wl, nodata=np.uint16(65535))
    out = tmp_path / "sim"
    assert main(["simulate", str(holed), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 no-data pixel(s) (value 65535" in err and "crop it to a region without no-data" in err
    assert not out.exists()
    assert main(["simulate", str(clean), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(out), "-q"]) == 0
    hsi = read_cube(out / "hsi.npz")
    assert hsi.nodata is None and float(hsi.data.max()) <= 798.0


def test_info_on_a_corrupt_or_orphaned_envi_header_says_what_is_wrong(tmp_path, capsys):
    """A negative size gave a NumPy message, a header without its .img the reading library's advice (to pass
    ``image`` to ``envi.open``), neither of which a user of the command line can act on."""
    import re

    from hsfuse.io import write_cube
    from hsfuse.types import Cube

    write_cube(Cube(np.ones((4, 5, 3), np.float32)), tmp_path / "e.hdr")
    header = (tmp_path / "e.hdr").read_text()
    (tmp_path / "neg.hdr").write_text(re.sub(r"samples = \d+", "samples = -5", header))
    (tmp_path / "neg.img").write_bytes((tmp_path / "e.img").read_bytes())
    (tmp_path / "orphan.hdr").write_text(header)
    assert main(["info", str(tmp_path / "neg.hdr")]) == 2
    assert "'samples = -5' must be a positive integer" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "orphan.hdr")]) == 2
    err = capsys.readouterr().err
    assert "has no data file beside it" in err and "envi.open" not in err


def test_srf_resample_without_wavelengths_gives_advice_the_command_can_use(tmp_path, capsys):
    """The message suggested giving the SRF as an .npy matrix: what this command produces, not what it takes."""
    np.save(tmp_path / "cube.npy", np.random.default_rng(0).random((8, 8, 20)).astype(np.float32))
    assert main(["srf", "resample", "sentinel2a", "--hsi", str(tmp_path / "cube.npy")]) == 2
    err = capsys.readouterr().err
    assert "has no band wavelengths" in err and "give an HSI in a format that stores them" in err
    assert ".npy file or array" not in err


def test_evaluate_a_tiny_or_empty_estimate_keeps_the_other_metrics(tmp_path, capsys):
    """A 12 x 12 image was refused whole ("use a smaller block_size"), an all-zero estimate under the udaln preset
    too ("constant_bands='zero'"): options the command line does not have. Now the metric that cannot be computed is
    NaN, with one warning line, and the others are reported (values checked by hand: RMSE of ref vs ref + 0.01)."""
    g = np.random.default_rng(2)
    ref = g.random((12, 12, 8)).astype(np.float32)  # Q2n's 32 blocks need 20 mirrored rows: more than 12
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "est.npy", ref + np.float32(0.01))
    np.save(tmp_path / "zero.npy", np.zeros_like(ref))
    assert main(["evaluate", "--reference", str(tmp_path / "ref.npy"), "--estimate", str(tmp_path / "est.npy"),
                 "--ratio", "4"]) == 0
    out, err = capsys.readouterr()
    assert "warning: UIQI is NaN" in err and "warning: Q2n is NaN" in err and "Traceback" not in err
    rmse_row = next(line for line in out.splitlines() if "rmse" in line)
    assert "0.01" in rmse_row
    assert main(["evaluate", "--reference", str(tmp_path / "ref.npy"), "--estimate", str(tmp_path / "zero.npy"),
                 "--preset", "udaln", "--ratio", "4"]) == 0
    out, err = capsys.readouterr()
    assert "warning: CC is NaN" in err and "constant_bands" not in err


def test_simulate_still_creates_missing_parent_folders(tmp_path, reference):
    out = tmp_path / "a" / "b" / "sim"
    assert main(["simulate", str(reference), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-o", str(out), "-q"]) == 0
    assert _files(out) == ["hsi.npz", "msi.npz", "physics.json", "reference.npz"]
