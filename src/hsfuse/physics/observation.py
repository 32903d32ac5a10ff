"""The fusion observation: both branches of ``Y_h = S(B * Z)``, ``Y_m = R Z`` as one linear operator.

``A(z) = (S B z, R z)`` maps a high-resolution HSI ``(N, L, H, W)`` to a :class:`~hsfuse.types.FusionMeasurement`;
its adjoint is ``A^T(y_h, y_m) = B^T S^T y_h + R^T y_m`` (the inner product on measurements is the sum of the
two branches' inner products).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_image_tensor, check_pair
from ..types import FusionMeasurement
from .spatial import SpatialDegradation
from .spectral import SpectralResponse

__all__ = ["FusionObservation"]


class FusionObservation(nn.Module):
    """Spatial and spectral degradations of one scene.

    Args:
        spatial: the HSI branch (PSF, ratio, offset, boundary); learnable subclasses allowed.
        spectral: the MSI branch (SRF); learnable subclasses allowed.

    Example:
        >>> from hsfuse.physics import gaussian_psf
        >>> obs = FusionObservation(
        ...     SpatialDegradation(ratio=2, psf=gaussian_psf(3, sigma=0.8)),
        ...     SpectralResponse(torch.ones(2, 5) / 5))
        >>> y = obs.A(torch.rand(1, 5, 8, 6))
        >>> tuple(y.hsi.shape), tuple(y.msi.shape)
        ((1, 5, 4, 3), (1, 2, 8, 6))
    """

    def __init__(self, spatial: SpatialDegradation, spectral: SpectralResponse) -> None:
        super().__init__()
        self.spatial = spatial
        self.spectral = spectral

    @property
    def ratio(self) -> int:
        return self.spatial.ratio

    def A(self, z: torch.Tensor) -> FusionMeasurement:
        z = check_image_tensor(z, "high-resolution HSI", channels=self.spectral.hsi_bands)
        return FusionMeasurement(hsi=self.spatial.A(z), msi=self.spectral.A(z))

    def A_adjoint(self, y: FusionMeasurement) -> torch.Tensor:
        self.check_measurement(y)
        return self.spatial.A_adjoint(y.hsi) + self.spectral.A_adjoint(y.msi)

    def forward(self, z: torch.Tensor) -> FusionMeasurement:
        return self.A(z)

    def measurement_tensors(self, y: FusionMeasurement, *, same_dtype: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``y``'s HSI and MSI checked against this operator (:meth:`check_measurement`) and for NaN/inf, as floating
        tensors, the MSI on the HSI's device (and dtype with ``same_dtype``): what every method starts with."""
        from .._checks import check_finite

        self.check_measurement(y)
        hsi = check_image_tensor(y.hsi, "low-resolution HSI")
        msi = check_image_tensor(y.msi, "multispectral image").to(device=hsi.device,
                                                                   dtype=hsi.dtype if same_dtype else None)
        check_finite(hsi, "low-resolution HSI")
        check_finite(msi, "multispectral image")
        return hsi, msi

    def check_measurement(self, y: FusionMeasurement, *, who: str = "fusion") -> None:
        """Raise :class:`~hsfuse.errors.InputError` unless ``y`` fits this operator (bands, sizes, ratio).

        The checks and messages are :func:`hsfuse._checks.check_pair`'s, with this operator's ratio and band
        counts; ``who`` names the caller in the messages.
        """
        check_pair(y.hsi, y.msi, ratio=self.ratio, hsi_bands=self.spectral.hsi_bands,
                   msi_bands=self.spectral.msi_bands, who=who)
