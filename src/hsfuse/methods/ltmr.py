"""LTMR: subspace fusion with low tensor multi-rank regularisation of grouped patches, solved by ADMM.

Dian, Li, "Hyperspectral image super-resolution via subspace-based low tensor multi-rank regularization",
IEEE TIP 28(10), 2019; code ``renweidian/LTMR`` (``LTMR/TSVD_Subpace_FUS.m``, ``Log_prox_tnn.m``, ``WNNM.m``,
``ClosedWNNM.m``, ``ExtractBlocks1.m``, ``JointBlocks2.m``, ``function/fkmeans.m``, ``demo_pavia.m``). The
steps below follow ``TSVD_Subpace_FUS.m``; re-derived, not copied.

Problem (``Z = D A``; ``D``: ``L x p`` orthonormal subspace basis, the top ``p`` left singular vectors of the
uncentred LR HSI pixels; ``A``: ``p x HW`` coefficients; ``B``: circular blur, ``S``: keep the pixels ``o::r``
of both axes, ``R``: SRF)::

    min_A  ||Y_h - D A B S||^2 + ||Y_m - R D A||^2 + eta sum_k ||P_k(A)||_TMR

where ``P_k`` stacks the overlapping ``s x s`` patches (step ``s - overlap``) of the coefficient images whose
MSI patches fall in cluster ``k`` (k-means of the MSI patches, ``K`` clusters) into a third-order tensor
``n_k x p x s^2`` (patch, subspace channel, pixel of the patch in column-major order), and ``||.||_TMR`` is the
low tensor multi-rank penalty of the t-SVD: the FFT along the third mode, a penalty on the singular values of
each frontal slice of the spectrum. ADMM on the splitting ``V = A`` with the original's scaling (dual ``G``,
penalty ``mu``); one iteration::

    A = argmin ||Y_h - D A B S||^2 + ||Y_m - R D A||^2 + mu ||A - V - G/(2 mu)||^2
        (the FUSE / R-FUSE Sylvester equation A BSS^TB^T + (RD)^T RD A + mu A = C, solved exactly in the
         Fourier domain by :func:`hsfuse.methods.sylvester.sylvester_solve` with prior mean V + G/(2 mu))
    V = J( prox_k( P_k(A - G/(2 mu)) ) )       for every cluster k, threshold tau = eta / (2 mu)
    G = G + 2 mu (V - A)

``J`` puts the patches back and averages the overlaps (``JointBlocks2.m``). ``prox`` is the t-SVD shrinkage of
one group tensor ``T`` (``Log_prox_tnn.m``): ``T^ = fft(T, [], 3)``; for each frontal slice ``T^_f`` with SVD
``U diag(sigma) V^H`` keep ``U diag(g(sigma)) V^H``; ``ifft`` back. ``shrinkage="log"`` (the code's choice,
``WNNM(Y, tau, 1)`` -> ``ClosedWNNM``: the closed-form weighted nuclear norm with weights ``tau / (sigma + eps)``)::

    g(sigma) = max(sigma - eps + sqrt(t), 0) / 2   where t = (sigma - eps)^2 - 4 (tau - eps sigma) > 0, else 0

(``eps``: float64 machine epsilon, as MATLAB's ``eps``; a value survives when ``sigma > 2 sqrt(tau)``);
``shrinkage="soft"`` is the tensor nuclear norm prox of the paper's Eq. / ``prox_tnn.m`` (commented out in
the code): ``g(sigma) = max(sigma - tau, 0)``. The output is ``Z = D A`` after the last iteration.

Start: ``A``-iteration inputs ``V = D^T U(Y_h)`` (cubic upsampling, ``imresize(HSI, sf, 'bicubic')`` in the
code), ``G = 0``. Defaults are the code's: ``p = 10``, ``K = 200``, ``eta = 1e-3``, patch size 7
(``demo_pavia.m``), overlap 4, ``mu = 1e-3`` and 100 iterations (hard-coded in ``TSVD_Subpace_FUS.m``), on data
scaled to a maximum of 1 (nothing is rescaled here: ``eta`` refers to the data's units).

Implementation (batched torch): the data step is the FUSE solver (exactly the code's ``Q``/``InvDI``/``PPlus``
closed form); patches are gathered with one index tensor and put back with ``index_add_``; every group of every
image of the batch is shrunk at once: per frequency (real FFT along the third mode; the other half of the
spectrum is the conjugate, as the code's loop over ``halfn3`` slices), the ``p x p`` Gram matrices
``sum_{i in k} t_i^H t_i`` of all groups are accumulated with ``index_add_`` and diagonalised together
(``eigh``, float64), and each patch row is multiplied by its group's ``V diag(g(sigma)/sigma) V^H`` — the same
matrix as ``U diag(g) V^H`` of the SVD (``U = T V diag(1/sigma)``), without padding groups of unequal sizes. The
shrinkage runs in float64 (Gram eigenvalues are squared singular values); the rest in float32 (float64 for
float64 inputs).

Deviations from ``TSVD_Subpace_FUS.m``, all deliberate:

* **k-means.** ``fkmeans.m`` (Lloyd iterations from ``K`` distinct data points drawn by ``randsample`` from
  MATLAB's global generator, empty clusters dropped, run until no label changes) is re-implemented in torch
  with its initial points drawn by ``torch.randperm`` from a generator seeded with ``seed`` (the same seed
  for every image of a batch, so a batch equals its images one by one), in float64, capped at
  :data:`KMEANS_MAX_ITERATIONS` iterations; ties go to the lowest cluster index. Clusters, and so the
  output, therefore differ from a MATLAB run; they are reproducible
  given ``seed``. With fewer patches than ``K``, ``K`` is clipped to the patch count (``randsample`` fails
  there); ``clusters=1`` puts every patch in one group (the code's ``K == 1`` branch, which reads undefined
  variables).
* **Decimation phase, PSF and SRF** come from ``physics`` (``offset``, the ``(k, k)`` PSF centred at ``k // 2``,
  circular); the code keeps ``1:sf:end`` with ``psf2otf`` of the demo's 7x7 Gaussian.
* **Initial ``V``**: cubic upsampling aligned to the decimation grid (:func:`upsample_cubic`, replicated
  borders), not ``imresize``'s half-pixel-centred grid.
* The code's per-iteration RMSE against the reference (an input it needs, ``S``) is not computed.

Patch grid (as ``ExtractBlocks1.m``): starts ``0, step, 2 step, ... <= n - s`` and always ``n - s`` once more
(so the last start appears twice when ``(n - s) % step == 0``; the duplicate patch enters its group twice and
the average twice, as in the code).

Limits: circular boundary (``border="pad"`` solves other boundaries on a periodic extension,
:mod:`hsfuse.methods.borders`), one PSF shared by all bands, ``H``, ``W`` at least the patch size (all checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from .._checks import check_positive_int, check_weight
from ..errors import InputError
from ..physics import FusionObservation
from ..physics.interpolation import upsample_cubic
from ..physics.noise import estimate_noise_sigma
from ..progress import ProgressFn, ProgressWithInfo, reporter
from ..types import FusionMeasurement
from .borders import Border, check_border_option, solve_with_border
from .options import MethodOptions, border_option, option, pad_option
from .subspace import batched_basis, pca_subspace
from .sylvester import shared_psf, sylvester_solve

__all__ = ["fuse_ltmr", "ltmr_admm", "noise_aware_eta", "ETA_PER_NOISE_VARIANCE", "ORIGINAL_ETA", "tsvd_shrink",
           "tensor_nuclear_norm", "kmeans", "patch_starts", "extract_patches", "join_patches", "LtmrOptions",
           "LtmrState", "LtmrResult", "LTMR_CHUNKED"]

#: values hard-coded in TSVD_Subpace_FUS.m: ADMM penalty, iterations, patch overlap
LTMR_MU, LTMR_ITERATIONS, LTMR_OVERLAP = 1e-3, 100, 4
#: eta="auto" = this x the mean over bands of the HSI's estimated noise variance (data units squared); calibrated,
#: see :func:`noise_aware_eta`
ETA_PER_NOISE_VARIANCE = 5e3
#: the original's eta (demo_pavia.m: para.eta), for data with maximum 1
ORIGINAL_ETA = 1e-3
#: safety cap on Lloyd iterations (fkmeans.m loops until no label changes)
KMEANS_MAX_ITERATIONS = 500
_EPS = 2.220446049250313e-16  # MATLAB's eps, used by ClosedWNNM.m
Shrinkage = Literal["log", "soft"]


@dataclass(frozen=True)
class LtmrOptions(MethodOptions):
    """Options of :func:`fuse_ltmr` (defaults: ``demo_pavia.m`` and ``TSVD_Subpace_FUS.m``)."""

    subspace_dim: int = option(10, "p, dimension of the SVD subspace of the HSI (demo_pavia.m: para.p = 10; clipped "
                               "to the band count)", ge=1)
    patch_size: int = option(7, "side s of the square patches (demo: para.patchsize = 7)", ge=1)
    overlap: int = option(LTMR_OVERLAP, "overlap of neighbouring patches in pixels, < patch_size (hard-coded 4)", ge=0)
    clusters: int = option(200, "K, number of k-means clusters of the MSI patches (demo: para.K = 200; clipped to the "
                           "patch count)", ge=1)
    eta: float | Literal["auto"] = option("auto", "weight of the low tensor multi-rank term (>= 0; the shrinkage "
                                          "threshold is eta / (2 mu)); auto: ETA_PER_NOISE_VARIANCE x the HSI's "
                                          "mean noise variance estimated from the data (noise-aware); the original "
                                          "(demo: para.eta) is 1e-3 for data with maximum 1", ge=0)
    mu: float = option(LTMR_MU, "ADMM penalty parameter (hard-coded 1e-3; > 0)", gt=0)
    iterations: int = option(LTMR_ITERATIONS, "ADMM iterations (hard-coded 100)", ge=1)
    shrinkage: Shrinkage = option("log", "singular value shrinkage of each Fourier slice: 'log' = the code's "
                                  "closed-form weighted nuclear norm (Log_prox_tnn.m), 'soft' = the tensor "
                                  "nuclear norm prox (prox_tnn.m)")
    seed: int = option(0, "seed of the k-means initialisation (the same for every image of a batch)", ge=0)
    border: Literal["circular", "pad"] = border_option()
    pad: int | None = pad_option()


class LtmrState(NamedTuple):
    """ADMM variables, each ``(N, p, H, W)``: the coefficients ``a``, the split ``v`` and the dual ``g``."""

    a: torch.Tensor
    v: torch.Tensor
    g: torch.Tensor


class LtmrResult(NamedTuple):
    """:func:`ltmr_admm`'s result: ``z = D a`` ``(N, L, H, W)``, the final state and the cluster labels
    ``(N, P)`` (int64) of the ``P`` patches."""

    z: torch.Tensor
    state: LtmrState
    labels: torch.Tensor


# --------------------------------------------------------------------------------------------- patches


def patch_starts(n: int, size: int, step: int) -> list[int]:
    """Patch start indices along an axis of length ``n`` (``ExtractBlocks1.m``): ``0, step, ... <= n - size``,
    then ``n - size`` once more (a duplicate when ``(n - size) % step == 0``)."""
    return list(range(0, n - size + 1, step)) + [n - size]


def _patch_index(H: int, W: int, size: int, step: int, device: torch.device) -> torch.Tensor:
    """``(P, size * size)`` flat pixel indices of every patch, each patch in column-major order."""
    rows = torch.tensor(patch_starts(H, size, step), device=device)
    cols = torch.tensor(patch_starts(W, size, step), device=device)
    k = torch.arange(size, device=device)
    r = (rows[:, None] + k)[:, None, None, :]  # (nr, 1, 1, s): pixel row, fastest in column-major order
    c = (cols[:, None] + k)[None, :, :, None]  # (1, nc, s, 1)
    return (r * W + c).reshape(len(rows) * len(cols), size * size)


def extract_patches(x: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """``(N, C, H, W) -> (N, P, C, size * size)``: the patches of :func:`patch_starts` on both axes (row starts
    outer, column starts inner), pixels of a patch in column-major order (MATLAB's ``reshape``)."""
    n, c, H, W = x.shape
    idx = _patch_index(H, W, size, step, x.device)
    return x.reshape(n, c, H * W)[:, :, idx].permute(0, 2, 1, 3)


def join_patches(patches: torch.Tensor, shape: tuple[int, int], size: int, step: int) -> torch.Tensor:
    """Inverse of :func:`extract_patches` up to averaging (``JointBlocks2.m``): every pixel is the mean of the
    patch values covering it. ``(N, P, C, size * size) -> (N, C, H, W)``."""
    n, _, c, _ = patches.shape
    H, W = shape
    idx = _patch_index(H, W, size, step, patches.device).reshape(-1)
    out = torch.zeros(n, c, H * W, dtype=patches.dtype, device=patches.device)
    out.index_add_(2, idx, patches.permute(0, 2, 1, 3).reshape(n, c, -1))
    count = torch.zeros(H * W, dtype=patches.dtype, device=patches.device)
    count.index_add_(0, idx, torch.ones_like(idx, dtype=patches.dtype))
    return (out / count).reshape(n, c, H, W)


# --------------------------------------------------------------------------------------------- k-means


def kmeans(x: torch.Tensor, k: int, *, seed: int, max_iterations: int = KMEANS_MAX_ITERATIONS) -> torch.Tensor:
    """Lloyd's k-means of the rows of ``x`` ``(n, d)`` as ``fkmeans.m``; returns labels ``(n,)`` in ``0..K'-1``.

    Initial centroids: ``min(k, n)`` distinct rows drawn by ``torch.randperm`` seeded with ``seed``; each
    point goes to the centroid maximising ``c . x - |c|^2 / 2``; empty clusters are dropped (labels
    renumbered in order); stops when no label changes (or after ``max_iterations``). Float64.
    """
    x = x.to(torch.float64)
    n = x.shape[0]
    k = min(k, n)
    if k <= 1:
        return torch.zeros(n, dtype=torch.long, device=x.device)
    gen = torch.Generator().manual_seed(int(seed))
    centroids = x[torch.randperm(n, generator=gen)[:k].to(x.device)]

    def assign(c: torch.Tensor) -> torch.Tensor:
        return torch.argmax(x @ c.T - 0.5 * (c * c).sum(1), dim=1)

    labels = assign(centroids)
    for _ in range(max_iterations):
        _, labels = torch.unique(labels, return_inverse=True)  # drop empty clusters
        count = torch.bincount(labels).to(x.dtype)
        sums = torch.zeros(count.shape[0], x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, labels, x)
        new = assign(sums / count[:, None])
        if torch.equal(new, labels):
            break
        labels = new
    return labels


# --------------------------------------------------------------------------------------------- t-SVD shrinkage


def _gain(sigma: torch.Tensor, tau: float, shrinkage: str) -> torch.Tensor:
    """``g(sigma) / sigma`` (0 where ``g = 0``) for the shrinkage rules of the module docstring."""
    if shrinkage == "soft":
        g = (sigma - tau).clamp_min(0)
    else:
        t = (sigma - _EPS) ** 2 - 4 * (tau - _EPS * sigma)
        g = torch.where(t > 0, (sigma - _EPS + torch.sqrt(t.clamp_min(0))).clamp_min(0) / 2, torch.zeros_like(sigma))
    return torch.where(g > 0, g / sigma.clamp_min(torch.finfo(sigma.dtype).tiny), torch.zeros_like(sigma))


def tsvd_shrink(x: torch.Tensor, tau: float, *, shrinkage: Shrinkage = "soft", groups: torch.Tensor | None = None,
                n_groups: int | None = None, chunk_bytes: int = 1 << 26) -> torch.Tensor:
    """t-SVD singular value shrinkage of the third-order tensor(s) ``x`` ``(n1, n2, n3)`` (float64 result).

    ``fft`` along the third axis, in every frontal slice ``X_f`` (``n1 x n2``) replace the singular values
    ``sigma`` by ``g(sigma)`` (``"soft"``: ``max(sigma - tau, 0)``, the prox of ``tau`` times the tensor nuclear
    norm; ``"log"``: ``ClosedWNNM.m``), ``ifft`` back. With ``groups`` (``(n1,)`` int64 labels in
    ``0..n_groups-1``) the rows of each label form their own tensor, shrunk independently (the patch groups of
    LTMR). Computed from the ``n2 x n2`` Gram matrix of each group and slice (module docstring); the work is
    split over frequencies so that about ``chunk_bytes`` of temporaries are live.
    """
    if shrinkage not in ("soft", "log"):
        raise InputError(f"shrinkage must be 'log' or 'soft', got {shrinkage!r}")
    x = x.to(torch.float64)
    n1, n2, n3 = x.shape
    if groups is None:
        groups = torch.zeros(n1, dtype=torch.long, device=x.device)
        n_groups = 1
    elif n_groups is None:
        n_groups = int(groups.max()) + 1 if n1 else 0
    spec = torch.fft.rfft(x, dim=2).permute(2, 0, 1)  # (F, n1, n2)
    nf = spec.shape[0]
    out = torch.empty_like(spec)
    per_freq = n1 * n2 * n2 * 16 * 2 + 1
    step = max(1, min(nf, chunk_bytes // per_freq))
    for f0 in range(0, nf, step):
        s = spec[f0 : f0 + step]  # (f, n1, n2)
        f = s.shape[0]
        outer = (s.conj()[..., :, None] * s[..., None, :]).reshape(f, n1, n2 * n2)
        gram = torch.zeros(f, n_groups, n2 * n2, dtype=s.dtype, device=x.device).index_add_(1, groups, outer)
        del outer
        gram = gram.reshape(f, n_groups, n2, n2)
        lam, vec = torch.linalg.eigh(0.5 * (gram + gram.conj().transpose(-2, -1)))
        gain = _gain(torch.sqrt(lam.clamp_min(0)), float(tau), shrinkage).to(s.dtype)
        mat = (vec * gain[..., None, :]) @ vec.conj().transpose(-2, -1)  # (f, G, n2, n2)
        out[f0 : f0 + step] = (s[..., None, :] @ mat[:, groups]).squeeze(-2)
    return torch.fft.irfft(out.permute(1, 2, 0), n=n3, dim=2)


def tensor_nuclear_norm(x: torch.Tensor) -> torch.Tensor:
    """Tensor nuclear norm of ``x`` ``(n1, n2, n3)``: ``(1/n3) sum_f ||fft(x, [], 3)_f||_*`` (Lu et al.; float64)."""
    spec = torch.fft.fft(x.to(torch.float64), dim=2).permute(2, 0, 1)
    return torch.linalg.svdvals(spec).sum() / x.shape[2]


# --------------------------------------------------------------------------------------------- ADMM


def _coefficients(E: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    n, bands = z.shape[:2]
    return torch.bmm(E.transpose(1, 2).to(z.dtype), z.reshape(n, bands, -1)).reshape(n, E.shape[-1], *z.shape[2:])


def _prox(b: torch.Tensor, labels: torch.Tensor, *, size: int, step: int, tau: float, shrinkage: str) -> torch.Tensor:
    """``J(prox_k(P_k(b)))`` for a batch ``(N, p, H, W)`` with labels ``(N, P)``."""
    n, p, H, W = b.shape
    patches = extract_patches(b, size, step)  # (N, P, p, s^2)
    count = int(labels.max()) + 1
    glob = (labels + count * torch.arange(n, device=labels.device)[:, None]).reshape(-1)
    shrunk = tsvd_shrink(patches.reshape(-1, p, size * size), tau, shrinkage=shrinkage, groups=glob,
                         n_groups=count * n)
    return join_patches(shrunk.reshape(patches.shape).to(b.dtype), (H, W), size, step)


def ltmr_admm(
    hsi: torch.Tensor,
    msi: torch.Tensor,
    *,
    basis: torch.Tensor,
    srf: torch.Tensor,
    psf: torch.Tensor,
    ratio: int,
    offset: int,
    labels: torch.Tensor,
    patch_size: int = 7,
    overlap: int = LTMR_OVERLAP,
    eta: float = 1e-3,
    mu: float = LTMR_MU,
    iterations: int = LTMR_ITERATIONS,
    shrinkage: Shrinkage = "log",
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> LtmrResult:
    """Run LTMR's ADMM (module docstring) on a batch; the low-level solver behind :func:`fuse_ltmr`.

    Args:
        hsi: ``(N, L, h, w)``; msi: ``(N, m, r h, r w)`` (same device). float64 inputs run in float64, others in
            float32 (the shrinkage always in float64).
        basis: ``(L, p)`` or ``(N, L, p)`` orthonormal basis ``D``. srf: ``(m, L)``. psf: ``(k, k)``, centre
            ``k // 2``, circular. ratio, offset: decimation.
        labels: ``(N, P)`` cluster of each patch of :func:`extract_patches` (``0..K-1``).
        patch_size, overlap, eta, mu, iterations, shrinkage: as in :class:`LtmrOptions`.
        init: ``(V, G)`` ``(N, p, H, W)`` to start from (default: ``V = D^T U(Y_h)``, ``G = 0``).
        progress: ``progress(done, total)`` after every iteration.

    Inputs are not re-validated here (the public method does that).
    """
    rdt = torch.float64 if hsi.dtype == torch.float64 else torch.float32
    hsi, msi = hsi.to(rdt), msi.to(rdt)
    n_img = hsi.shape[0]
    H, W = msi.shape[-2:]
    E = batched_basis(basis, n_img, device=hsi.device)
    step = patch_size - overlap
    tau = eta / (2 * mu)
    if init is None:
        v = _coefficients(E, upsample_cubic(hsi, ratio=ratio, offset=offset))
        g = torch.zeros_like(v)
    else:
        v, g = (t.to(device=hsi.device, dtype=rdt) for t in init)
    report = reporter(progress)
    z = a = v
    for i in range(iterations):
        z = sylvester_solve(hsi, msi, basis=E, srf=srf, psf=psf, ratio=ratio, offset=offset, lam=mu,
                            prior_mean=v + g / (2 * mu))
        a = _coefficients(E, z)
        v = _prox(a - g / (2 * mu), labels, size=patch_size, step=step, tau=tau, shrinkage=shrinkage)
        g = g + 2 * mu * (v - a)
        report(i + 1, iterations)
    return LtmrResult(z, LtmrState(a, v, g), labels)


def fuse_ltmr(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    subspace_dim: int = 10,
    patch_size: int = 7,
    overlap: int = LTMR_OVERLAP,
    clusters: int = 200,
    eta: float | Literal["auto"] = "auto",
    mu: float = LTMR_MU,
    iterations: int = LTMR_ITERATIONS,
    shrinkage: Shrinkage = "log",
    seed: int = 0,
    border: Border = "circular",
    pad: int | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> torch.Tensor:
    """LTMR (Dian & Li, IEEE TIP 28(10), 2019): subspace fusion with low tensor multi-rank regularisation.

    ``Z = D A``; ``A`` minimises ``||Y_h - D A B S||^2 + ||Y_m - R D A||^2 + eta sum_k ||P_k(A)||_TMR`` over
    k-means groups of overlapping patches, by ``TSVD_Subpace_FUS.m``'s ADMM (module docstring: equations,
    defaults, deviations). ``D`` spans the top ``subspace_dim`` left singular vectors of the uncentred LR HSI.

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: ratio, decimation offset, PSF (one ``(k, k)`` kernel for all bands) and SRF; its boundary must
            be circular unless ``border="pad"``.
        subspace_dim: ``p`` (clipped to ``L`` and to the number of LR pixels).
        patch_size, overlap: patch side and overlap (``0 <= overlap < patch_size <= min(H, W)``).
        clusters: ``K`` k-means clusters of the MSI patches. eta: regularisation weight (``>= 0``, data units), or
            ``"auto"`` (default): :func:`noise_aware_eta` of each image (``ORIGINAL_ETA`` = 1e-3 is the code's).
        mu: ADMM penalty (``> 0``). iterations: ADMM iterations. shrinkage: ``"log"`` or ``"soft"``.
        seed: k-means initialisation seed (``>= 0``).
        border, pad: ``"circular"`` (the periodic model as is; circular physics) or ``"pad"``: the problem solved
            on a smooth periodic extension by ``pad`` LR pixels, zero-filled borders renormalised, cropped back
            (:mod:`hsfuse.methods.borders`; any boundary).
        progress: ``progress(done, total)`` after every iteration (runtime argument).

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (float64 inputs computed in float64, others in
        float32).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
        >>> obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0)),
        ...                         SpectralResponse(torch.rand(3, 8), normalize="sum"))
        >>> z = fuse_ltmr(obs.A(torch.rand(1, 8, 12, 16)), obs, subspace_dim=4, clusters=4, iterations=3)
        >>> tuple(z.shape)
        (1, 8, 12, 16)
    """
    hsi, msi = physics.measurement_tensors(y, same_dtype=True)
    subspace_dim = check_positive_int(subspace_dim, "subspace_dim")
    patch_size = check_positive_int(patch_size, "patch_size")
    overlap = check_positive_int(overlap, "overlap", minimum=0)
    clusters = check_positive_int(clusters, "clusters")
    iterations = check_positive_int(iterations, "iterations")
    seed = check_positive_int(seed, "seed", minimum=0)
    auto = _check_eta(eta)
    mu = check_weight(mu, "mu", allow_zero=False)
    if shrinkage not in ("log", "soft"):
        raise InputError(f"shrinkage must be 'log' or 'soft', got {shrinkage!r}")
    if auto and shrinkage == "soft":
        raise InputError("eta='auto' is calibrated for shrinkage='log' (its threshold scales with sqrt(eta)); with "
                         "shrinkage='soft' give eta explicitly (data units, e.g. eta=1e-3)")
    if overlap >= patch_size:
        raise InputError(f"overlap must be smaller than patch_size={patch_size}, got {overlap}")
    n_img, bands, h, w = hsi.shape
    H, W = msi.shape[-2:]
    if patch_size > min(H, W):
        raise InputError(f"patch_size={patch_size} is larger than the {H}x{W} image")
    spatial = physics.spatial
    if border == "pad":
        return solve_with_border(fuse_ltmr, y, physics, border="pad", pad=pad, who="LTMR's data step",
                                 subspace_dim=subspace_dim, patch_size=patch_size, overlap=overlap, clusters=clusters,
                                 eta=eta, mu=mu, iterations=iterations, shrinkage=shrinkage, seed=seed,
                                 progress=progress)
    check_border_option(border, pad, spatial.boundary, who="LTMR's data step")
    psf = shared_psf(spatial.psf, (H, W), who="LTMR")
    if min(h, w) < 2:
        raise InputError(f"LTMR needs a low-resolution HSI of at least 2x2 pixels, got {h}x{w}")
    step = patch_size - overlap
    basis = pca_subspace(hsi.to(torch.float64), dim=min(subspace_dim, bands, h * w))
    msi_patches = extract_patches(msi.to(torch.float64), patch_size, step)  # (N, P, m, s^2)
    labels = torch.stack([kmeans(msi_patches[n].reshape(msi_patches.shape[1], -1), clusters, seed=seed)
                          for n in range(n_img)])
    common = dict(srf=physics.spectral.matrix.detach(), psf=psf, ratio=physics.ratio, offset=spatial.offset,
                  patch_size=patch_size, overlap=overlap, mu=mu, iterations=iterations, shrinkage=shrinkage,
                  progress=progress)
    if not auto:
        z = ltmr_admm(hsi, msi, basis=basis, labels=labels, eta=float(eta), **common).z
        return z.to(hsi.dtype)
    etas = noise_aware_eta(hsi)  # each image its own weight
    z = torch.cat([ltmr_admm(hsi[i:i + 1], msi[i:i + 1], basis=basis[i:i + 1], labels=labels[i:i + 1],
                             eta=float(etas[i]), **common).z for i in range(n_img)])
    return z.to(hsi.dtype)


def _check_eta(eta: object) -> bool:
    """``True`` for ``eta="auto"``; raises :class:`InputError` unless ``eta`` is a finite number ``>= 0``."""
    if isinstance(eta, str):
        if eta == "auto":
            return True
        raise InputError(f"eta must be a finite number >= 0 or 'auto', got {eta!r}")
    check_weight(eta, "eta", allow_zero=True)
    return False


def noise_aware_eta(hsi: torch.Tensor) -> torch.Tensor:
    """``eta="auto"`` of :func:`fuse_ltmr` for each image of ``hsi`` ``(N, L, h, w)``: ``(N,)`` float64.

    ``eta = ETA_PER_NOISE_VARIANCE * mean_l sigma_l^2`` with ``sigma_l`` the noise of band ``l`` estimated from the
    LR HSI itself (:func:`hsfuse.physics.estimate_noise_sigma`, HySime's regression). Why this form: the objective
    has unweighted data terms, so under Gaussian noise of variance ``sigma^2`` the MAP weight of a fixed prior
    scales as ``sigma^2``; and the log shrinkage keeps a singular value above ``2 sqrt(eta / (2 mu))``, a threshold
    proportional to the noise level (so the rule is scale-free: data in any units get the same result; it holds for
    ``shrinkage="log"`` only, and ``"soft"`` needs an explicit ``eta``). The constant is calibrated (issue 17 item 4) by
    ``benchmarks/sweep_noise_weights.py`` (``benchmarks/results/classical/noise_weights.md``: ``eta`` 1e-3 .. 1 on
    Pavia U, Indian Pines and Jasper Ridge, r = 4, known operators, clean and 25/30/35 dB): the best ``eta / sigma^2``
    is 5e3 - 2.5e4 on clean data (where the estimate is the model error) on all three scenes, 1e3 - 2e4 at 25-35 dB
    on Indian Pines and Jasper Ridge, and on Pavia U 2e3 at 25 dB but 20-60 (the grid's smallest eta) at 30 and
    35 dB. With 5e3, against the original's fixed
    1e-3: clean +0.07 / +0.47 / +0.46 dB (Pavia / Indian Pines / Jasper), 30 dB -0.53 / +8.96 / +11.04 dB, 25 dB
    +0.14 / +8.30 / +12.71, 35 dB -0.93 / +7.85 / +8.50; its largest shortfall against the best fixed ``eta`` of a
    case is 0.93 dB (Pavia, 35 dB). The constant was chosen on these scenes (no held-out scene): a calibrated
    rule, not a derived one. The original's 1e-3 is ``eta="auto"`` for a noise of ``sigma = 4.5e-4`` on data with
    maximum 1.
    """
    sigma = estimate_noise_sigma(hsi)
    return ETA_PER_NOISE_VARIANCE * sigma.pow(2).mean(dim=1)  # scales with the data squared, as the log threshold


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Not exact. Fit: the subspace D, the top p eigenvectors of the uncentred correlation of the LR pixels, streamed
# exactly in one pass (as FUSE's and HySure's plans; pca_subspace up to summation order), and for eta="auto" the
# Gram matrix of estimate_noise_sigma's regression features (the bands and a constant, or on few bands every band
# at the 3 x 3 offsets of the image's interior pixels: a 1-pixel halo), which gives noise_aware_eta exactly.
# Apply: the ADMM on each tile (core plus a halo of LTMR_HALO_PSF PSF widths, at least LTMR_MIN_HALO LR pixels,
# wrapping across the image border as the periodic model does), keeping the core ("overlap and discard").
# Deviations from the whole image:
# the tile's FFT solve is periodic on the tile (the halo keeps the edge error out of the core, as FUSE's), and the
# k-means runs on the tile's own MSI patches with K scaled to the tile's share of the image's patches
# (round(K P_tile / P_image), at least 1, so groups keep about the whole image's size), seeded with ``seed`` on
# every tile: the patch groups, hence the low-rank prior, are the tile's, not the whole image's. The patch grid
# is the tile's (ExtractBlocks1 on the tile), so patches near the core's edge differ too; the halo keeps them away.
# The start U(Y_h) replicates the image's borders as the whole image's does (not the wrapped halo).
# Working set (VmHWM of one apply on a 512 x 512 x 200 tile, p = 10): 17.9 bytes per HR pixel per band, mostly the
# p-channel patch tensors (about 3.6 KB per HR pixel whatever L): 48 covers L >= 75.

LTMR_HALO_PSF, LTMR_MIN_HALO = 4, 8


def _ltmr_halo(ratio: int, physics: FusionObservation, options: LtmrOptions) -> int:
    k = physics.spatial.psf.shape[-1]
    return max(LTMR_MIN_HALO, -(-LTMR_HALO_PSF * k // ratio), -(-int(options.patch_size) // ratio) + 1)


def _ltmr_checked(options: LtmrOptions) -> dict:
    """The options checked as :func:`fuse_ltmr` does."""
    out = {"subspace_dim": check_positive_int(options.subspace_dim, "subspace_dim"),
           "patch_size": check_positive_int(options.patch_size, "patch_size"),
           "overlap": check_positive_int(options.overlap, "overlap", minimum=0),
           "clusters": check_positive_int(options.clusters, "clusters"),
           "iterations": check_positive_int(options.iterations, "iterations"),
           "seed": check_positive_int(options.seed, "seed", minimum=0),
           "auto": _check_eta(options.eta),
           "mu": check_weight(options.mu, "mu", allow_zero=False)}
    if options.shrinkage not in ("log", "soft"):
        raise InputError(f"shrinkage must be 'log' or 'soft', got {options.shrinkage!r}")
    if out["auto"] and options.shrinkage == "soft":
        raise InputError("eta='auto' is calibrated for shrinkage='log'; with shrinkage='soft' give eta explicitly")
    if out["overlap"] >= out["patch_size"]:
        raise InputError(f"overlap must be smaller than patch_size={out['patch_size']}, got {out['overlap']}")
    return out


def _ltmr_pass(tile, physics: FusionObservation, options: LtmrOptions, state: dict) -> dict:
    from ..physics.noise import neighbours_default
    from .chunking import select

    hsi = tile.hsi.to(torch.float64)[0]
    bands = hsi.shape[0]
    keep = tile.valid_lr_core()
    hs = select(tile.lr_core(hsi).flatten(1), keep)
    out = {"n": torch.tensor(float(hs.shape[1]), dtype=torch.float64), "gram": hs @ hs.T, "sum": hs.sum(1)}
    if _check_eta(options.eta) and neighbours_default(bands, *tile.image):
        # eta="auto" on few bands: the noise regression's features are every band at the 3 x 3 offsets of the image's
        # interior pixels (estimate_noise_sigma): the core's interior pixels, their neighbours from the 1-pixel halo
        h, w = tile.image
        a, b, c, d = tile.core
        rows = [i for i in range(a, b) if 1 <= i + tile.origin[0] <= h - 2]
        cols = [j for j in range(c, d) if 1 <= j + tile.origin[1] <= w - 2]
        if rows and cols:
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            shifts = [hsi[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            feats = torch.stack(shifts, dim=1).reshape(bands * 9, -1)
            feats = torch.cat([feats, torch.ones_like(feats[:1])])
        else:
            feats = torch.zeros(bands * 9 + 1, 0, dtype=torch.float64)
        out.update(noise_gram=feats @ feats.T, noise_n=torch.tensor(float(feats.shape[1]), dtype=torch.float64))
    return out


def _ltmr_finish(t: dict, physics: FusionObservation, options: LtmrOptions, state: dict) -> dict:
    from ..physics.noise import noise_from_gram, spectral_window
    from .subspace import subspace_from_correlation

    o = _ltmr_checked(options)
    if physics.spatial.boundary != "circular" or options.border != "circular":
        raise InputError(f"LTMR's chunked plan assumes circular boundary conditions (border='circular'), but the "
                         f"physics uses boundary={physics.spatial.boundary!r} / border={options.border!r}; build the "
                         "physics with boundary='circular', or run border='pad' on the whole image")
    shared_psf(physics.spatial.psf, (physics.spatial.psf.shape[-1],) * 2, who="LTMR")  # one kernel for all bands
    bands, n = t["gram"].shape[0], int(t["n"])
    dim = min(o["subspace_dim"], bands, n)
    eta = float(options.eta) if not o["auto"] else None
    if o["auto"]:  # noise_aware_eta from the streamed Gram matrix of estimate_noise_sigma's regression features
        if "noise_gram" in t:
            sigma = noise_from_gram(t["noise_gram"], t["noise_n"], torch.arange(bands) * 9 + 4)
        else:
            gram = torch.zeros(bands + 1, bands + 1, dtype=torch.float64)
            gram[:bands, :bands], gram[:bands, -1], gram[-1, :bands], gram[-1, -1] = (t["gram"], t["sum"], t["sum"],
                                                                                     t["n"])
            sigma = noise_from_gram(gram, t["n"], torch.arange(bands), window=spectral_window(bands, n))
        eta = ETA_PER_NOISE_VARIANCE * float(sigma.pow(2).mean())
    return {**state, "basis": subspace_from_correlation(t["gram"] / t["n"], dim), "eta": eta}


def _ltmr_upsampled(hsi: torch.Tensor, tile, offset: int) -> torch.Tensor:
    """The ADMM's start ``U(Y_h)`` on a tile: the cubic upsampling (replicated borders) of each piece of the tile that
    is contiguous in the image, so that the image's border pixels see replicated, not wrapped, neighbours as in
    the whole image (the pieces' other edges are tile edges, in the halo)."""
    r = tile.ratio
    th, tw = hsi.shape[-2:]
    out = torch.empty(*hsi.shape[:2], r * th, r * tw, dtype=hsi.dtype, device=hsi.device)
    for a, b, c, d in tile.image_pieces():
        out[..., r * a : r * b, r * c : r * d] = upsample_cubic(hsi[..., a:b, c:d], ratio=r, offset=offset)
    return out


def _ltmr_apply(tile, physics: FusionObservation, options: LtmrOptions, state: dict) -> torch.Tensor:
    o = _ltmr_checked(options)
    hsi = tile.hsi
    msi = tile.msi.to(hsi.dtype)
    H, W = msi.shape[-2:]
    size, step = o["patch_size"], o["patch_size"] - o["overlap"]
    if size > min(H, W):
        raise InputError(f"patch_size={size} is larger than the {H}x{W} tile")
    psf = shared_psf(physics.spatial.psf, (H, W), who="LTMR")
    patches = extract_patches(msi.to(torch.float64), size, step)[0]  # (P, m, s^2)
    r = tile.ratio
    image = len(patch_starts(r * tile.image[0], size, step)) * len(patch_starts(r * tile.image[1], size, step))
    k = max(1, round(o["clusters"] * patches.shape[0] / image))
    labels = kmeans(patches.reshape(patches.shape[0], -1), k, seed=o["seed"])[None]
    rdt = torch.float64 if hsi.dtype == torch.float64 else torch.float32
    E = state["basis"].to(rdt)
    v = torch.einsum("lp,nlhw->nphw", E, _ltmr_upsampled(hsi.to(rdt), tile, physics.spatial.offset))
    z = ltmr_admm(hsi, msi, basis=state["basis"], srf=physics.spectral.matrix.detach(), psf=psf, ratio=r,
                  offset=physics.spatial.offset, labels=labels, patch_size=size, overlap=o["overlap"], eta=state["eta"],
                  mu=o["mu"], iterations=o["iterations"], shrinkage=options.shrinkage,
                  init=(v, torch.zeros_like(v))).z
    return tile.hr_core(z).to(hsi.dtype)


def _ltmr_plan():
    from .chunking import Chunked, StatsPass

    return Chunked(passes=(StatsPass(halo=lambda r, physics, options: 1, partial=_ltmr_pass, finish=_ltmr_finish),),
                   apply_halo=_ltmr_halo, apply=_ltmr_apply, exact=False, working_set=48.0,
                   apply_wrap=lambda physics, options: True)


#: chunked plan: the subspace streamed exactly, then overlap-and-discard tiles of the ADMM with per-tile k-means
LTMR_CHUNKED = _ltmr_plan()
