"""Spectral subspace identification: the ``Z = E X`` model of subspace fusion methods (FUSE, HySure, ...).

``E`` (``L x p``, orthonormal columns) spans the top-``p`` eigenvectors of the *uncentred* pixel
correlation matrix of an image, ``C = Y Y^T / n`` (``Y``: ``L x n`` pixels as columns). This follows FUSE's
``idHSsub.m`` / ``fac.m`` (Wei et al. 2015: SVD of ``Y^T Y / n`` with the mean-removal line commented out).
Uncentred is the right choice for a *linear* subspace model: data lying exactly in ``span(E)`` give
``rank(C) <= p`` and the top ``p`` eigenvectors span it, whereas centring would drop the mean direction.
FUSE additionally scales ``E`` by the square roots of the eigenvalues; hsfuse keeps ``E`` orthonormal and
expresses the prior weight in those coordinates instead (see :func:`hsfuse.methods.sylvester.fuse_fuse`).
"""

from __future__ import annotations

import torch

from .._checks import check_finite, check_image_tensor, check_positive_int
from ..errors import InputError

__all__ = ["batched_basis", "pca_subspace", "subspace_from_correlation"]


def subspace_from_correlation(corr: torch.Tensor, dim: int) -> torch.Tensor:
    """The top-``dim`` eigenvectors of an uncentred correlation matrix ``(..., L, L)`` (float64) as ``(..., L, dim)``,
    ordered by decreasing eigenvalue, each column's largest-magnitude entry made positive (deterministic). What
    :func:`pca_subspace` computes from an image, and the large-scene engine from streamed sums."""
    _, vecs = torch.linalg.eigh(corr)  # ascending eigenvalues
    basis = vecs.flip(-1)[..., :dim]
    idx = basis.abs().argmax(dim=-2, keepdim=True)
    sign = torch.sign(torch.gather(basis, -2, idx))
    return basis * torch.where(sign == 0, torch.ones_like(sign), sign)


def pca_subspace(x: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Orthonormal basis of the top-``dim`` principal directions of each image's uncentred pixels.

    ``C_n = Y_n Y_n^T / (h w)`` for image ``n`` (``Y_n``: ``L x hw``); returns ``E`` of shape
    ``(N, L, dim)`` with ``E_n^T E_n = I``, columns ordered by decreasing eigenvalue, each column's sign
    fixed so that its largest-magnitude entry is positive (deterministic output). The eigen-decomposition
    runs in float64; the result has ``x``'s dtype and device.

    Example:
        >>> E = pca_subspace(torch.rand(2, 9, 5, 7), dim=3)
        >>> tuple(E.shape), torch.allclose(E[0].T @ E[0], torch.eye(3), atol=1e-5)
        ((2, 9, 3), True)
    """
    x = check_image_tensor(x, "hyperspectral image")
    check_finite(x, "hyperspectral image")
    n_img, bands, h, w = x.shape
    if check_positive_int(dim, "subspace dim") > bands:
        raise InputError(f"subspace dim must be an integer in [1, {bands}] (the number of bands), got {dim!r}")
    if dim > h * w:
        raise InputError(
            f"subspace dim {dim} exceeds the {h * w} pixels of the {h}x{w} image: at most {h * w} directions "
            "can be estimated; lower subspace_dim"
        )
    pixels = x.reshape(n_img, bands, h * w).to(torch.float64)
    return subspace_from_correlation(pixels @ pixels.transpose(1, 2) / (h * w), dim).to(x.dtype)


def batched_basis(basis: torch.Tensor, n_img: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """A basis ``(L, p)`` or ``(N, L, p)`` as float64 ``(n_img, L, p)`` on ``device`` (one basis is shared by all
    images): the form the per-image ``p x p`` algebra of the subspace solvers works on."""
    E = basis.to(dtype=torch.float64, device=device)
    if E.ndim == 2:
        E = E[None]
    return E.expand(n_img, *E.shape[1:])
