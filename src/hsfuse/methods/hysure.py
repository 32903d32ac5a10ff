"""HySure: subspace fusion with vector total variation, solved by ADMM/SALSA in the Fourier domain.

Simoes, Bioucas-Dias, Almeida, Chanussot, "A convex formulation for hyperspectral image superresolution via
subspace-based regularization", IEEE TGRS 53(6), 2015 (its Appendix); code ``alfaiate/HySure
src/data_fusion.m`` (the iterations below follow it line by line; re-derived, not copied).

Problem (``Z = E X``; ``E``: ``L x p`` subspace basis, ``X``: ``p x HW`` coefficients, ``B``: circular blur,
``M``: keep the pixels ``o::r`` of both axes, ``R``: SRF, ``D_h``/``D_v``: circular horizontal/vertical first
differences ``x[i, j] - x[i, j+1]`` and ``x[i, j] - x[i+1, j]``)::

    min_X  1/2 ||Y_h - E X B M||^2 + lambda_m/2 ||Y_m - R E X||^2
           + lambda_phi sum_pixels sqrt( sum_channels (X D_h)^2 + (X D_v)^2 )

(the last term is the isotropic vector TV of the coefficient images, coupled across the ``p`` channels and
both directions). Variable splitting ``V1 = X B``, ``V2 = X``, ``V3 = X D_h``, ``V4 = X D_v`` with scaled
duals ``D1..D4`` and penalty ``mu``; one iteration (``data_fusion.m``, loop body)::

    X   = F^-1[ (conj(FB) F(V1+D1) + F(V2+D2) + conj(FDh) F(V3+D3) + conj(FDv) F(V4+D4))
                / (|FB|^2 + |FDh|^2 + |FDv|^2 + 1) ]
    NU1 = X B - D1;   V1 = (E^T E + mu I)^-1 (E^T Y_h + mu NU1) on the kept pixels, NU1 elsewhere
    NU2 = X - D2;     V2 = (lambda_m E^T R^T R E + mu I)^-1 (lambda_m E^T R^T Y_m + mu NU2)
    NU3 = X D_h - D3; NU4 = X D_v - D4
    (V3, V4) = vector soft threshold of (NU3, NU4) at lambda_phi / mu:
               per pixel, a = max(0, nu - tau), (V3, V4) = a / (a + tau) (NU3, NU4),
               nu = sqrt(sum_channels NU3^2 + NU4^2)
    Dk  = Vk - NUk  (k = 1..4)

starting from ``X = V_k = D_k = 0``; the output is ``Z = E X`` after the last iteration. Defaults are the
original's: ``mu = 0.05`` and 200 iterations (hard-coded in ``data_fusion.m``), ``p = 10``,
``lambda_phi = 5e-4``, ``lambda_m = 1`` (``demos/demo_pavia_hs_ms.m``, on data scaled to a maximum of 1).

Implementation: batched torch, real FFTs (``rfft2``) on the whole ``H x W`` grid, float32 (float64 for float64
inputs; the ``p x p`` algebra in float64). ``F(V2+D2) + conj(FDh) F(V3+D3) + conj(FDv) F(V4+D4)`` is formed
as one spectrum of ``(V2+D2) + D_h^T(V3+D3) + D_v^T(V4+D4)`` (the adjoint differences by ``roll`` in the image
domain), and ``X B`` is read from ``X``'s spectrum, so an iteration costs two forward and two inverse FFTs of
``p`` channels; ``X D_h``, ``X D_v`` are computed by ``roll``. All of this is the same linear algebra as the
original's eight ``ConvC`` calls (the tests compare one iteration with a dense NumPy implementation).

Deviations from ``data_fusion.m`` / the HySure pipeline, all deliberate:

* **Subspace.** The demos use ``basis_type = 'VCA'`` (best of 20 VCA runs by volume); the ``'SVD'`` branch of
  ``data_fusion.m`` does not run as published (``case basis_type == 'SVD'`` never matches a string, and it
  reads an undefined ``Yh``). hsfuse has no VCA and implements what the SVD branch intends (and its commented
  line ``Ry = Yh Yh^T / np``): ``E`` = the top ``p`` left singular vectors of the uncentred LR HSI pixels,
  :func:`hsfuse.methods.subspace.pca_subspace` (orthonormal, so ``E^T E = I``). The demos' final
  re-projection ``(V V^T) Z`` on the HSI's SVD subspace is then the identity (``Z`` already lies in it) and
  is not done.
* **Decimation phase and PSF** come from ``physics`` (``offset``, the ``(k, k)`` PSF centred at ``k // 2``);
  the original hard-codes ``shift = 1`` and takes ``B`` already circularly centred on the full grid.
* **Estimated operators** (``estimate_operators=True``): the PSF and SRF come from
  :func:`hsfuse.estimation.hysure.estimate_hysure` per image (HySure's ``sen_resp_est``, with that module's
  documented deviations: lambdas relative to max-scaled data, non-negative fits, interior pixels only, PSF
  support ``2r - 1``) with the physics' ratio and offset and ``subspace_dim = p`` (the demos use the same
  ``p`` for both). The SRF's spectral support (the demos' ``intersection``) is not known here: every MSI band
  may see every HSI band. The physics' own PSF and SRF are then ignored, and so is its boundary (the ADMM
  applies the periodic model to any pair, as the original does).
* **Units.** Like ``data_fusion.m``, nothing is rescaled: the TV term is 1-homogeneous and the data terms
  quadratic, so ``lambda_phi`` refers to the units of the data (the demos' data have maximum 1).

Limits: circular boundary (checked unless the operators are estimated; ``border="pad"`` solves other boundaries on a
periodic extension, :mod:`hsfuse.methods.borders`), one PSF shared by all bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch

from .._checks import check_positive_int, check_weight
from ..errors import InputError
from ..physics import FusionObservation
from ..progress import ProgressFn, ProgressWithInfo, reporter
from ..types import FusionMeasurement
from .borders import Border, check_border_option, solve_with_border
from .chunking import Chunked, StatsPass, select
from .options import MethodOptions, border_option, option, pad_option
from .subspace import batched_basis, pca_subspace, subspace_from_correlation
from .sylvester import shared_psf, shifted_otf
from .vca import vca

__all__ = ["fuse_hysure", "hysure_admm", "hysure_objective", "HysureOptions", "HysureState", "HysureResult",
           "HYSURE_CHUNKED"]

#: ADMM penalty and iteration count hard-coded in data_fusion.m
HYSURE_MU, HYSURE_ITERATIONS = 0.05, 200


@dataclass(frozen=True)
class HysureOptions(MethodOptions):
    """Options of :func:`fuse_hysure` (defaults: ``data_fusion.m`` and ``demos/demo_pavia_hs_ms.m``)."""

    subspace_dim: int = option(10, "p, the dimension of the SVD subspace of the HSI (demo_pavia_hs_ms.m: p = 10; "
                               "clipped to the band count)", ge=1)
    lambda_phi: float = option(5e-4, "weight of the vector total variation of the subspace coefficients "
                               "(demo: 5e-4, for data scaled to a maximum of 1; >= 0)", ge=0)
    lambda_m: float = option(1.0, "weight of the MSI data term relative to the HSI term (demo: 1; > 0)", gt=0)
    mu: float = option(HYSURE_MU, "ADMM penalty parameter (data_fusion.m: 0.05; > 0)", gt=0)
    iterations: int = option(HYSURE_ITERATIONS, "ADMM iterations (data_fusion.m: 200)", ge=1)
    basis: Literal["svd", "vca"] = option("svd", "subspace: svd (top left singular vectors of the LR HSI, "
                                          "data_fusion.m's SVD branch) or vca (the demo's choice: the largest-volume "
                                          "of 20 VCA runs with SNR = 0, seeded; not orthonormal)")
    seed: int = option(0, "basis=vca only: seed of the VCA runs' random directions (>= 0)", ge=0)
    estimate_operators: bool = option(False, "estimate the PSF and SRF from the pair with HySure's sen_resp_est "
                                      "(hsfuse.estimation.hysure) instead of using the physics' ones")
    border: Literal["circular", "pad"] = border_option()
    pad: int | None = pad_option()


class HysureState(NamedTuple):
    """ADMM variables, each ``(N, p, H, W)``: ``x`` and the splittings ``v1..v4`` with their scaled duals."""

    x: torch.Tensor
    v1: torch.Tensor
    v2: torch.Tensor
    v3: torch.Tensor
    v4: torch.Tensor
    d1: torch.Tensor
    d2: torch.Tensor
    d3: torch.Tensor
    d4: torch.Tensor


class HysureResult(NamedTuple):
    """:func:`hysure_admm`'s result: ``z = E x`` ``(N, L, H, W)``, the final state, and (when recorded) the
    objective after each iteration, ``(iterations, N)`` float64 (empty otherwise)."""

    z: torch.Tensor
    state: HysureState
    history: torch.Tensor


class _Problem(NamedTuple):
    E: torch.Tensor  # (N, L, p), working dtype
    R: torch.Tensor  # (m, L)
    hsi: torch.Tensor  # (N, L, h, w)
    msi: torch.Tensor  # (N, m, H, W)
    yyh: torch.Tensor  # (N, p, h, w): E^T Y_h on the kept pixels
    ie_inv: torch.Tensor  # (N, p, p): (E^T E + mu I)^-1
    v2_const: torch.Tensor  # (N, p, H, W): (lambda_m E^T R^T R E + mu I)^-1 lambda_m E^T R^T Y_m
    v2_mat: torch.Tensor  # (N, p, p): mu (lambda_m E^T R^T R E + mu I)^-1
    otf: torch.Tensor  # (H, W//2+1) half spectrum of the blur
    den: torch.Tensor  # (H, W//2+1): |FB|^2 + |FDh|^2 + |FDv|^2 + 1
    ratio: int
    offset: int
    lambda_phi: float
    lambda_m: float
    mu: float


def _channels(mat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(N, a, b) @ (N, b, H, W) -> (N, a, H, W)``: a per-pixel matrix product over the channels."""
    n, b = x.shape[:2]
    return torch.bmm(mat, x.reshape(n, b, -1)).reshape(n, mat.shape[1], *x.shape[2:])


