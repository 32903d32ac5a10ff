"""How realistic is a synthetic hyperspectral dataset? Statistics against real images of the same band set.

A synthetic HSI made as endmembers x generated abundance maps ("Unmixing before fusion", Yu et al., CVPR
2024) should look like real data in three ways, each a block of :class:`RealismReport`:

1. **Per-band statistics**: the mean and standard deviation of every band, ``mu_b``, ``sigma_b``, over all
   pixels; summarised by the relative mean gap ``mean_b |mu_syn_b - mu_real_b| / mean_b |mu_real_b|`` and the
   per-band ratio ``sigma_syn_b / sigma_real_b`` (1 is ideal).
2. **Spectral subspace**: principal components of the centred pixels (SVD). A realistic generator spans the
   same few directions as real spectra: small principal angles between the top-``k`` PC subspaces, and a
   ``captured_variance`` (share of the synthetic variance inside the real top-``k`` subspace) close to the
   real data's own explained share.
3. **Spectral shapes**: the spectral angle from each synthetic spectrum to its nearest real spectrum,
   read against the same angle from real spectra to other real spectra (the baseline): a synthetic
   distribution far to the right of the baseline means spectra that real scenes do not contain.

Layout: cubes are NumPy arrays ``H x W x B`` (channels last; a :class:`~hsfuse.types.Cube` is accepted
through its ``.data``), abundances ``H x W x K``. A dataset is one cube or a sequence of cubes with the same
``B``; its pixels are pooled. Computation is float64, NumPy and SciPy only.

Example:
    >>> rng = np.random.default_rng(0)
    >>> real = rng.uniform(0.1, 0.9, (16, 16, 8))
    >>> syn = rng.uniform(0.1, 0.9, (16, 16, 8))
    >>> r = realism_report(syn, real, n_components=3)
    >>> r.bands, r.n_real_pixels, len(r.principal_angles_deg)
    (8, 256, 3)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import subspace_angles

from .._checks import check_positive_int
from ..errors import InputError

__all__ = ["RealismReport", "abundance_validity", "nearest_angles", "realism_report"]

_PERCENTILES = (("p10", 10.0), ("p50", 50.0), ("p90", 90.0))


# --------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------


def _as_real_array(x: Any, name: str, ndim: int, what: str) -> np.ndarray:
    """``x`` (an array, or an object with an array ``.data`` such as a Cube) as a non-empty real ``ndim``-D array
    with finite values; not copied."""
    if not isinstance(x, np.ndarray) and isinstance(getattr(x, "data", None), np.ndarray):
        x = x.data
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name} must be a NumPy array of shape {what}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise InputError(f"{name} must be a {ndim}-D array of shape {what}, got shape {x.shape}")
    if x.size == 0:
        raise InputError(f"{name} is empty (shape {x.shape}); give at least one pixel")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise InputError(
                f"{name} contains {bad} NaN/inf value(s); fill or drop those pixels before the realism report"
            )
    return x


def _as_list(data: Any, name: str, ndim: int, what: str) -> list[np.ndarray]:
    """One array or a non-empty sequence of arrays, checked; sequences named ``name[i]``."""
    if isinstance(data, np.ndarray) or isinstance(getattr(data, "data", None), np.ndarray):
        return [_as_real_array(data, name, ndim, what)]
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise InputError(f"{name} must be an {what} NumPy array or a list of them, got {type(data).__name__}")
    if len(data) == 0:
        raise InputError(f"{name} is an empty list; give at least one {what} array")
    arrays = [_as_real_array(a, f"{name}[{i}]", ndim, what) for i, a in enumerate(data)]
    last = arrays[0].shape[-1]
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape[-1] != last:
            raise InputError(
                f"{name}[{i}] has {a.shape[-1]} channels but {name}[0] has {last}; every array of one dataset must "
                "share the same last axis"
            )
    return arrays


def _pixels_2d(x: Any, name: str) -> np.ndarray:
    x = _as_real_array(x, name, 2, "(N, B) (one spectrum per row)")
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------------------------------------
# Abundances
# --------------------------------------------------------------------------------------------------------


def abundance_validity(abundances: np.ndarray | Sequence[np.ndarray], *, tol: float = 1e-4) -> dict[str, float]:
    """How far abundance maps are from the simplex (non-negative, summing to one at every pixel).

    Args:
        abundances: one ``(H, W, K)`` array or a sequence of them (same ``K``); pixels are pooled.
        tol: tolerance of both constraints (``>= 0``).

    Returns:
        ``{"min", "max"}``: the smallest and largest ``a_k`` over all pixels and components;
        ``"max_sum_error"``: ``max_pixels |sum_k a_k - 1|``; ``"invalid_fraction"``: the fraction of pixels
        with any ``a_k < -tol`` or ``|sum_k a_k - 1| > tol``; ``"pixels"``: the pixel count; ``"K"``: the
        number of components (the last two as ``int``).

    Example:
        >>> a = np.full((2, 2, 2), 0.5); a[0, 0] = (1.2, -0.2)
        >>> abundance_validity(a)["invalid_fraction"]
        0.25
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (
        math.isfinite(float(tol)) and float(tol) >= 0
    ):
        raise InputError(f"tol must be a finite number >= 0, got {tol!r}")
    maps = _as_list(abundances, "abundances", 3, "H x W x K")
    k = maps[0].shape[-1]
    lo, hi, sum_err, invalid, pixels = math.inf, -math.inf, 0.0, 0, 0
    for a in maps:
        a = np.asarray(a, dtype=np.float64).reshape(-1, k)
        err = np.abs(a.sum(axis=1) - 1.0)
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        sum_err = max(sum_err, float(err.max()))
        invalid += int(np.count_nonzero((a < -tol).any(axis=1) | (err > tol)))
        pixels += a.shape[0]
    return {"min": lo, "max": hi, "max_sum_error": sum_err, "invalid_fraction": invalid / pixels,
            "pixels": pixels, "K": k}


