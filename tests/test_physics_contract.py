"""One contract test over every linear operator of the observation model (deepinv-style).

For each operator ``A``: adjointness by the dot-product test in float64 (``<A x, y> = <x, A^T y>``, an
identity that holds for any linear map and its true adjoint), linearity, output shapes, dtype preservation
and device placement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from hsfuse.physics import (
    FusionObservation,
    LearnableSpatialDegradation,
    LearnableSpectralResponse,
    SpatialDegradation,
    SpectralResponse,
    gaussian_psf,
    support_from_srf,
)
from hsfuse.types import FusionMeasurement

L, M, H, W = 7, 3, 24, 20


def _rand_srf(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(M, L, generator=g, dtype=torch.float64)


def _catalogue() -> dict[str, Callable[[], torch.nn.Module]]:
    g = torch.Generator().manual_seed(2)
    per_band = torch.rand(L, 5, 5, generator=g, dtype=torch.float64)
    return {
        "spatial-gauss-circ-r4": lambda: SpatialDegradation(ratio=4, psf=gaussian_psf(7, sigma=1.2)),
        "spatial-gauss-reflect-r4": lambda: SpatialDegradation(ratio=4, psf=gaussian_psf(7, sigma=1.2),
                                                               boundary="reflect"),
        "spatial-gauss-zero-r4": lambda: SpatialDegradation(ratio=4, psf=gaussian_psf(9, sigma=1.7),
                                                            boundary="zero"),
        "spatial-even-kernel-zero-r2": lambda: SpatialDegradation(ratio=2, psf=torch.rand(4, 4, generator=g,
                                                                  dtype=torch.float64), boundary="zero", offset=0),
        "spatial-even-kernel-offset3-r4": lambda: SpatialDegradation(ratio=4, psf=torch.rand(8, 8, generator=g,
                                                                     dtype=torch.float64), offset=3),
        "spatial-per-band-reflect-r2": lambda: SpatialDegradation(ratio=2, psf=per_band, boundary="reflect",
                                                                  offset=0),
        "spatial-no-blur-r5": lambda: SpatialDegradation(ratio=5),
        "spectral-none": lambda: SpectralResponse(_rand_srf()),
        "spectral-sum": lambda: SpectralResponse(_rand_srf(), normalize="sum"),
        "fusion": lambda: FusionObservation(SpatialDegradation(ratio=4, psf=gaussian_psf(4, fwhm=4.0)),
                                            SpectralResponse(_rand_srf(), normalize="sum")),
        "learnable-spatial": lambda: LearnableSpatialDegradation(ratio=4, boundary="reflect"),
        "learnable-spectral": lambda: LearnableSpectralResponse(
            msi_bands=M, hsi_bands=L, support=support_from_srf(torch.tril(torch.ones(M, L)))),
        "learnable-fusion": lambda: FusionObservation(LearnableSpatialDegradation(ratio=4),
                                                      LearnableSpectralResponse(msi_bands=M, hsi_bands=L)),
    }


CATALOGUE = _catalogue()
# (H, W) for operators whose ratio does not divide 24x20
SIZES = {"spatial-no-blur-r5": (25, 20)}


@dataclass
class Space:
    """An operator with random elements of its input and output spaces."""

    op: torch.nn.Module
    name: str

    @property
    def hw(self) -> tuple[int, int]:
        return SIZES.get(self.name, (H, W))

    def x(self, dtype=torch.float64, seed=0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(2, L, *self.hw, generator=g, dtype=dtype)

    def y(self, dtype=torch.float64, seed=1):
        g = torch.Generator().manual_seed(seed)
        out = self.op.A(self.x(dtype, seed=5))
        if isinstance(out, FusionMeasurement):
            return FusionMeasurement(torch.randn(out.hsi.shape, generator=g, dtype=dtype),
                                     torch.randn(out.msi.shape, generator=g, dtype=dtype))
        return torch.randn(out.shape, generator=g, dtype=dtype)


def _dot(a, b) -> torch.Tensor:
    if isinstance(a, FusionMeasurement):
        return (a.hsi * b.hsi).sum() + (a.msi * b.msi).sum()
    return (a * b).sum()


def _lin(a, b, alpha, beta):
    if isinstance(a, FusionMeasurement):
        return FusionMeasurement(alpha * a.hsi + beta * b.hsi, alpha * a.msi + beta * b.msi)
    return alpha * a + beta * b


def _close(a, b, tol):
    if isinstance(a, FusionMeasurement):
        return _close(a.hsi, b.hsi, tol) and _close(a.msi, b.msi, tol)
    return torch.allclose(a, b, atol=tol, rtol=tol)


@pytest.fixture(params=sorted(CATALOGUE), ids=str)
def space(request) -> Space:
    op = CATALOGUE[request.param]().double()
    return Space(op=op, name=request.param)


def test_adjointness_dot_product(space: Space):
    x, y = space.x(), space.y()
    with torch.no_grad():
        lhs = _dot(space.op.A(x), y)
        rhs = _dot(x, space.op.A_adjoint(y))
    assert abs(float(lhs - rhs)) <= 1e-10 * max(1.0, abs(float(lhs)))


def test_linearity(space: Space):
    x1, x2 = space.x(seed=3), space.x(seed=4)
    with torch.no_grad():
        lhs = space.op.A(2.5 * x1 - 0.7 * x2)
        rhs = _lin(space.op.A(x1), space.op.A(x2), 2.5, -0.7)
    assert _close(lhs, rhs, 1e-10)


def test_shapes(space: Space):
    x = space.x()
    out = space.op.A(x)
    ratio = getattr(space.op, "ratio", 1) if not isinstance(space.op, SpectralResponse) else 1
    H_, W_ = space.hw
    if isinstance(out, FusionMeasurement):
        assert out.hsi.shape == (2, L, H_ // ratio, W_ // ratio)
        assert out.msi.shape == (2, M, H_, W_)
    elif isinstance(space.op, SpectralResponse):
        assert out.shape == (2, M, H_, W_)
    else:
        assert out.shape == (2, L, H_ // ratio, W_ // ratio)
    assert space.op.A_adjoint(space.y()).shape == x.shape


def test_dtype_preserved(space: Space):
    op = space.op.float()
    x = space.x(dtype=torch.float32)
    out = op.A(x)
    parts = [out.hsi, out.msi] if isinstance(out, FusionMeasurement) else [out]
    assert all(p.dtype == torch.float32 for p in parts)
    assert op.A_adjoint(space.y(dtype=torch.float32)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda(space: Space):
    op = space.op.cuda()
    x = space.x().cuda()
    out = op.A(x)
    parts = [out.hsi, out.msi] if isinstance(out, FusionMeasurement) else [out]
    assert all(p.is_cuda for p in parts)


def test_device_cpu_outputs_stay_on_cpu(space: Space):
    out = space.op.A(space.x())
    parts = [out.hsi, out.msi] if isinstance(out, FusionMeasurement) else [out]
    assert all(p.device.type == "cpu" for p in parts)
