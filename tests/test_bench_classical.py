"""The classical benchmark's core (benchmarks/bench_classical.py): one small real run and its refusals."""

from __future__ import annotations


import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_classical")


def test_rows_carry_the_recorded_original_beside_hsfuse(bench, data_root):
    """Pavia, clean and 30 dB, known operators: FUSE with the original's prior scores the recorded Octave PSNR (parity
    runs, 44.899 / 39.460 dB) within 0.1 dB, and the rows carry those numbers from the parity files; estimated-operator
    rows do not."""
    rows, rates = bench.run(["pavia_u"], ratio=4, snrs=[None, 30.0], operators=["known", "estimated"],
                            runs=(("fuse[prior=original]", "fuse", {"prior": "original", "subspace_dim": 15}),))
    assert [(r["snr_db"], r["operators"]) for r in rows] == [(None, "known"), (None, "estimated"),
                                                             (30.0, "known"), (30.0, "estimated")]
    clean = rows[0]
    assert clean["octave_source"] == "octave_parity.json"
    assert abs(clean["octave_psnr"] - 44.899) < 0.01
    assert abs(clean["psnr"] - clean["octave_psnr"]) < 0.1 and abs(clean["sam"] - clean["octave_sam"]) < 0.1
    assert all("octave_psnr" not in r for r in rows if r["operators"] == "estimated")
    # at 30 dB the recorded 30 dB parity run applies (original 39.460 dB, octave_parity_30db.json)
    assert rows[2]["octave_source"] == "octave_parity_30db.json" and abs(rows[2]["octave_psnr"] - 39.460) < 0.01
    assert abs(rows[2]["psnr"] - rows[2]["octave_psnr"]) < 0.1
    assert rows[2]["psnr"] < clean["psnr"] - 1.0  # 30 dB noise costs quality
    # the estimated operators' synthetic MSI is within a few percent of the true one
    assert 0 <= rows[1]["srf_response_error"] < 0.1
    # known-operator rows carry the arithmetic floor (benchmarks/classical_costs.py) at the measured rates
    assert rates["sgemm_gflops"] > 0
    assert rows[0]["floor_s"] > 0 and rows[0]["measured_over_floor"] == rows[0]["time_s"] / rows[0]["floor_s"]
    assert "floor_s" not in rows[1]


def test_response_error_is_zero_for_the_true_srf_and_scales(bench):
    gen = torch.Generator().manual_seed(0)
    srf, hsi = torch.rand(3, 8, generator=gen), torch.rand(1, 8, 5, 5, generator=gen)
    assert bench._response_error(srf, srf, hsi) == 0.0
    assert abs(bench._response_error(1.1 * srf, srf, hsi) - 0.1) < 1e-6  # 1.1 * srf rounded in float32


def test_refusals_leave_existing_results_intact(bench, tmp_path, capsys):
    out = tmp_path / "bench"
    out.with_suffix(".md").write_text("kept")
    assert bench.main(["--methods", "nope", "--out", str(out)]) == 2
    assert "unknown methods ['nope']" in capsys.readouterr().err
    assert bench.main(["--scenes", "pavia_u", "--methods", "bicubic", "--out", str(out)]) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert bench.main(["--operators", "guessed", "--out", str(out)]) == 2
    assert out.with_suffix(".md").read_text() == "kept" and not out.with_suffix(".json").exists()
