"""Vertex Component Analysis (VCA) and the virtual dimensionality (HFC) endmember count.

VCA: Nascimento, Bioucas-Dias, "Vertex component analysis: a fast algorithm to unmix hyperspectral data",
IEEE TGRS 43(4), 898-910, 2005; the algorithm of the authors' ``VCA.m`` (v2.1), re-derived, not copied.
With ``R`` the ``L x n`` pixels (columns) and ``p`` the number of endmembers:

1. **SNR estimate.** ``r_m`` = mean pixel, ``R_o = R - r_m``, ``U_d`` = top ``p`` eigenvectors of
   ``R_o R_o^T / n``, ``x_p = U_d^T R_o``; ``P_y = ||R||^2 / n``, ``P_x = ||x_p||^2 / n + r_m^T r_m``;
   ``SNR = 10 log10((P_x - p/L P_y) / (P_y - P_x))``.
2. **Projection.** If ``SNR`` is above the threshold (``15 + 10 log10 p`` dB in ``VCA.m``): *projective
   projection*: ``U_d`` = top ``p`` eigenvectors of ``R R^T / n`` (uncentred), ``X = U_d^T R``,
   ``u = mean(X)``, ``Y = X ./ (u^T X)`` (each pixel scaled onto the hyperplane ``u^T y = 1``); the
   signatures are ``U_d X[:, idx]``. Otherwise *SVD (PCA) projection*: ``d = p - 1`` top eigenvectors of
   the centred covariance, ``X = U_d^T R_o``, ``c = max_j ||x_j||``, ``Y = [X; c 1^T]``; signatures
   ``U_d X[:, idx] + r_m``.
3. **Selection.** ``A = [e_p, 0, ..., 0]`` (``p x p``); for ``i = 1..p``: ``w ~ U(0, 1)^p``,
   ``f = (I - A A^+) w / ||.||`` (a random direction orthogonal to the endmembers found so far),
   ``idx_i = argmax_j |f^T y_j|``, ``A[:, i] = y_{idx_i}``.

``variant="cnmf"`` is the copy shipped with Yokoya's CNMF toolbox (``methods/CNMF/vca.m`` of
hif-benchmarking), which differs only in the SNR rule: ``SNR = |10 log10(.)|`` (MATLAB's ``abs`` of a possibly
complex logarithm) and the threshold ``15 + 10 ln p + 8`` dB (natural logarithm, plus 8 dB), above which the
projective projection is used. Everything else (including the signatures) is the same.

Deviations: the random directions come from a seeded ``torch.Generator`` (uniform, float64), not MATLAB's
global ``rand``, so the selected pixels match MATLAB's only in distribution; the eigenvectors are those of
``eigh`` with a fixed sign convention (:func:`hsfuse.methods.subspace.subspace_from_correlation`) instead of
``svds``; an exactly noise-free image (``P_y = P_x``) gives ``SNR = +inf`` (MATLAB: ``Inf`` too, from ``x / 0``).

VD: the Harsanyi-Farrand-Chang (HFC) virtual dimensionality of the CNMF toolbox's ``vd.m`` (Chang and Du,
IEEE TGRS 42, 2004): with ``lambda_r`` / ``lambda_k`` the descending eigenvalues of the correlation
``R R^T / n`` and of the covariance (``cov``, normalised by ``n - 1``), the count is the number of
``lambda_r - lambda_k > sigma z_{1-alpha}`` with ``sigma = sqrt(2 (lambda_r^2 + lambda_k^2) / n)``
(Neyman-Pearson test at false-alarm rate ``alpha``). CNMF uses ``alpha = 5e-2``. This is VD (HFC), not HySime.
"""

from __future__ import annotations

import math
import statistics
from typing import Literal, NamedTuple

import torch

from .._checks import check_positive_int
from ..errors import InputError
from .subspace import subspace_from_correlation

__all__ = ["vca", "VcaResult", "virtual_dimensionality", "vca_snr_threshold"]

VcaVariant = Literal["original", "cnmf"]