# --------------------------------------------------------------------------------------------------------
# Nearest spectral angle
# --------------------------------------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm (zero rows stay zero) and the mask of non-zero rows."""
    norm = np.linalg.norm(x, axis=1)
    ok = norm > 0
    return x / np.where(ok, norm, 1.0)[:, None], ok


def nearest_angles(query: np.ndarray, reference: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Angle in degrees from each query spectrum to its nearest reference spectrum.

    For query row ``x_i`` the nearest reference is ``j* = argmax_j <x_i, y_j> / (|x_i| |y_j|)`` (largest cosine
    = smallest spectral angle) and the result is ``angle(x_i, y_j*)``, evaluated as ``2 atan2(|u - v|, |u + v|)``
    on the unit vectors ``u``, ``v`` (equal to ``arccos`` of the cosine, but exact near 0: a spectrum present
    in ``reference`` gives exactly 0). A zero-norm query row gives NaN; zero-norm reference rows are ignored.

    Args:
        query: ``(N, B)``; reference: ``(M, B)`` with at least one non-zero row.
        chunk: rows per block. Queries and references are processed in ``chunk x chunk`` blocks with a running
            maximum, so the working memory is ``O(chunk * min(M, chunk))`` float64 values (about 134 MB at the
            default), not ``N x M``.

    Returns:
        ``(N,)`` float64 degrees in ``[0, 180]`` (NaN for zero-norm queries).

    Example:
        >>> nearest_angles(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 2.0]]))
        array([45., nan])
    """
    q = _pixels_2d(query, "query")
    r = _pixels_2d(reference, "reference")
    chunk = check_positive_int(chunk, "chunk", minimum=1)
    if q.shape[1] != r.shape[1]:
        raise InputError(
            f"query has {q.shape[1]} bands but reference has {r.shape[1]}; spectral angles need the same bands"
        )
    u, q_ok = _unit_rows(q)
    v, r_ok = _unit_rows(r)
    v = v[r_ok]
    if v.shape[0] == 0:
        raise InputError("reference holds only zero-norm spectra; at least one non-zero spectrum is needed")
    out = np.full(q.shape[0], np.nan)
    for s in range(0, q.shape[0], chunk):
        uq = u[s : s + chunk]
        best = np.full(uq.shape[0], -np.inf)
        best_j = np.zeros(uq.shape[0], dtype=np.intp)
        for t in range(0, v.shape[0], chunk):
            cos = uq @ v[t : t + chunk].T
            j = np.argmax(cos, axis=1)
            c = cos[np.arange(cos.shape[0]), j]
            better = c > best
            best[better] = c[better]
            best_j[better] = j[better] + t
        w = v[best_j]
        ang = np.degrees(2.0 * np.arctan2(np.linalg.norm(uq - w, axis=1), np.linalg.norm(uq + w, axis=1)))
        out[s : s + chunk] = np.where(q_ok[s : s + chunk], ang, np.nan)
    return out


# --------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------


def _json_value(x: Any) -> Any:
    """Non-finite floats become None (strict JSON), containers recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    return x


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}g}"


