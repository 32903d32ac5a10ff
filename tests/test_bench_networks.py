"""The network forward benchmark's core function on one tiny configuration (benchmarks/bench_networks.py)."""

from __future__ import annotations

import json

import pytest

from hsfuse.models.base import count_parameters
from hsfuse.models.catalog import build_model


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_networks")


@pytest.fixture(scope="module")
def dbin_row(bench):
    """One row: tiny DBIN at 32x32x5, ratio 2, RGB, a budget small enough to force tiling."""
    return bench.bench_network("dbin", size=32, bands=5, ratio=2, msi_bands=3, config="tiny", repeats=1,
                               tile_memory_bytes=200_000, overlap=1, probe_size=16)


def test_bench_network_row_fields_and_parameter_count(bench, dbin_row):
    row = dict(dbin_row)
    json.dumps(row)  # JSON-ready
    expected = count_parameters(build_model("dbin", hsi_bands=5, msi_bands=3, ratio=2, config="tiny"))
    assert row["parameters"] == expected
    assert row["authors_parameters"]["count"] > 0 and row["authors_parameters"]["setting"]
    assert row["flops"]["total"] > 0
    assert row["flops"]["counted_at"] == 16 and row["flops"]["counted_at_half"] == 8
    # the whole-image FLOP figure is the 16x16 count scaled by the pixel ratio (32/16)^2
    assert row["flops"]["total"] == row["flops"]["counted"] * 4
    assert row["whole"]["status"] == "ok"
    assert row["whole"]["median_s"] > 0 and row["whole"]["peak_bytes"] >= 0 and len(row["whole"]["cpu_use"]) == 1
    assert row["probe"]["estimated_whole_peak_bytes"] == row["probe"]["peak_bytes"] * 4
    tiled = row["tiled"]
    assert tiled["overlap_lr"] == 1 and tiled["budget_bytes"] == 200_000 and tiled["tile_lr"] >= 3
    assert tiled["status"] in ("ok", "whole")
    if tiled["status"] == "ok":
        assert tiled["tiles"] > 1 and tiled["work_factor"] >= 1 and tiled["median_s"] > 0

    # floor and gap: FLOP / rate, time / floor
    row = bench.add_floor(json.loads(json.dumps(row)), 1.0)
    assert row["floor_s"] == pytest.approx(row["flops"]["total"] / 1e9)
    assert row["whole"]["gap"] == pytest.approx(row["whole"]["median_s"] / row["floor_s"])


def test_bench_network_skips_whole_image_over_the_memory_limit(bench):
    row = bench.bench_network("two_branch", size=16, bands=5, ratio=2, msi_bands=3, config="tiny",
                              max_memory_bytes=1, tile_memory_bytes=10**9, overlap=1, probe_size=8)
    assert row["whole"]["status"] == "skipped" and "exceeds" in row["whole"]["reason"]
    assert "median_s" not in row["whole"]


def test_tile_work_counts_tiles_and_recomputation(bench):
    # 10 LR px, tile 4, overlap 1: starts 0, 3, 6 -> 3 tiles per axis, 12 of 10 px covered -> (12/10)^2
    assert bench.tile_work(10, 4, 1) == (9, pytest.approx(1.44))
    assert bench.tile_work(10, 20, 1) == (1, pytest.approx(1.0))


def test_markdown_reports_rows_and_failures(bench, dbin_row):
    row = bench.add_floor(json.loads(json.dumps(dbin_row)), 10.0)
    res = {"config": {"size": 32, "bands": 5, "ratio": 2, "msi_bands": 3, "config": "tiny", "repeats": 1,
                      "tile_memory_bytes": 2**31, "overlap_lr": 1, "max_memory_bytes": 18 * 2**30, "probe_size": 16,
                      "seed": 0, "dtype": "float32", "inputs": "random"},
           "machine": {**bench.machine_description("cpu"), "load_average_1min_at_start": 0.0,
                       "load_average_1min_at_end": 0.0},
           "rates": {"sgemm_gflops": 10.0}, "rows": [row, {"name": "edbin", "error": "exit code -9"}]}
    md = bench.markdown(res)
    assert "| dbin |" in md and "| edbin | - |" in md and "exit code -9" in md
