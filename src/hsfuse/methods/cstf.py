"""CSTF: coupled sparse tensor factorisation of the HR HSI (a sparse Tucker core and three dictionaries).

Li, Dian, Fang, Bioucas-Dias, "Fusing hyperspectral and multispectral images via coupled sparse tensor
factorization", IEEE TIP 27(8), 2018; code ``renweidian/CSTF`` (``CSTF_FUS.m``, ``sparse_tucker2.m``,
``DIC_CG1.m``, ``DIC_CG.m``, ``vca.m``, ``functions/PTx.m``, ``functions/PTPx.m``, ``demo.m``). The steps below
follow ``CSTF_FUS.m``; re-derived, not copied.

Model. The HR HSI is a Tucker tensor ``Z = C x1 D1 x2 D2 x3 D3`` (``Z``: ``H x W x L``, rows, columns, bands;
``D1``: ``H x n_r`` and ``D2``: ``W x n_c`` spatial dictionaries, ``D3``: ``L x n_s`` spectral dictionary,
``C``: ``n_r x n_c x n_s`` sparse core). The blur is separable, ``B = B_c (x) B_r`` (1-D circular blurs along
the rows and the columns), so the LR HSI and the MSI are Tucker tensors with degraded dictionaries::

    Y_h = C x1 (P1 D1) x2 (P2 D2) x3 D3          P_k = keep the entries o::r of the circular 1-D blur
    Y_m = C x1 D1 x2 D2 x3 (R D3)                R = SRF (m x L)

(``P_k D = (ifft(fft(D) * otf_k))[o::r]``, ``otf_k`` the 1-D OTF of the kernel along that axis). Proximal
alternating minimisation of ``||Y_h - ...||^2 + ||Y_m - ...||^2 + lambda ||C||_1``, with a proximal weight
``mu1`` (``mu = 0.001`` in ``CSTF_FUS.m``) pulling each block to its previous value:

1. **Start.** ``D1`` = top ``n_r`` left singular vectors of the MSI's mode-1 unfolding (``svds`` of the Gram
   ``M_(1) M_(1)^T``), ``D2`` likewise from the mode-2 unfolding, ``D3`` = VCA of the LR HSI pixels with
   ``n_s`` endmembers; ``C`` = the core step below with ``C_prev = 0``.
2. **Core step** (``sparse_tucker2.m``): ADMM on ``S1 = C``, ``S2 = C`` with penalty ``rho`` (0.01, hard-coded)
   and scaled duals ``V1, V2``, starting from ``C = V1 = V2 = 0`` (not from ``C_prev``)::

       S1 = (A^T A + rho I)^-1 (A^T y_h + rho (C - V1))     A = P1 D1 (x) P2 D2 (x) D3 (Kronecker form)
       S2 = (B^T B + rho I)^-1 (B^T y_m + rho (C - V2))     B = D1 (x) D2 (x) R D3
       C  = soft( (rho (S1 + V1 + S2 + V2) + mu1 C_prev) / (2 rho + mu1),  lambda / (4 rho + 2 mu1) )
       V1 = V1 + S1 - C;   V2 = V2 + S2 - C

   60 iterations (hard-coded). The inverses are diagonal in the eigenbases ``Q_k`` of the factors' Grams
   (``D_k^T D_k = Q_k diag(s_k) Q_k^T``): ``(A^T A + rho I)^-1 T = ((T x_k Q_k^T) ./ (s_1 o s_2 o s_3 + rho))
   x_k Q_k``. The threshold ``lambda / (4 rho + 2 mu1)`` is the code's (half the ``lambda / (2 rho + mu1)`` of
   the splitting above: the code's ``lambda`` weighs ``||C||_1`` against ``2x`` the quadratic terms).
3. **Dictionary steps** (``DIC_CG1.m`` for ``D1``, ``D2``; ``DIC_CG.m`` for ``D3``), in this order, each using
   the others' newest values: ``D`` minimises the two data terms plus ``mu1 ||D - D_prev||^2``. With the
   mode-``k`` unfoldings ``Y = Y_m(k)``, ``Z = Y_h(k)`` (spatial; spectral: ``Y = Y_h(3)``, ``Z = Y_m(3)``) and
   ``G`` (coefficients on the side without the degradation of mode ``k``), ``F`` (on the side with it), e.g.
   ``G = (C x2 D2 x3 R D3)_(1)``, ``F = (C x2 P2 D2 x3 D3)_(1)`` for ``D1``, the normal equations are::

       D (G G^T + mu1 I) + P^T P D (F F^T) = P^T Z F^T + mu1 D_prev + Y G^T

   (``P = P_k`` for a spatial mode, ``P = R`` for the spectral one), solved by 30 conjugate-gradient
   iterations (hard-coded) from ``D_prev``.
4. **Core step** again with ``C_prev`` = the current core; steps 3-4 are repeated 3 times (``for i = 1:3``).

Output ``Z = C x1 D1 x2 D2 x3 D3``, not clipped. Defaults are ``demo.m``'s: ``par.W = 240`` (``n_r``),
``par.H = 240`` (``n_c``), ``par.S = 9`` (``n_s``), ``par.lambda = 1e-5``, on data scaled to a maximum of 1
(nothing is rescaled here: ``lambda`` refers to the data's units). ``par.W`` is the mode-1 (row) dictionary:
the code calls the first mode "width".

Implementation: batched torch (every image has its own dictionaries and core; a batch equals its images one by
one), float32 (float64 for float64 inputs); the eigen-decompositions run in float64. Tensors are held as
``(N, H, W, L)`` internally; unfoldings use one column order for both sides of every product, so they are the
same matrices as MATLAB's up to a permutation of columns, which no product here depends on.

Deviations from ``CSTF_FUS.m``, all deliberate:

* **VCA.** CSTF's ``vca.m`` is the CNMF toolbox's copy (SNR estimate ``|10 log10(.)|``, threshold
  ``15 + 10 ln p + 8`` dB, projective projection when the SNR is above it), i.e. :func:`hsfuse.methods.vca.vca`
  with ``variant="cnmf"``; the random directions come from a ``torch.Generator`` seeded with ``seed`` for each
  image (MATLAB's global ``rand`` in the original), so ``D3`` and the output differ from a MATLAB run; they are
  reproducible given ``seed``. The subspaces use ``eigh`` instead of ``svds``.
* **Spatial dictionaries**: ``eigh`` of the Gram (:func:`hsfuse.methods.subspace.subspace_from_correlation`,
  deterministic signs) instead of ``svds``; the result does not depend on the atoms' signs.
* **Atom counts** are clipped to the image's sizes (``n_r <= H``, ``n_c <= W``, ``n_s <= L``): ``svds`` cannot
  return more singular vectors than the matrix has rows.
* **Blur and decimation** come from ``physics``: its ``(k, k)`` PSF must be separable (rank one up to
  :data:`SEPARABLE_TOLERANCE` relative to its largest singular value); the 1-D kernels along rows and columns
  are the outer-product factors from its SVD (signs making them sum positive, each scaled by ``sqrt(sigma_1)``),
  centred at ``k // 2`` like ``psf2otf``; the phase ``s0 = offset + 1`` (the demo: an 8-tap box and
  ``s0 = r / 2``, i.e. hsfuse's default ``offset = (r - 1) // 2`` for even ``r``). The boundary must be circular.
* ``P^T Z F^T`` is computed as ``P^T (Z F^T)`` (the same matrix; ``PTx`` applied to fewer columns).
* **Conjugate gradient**: when a residual is exactly zero (converged) the iterate stops moving (the code would
  divide 0 by 0).
* The code's per-iteration RMSE against the reference (an input it needs, ``S``) is not computed.

Numerical sensitivity (of the original, kept): with dictionaries nearly as large as the image (the default on
small images, where the atoms are clipped to ``H`` and ``W``) the 30 fixed CG steps run on systems of condition
~1e5 and amplify rounding: on the tests' 12 x 8 problem a 1e-14 relative change of the input moves the output
by ~3e-5 relative. Runs that differ only in rounding (float32 / float64, another BLAS, MATLAB / Octave) therefore
do not agree to machine precision (on Pavia: up to 0.06 on single pixels of data with maximum 1), although every
step is the same (the tests compare each step with a NumPy transcription
of the MATLAB to 1e-9, and the whole loop with small dictionaries to 1e-7). On the Pavia r = 4 case with the same
``D3``, Octave's run of ``CSTF_FUS.m`` matches hsfuse after the first core step to 2e-13 and ends 54.8 dB
PSNR apart from it (41.79 vs 41.94 dB against the reference).

Limits: circular boundary (``border="pad"`` solves other boundaries on a periodic extension,
:mod:`hsfuse.methods.borders`), one separable PSF shared by all bands (all checked).
"""

