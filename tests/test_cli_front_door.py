"""The thin command line: method options through ``--option``, ``hsfuse methods``, ``python -m hsfuse``, evaluation
without a reference, ``bench --weights``; and the rule that no method is special-cased in the CLI or workflows.

Independent sources: the fused files are compared with the method functions called directly on the same
tensors; the no-reference scores with the real-pair workflow's own scoring of the same pair; option texts are
written here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hsfuse.cli import main
from hsfuse.io import read_cube, write_cube
from hsfuse.methods import METHODS, get_method
from hsfuse.physics.serialize import load_observation

SRC = Path(__file__).resolve().parents[1] / "src" / "hsfuse"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def sim_dir(tmp_path: Path, capsys) -> Path:
    from hsfuse.data.synthetic import synthetic_scene

    cube = synthetic_scene(height=32, width=40, seed=5)
    write_cube(cube, tmp_path / "ref.npz")
    out = tmp_path / "sim"
    assert run(capsys, "simulate", str(tmp_path / "ref.npz"), "--srf", "nikon_d700_dhsis", "--ratio", "4", "-q",
               "-o", str(out))[0] == 0
    return out


def _fuse_args(sim: Path, out: Path, method: str = "fuse") -> list[str]:
    return ["fuse", "--hsi", str(sim / "hsi.npz"), "--msi", str(sim / "msi.npz"), "--method", method,
            "--physics", str(sim / "physics.json"), "-q", "-o", str(out)]


def test_option_reaches_the_method(sim_dir, tmp_path, capsys):
    out = tmp_path / "f.npz"
    code, _, err = run(capsys, *_fuse_args(sim_dir, out), "--option", "subspace_dim=4", "--option", "lam=0.01")
    assert code == 0, err
    from hsfuse.types import FusionMeasurement

    meas = FusionMeasurement(read_cube(sim_dir / "hsi.npz").to_tensor(), read_cube(sim_dir / "msi.npz").to_tensor())
    obs = load_observation(sim_dir / "physics.json").to(dtype=torch.float32)
    with torch.no_grad():
        direct = get_method("fuse").function(meas, obs, subspace_dim=4, lam=0.01)[0].permute(1, 2, 0).numpy()
        default = get_method("fuse").function(meas, obs)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(read_cube(out).data, direct, atol=1e-6)
    assert np.abs(direct - default).max() > 1e-4  # the options changed the result


@pytest.mark.parametrize("option, message", [
    ("nosuch=1", "method 'fuse' has no option 'nosuch'; its options are: subspace_dim, subspace, lam, sigma_hsi, "
                 "sigma_msi, border, pad, clip, prior, data_scale (see 'hsfuse methods fuse')"),
    ("subspace_dim=ten", "option subspace_dim='ten': expected int"),
    ("lam", "--option 'lam' must look like KEY=VALUE"),
    ("subspace=3", "takes an array; set it from Python"),
])
def test_bad_options_are_refused_before_any_work(sim_dir, tmp_path, capsys, option, message):
    out = tmp_path / "f.npz"
    code, stdout, err = run(capsys, *_fuse_args(sim_dir, out)[:-3], "--option", option, "-o", str(out))
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()
    assert "fusing" not in err  # refused before the images were read


def test_methods_lists_every_method_and_one_methods_options(capsys):
    code, out, _ = run(capsys, "methods")
    assert code == 0 and all(name in out for name in METHODS)
    code, out, _ = run(capsys, "methods", "udaln")
    assert code == 0 and "schedule" in out and "'paper' | 'fast'" in out and "monitor_every" in out
    code, _, err = run(capsys, "methods", "nosuch")
    assert code == 2 and "unknown fusion method 'nosuch'" in err


def test_python_dash_m_hsfuse():
    done = subprocess.run([sys.executable, "-m", "hsfuse", "methods", "gsa"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "degrade" in done.stdout


def test_device_refusals_are_clear(sim_dir, tmp_path, capsys):
    out = tmp_path / "f.npz"
    code, _, err = run(capsys, *_fuse_args(sim_dir, out), "--device", "tpu9")
    assert code == 2 and "not a device name" in err and not out.exists()
    if not torch.cuda.is_available():
        code, _, err = run(capsys, *_fuse_args(sim_dir, out), "--device", "cuda")
        assert code == 2 and "no CUDA GPU is available" in err


def test_evaluate_without_a_reference(sim_dir, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert run(capsys, *_fuse_args(sim_dir, out))[0] == 0
    code, stdout, err = run(capsys, "evaluate", "--hsi", str(sim_dir / "hsi.npz"), "--msi", str(sim_dir / "msi.npz"),
                            "--estimate", str(out), "--physics", str(sim_dir / "physics.json"), "--json")
    assert code == 0, err
    scores = json.loads(stdout)
    # the same numbers as the real-pair workflow's scoring of this pair with the same operators
    from hsfuse.estimation.operators import EstimatedOperators
    from hsfuse.workflows.real_pair import default_q_block, no_reference_scores, prepare_pair

    hsi, msi, est = (read_cube(p) for p in (sim_dir / "hsi.npz", sim_dir / "msi.npz", out))
    prep = prepare_pair(hsi, msi)
    obs = load_observation(sim_dir / "physics.json")
    ops = EstimatedOperators(psf=obs.spatial.psf, srf=obs.spectral.matrix * prep.hsi_scale / prep.msi_scale,
                             ratio=4, offset=obs.spatial.offset, method="given")
    want = no_reference_scores(est.to_tensor(dtype=torch.float64) / prep.hsi_scale, prep.y, ops, prep.valid,
                               q_block=default_q_block(32, 40, 4))
    for key in ("qnr", "d_lambda", "d_s", "hsi_psnr", "msi_psnr"):
        assert scores[key] == pytest.approx(want[key], rel=1e-9), key
    assert scores["operators"] == "given" and scores["hsi_psnr"] > 40  # FUSE with the true operators is consistent
    # operators estimated when none are given
    code, stdout, err = run(capsys, "evaluate", "--hsi", str(sim_dir / "hsi.npz"), "--msi", str(sim_dir / "msi.npz"),
                            "--estimate", str(out), "--json")
    assert code == 0, err and json.loads(stdout)["operators"] == "hysure"
    # the two modes do not mix, and one of them is needed
    code, _, err = run(capsys, "evaluate", "--reference", str(sim_dir / "reference.npz"), "--hsi",
                       str(sim_dir / "hsi.npz"), "--estimate", str(out))
    assert code == 2 and "--hsi are for scoring without a reference" in err
    code, _, err = run(capsys, "evaluate", "--hsi", str(sim_dir / "hsi.npz"), "--msi", str(sim_dir / "msi.npz"),
                       "--estimate", str(out), "--ratio", "4", "--preset", "hsfuse")
    assert code == 2 and "--preset, --ratio are for scoring against a reference" in err  # not silently ignored
    code, _, err = run(capsys, "evaluate", "--estimate", str(out))
    assert code == 2 and "give --reference REF" in err


def test_bench_runs_networks_given_weights(tmp_path, capsys):
    from hsfuse.models.catalog import build_model
    from hsfuse.models.checkpoint import ModelCard, save_model

    net = build_model("dbin", hsi_bands=31, msi_bands=3, ratio=4, config="tiny")
    card = ModelCard(method="dbin", config=net.config_dict(), hsi_bands=31, msi_bands=3, ratio=4,
                     band_scaling="band_max")
    save_model(net, card, tmp_path / "ckpt")
    code, _, err = run(capsys, "bench", "--case", "synthetic:nikon_d700_dhsis", "--ratios", "4", "--methods",
                       "dbin", "--weights", f"dbin={tmp_path / 'ckpt'}", "-q", "-o", str(tmp_path / "b"))
    assert code == 0, err
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["dbin"] and np.isfinite(rows[0]["psnr"])
    code, _, err = run(capsys, "bench", "--methods", "dbin", "-q", "-o", str(tmp_path / "c"))
    assert code == 2 and "pass --weights NAME=CHECKPOINT" in err
    code, _, err = run(capsys, "bench", "--methods", "gsa", "--option", "gsa:nosuch=1", "-q", "-o", str(tmp_path / "d"))
    assert code == 2 and "has no option 'nosuch'" in err


def _method_names_in_ifs(path: Path) -> list[str]:
    names = set(METHODS)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)) or (isinstance(node, ast.comprehension)):
            tests = [node.test] if not isinstance(node, ast.comprehension) else node.ifs
            for test in tests:
                for sub in ast.walk(test):
                    if isinstance(sub, ast.Constant) and sub.value in names:
                        found.append(f"{path.name}:{sub.lineno} {sub.value!r}")
    return found


def test_no_method_is_special_cased_in_the_cli_or_the_workflows():
    files = [*(SRC / "cli").glob("*.py"), *(SRC / "workflows").glob("*.py")]
    assert files
    bad = [hit for f in files for hit in _method_names_in_ifs(f)]
    assert not bad, f"method names in conditions: {bad}"