class VcaResult(NamedTuple):
    """:func:`vca`'s result: ``indices`` ``(N, p)`` long (pixel columns), ``endmembers`` ``(N, L, p)`` float64
    (the signatures, from the projected data as in ``VCA.m``), ``snr_db`` ``(N,)`` float64 (the SNR estimate),
    ``projective`` ``(N,)`` bool (which projection was used)."""

    indices: torch.Tensor
    endmembers: torch.Tensor
    snr_db: torch.Tensor
    projective: torch.Tensor


def vca_snr_threshold(p: int, variant: VcaVariant = "original") -> float:
    """The SNR (dB) above which VCA uses the projective projection: ``15 + 10 log10 p`` (``VCA.m``) or
    ``15 + 10 ln p + 8`` (the CNMF toolbox's ``vca.m``)."""
    if variant == "original":
        return 15.0 + 10.0 * math.log10(p)
    if variant == "cnmf":
        return 15.0 + 10.0 * math.log(p) + 8.0
    raise InputError(f"VCA variant must be 'original' or 'cnmf', got {variant!r}")


def _snr(r: torch.Tensor, p: int, variant: VcaVariant) -> float:
    """The SNR estimate of step 1 for one image ``r`` ``(L, n)`` float64, with MATLAB's semantics."""
    bands, n = r.shape
    r_m = r.mean(dim=1, keepdim=True)
    r_o = r - r_m
    ud = subspace_from_correlation(r_o @ r_o.T / n, p)
    x_p = ud.T @ r_o
    p_y = float((r * r).sum()) / n
    p_x = float((x_p * x_p).sum()) / n + float((r_m * r_m).sum())
    num, den = p_x - p / bands * p_y, p_y - p_x
    if den == 0:
        ratio = math.copysign(math.inf, num) if num != 0 else math.nan
    else:
        ratio = num / den
    if math.isnan(ratio):
        return math.nan
    if ratio == 0:
        return -math.inf if variant == "original" else math.inf
    real = 10.0 * math.log10(abs(ratio))  # MATLAB: log10 of a negative number is complex, with this real part
    if variant == "original" or ratio > 0:
        return abs(real) if variant == "cnmf" else real
    return math.hypot(real, 10.0 * math.pi / math.log(10.0))  # abs() of the complex logarithm