def _fmt_list(xs: Sequence[float], digits: int = 3) -> str:
    return ", ".join(_fmt(x, digits) for x in xs)


@dataclass(frozen=True)
class RealismReport:
    """Realism statistics of a synthetic HSI dataset against real HSIs of the same band set.

    Fields (``B`` bands, ``k = n_components``):

    * ``n_real_pixels``, ``n_synthetic_pixels``: pixels used (after subsampling to ``max_pixels``); ``bands``:
      ``B``; ``wavelengths_nm``: band centres or ``None``.
    * ``real_mean``, ``real_std``, ``synthetic_mean``, ``synthetic_std``: per band, ``B`` values each
      (population std, ``ddof=0``).
    * ``mean_gap``: ``mean_b |mu_syn_b - mu_real_b| / mean_b |mu_real_b|``, scale-free (0.05 = the band means
      are off by 5 % of the typical real level on average; ``inf`` if the real means are all 0 and the
      synthetic ones are not, 0 if both are).
    * ``std_ratio``: ``sigma_syn_b / sigma_real_b`` per band (``inf`` where only the real band is constant,
      1 where both are).
    * ``real_explained``, ``synthetic_explained``: ``s_i^2 / sum_j s_j^2`` for the top ``k`` singular values of
      each side's centred pixel matrix.
    * ``principal_angles_deg``: :func:`scipy.linalg.subspace_angles` between the real and synthetic top-PC
      subspaces, degrees, ascending; ``min(k_real, k_syn)`` values where ``k_side`` is ``k`` capped at that
      side's numerical rank.
    * ``captured_variance``: ``|Xs V|_F^2 / |Xs|_F^2`` with ``Xs`` the centred synthetic pixels and ``V`` the
      ``B x k_real`` orthonormal real top-PC basis: the share of synthetic variance that real data's main
      directions explain (compare with ``sum(real_explained)``, the same share for real data itself).
    * ``sam_to_real_deg``: ``{"mean", "p10", "p50", "p90", "max"}`` of the angle from each synthetic spectrum to
      its nearest real reference spectrum (zero-norm synthetic spectra excluded).
    * ``sam_real_baseline_deg``: the same statistics from real spectra to the same real reference spectra (the
      other half of the real pixels): what "near" means for real data. ``None`` with fewer than 2 non-zero
      real spectra.
    * ``sam_hist``: ``{"edges", "synthetic", "baseline"}``: common histogram bin edges (degrees) and the two
      densities (``baseline`` empty when there is none).
    * ``abundance``: :func:`abundance_validity` of the abundances given to :func:`realism_report`, or ``None``.
    """

    n_real_pixels: int
    n_synthetic_pixels: int
    bands: int
    wavelengths_nm: list[float] | None
    real_mean: list[float]
    real_std: list[float]
    synthetic_mean: list[float]
    synthetic_std: list[float]
    mean_gap: float
    std_ratio: list[float]
    real_explained: list[float]
    synthetic_explained: list[float]
    principal_angles_deg: list[float]
    captured_variance: float
    sam_to_real_deg: dict[str, float]
    sam_real_baseline_deg: dict[str, float] | None
    sam_hist: dict[str, list[float]]
    abundance: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists, dicts, floats, ints), JSON-ready: NaN and inf become ``None``."""
        return _json_value(dataclasses.asdict(self))

    def to_markdown(self) -> str:
        """A short Markdown table: each number, and how to read it."""
        ratio = np.asarray(self.std_ratio, dtype=np.float64)
        s, b = self.sam_to_real_deg, self.sam_real_baseline_deg
        rows = [
            ("pixels (real / synthetic)", f"{self.n_real_pixels} / {self.n_synthetic_pixels}",
             f"pixels used, {self.bands} bands"),
            ("mean gap", _fmt(self.mean_gap),
             "mean over bands of abs(synthetic mean - real mean), relative to the mean real level; 0 is ideal"),
            ("std ratio (min / median / max)",
             f"{_fmt(float(ratio.min()))} / {_fmt(float(np.median(ratio)))} / {_fmt(float(ratio.max()))}",
             "per-band synthetic std / real std; 1 is ideal, < 1 too little variability, > 1 too much"),
            ("explained variance, real", _fmt_list(self.real_explained),
             "share of real variance on each principal component"),
            ("explained variance, synthetic", _fmt_list(self.synthetic_explained),
             "same for synthetic; a steeper drop = fewer independent spectral directions"),
            ("principal angles (deg)", _fmt_list(self.principal_angles_deg),
             "between the real and synthetic top-PC subspaces; near 0 = same spectral directions"),
            ("captured variance", _fmt(self.captured_variance),
             f"synthetic variance inside the real top-PC subspace; real data itself: "
             f"{_fmt(float(sum(self.real_explained)))}"),
            ("SAM to nearest real (deg): mean / p50 / p90 / max",
             " / ".join(_fmt(s[k]) for k in ("mean", "p50", "p90", "max")),
             "angle from each synthetic spectrum to the closest real one"),
            ("baseline real to real (deg): mean / p50 / p90 / max",
             "n/a" if b is None else " / ".join(_fmt(b[k]) for k in ("mean", "p50", "p90", "max")),
             "the same angle between real spectra: synthetic values well above these are unrealistic shapes"),
        ]
        a = self.abundance
        if a is not None:
            rows.append(("abundances: min / max / max sum error / invalid fraction",
                         f"{_fmt(a['min'])} / {_fmt(a['max'])} / {_fmt(a['max_sum_error'])} / "
                         f"{_fmt(a['invalid_fraction'])}",
                         f"{a['pixels']} pixels, K = {a['K']}; invalid = some a_k < -tol or abs(sum - 1) > tol"))
        lines = ["| quantity | value | how to read it |", "|---|---|---|"]
        lines += [f"| {q} | {v} | {h} |" for q, v, h in rows]
        return "\n".join(lines) + "\n"


def _sample_pixels(arrays: list[np.ndarray], max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """All pixels ``(N, B)`` float64, or ``max_pixels`` of them drawn without replacement (sorted order)."""
    b = arrays[0].shape[-1]
    flat = [a.reshape(-1, b) for a in arrays]
    counts = np.array([f.shape[0] for f in flat])
    total = int(counts.sum())
    if total <= max_pixels:
        return np.concatenate([np.asarray(f, dtype=np.float64) for f in flat])
    idx = np.sort(rng.choice(total, size=max_pixels, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    which = np.searchsorted(starts, idx, side="right") - 1
    out = np.empty((max_pixels, b))
    for i, f in enumerate(flat):
        sel = which == i
        if sel.any():
            out[sel] = f[idx[sel] - starts[i]]
    return out


def _pca(x: np.ndarray, k: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Explained-variance ratios of the top ``k`` PCs and the ``B x k_eff`` basis (``k`` capped at the rank)."""
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    total = float(np.sum(s**2))
    if s.size == 0 or s[0] == 0.0:
        raise InputError(
            f"the {name} pixels are all identical (zero variance); principal components and the realism report "
            "need varying spectra"
        )
    rank = int(np.count_nonzero(s > s[0] * max(xc.shape) * np.finfo(np.float64).eps))
    explained = np.zeros(k)
    m = min(k, s.size)
    explained[:m] = s[:m] ** 2 / total
    return explained, vt[: min(k, rank)].T