def _dh(x: torch.Tensor) -> torch.Tensor:
    return x - torch.roll(x, -1, dims=-1)  # x[i, j] - x[i, j+1], circular (data_fusion.m's dh filter)


def _dv(x: torch.Tensor) -> torch.Tensor:
    return x - torch.roll(x, -1, dims=-2)


def _dh_t(v: torch.Tensor) -> torch.Tensor:
    return v - torch.roll(v, 1, dims=-1)


def _dv_t(v: torch.Tensor) -> torch.Tensor:
    return v - torch.roll(v, 1, dims=-2)


def _setup(hsi: torch.Tensor, msi: torch.Tensor, *, basis: torch.Tensor, srf: torch.Tensor, psf: torch.Tensor,
           ratio: int, offset: int, lambda_phi: float, lambda_m: float, mu: float) -> _Problem:
    n_img, bands, h, w = hsi.shape
    H, W = msi.shape[-2:]
    device = hsi.device
    rdt = torch.float64 if hsi.dtype == torch.float64 else torch.float32
    f64: dict = dict(dtype=torch.float64, device=device)
    E = batched_basis(basis, n_img, device=device)
    p = E.shape[-1]
    R = srf.to(**f64)
    eye = torch.eye(p, **f64)
    RE = R @ E
    ie_inv = torch.linalg.inv(E.transpose(1, 2) @ E + mu * eye)
    ire_inv = torch.linalg.inv(lambda_m * RE.transpose(1, 2) @ RE + mu * eye)
    hsi_w, msi_w = hsi.to(rdt), msi.to(rdt)
    yyh = _channels(E.transpose(1, 2).to(rdt).contiguous(), hsi_w)
    v2_const = _channels((lambda_m * ire_inv @ RE.transpose(1, 2)).to(rdt).contiguous(), msi_w)
    otf = shifted_otf(psf, (H, W), offset=0, dtype=rdt, device=device)
    wc = W // 2 + 1
    fdh = 2 - 2 * torch.cos(2 * math.pi * torch.arange(wc, **f64) / W)  # |FDh|^2 on the half spectrum
    fdv = 2 - 2 * torch.cos(2 * math.pi * torch.arange(H, **f64) / H)
    den = (otf.real**2 + otf.imag**2 + (fdh[None, :] + fdv[:, None]).to(rdt) + 1)
    return _Problem(E.to(rdt).contiguous(), R.to(rdt), hsi_w, msi_w, yyh, ie_inv.to(rdt), v2_const,
                    (mu * ire_inv).to(rdt), otf, den, int(ratio), int(offset), float(lambda_phi),
                    float(lambda_m), float(mu))