def vca(
    pixels: torch.Tensor,
    p: int,
    *,
    generator: torch.Generator | None = None,
    seed: int = 0,
    variant: VcaVariant = "original",
    snr_db: float | None = None,
) -> VcaResult:
    """Vertex Component Analysis (module docstring) of ``pixels`` ``(L, n)`` or ``(N, L, n)`` (columns = pixels).

    Args:
        pixels: the data, float (computed in float64 on its device).
        p: number of endmembers, ``1 <= p <= L``.
        generator: the random directions' generator (CPU or the data's device); default: a new one seeded
            with ``seed``. The result is a deterministic function of the data and the generator's state.
        seed: seed of the default generator.
        variant: ``"original"`` (``VCA.m``) or ``"cnmf"`` (the CNMF toolbox's SNR rule).
        snr_db: use this SNR instead of the estimate (``VCA.m``'s ``'SNR'`` option; HySure's ``data_fusion.m``
            passes 0, which selects the SVD projection).

    Returns:
        :class:`VcaResult` (batched; an ``(L, n)`` input gets ``N = 1``).

    Example:
        >>> e = torch.rand(5, 3); a = torch.distributions.Dirichlet(torch.ones(3)).sample((50,)).T
        >>> res = vca(torch.cat([e, e @ a], dim=1), 3)
        >>> sorted(res.indices[0].tolist())
        [0, 1, 2]
    """
    if not isinstance(pixels, torch.Tensor) or pixels.ndim not in (2, 3) or not pixels.is_floating_point():
        raise InputError("VCA needs a float tensor of pixels (L, n) or (N, L, n)")
    r_all = pixels.to(torch.float64)
    if r_all.ndim == 2:
        r_all = r_all[None]
    n_img, bands, n = r_all.shape
    p = check_positive_int(p, "number of endmembers")
    if p > bands:
        raise InputError(f"VCA can find at most L = {bands} endmembers, got p = {p}")
    if n < 1:
        raise InputError("VCA needs at least one pixel")
    if not bool(torch.isfinite(r_all).all()):
        raise InputError("VCA input contains NaN or infinite values")
    threshold = vca_snr_threshold(p, variant)
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(check_positive_int(seed, "seed", minimum=0))
    device = r_all.device
    ys, bases, means, snrs, proj = [], [], [], [], []
    for r in r_all:
        snr = _snr(r, p, variant) if snr_db is None else float(snr_db)
        # VCA.m: "if SNR < SNR_th" -> SVD projection; toolbox: "if SNR > SNRth" -> projective (NaN: MATLAB's rules)
        projective = not (snr < threshold) if variant == "original" else snr > threshold
        if projective:
            ud = subspace_from_correlation(r @ r.T / n, p)
            x = ud.T @ r
            u = x.mean(dim=1, keepdim=True)
            y = x / (u * x).sum(dim=0, keepdim=True)
            r_m = torch.zeros(bands, 1, dtype=torch.float64, device=device)
        else:
            d = p - 1
            r_m = r.mean(dim=1, keepdim=True)
            r_o = r - r_m
            ud = subspace_from_correlation(r_o @ r_o.T / n, d)
            x = ud.T @ r_o
            c = float((x * x).sum(dim=0).max().sqrt()) if d > 0 else 0.0
            y = torch.cat([x, torch.full((1, n), c, dtype=torch.float64, device=device)])
        ys.append(y)
        bases.append((ud, x))
        means.append(r_m)
        snrs.append(snr)
        proj.append(projective)
    y = torch.stack(ys)  # (N, p, n)
    a = torch.zeros(n_img, p, p, dtype=torch.float64, device=device)
    a[:, p - 1, 0] = 1.0
    indices = torch.zeros(n_img, p, dtype=torch.long, device=device)
    rows = torch.arange(n_img, device=device)
    for i in range(p):
        w = torch.rand(n_img, p, 1, generator=generator, dtype=torch.float64,
                       device=generator.device).to(device)
        f = w - a @ (torch.linalg.pinv(a) @ w)
        f = f / f.norm(dim=1, keepdim=True)
        v = (f.transpose(1, 2) @ y)[:, 0]  # (N, n)
        idx = v.abs().argmax(dim=1)
        indices[:, i] = idx
        a[:, :, i] = y[rows, :, idx]
    endmembers = torch.stack([ud @ x[:, idx] + r_m for (ud, x), r_m, idx in zip(bases, means, indices)])
    return VcaResult(indices, endmembers, torch.tensor(snrs, dtype=torch.float64),
                     torch.tensor(proj, dtype=torch.bool))


def virtual_dimensionality(pixels: torch.Tensor, alpha: float = 1e-3) -> torch.Tensor:
    """HFC virtual dimensionality (module docstring; ``vd.m``) of ``(L, n)`` or ``(N, L, n)`` pixels: ``(N,)``
    long, the number of eigenvalue pairs whose correlation-minus-covariance gap exceeds the Neyman-Pearson
    threshold at false-alarm rate ``alpha`` (``vd.m``'s default ``1e-3``; CNMF uses ``5e-2``). Needs ``n >= 2``.
    """
    if not 0 < float(alpha) < 1:
        raise InputError(f"the false-alarm rate must be in (0, 1), got {alpha!r}")
    r = pixels.to(torch.float64)
    if r.ndim == 2:
        r = r[None]
    n = r.shape[-1]
    if n < 2:
        raise InputError("the virtual dimensionality needs at least two pixels")
    corr = r @ r.transpose(1, 2) / n
    centred = r - r.mean(dim=2, keepdim=True)
    cov = centred @ centred.transpose(1, 2) / (n - 1)
    e_r = torch.linalg.eigvalsh(corr).flip(-1)
    e_k = torch.linalg.eigvalsh(cov).flip(-1)
    sigma = torch.sqrt(2 * (e_r * e_r + e_k * e_k) / n)
    tau = sigma * statistics.NormalDist().inv_cdf(1 - float(alpha))  # -norminv(alpha, 0, sigma)
    return ((e_r - e_k) > tau).sum(dim=1)