def _stats(angles: np.ndarray) -> dict[str, float]:
    a = angles[np.isfinite(angles)]
    if a.size == 0:
        return {"mean": math.nan, **{k: math.nan for k, _ in _PERCENTILES}, "max": math.nan}
    out = {"mean": float(a.mean())}
    out.update({k: float(np.percentile(a, p)) for k, p in _PERCENTILES})
    out["max"] = float(a.max())
    return out


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def realism_report(
    synthetic: np.ndarray | Sequence[np.ndarray],
    real: np.ndarray | Sequence[np.ndarray],
    *,
    wavelengths_nm: Sequence[float] | None = None,
    abundances: np.ndarray | Sequence[np.ndarray] | None = None,
    n_components: int = 5,
    max_pixels: int = 20000,
    seed: int = 0,
    bins: int = 40,
) -> RealismReport:
    """Compare a synthetic HSI dataset with real HSIs of the same bands (see :class:`RealismReport`).

    Args:
        synthetic, real: one ``H x W x B`` array or a sequence of them (sizes may differ, ``B`` may not); the
            pixels of each side are pooled.
        wavelengths_nm: ``B`` band centres, stored for the figures.
        abundances: the synthetic cubes' abundance maps (``H x W x K``, one per synthetic cube, same ``H x W``),
            summarised by :func:`abundance_validity`.
        n_components: ``k``, the number of principal components compared (``1 <= k <= B``).
        max_pixels: pixels used per side. A side with more is subsampled uniformly without replacement.
        seed: seeds one ``np.random.default_rng(seed)`` used, in order, to (1) subsample the synthetic pixels
            (only when there are more than ``max_pixels``), (2) subsample the real pixels (likewise),
            (3) permute the non-zero real spectra before splitting them in halves. Same inputs and seed, same
            report.
        bins: number of histogram bins in ``sam_hist``.

    Spectral angles: the non-zero real spectra are split (after the permutation) into a query half (the first
    ``floor(M/2)``) and a reference half (the rest). ``sam_to_real_deg`` measures synthetic spectra against the
    reference half and ``sam_real_baseline_deg`` the query half against the same reference half, so the two
    distributions see reference sets of the same density and compare directly. With fewer than 2 non-zero
    real spectra there is no baseline and the synthetic spectra are measured against all of them.

    Cost: about ``N_syn * M / 2 * B`` multiply-adds for the angles (seconds at the default ``max_pixels``).

    Raises:
        InputError: arrays not 3-D, empty, non-numeric or with NaN/inf; different band counts (between or within
            the datasets); ``n_components`` outside ``1..B``; all pixels identical on one side; abundances that
            do not match the synthetic cubes; bad options.
    """
    syn = _as_list(synthetic, "synthetic", 3, "H x W x B")
    rea = _as_list(real, "real", 3, "H x W x B")
    bands = syn[0].shape[-1]
    if rea[0].shape[-1] != bands:
        raise InputError(
            f"synthetic has {bands} bands but real has {rea[0].shape[-1]}; compare datasets with the same band set "
            "(resample one onto the other's bands first)"
        )
    n_components = check_positive_int(n_components, "n_components", minimum=1)
    if n_components > bands:
        raise InputError(f"n_components={n_components} exceeds the {bands} bands; choose 1..{bands}")
    max_pixels = check_positive_int(max_pixels, "max_pixels", minimum=2)
    bins = check_positive_int(bins, "bins", minimum=1)
    seed = check_positive_int(seed, "seed", minimum=0)
    wl = None
    if wavelengths_nm is not None:
        try:
            w = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"wavelengths_nm must be {bands} numbers (nm), got {wavelengths_nm!r}") from None
        if w.size != bands or not np.all(np.isfinite(w)):
            raise InputError(f"wavelengths_nm must be {bands} finite numbers (one per band), got {w.size} value(s)")
        wl = [float(v) for v in w]
    ab = None
    if abundances is not None:
        maps = _as_list(abundances, "abundances", 3, "H x W x K")
        if len(maps) != len(syn) or any(m.shape[:2] != s.shape[:2] for m, s in zip(maps, syn)):
            raise InputError(
                f"abundances must give one H x W x K map per synthetic cube on the same grid: got "
                f"{[m.shape[:2] for m in maps]} for synthetic {[s.shape[:2] for s in syn]}"
            )
        ab = abundance_validity(maps)

    rng = np.random.default_rng(seed)
    xs = _sample_pixels(syn, max_pixels, rng)
    xr = _sample_pixels(rea, max_pixels, rng)

    mu_s, mu_r = xs.mean(axis=0), xr.mean(axis=0)
    sd_s, sd_r = xs.std(axis=0), xr.std(axis=0)
    mean_gap = _ratio(float(np.mean(np.abs(mu_s - mu_r))), float(np.mean(np.abs(mu_r))))
    std_ratio = [float(a / b) if b > 0 else (1.0 if a == 0 else math.inf) for a, b in zip(sd_s, sd_r)]

    ex_r, basis_r = _pca(xr, n_components, "real")
    ex_s, basis_s = _pca(xs, n_components, "synthetic")
    angles = np.sort(np.degrees(subspace_angles(basis_r, basis_s)))
    xsc = xs - mu_s
    captured = float(np.sum((xsc @ basis_r) ** 2) / np.sum(xsc**2))

    nonzero = xr[np.linalg.norm(xr, axis=1) > 0]
    if nonzero.shape[0] >= 2:
        nonzero = nonzero[rng.permutation(nonzero.shape[0])]
        half = nonzero.shape[0] // 2
        ref, base_q = nonzero[half:], nonzero[:half]
        base = nearest_angles(base_q, ref)
    else:
        ref, base = nonzero, None
    syn_ang = nearest_angles(xs, ref) if ref.shape[0] else np.full(xs.shape[0], np.nan)

    finite = [a[np.isfinite(a)] for a in (syn_ang, base) if a is not None]
    top = max((float(a.max()) for a in finite if a.size), default=0.0)
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)

    def density(a: np.ndarray | None) -> list[float]:
        if a is None:
            return []
        a = a[np.isfinite(a)]
        if a.size == 0:
            return [0.0] * bins
        return [float(v) for v in np.histogram(a, bins=edges, density=True)[0]]

    return RealismReport(
        n_real_pixels=int(xr.shape[0]),
        n_synthetic_pixels=int(xs.shape[0]),
        bands=int(bands),
        wavelengths_nm=wl,
        real_mean=[float(v) for v in mu_r],
        real_std=[float(v) for v in sd_r],
        synthetic_mean=[float(v) for v in mu_s],
        synthetic_std=[float(v) for v in sd_s],
        mean_gap=mean_gap,
        std_ratio=std_ratio,
        real_explained=[float(v) for v in ex_r],
        synthetic_explained=[float(v) for v in ex_s],
        principal_angles_deg=[float(v) for v in angles],
        captured_variance=captured,
        sam_to_real_deg=_stats(syn_ang),
        sam_real_baseline_deg=None if base is None else _stats(base),
        sam_hist={"edges": [float(v) for v in edges], "synthetic": density(syn_ang), "baseline": density(base)},
        abundance=ab,
    )
