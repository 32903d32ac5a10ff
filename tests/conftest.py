"""Shared fixtures: the real data folder (``HSFUSE_DATA``, default ``../shared/data``) and seeded generators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tests run from anywhere: default the data setting to ../shared/data beside the project root.
os.environ.setdefault("HSFUSE_DATA", str(ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    from hsfuse.data.paths import data_root as _root

    root = _root()
    if not (root / "derived").is_dir():
        message = f"shared data not found at {root}: set HSFUSE_DATA to the folder with scenes/, derived/, srf/"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("bench_networks")``: import a script of ``benchmarks/`` (not a package) as a module."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def pavia_r4(data_root: Path):
    """The default benchmark case (Pavia University, r=4, noise-free, circular boundary) as the bench runner
    prepares it: ``.measurement()``, ``.physics``, ``.reference`` (shared by the classical-method tests)."""
    from hsfuse.bench.runner import DEFAULT_CASES, prepare_case

    s = prepare_case(DEFAULT_CASES[0], ratio=4)
    assert s.physics.spatial.boundary == "circular" and s.preset.snr_hsi_db is None and s.preset.snr_msi_db is None
    return s


@pytest.fixture(scope="session")
def pavia_psnr(pavia_r4):
    """``psnr(z)``: PSNR in dB of a fused ``(1, L, H, W)`` tensor against the ``pavia_r4`` reference, peak = the
    reference's maximum, MSE over all bands and pixels (computed here in NumPy-like torch float64, independent of
    :mod:`hsfuse.metrics`); the classical methods' "beats bicubic" tests share it."""
    import torch

    ref = torch.from_numpy(pavia_r4.reference.data.transpose(2, 0, 1).copy())[None].double()

    def psnr(z) -> float:
        assert tuple(z.shape) == tuple(ref.shape), (tuple(z.shape), tuple(ref.shape))
        return float(10 * torch.log10(ref.max() ** 2 / ((z.double() - ref) ** 2).mean()))

    return psnr


@pytest.fixture
def one_thread():
    """Run a test with one torch thread: tiny per-image optimisations (UDALN) spend more in OpenMP start-up per
    op than in the op itself with two threads on a loaded machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def simulated_pair(height: int, width: int, *, seed: int = 3, ratio: int = 4):
    """Wald simulation of the embedded synthetic scene with the Nikon D700 RGB response (hsfuse preset): the
    small pair several test modules fuse. Returns ``(simulation, srf matrix)``."""
    from hsfuse.data.simulation import simulate
    from hsfuse.data.synthetic import synthetic_scene
    from hsfuse.physics.srf_library import srf_matrix

    ref = synthetic_scene(height=height, width=width, seed=seed)
    matrix, names = srf_matrix("nikon_d700_dhsis", ref.wavelengths, normalize="none")
    return simulate(ref, matrix, ratio=ratio, preset="hsfuse", srf_band_names=names), matrix