def _objective_terms(pb: _Problem, x: torch.Tensor, xb: torch.Tensor, dhx: torch.Tensor,
                     dvx: torch.Tensor) -> torch.Tensor:
    r, o = pb.ratio, pb.offset
    res_h = pb.hsi - _channels(pb.E, xb[..., o::r, o::r].contiguous())
    res_m = pb.msi - _channels((pb.R @ pb.E).contiguous(), x)
    tv = torch.sqrt((dhx.double() ** 2 + dvx.double() ** 2).sum(dim=1)).sum(dim=(-2, -1))
    data_h = res_h.double().pow(2).sum(dim=(1, 2, 3))
    data_m = res_m.double().pow(2).sum(dim=(1, 2, 3))
    return 0.5 * data_h + 0.5 * pb.lambda_m * data_m + pb.lambda_phi * tv


def _step(pb: _Problem, s: HysureState, *, record: bool) -> tuple[HysureState, torch.Tensor | None]:
    H, W = s.x.shape[-2:]
    r, o = pb.ratio, pb.offset
    # X step: the FFT-diagonalised least squares over the four splittings
    rest = (s.v2 + s.d2) + _dh_t(s.v3 + s.d3) + _dv_t(s.v4 + s.d4)
    spec = (torch.fft.rfft2(s.v1 + s.d1) * pb.otf.conj() + torch.fft.rfft2(rest)) / pb.den
    x = torch.fft.irfft2(spec, s=(H, W))
    xb = torch.fft.irfft2(spec * pb.otf, s=(H, W))
    # V1: HSI data term on the kept pixels, identity elsewhere
    nu1 = xb - s.d1
    v1 = nu1.clone()
    v1[..., o::r, o::r] = _channels(pb.ie_inv, pb.yyh + pb.mu * nu1[..., o::r, o::r].contiguous())
    # V2: MSI data term
    nu2 = x - s.d2
    v2 = pb.v2_const + _channels(pb.v2_mat, nu2)
    # V3, V4: vector soft thresholding (isotropic across both directions and all channels)
    dhx, dvx = _dh(x), _dv(x)
    nu3, nu4 = dhx - s.d3, dvx - s.d4
    tau = pb.lambda_phi / pb.mu
    norm = torch.sqrt((nu3 * nu3 + nu4 * nu4).sum(dim=1, keepdim=True))
    a = (norm - tau).clamp_min(0)
    shrink = a / (a + tau) if tau > 0 else torch.ones_like(a)
    v3, v4 = shrink * nu3, shrink * nu4
    state = HysureState(x, v1, v2, v3, v4, v1 - nu1, v2 - nu2, v3 - nu3, v4 - nu4)
    return state, (_objective_terms(pb, x, xb, dhx, dvx) if record else None)