from __future__ import annotations

import dataclasses
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
from .chunking import Chunked, StatsPass
from .options import MethodOptions, border_option, option, pad_option
from .subspace import subspace_from_correlation
from .sylvester import shared_psf
from .vca import vca

__all__ = ["fuse_cstf", "cstf_fit", "initial_dictionaries", "sparse_tucker", "dictionary_cg_spatial",
           "dictionary_cg_spectral", "separable_kernels", "otf_1d", "degrade_1d", "tucker", "CstfOptions",
           "CstfResult", "CSTF_CHUNKED"]

#: values hard-coded in the original: proximal weight (CSTF_FUS.m: mu), ADMM penalty and iterations
#: (sparse_tucker2.m: mu, T), conjugate-gradient iterations (DIC_CG*.m: maxIter), outer loop (for i = 1:3)
CSTF_PROXIMAL, CSTF_PENALTY, CSTF_ADMM_ITERATIONS, CSTF_CG_ITERATIONS, CSTF_ITERATIONS = 1e-3, 1e-2, 60, 30, 3
#: a PSF is separable when its second singular value is at most this fraction of the first
SEPARABLE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class CstfOptions(MethodOptions):
    """Options of :func:`fuse_cstf` (defaults: ``demo.m`` and ``CSTF_FUS.m``)."""

    atoms_rows: int = option(240, "n_r, atoms of the row (mode-1) dictionary D1 (demo.m: par.W = 240; clipped to "
                             "the image height)", ge=1)
    atoms_cols: int = option(240, "n_c, atoms of the column (mode-2) dictionary D2 (demo.m: par.H = 240; clipped to "
                             "the image width)", ge=1)
    atoms_spectral: int = option(9, "n_s, atoms of the spectral dictionary D3 = VCA endmembers (demo.m: par.S = 9; "
                                 "clipped to the band count)", ge=1)
    lam: float = option(1e-5, "lambda, weight of the L1 norm of the core (demo.m: par.lambda = 1e-5, data with "
                        "maximum 1; >= 0)", ge=0)
    proximal: float = option(CSTF_PROXIMAL, "mu1, proximal weight towards the previous core and dictionaries "
                             "(hard-coded 1e-3; > 0)", gt=0)
    penalty: float = option(CSTF_PENALTY, "rho, penalty of the core step's ADMM (hard-coded 0.01; > 0)", gt=0)
    admm_iterations: int = option(CSTF_ADMM_ITERATIONS, "ADMM iterations of each core step (hard-coded 60)", ge=1)
    cg_iterations: int = option(CSTF_CG_ITERATIONS, "conjugate-gradient iterations of each dictionary step "
                                "(hard-coded 30; 0: the dictionaries stay as initialised)", ge=0)
    iterations: int = option(CSTF_ITERATIONS, "outer iterations (dictionaries then core; hard-coded 3; 0: the "
                             "initial core step only)", ge=0)
    seed: int = option(0, "seed of VCA's random directions (the same for every image of a batch)", ge=0)
    separable: Literal["require", "nearest"] = option("require", "require: refuse a PSF that is not separable (the "
                                                      "original's model); nearest: use its nearest separable "
                                                      "kernel (rank-1 SVD, e.g. for an estimated PSF)")
    border: Literal["circular", "pad"] = border_option()
    pad: int | None = pad_option()