def hysure_objective(
    x: torch.Tensor,
    hsi: torch.Tensor,
    msi: torch.Tensor,
    *,
    basis: torch.Tensor,
    srf: torch.Tensor,
    psf: torch.Tensor,
    ratio: int,
    offset: int,
    lambda_phi: float,
    lambda_m: float,
) -> torch.Tensor:
    """HySure's objective (module docstring) at coefficients ``x`` ``(N, p, H, W)``, per image, float64 ``(N,)``.

    ``1/2 ||Y_h - E X B M||^2 + lambda_m/2 ||Y_m - R E X||^2 + lambda_phi VTV(X)`` with the circular blur by
    ``psf`` and the decimation ``(ratio, offset)``; computed in ``x``'s working dtype, summed in float64.
    """
    pb = _setup(hsi.to(x.dtype), msi.to(x.dtype), basis=basis, srf=srf, psf=psf, ratio=ratio, offset=offset,
                lambda_phi=lambda_phi, lambda_m=lambda_m, mu=1.0)
    xb = torch.fft.irfft2(torch.fft.rfft2(x) * pb.otf, s=x.shape[-2:])
    return _objective_terms(pb, x, xb, _dh(x), _dv(x))


def hysure_admm(
    hsi: torch.Tensor,
    msi: torch.Tensor,
    *,
    basis: torch.Tensor,
    srf: torch.Tensor,
    psf: torch.Tensor,
    ratio: int,
    offset: int,
    lambda_phi: float = 5e-4,
    lambda_m: float = 1.0,
    mu: float = HYSURE_MU,
    iterations: int = HYSURE_ITERATIONS,
    init: HysureState | None = None,
    record: bool = False,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> HysureResult:
    """Run HySure's ADMM (module docstring) on a batch; the low-level solver behind :func:`fuse_hysure`.

    Args:
        hsi: ``(N, L, h, w)``; msi: ``(N, m, r h, r w)`` (same device). float64 inputs run in float64, others
            in float32.
        basis: ``(L, p)`` or ``(N, L, p)`` subspace basis ``E`` (any full-rank basis; ``E^T E`` is used).
        srf: ``(m, L)``. psf: ``(k, k)``, centre ``k // 2``, applied circularly. ratio, offset: decimation.
        lambda_phi, lambda_m, mu, iterations: as in :class:`HysureOptions`.
        init: start from this state (default: all zeros, as ``data_fusion.m``).
        record: evaluate the objective at each iterate ``X`` (costs one extra channel product per iteration).
        progress: ``progress(done, total)`` after every iteration.

    Inputs are not re-validated here (the public method does that).
    """
    pb = _setup(hsi, msi, basis=basis, srf=srf, psf=psf, ratio=ratio, offset=offset, lambda_phi=lambda_phi,
                lambda_m=lambda_m, mu=mu)
    n_img = hsi.shape[0]
    p = pb.E.shape[-1]
    H, W = msi.shape[-2:]
    if init is None:
        zero = torch.zeros(n_img, p, H, W, dtype=pb.otf.real.dtype, device=hsi.device)
        state = HysureState(*([zero] * 9))
    else:
        state = HysureState(*(t.to(dtype=pb.otf.real.dtype, device=hsi.device) for t in init))
    report = reporter(progress)
    history = []
    for i in range(iterations):
        state, obj = _step(pb, state, record=record)
        if obj is not None:
            history.append(obj)
        report(i + 1, iterations)
    hist = torch.stack(history) if history else torch.zeros(0, n_img, dtype=torch.float64)
    return HysureResult(_channels(pb.E, state.x), state, hist)


#: data_fusion.m: VCA runs, of which the largest-volume endmember set is kept
VCA_RUNS = 20


def vca_basis(hsi: torch.Tensor, p: int, *, seed: int = 0, runs: int = VCA_RUNS) -> torch.Tensor:
    """HySure's VCA basis ``(N, L, p)``: per image, of ``runs`` VCA runs (``SNR = 0``: SVD projection) on its pixels,
    the endmembers ``E`` with the largest ``|det(E^T E)|`` (``data_fusion.m``; the first on ties). One generator
    seeded with ``seed`` draws all runs' directions in order (MATLAB: the global ``rand`` stream)."""
    n_img, bands, h, w = hsi.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for n in range(n_img):
        pixels = hsi[n].reshape(bands, h * w).to(torch.float64)
        best, best_vol = None, -1.0
        for _ in range(runs):
            e = vca(pixels, p, generator=gen, snr_db=0.0).endmembers[0]
            vol = abs(float(torch.linalg.det(e.T @ e)))
            if vol > best_vol:
                best, best_vol = e, vol
        out.append(best)
    return torch.stack(out)


def fuse_hysure(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    subspace_dim: int = 10,
    lambda_phi: float = 5e-4,
    lambda_m: float = 1.0,
    mu: float = HYSURE_MU,
    iterations: int = HYSURE_ITERATIONS,
    basis: Literal["svd", "vca"] = "svd",
    seed: int = 0,
    estimate_operators: bool = False,
    border: Border = "circular",
    pad: int | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> torch.Tensor:
    """HySure (Simoes et al., IEEE TGRS 53(6), 2015): vector-TV-regularised subspace fusion by ADMM.

    ``Z = E X``, ``X = argmin 1/2 ||Y_h - E X B M||^2 + lambda_m/2 ||Y_m - R E X||^2 + lambda_phi VTV(X)``,
    solved with ``data_fusion.m``'s ADMM (module docstring: equations, defaults, deviations). ``E`` spans the
    top ``subspace_dim`` left singular vectors of the uncentred LR HSI pixels.

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: ratio and decimation offset; with ``estimate_operators=False`` also the PSF (one ``(k, k)``
            kernel for all bands) and the SRF, and its boundary must be circular.
        subspace_dim: ``p`` (clipped to ``L`` and to the number of LR pixels).
        lambda_phi: vector-TV weight (``>= 0``), in the data's units (demo: ``5e-4`` for data with maximum 1).
        lambda_m: MSI term weight (``> 0``). mu: ADMM penalty (``> 0``). iterations: ADMM iterations.
        basis: ``"svd"`` (default, orthonormal) or ``"vca"``: ``data_fusion.m``'s VCA branch, the largest
            ``|det(E^T E)|`` of 20 runs of :func:`hsfuse.methods.vca.vca` with ``SNR = 0`` on the LR pixels (per
            image), the endmembers themselves as ``E`` (not orthonormal). seed: the VCA runs' seed.
        estimate_operators: take the PSF and SRF from :func:`hsfuse.estimation.hysure.estimate_hysure` (per
            image) instead of ``physics``.
        border, pad: ``"circular"`` (the ADMM's periodic model as is; circular physics) or ``"pad"``: the problem
            solved on a smooth periodic extension by ``pad`` LR pixels, zero-filled borders renormalised, cropped
            back (:mod:`hsfuse.methods.borders`; any boundary; not with ``estimate_operators``).
        progress: ``progress(done, total)`` after every iteration (runtime argument).

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (float64 inputs computed in float64, others in
        float32).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
        >>> obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0)),
        ...                         SpectralResponse(torch.rand(3, 8), normalize="sum"))
        >>> tuple(fuse_hysure(obs.A(torch.rand(1, 8, 12, 16)), obs, subspace_dim=4, iterations=5).shape)
        (1, 8, 12, 16)
    """
    hsi, msi = physics.measurement_tensors(y, same_dtype=True)
    subspace_dim = check_positive_int(subspace_dim, "subspace_dim")
    iterations = check_positive_int(iterations, "iterations")
    lambda_phi = check_weight(lambda_phi, "lambda_phi", allow_zero=True)
    lambda_m = check_weight(lambda_m, "lambda_m", allow_zero=False)
    mu = check_weight(mu, "mu", allow_zero=False)
    if not isinstance(estimate_operators, bool):
        raise InputError(f"estimate_operators must be True or False, got {estimate_operators!r}")
    n_img, bands, h, w = hsi.shape
    H, W = msi.shape[-2:]
    spatial = physics.spatial
    r, o = physics.ratio, spatial.offset
    seed = check_positive_int(seed, "seed", minimum=0)
    if basis not in ("svd", "vca"):
        raise InputError(f"basis must be 'svd' or 'vca', got {basis!r}")
    if border == "pad":
        if estimate_operators:
            raise InputError("border='pad' needs the physics' PSF and SRF; it cannot be combined with "
                             "estimate_operators=True")
        return solve_with_border(fuse_hysure, y, physics, border="pad", pad=pad, who="HySure's ADMM",
                                 subspace_dim=subspace_dim, lambda_phi=lambda_phi, lambda_m=lambda_m, mu=mu,
                                 iterations=iterations, basis=basis, seed=seed, progress=progress)
    if not estimate_operators:  # refuse the physics before the (VCA: 20-run) basis
        check_border_option(border, pad, spatial.boundary, who="HySure's ADMM (the FFT diagonalises blur and "
                            "differences; or pass estimate_operators=True to apply the periodic model with estimated "
                            "operators)")
        psf = shared_psf(spatial.psf, (H, W), who="HySure")
    dim = min(subspace_dim, bands, h * w)
    E = (pca_subspace(hsi.to(torch.float64), dim=dim) if basis == "svd"
         else vca_basis(hsi.to(torch.float64), dim, seed=seed))
    common = dict(ratio=r, offset=o, lambda_phi=lambda_phi, lambda_m=lambda_m, mu=mu, iterations=iterations)
    if estimate_operators:
        from ..estimation.hysure import estimate_hysure

        out = []
        report = reporter(progress)
        for n in range(n_img):  # per image: the estimate is a property of each pair
            est = estimate_hysure(FusionMeasurement(hsi[n : n + 1].to(torch.float64), msi[n : n + 1].to(torch.float64)),
                                  ratio=r, offset=o, subspace_dim=E.shape[-1])
            if est.psf.shape[-1] > min(H, W):
                raise InputError(f"the estimated {est.psf.shape[-1]}x{est.psf.shape[-1]} PSF is larger than the "
                                 f"{H}x{W} image")

            def done(i: int, total: int, *, info: str = "", n: int = n) -> None:
                report(n * iterations + i, n_img * iterations)

            out.append(hysure_admm(hsi[n : n + 1], msi[n : n + 1], basis=E[n], srf=est.srf, psf=est.psf,
                                   progress=done if progress is not None else None, **common).z)
        return torch.cat(out).to(hsi.dtype)
    z = hysure_admm(hsi, msi, basis=E, srf=physics.spectral.matrix.detach(), psf=psf, progress=progress,
                    **common).z
    return z.to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Fit: the subspace, from the uncentred correlation of the LR pixels streamed exactly (as FUSE's). Apply: the ADMM on
# each tile (core plus a halo of HYSURE_HALO_PSF PSF widths, at least HYSURE_MIN_HALO LR pixels, wrapping across the
# image border as the periodic model does), keeping the core. Not exact: the total variation couples pixels over the
# whole image, which a tile sees only within its halo; measured within 0.05 dB of the whole image
# (tests/test_hysure_method.py). The operators must be known (estimate_operators needs the whole pair: estimate
# with 'hsfuse estimate' and pass the physics).

HYSURE_HALO_PSF, HYSURE_MIN_HALO = 4, 8


def _halo(ratio: int, physics: FusionObservation, options: HysureOptions) -> int:
    return max(HYSURE_MIN_HALO, -(-HYSURE_HALO_PSF * physics.spatial.psf.shape[-1] // ratio))


def _pass(tile: Any, physics: FusionObservation, options: HysureOptions, state: dict) -> dict:
    hs = select(tile.lr_core(tile.hsi.to(torch.float64))[0].flatten(1), tile.valid_lr_core())
    return {"n": torch.tensor(float(hs.shape[1]), dtype=torch.float64), "gram": hs @ hs.T}


def _finish(t: dict, physics: FusionObservation, options: HysureOptions, state: dict) -> dict:
    if options.estimate_operators:
        raise InputError("HySure with estimate_operators=true needs the whole pair; on a chunked scene estimate the "
                         "operators first ('hsfuse estimate') and pass them as the physics")
    if options.basis != "svd":
        raise InputError("HySure with basis='vca' needs the whole image's pixels at once; on a chunked scene use "
                         "basis='svd' (streamed exactly)")
    if physics.spatial.boundary != "circular" or physics.spatial.psf.ndim != 2 or options.border != "circular":
        raise InputError("HySure's chunked plan needs a circular boundary (border='circular') and one (k, k) PSF "
                         "shared by all bands; run border='pad' on the whole image")
    dim = min(check_positive_int(options.subspace_dim, "subspace_dim"), t["gram"].shape[0], int(t["n"]))
    return {**state, "basis": subspace_from_correlation(t["gram"] / t["n"], dim)}


def _apply(tile: Any, physics: FusionObservation, options: HysureOptions, state: dict) -> torch.Tensor:
    z = hysure_admm(tile.hsi, tile.msi.to(tile.hsi.dtype), basis=state["basis"].to(tile.hsi.dtype),
                    srf=physics.spectral.matrix.detach(), psf=physics.spatial.psf.detach(), ratio=physics.ratio,
                    offset=physics.spatial.offset, lambda_phi=float(options.lambda_phi),
                    lambda_m=float(options.lambda_m), mu=float(options.mu), iterations=int(options.iterations)).z
    return tile.hr_core(z)


#: chunked plan: the subspace streamed exactly, then overlap-and-discard tiles of the ADMM (not exact)
HYSURE_CHUNKED = Chunked(passes=(StatsPass(halo=lambda r, physics, options: 0, partial=_pass, finish=_finish),),
                         apply_halo=_halo, apply=_apply, exact=False, working_set=24.0,
                         apply_wrap=lambda physics, options: True)