class CstfResult(NamedTuple):
    """:func:`cstf_fit`'s result: ``z`` ``(N, L, H, W)``, the core ``(N, n_r, n_c, n_s)`` and the dictionaries
    ``d1`` ``(N, H, n_r)``, ``d2`` ``(N, W, n_c)``, ``d3`` ``(N, L, n_s)``."""

    z: torch.Tensor
    core: torch.Tensor
    d1: torch.Tensor
    d2: torch.Tensor
    d3: torch.Tensor


# --------------------------------------------------------------------------------------------- tensor algebra


def _ttm(x: torch.Tensor, u: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``mode`` product (0, 1, 2) of ``x`` ``(N, a, b, c)`` with the batched matrices ``u`` ``(N, m, .)``."""
    spec = ("nabc,nma->nmbc", "nabc,nmb->namc", "nabc,nmc->nabm")[mode]
    return torch.einsum(spec, x, u)


def tucker(core: torch.Tensor, factors: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    """``core x1 U1 x2 U2 x3 U3`` for a batch: ``core`` ``(N, a, b, c)``, ``U_k`` ``(N, d_k, .)``."""
    for k, u in enumerate(factors):
        core = _ttm(core, u, k)
    return core


def _unfold(x: torch.Tensor, mode: int) -> torch.Tensor:
    """``(N, d1, d2, d3) -> (N, d_mode, rest)``: the mode unfolding (one fixed column order per mode)."""
    return x.movedim(mode + 1, 1).reshape(x.shape[0], x.shape[mode + 1], -1)


def _soft(x: torch.Tensor, tau: float) -> torch.Tensor:
    return torch.sign(x) * (x.abs() - tau).clamp_min(0)


# --------------------------------------------------------------------------------------------- 1-D operators


def separable_kernels(psf: torch.Tensor, *, tolerance: float = SEPARABLE_TOLERANCE) -> tuple[torch.Tensor,
                                                                                            torch.Tensor]:
    """The 1-D kernels ``(a, b)`` with ``psf = outer(a, b)`` (``a`` along the rows/height, ``b`` along the
    columns/width), float64, from the SVD ``psf = sigma_1 u v^T + ...``: ``a = sqrt(sigma_1) u``,
    ``b = sqrt(sigma_1) v`` with signs making ``sum(a) >= 0``. Raises :class:`InputError` unless
    ``sigma_2 <= tolerance sigma_1``."""
    p = psf.detach().to(device="cpu", dtype=torch.float64)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise InputError(f"CSTF needs one square (k, k) PSF, got shape {tuple(psf.shape)}")
    u, s, vh = torch.linalg.svd(p)
    if s[0] <= 0:
        raise InputError("CSTF needs a non-zero PSF")
    second = float(s[1] / s[0]) if s.numel() > 1 else 0.0
    if second > tolerance:
        raise InputError(
            f"CSTF's blur is separable (a 1-D blur along the rows, then along the columns), but the physics' "
            f"{p.shape[0]}x{p.shape[0]} PSF is not (second/first singular value {second:.3g} > {tolerance:g}); use a "
            "separable PSF (e.g. an isotropic Gaussian, gaussian_psf, or a box), pass separable='nearest' to use its "
            "nearest separable kernel, or use another method (e.g. 'hysure')"
        )
    a = u[:, 0] * s[0].sqrt()
    b = vh[0] * s[0].sqrt()
    if float(a.sum()) < 0:
        a, b = -a, -b
    return a, b


def otf_1d(kernel: torch.Tensor, n: int, *, dtype: torch.dtype = torch.complex128,
           device: torch.device | str | None = None) -> torch.Tensor:
    """``(n,)`` 1-D OTF of ``kernel`` ``(k,)`` centred at ``k // 2`` (``psf2otf(kernel(:), [n 1])``)."""
    k = kernel.shape[0]
    if k > n:
        raise InputError(f"the {k}-tap blur does not fit an axis of {n} pixels")
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    pad = torch.zeros(n, dtype=real, device=device)
    pad[:k] = kernel.to(dtype=real, device=pad.device)
    return torch.fft.fft(torch.roll(pad, -(k // 2))).to(dtype)


def _blur_1d(x: torch.Tensor, otf: torch.Tensor, *, adjoint: bool = False) -> torch.Tensor:
    """Circular 1-D blur of ``x`` ``(N, n, k)`` along dim 1 (``adjoint``: with the conjugate OTF)."""
    f = otf.conj() if adjoint else otf
    return torch.fft.ifft(torch.fft.fft(x, dim=1) * f[:, None], dim=1).real


def degrade_1d(x: torch.Tensor, otf: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """``P x``: blur ``x`` ``(N, n, k)`` along dim 1 with ``otf`` and keep rows ``offset::ratio``."""
    return _blur_1d(x, otf)[:, offset::ratio]


def _degrade_adjoint(a: torch.Tensor, otf: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """``P^T a`` (``PTx.m``): ``(N, n / ratio, k) -> (N, n, k)``."""
    z = a.new_zeros(a.shape[0], otf.shape[0], a.shape[2])
    z[:, offset::ratio] = a
    return _blur_1d(z, otf, adjoint=True)


def _degrade_gram(x: torch.Tensor, otf: torch.Tensor, *, ratio: int, offset: int) -> torch.Tensor:
    """``P^T P x`` (``PTPx.m``)."""
    return _degrade_adjoint(degrade_1d(x, otf, ratio=ratio, offset=offset), otf, ratio=ratio, offset=offset)


# --------------------------------------------------------------------------------------------- core step


def _eig_solver(dicts: tuple[torch.Tensor, ...] | list[torch.Tensor], rho: float):
    """``T -> (K^T K + rho I)^-1 T`` for ``K = D1 (x) D2 (x) D3`` acting on a core ``T`` (module docstring)."""
    qs, ss = [], []
    for d in dicts:
        g = d.transpose(1, 2).to(torch.float64) @ d.to(torch.float64)
        s, q = torch.linalg.eigh(0.5 * (g + g.transpose(1, 2)))
        qs.append(q.to(d.dtype))
        ss.append(s.to(d.dtype))
    wt = ss[0][:, :, None, None] * ss[1][:, None, :, None] * ss[2][:, None, None, :] + rho
    qt = [q.transpose(1, 2) for q in qs]

    def solve(t: torch.Tensor) -> torch.Tensor:
        return tucker(tucker(t, qt) / wt, qs)

    return solve


def sparse_tucker(
    hsi: torch.Tensor,
    msi: torch.Tensor,
    lr_dicts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    hr_dicts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    lam: float,
    previous: torch.Tensor,
    proximal: float = CSTF_PROXIMAL,
    penalty: float = CSTF_PENALTY,
    iterations: int = CSTF_ADMM_ITERATIONS,
) -> torch.Tensor:
    """The core step (``sparse_tucker2.m``, module docstring step 2).

    Args:
        hsi: ``(N, h, w, L)`` LR HSI as a tensor (rows, columns, bands); msi: ``(N, H, W, m)``.
        lr_dicts: ``(P1 D1, P2 D2, D3)``; hr_dicts: ``(D1, D2, R D3)``, each ``(N, d_k, n_k)``.
        lam: L1 weight; previous: ``C_prev`` ``(N, n_r, n_c, n_s)``; proximal, penalty, iterations: ``mu1``,
            ``rho`` and the ADMM iteration count.

    Returns the core ``(N, n_r, n_c, n_s)``.
    """
    rho = float(penalty)
    solve1 = _eig_solver(lr_dicts, rho)
    solve2 = _eig_solver(hr_dicts, rho)
    b1 = solve1(tucker(hsi, [d.transpose(1, 2) for d in lr_dicts]))
    b2 = solve2(tucker(msi, [d.transpose(1, 2) for d in hr_dicts]))
    core = torch.zeros_like(b1)
    v1 = torch.zeros_like(b1)
    v2 = torch.zeros_like(b1)
    prev = previous.to(b1.dtype)
    tau = float(lam) / (4 * rho + 2 * proximal)
    for _ in range(iterations):
        s1 = b1 + solve1(rho * (core - v1))
        s2 = b2 + solve2(rho * (core - v2))
        core = _soft((rho * (s1 + v1 + s2 + v2) + proximal * prev) / (2 * rho + proximal), tau)
        v1 = v1 + (s1 - core)
        v2 = v2 + (s2 - core)
    return core


# --------------------------------------------------------------------------------------------- dictionary steps


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(1, 2), keepdim=True)


def _cg(rhs: torch.Tensor, start: torch.Tensor, apply, iterations: int) -> torch.Tensor:
    """``iterations`` conjugate-gradient steps on ``apply(E) = rhs`` from ``start`` (``DIC_CG*.m``), per image."""
    e = start
    r = rhs - apply(e)
    p = r
    rr = _dot(r, r)
    for _ in range(iterations):
        ap = apply(p)
        pap = _dot(p, ap)
        ok = (rr > 0) & (pap > 0)
        alpha = torch.where(ok, rr / torch.where(ok, pap, torch.ones_like(pap)), torch.zeros_like(pap))
        e = e + alpha * p
        r1 = r - alpha * ap
        rr1 = _dot(r1, r1)
        beta = torch.where(ok, rr1 / torch.where(ok, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = r1 + beta * p
        r, rr = r1, rr1
    return e


def dictionary_cg_spatial(y: torch.Tensor, previous: torch.Tensor, g: torch.Tensor, z: torch.Tensor,
                          f: torch.Tensor, *, otf: torch.Tensor, ratio: int, offset: int,
                          proximal: float = CSTF_PROXIMAL, iterations: int = CSTF_CG_ITERATIONS) -> torch.Tensor:
    """A spatial dictionary step (``DIC_CG1.m``): CG on
    ``D (G G^T + mu1 I) + P^T P D (F F^T) = P^T Z F^T + mu1 D_prev + Y G^T``.

    ``y`` ``(N, n, c)`` (HR unfolding), ``previous`` ``(N, n, k)``, ``g`` ``(N, k, c)``, ``z`` ``(N, n / ratio, c')``
    (LR unfolding), ``f`` ``(N, k, c')``; ``P`` = :func:`degrade_1d` with ``otf``, ``ratio``, ``offset``.
    """
    g1 = g @ g.transpose(1, 2) + proximal * torch.eye(g.shape[1], dtype=g.dtype, device=g.device)
    f1 = f @ f.transpose(1, 2)
    rhs = (_degrade_adjoint(z @ f.transpose(1, 2), otf, ratio=ratio, offset=offset) + proximal * previous
           + y @ g.transpose(1, 2))

    def apply(e: torch.Tensor) -> torch.Tensor:
        return e @ g1 + _degrade_gram(e, otf, ratio=ratio, offset=offset) @ f1

    return _cg(rhs, previous, apply, iterations)


def dictionary_cg_spectral(y: torch.Tensor, previous: torch.Tensor, g: torch.Tensor, z: torch.Tensor,
                           f: torch.Tensor, *, srf: torch.Tensor, proximal: float = CSTF_PROXIMAL,
                           iterations: int = CSTF_CG_ITERATIONS) -> torch.Tensor:
    """The spectral dictionary step (``DIC_CG.m``): CG on
    ``D (G G^T + mu1 I) + R^T R D (F F^T) = R^T Z F^T + mu1 D_prev + Y G^T``.

    ``y`` ``(N, L, c)`` (LR HSI mode-3 unfolding), ``previous`` ``(N, L, k)``, ``g`` ``(N, k, c)``, ``z``
    ``(N, m, c')`` (MSI mode-3 unfolding), ``f`` ``(N, k, c')``, ``srf`` ``(m, L)``.
    """
    srf = srf.to(dtype=y.dtype, device=y.device)
    g1 = g @ g.transpose(1, 2) + proximal * torch.eye(g.shape[1], dtype=g.dtype, device=g.device)
    f1 = f @ f.transpose(1, 2)
    rtr = srf.T @ srf
    rhs = srf.T @ (z @ f.transpose(1, 2)) + proximal * previous + y @ g.transpose(1, 2)

    def apply(e: torch.Tensor) -> torch.Tensor:
        return e @ g1 + rtr @ e @ f1

    return _cg(rhs, previous, apply, iterations)


# --------------------------------------------------------------------------------------------- the whole method


def initial_dictionaries(hsi: torch.Tensor, msi: torch.Tensor, *, atoms: tuple[int, int, int],
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 1 of the module docstring for ``hsi`` ``(N, L, h, w)`` and ``msi`` ``(N, m, H, W)``: ``D1``
    ``(N, H, n_r)``, ``D2`` ``(N, W, n_c)`` (float64, top eigenvectors of the MSI's mode-1/mode-2 Grams) and
    ``D3`` ``(N, L, n_s)`` (float64, VCA of the LR pixels, CNMF-toolbox variant, a generator seeded with
    ``seed`` for each image)."""
    n_img, bands = hsi.shape[:2]
    m = msi.to(torch.float64).permute(0, 2, 3, 1)  # (N, H, W, m)
    u1, u2 = _unfold(m, 0), _unfold(m, 1)
    d1 = subspace_from_correlation(u1 @ u1.transpose(1, 2), atoms[0])
    d2 = subspace_from_correlation(u2 @ u2.transpose(1, 2), atoms[1])
    pixels = hsi.to(torch.float64).reshape(n_img, bands, -1)
    d3 = torch.cat([vca(pixels[i], atoms[2], generator=torch.Generator().manual_seed(int(seed)),
                        variant="cnmf").endmembers for i in range(n_img)])
    return d1, d2, d3


def cstf_fit(
    hsi: torch.Tensor,
    msi: torch.Tensor,
    *,
    dictionaries: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    srf: torch.Tensor,
    kernels: tuple[torch.Tensor, torch.Tensor],
    ratio: int,
    offset: int,
    lam: float = 1e-5,
    proximal: float = CSTF_PROXIMAL,
    penalty: float = CSTF_PENALTY,
    admm_iterations: int = CSTF_ADMM_ITERATIONS,
    cg_iterations: int = CSTF_CG_ITERATIONS,
    iterations: int = CSTF_ITERATIONS,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> CstfResult:
    """Run ``CSTF_FUS.m`` from given initial dictionaries; the low-level solver behind :func:`fuse_cstf`.

    Args:
        hsi: ``(N, L, h, w)``; msi: ``(N, m, r h, r w)`` (same device). float64 inputs run in float64, others in
            float32.
        dictionaries: initial ``(D1, D2, D3)``, ``(N, H, n_r)``, ``(N, W, n_c)``, ``(N, L, n_s)``.
        srf: ``(m, L)``. kernels: the 1-D blur kernels ``(a, b)`` along rows and columns (centre ``k // 2``).
        ratio, offset: decimation. lam, proximal, penalty, admm_iterations, cg_iterations, iterations: as in
            :class:`CstfOptions`.
        progress: ``progress(done, total)`` after the initial core step and after every outer iteration.

    Inputs are not re-validated here (the public method does that).
    """
    rdt = torch.float64 if hsi.dtype == torch.float64 else torch.float32
    cdt = torch.complex128 if rdt == torch.float64 else torch.complex64
    dev = hsi.device
    x = hsi.to(rdt).permute(0, 2, 3, 1)  # (N, h, w, L)
    y = msi.to(device=dev, dtype=rdt).permute(0, 2, 3, 1)  # (N, H, W, m)
    H, W = y.shape[1:3]
    d1, d2, d3 = (d.to(device=dev, dtype=rdt) for d in dictionaries)
    n_img = x.shape[0]
    srf = srf.detach().to(device=dev, dtype=rdt)
    srf_b = srf.expand(n_img, *srf.shape)
    otf_r = otf_1d(kernels[0], H, dtype=cdt, device=dev)
    otf_c = otf_1d(kernels[1], W, dtype=cdt, device=dev)
    deg = dict(ratio=ratio, offset=offset)
    admm = dict(lam=lam, proximal=proximal, penalty=penalty, iterations=admm_iterations)
    report = reporter(progress)
    total = iterations + 1

    d1_ = degrade_1d(d1, otf_r, **deg)
    d2_ = degrade_1d(d2, otf_c, **deg)
    d3_ = srf_b @ d3
    core = torch.zeros(n_img, d1.shape[2], d2.shape[2], d3.shape[2], dtype=rdt, device=dev)
    core = sparse_tucker(x, y, (d1_, d2_, d3), (d1, d2, d3_), previous=core, **admm)
    report(1, total)
    for i in range(iterations):
        # D1: HR side C x2 D2 x3 R D3 against the MSI, LR side C x2 P2 D2 x3 D3 against the HSI
        g = _unfold(_ttm(_ttm(core, d2, 1), d3_, 2), 0)
        f = _unfold(_ttm(_ttm(core, d2_, 1), d3, 2), 0)
        d1 = dictionary_cg_spatial(_unfold(y, 0), d1, g, _unfold(x, 0), f, otf=otf_r, proximal=proximal,
                                   iterations=cg_iterations, **deg)
        d1_ = degrade_1d(d1, otf_r, **deg)
        # D2
        g = _unfold(_ttm(_ttm(core, d1, 0), d3_, 2), 1)
        f = _unfold(_ttm(_ttm(core, d1_, 0), d3, 2), 1)
        d2 = dictionary_cg_spatial(_unfold(y, 1), d2, g, _unfold(x, 1), f, otf=otf_c, proximal=proximal,
                                   iterations=cg_iterations, **deg)
        d2_ = degrade_1d(d2, otf_c, **deg)
        # D3: LR side C x1 P1 D1 x2 P2 D2 against the HSI, HR side C x1 D1 x2 D2 against the MSI
        g = _unfold(_ttm(_ttm(core, d1_, 0), d2_, 1), 2)
        f = _unfold(_ttm(_ttm(core, d1, 0), d2, 1), 2)
        d3 = dictionary_cg_spectral(_unfold(x, 2), d3, g, _unfold(y, 2), f, srf=srf, proximal=proximal,
                                    iterations=cg_iterations)
        d3_ = srf_b @ d3
        core = sparse_tucker(x, y, (d1_, d2_, d3), (d1, d2, d3_), previous=core, **admm)
        report(i + 2, total)
    z = tucker(core, [d1, d2, d3]).permute(0, 3, 1, 2)
    return CstfResult(z, core, d1, d2, d3)


def fuse_cstf(
    y: FusionMeasurement,
    physics: FusionObservation,
    *,
    atoms_rows: int = 240,
    atoms_cols: int = 240,
    atoms_spectral: int = 9,
    lam: float = 1e-5,
    proximal: float = CSTF_PROXIMAL,
    penalty: float = CSTF_PENALTY,
    admm_iterations: int = CSTF_ADMM_ITERATIONS,
    cg_iterations: int = CSTF_CG_ITERATIONS,
    iterations: int = CSTF_ITERATIONS,
    seed: int = 0,
    separable: Literal["require", "nearest"] = "require",
    border: Border = "circular",
    pad: int | None = None,
    progress: ProgressFn | ProgressWithInfo | None = None,
) -> torch.Tensor:
    """CSTF (Li, Dian, Fang, Bioucas-Dias, IEEE TIP 27(8), 2018): coupled sparse Tucker factorisation.

    ``Z = C x1 D1 x2 D2 x3 D3`` with a sparse core ``C`` and row, column and spectral dictionaries, fitted to both
    images by proximal alternating minimisation (``CSTF_FUS.m``; module docstring: equations, defaults,
    deviations).

    Args:
        y: HSI ``(N, L, h, w)`` and MSI ``(N, m, r h, r w)``.
        physics: ratio, decimation offset, a separable PSF (one ``(k, k)`` kernel for all bands) and the SRF;
            its boundary must be circular unless ``border="pad"``.
        atoms_rows, atoms_cols, atoms_spectral: dictionary sizes (clipped to ``H``, ``W``, ``L``).
        lam: L1 weight of the core (``>= 0``, data units). proximal, penalty: ``mu1`` and ``rho`` (``> 0``).
        admm_iterations, cg_iterations, iterations: inner and outer iteration counts.
        seed: VCA seed (``>= 0``).
        separable: ``"require"`` (refuse a PSF whose second singular value exceeds :data:`SEPARABLE_TOLERANCE` of the
            first) or ``"nearest"``: the best rank-1 (Frobenius) approximation of the PSF, whatever its rank (an
            estimated PSF is rarely exactly separable; the blur used then differs from the PSF by ``sigma_2 /
            sigma_1`` relative).
        border, pad: ``"circular"`` (the periodic model as is; circular physics) or ``"pad"``: the problem solved
            on a smooth periodic extension by ``pad`` LR pixels, zero-filled borders renormalised, cropped back
            (:mod:`hsfuse.methods.borders`; any boundary).
        progress: ``progress(done, total)`` after every core step (runtime argument).

    Returns:
        ``(N, L, r h, r w)`` on the input's device and dtype (float64 inputs computed in float64, others in
        float32).

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
        >>> obs = FusionObservation(SpatialDegradation(ratio=2, psf=gaussian_psf(3, fwhm=2.0)),
        ...                         SpectralResponse(torch.rand(3, 8), normalize="sum"))
        >>> z = fuse_cstf(obs.A(torch.rand(1, 8, 12, 16)), obs, atoms_spectral=4, iterations=1)
        >>> tuple(z.shape)
        (1, 8, 12, 16)
    """
    hsi, msi = physics.measurement_tensors(y, same_dtype=True)
    atoms_rows = check_positive_int(atoms_rows, "atoms_rows")
    atoms_cols = check_positive_int(atoms_cols, "atoms_cols")
    atoms_spectral = check_positive_int(atoms_spectral, "atoms_spectral")
    admm_iterations = check_positive_int(admm_iterations, "admm_iterations")
    cg_iterations = check_positive_int(cg_iterations, "cg_iterations", minimum=0)
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    seed = check_positive_int(seed, "seed", minimum=0)
    lam = check_weight(lam, "lam", allow_zero=True)
    proximal = check_weight(proximal, "proximal", allow_zero=False)
    penalty = check_weight(penalty, "penalty", allow_zero=False)
    n_img, bands, h, w = hsi.shape
    H, W = msi.shape[-2:]
    spatial = physics.spatial
    if border == "pad":
        return solve_with_border(fuse_cstf, y, physics, border="pad", pad=pad, who="CSTF", atoms_rows=atoms_rows,
                                 atoms_cols=atoms_cols, atoms_spectral=atoms_spectral, lam=lam, proximal=proximal,
                                 penalty=penalty, admm_iterations=admm_iterations, cg_iterations=cg_iterations,
                                 iterations=iterations, seed=seed, separable=separable, progress=progress)
    check_border_option(border, pad, spatial.boundary, who="CSTF's degraded dictionaries (circular 1-D blurs, FFT)")
    if separable not in ("require", "nearest"):
        raise InputError(f"separable must be 'require' or 'nearest', got {separable!r}")
    psf = shared_psf(spatial.psf, (H, W), who="CSTF")
    kernels = separable_kernels(psf, tolerance=SEPARABLE_TOLERANCE if separable == "require" else math.inf)
    dicts = initial_dictionaries(hsi, msi, atoms=(min(atoms_rows, H), min(atoms_cols, W), min(atoms_spectral, bands)),
                                 seed=seed)
    z = cstf_fit(hsi, msi, dictionaries=dicts, srf=physics.spectral.matrix.detach(), kernels=kernels,
                 ratio=physics.ratio, offset=spatial.offset, lam=lam, proximal=proximal, penalty=penalty,
                 admm_iterations=admm_iterations, cg_iterations=cg_iterations, iterations=iterations,
                 progress=progress).z
    return z.to(hsi.dtype)


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Not exact: CSTF's row and column dictionaries are as long as the image's sides and its core couples every pixel,
# so nothing of the whole-image fit streams. Each tile (core plus a halo of CSTF_HALO_PSF PSF widths, at least
# CSTF_MIN_HALO LR pixels, wrapping across the image border as the periodic model does) is fused by CSTF on its own
# (its own dictionaries and VCA endmembers, seeded with ``seed``) and its core kept ("overlap and discard"): a local
# CSTF, whose dictionaries adapt to each tile. Gap to the whole image on Pavia U (140 x 80, r = 4, defaults): +0.14 dB
# with 4 chunks, -0.01 dB with 8 (tests/test_chunked_classical.py).

CSTF_HALO_PSF, CSTF_MIN_HALO = 4, 8


def _cstf_halo(ratio: int, physics: FusionObservation, options: CstfOptions) -> int:
    return max(CSTF_MIN_HALO, -(-CSTF_HALO_PSF * physics.spatial.psf.shape[-1] // ratio))


def _cstf_check(totals: dict, physics: FusionObservation, options: CstfOptions, state: dict) -> dict:
    """The plan's one (empty) pass: refuse what the tiles cannot do before any tile runs (the apply is lazy)."""
    if options.border != "circular" or physics.spatial.boundary != "circular":
        raise InputError("CSTF's chunked plan needs circular physics (border='circular'); run border='pad' on the "
                         "whole image")
    separable_kernels(shared_psf(physics.spatial.psf, (physics.spatial.psf.shape[-1],) * 2, who="CSTF"),
                      tolerance=SEPARABLE_TOLERANCE if options.separable == "require" else math.inf)
    return state


def _cstf_apply(tile: Any, physics: FusionObservation, options: CstfOptions, state: dict) -> torch.Tensor:
    kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in ("border", "pad")}
    y = FusionMeasurement(tile.hsi, tile.msi.to(tile.hsi.dtype))
    return tile.hr_core(fuse_cstf(y, physics, **kwargs))


#: chunked plan: CSTF on overlap-and-discard tiles (each tile its own dictionaries; not exact)
CSTF_CHUNKED = Chunked(passes=(StatsPass(halo=lambda r, physics, options: 0, finish=_cstf_check,
                                         partial=lambda tile, physics, options, state: {}),),
                       apply_halo=_cstf_halo, apply=_cstf_apply, exact=False, working_set=32.0,
                       apply_wrap=lambda physics, options: True)
