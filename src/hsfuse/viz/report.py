"""One self-contained HTML page per run: composites, error maps, spectra at a clicked pixel, operators, provenance.

The page is a single static file: Plotly's JavaScript, every image (PNG, base64) and the data the spectrum plot
needs are inlined, so it opens offline from disk with no server. Its parts:

* **Composites** of the LR HSI, the MSI, the reference and every result, false colour with bands chosen by
  wavelength: true colour (640, 550, 460 nm) when the cube's bands lie within 30 nm of each; otherwise the
  standard colour-infrared composite (860, 650, 550 nm) when they allow it; otherwise the bands at 3/4, 1/2 and
  1/4 of the band range. The HSI-grid cubes share one percentile stretch (2-98 %, per channel, of the reference
  or else the first result). The MSI has its own stretch; its bands are chosen the same way from their centres
  (the file's, or the SRF's centroids), a 3-band MSI shown longest wavelength as red. Every image panel of the page
  shares zoom and pan (their axes are HR pixel coordinates). A **blink** panel shows any two of them in turn.
* **With a reference**: per-pixel RMSE and SAM maps (one colour scale per metric, its top at the 99th
  percentile over all methods), the metric table (click a header to sort) and per-band PSNR and RMSE against
  wavelength. **Without one**: the scores given (e.g. QNR) and per-pixel consistency maps: the RMSE of
  ``SRF x estimate - MSI`` over the MSI bands at each HR pixel, and of ``blur-decimate(estimate) - HSI`` over
  the HSI bands at each LR pixel (when the result fits in memory).
* **Spectra**: click any image: the spectra of the reference, every result and the LR HSI pixel under it, in
  nm, with the MSI band responses shaded.
* **Operators, options, timing, provenance**: the PSF image and SRF curves (given or estimated), each method's
  options and seconds, the machine and library versions and the command line.

**Large results** are never read whole: the composites and maps come from a decimated grid (every ``step``-th
pixel, ``step = ceil(max(H, W) / max_side)``), read band-subset by band-subset or row-block by row-block from
lazy (dask/zarr) arrays; the spectra come from a coarser grid sized so the embedded spectra stay within
``spectra_mb``; the page says both steps. The per-band curves and the RMSE/SAM summary are then computed on the
displayed grid (exact when ``step`` is 1), which the page states too.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingDependencyError
from .figures import apply_stretch, display_bands, error_maps, stretch_limits

__all__ = ["ReportInputs", "ReportSummary", "build_report", "write_report"]
#: the largest side of the per-pixel maps (their values are embedded as numbers, for hovering)
MAP_SIDE = 512


@dataclass
class ReportInputs:
    """What a report shows. Cubes may be :class:`~hsfuse.types.Cube`, lazy ``(band, y, x)`` DataArrays
    (:func:`hsfuse.io.lazy.open_lazy`) or file paths (opened lazily).

    Attributes:
        results: method (or label) -> fused HR cube; at least one.
        hsi, msi, reference: the LR HSI, the HR MSI, the HR reference (each optional).
        physics: the observation (PSF, SRF, ratio) used or estimated; ``operators`` says which.
        metrics: table rows (``{"method": ..., metric: value}``); computed on the displayed grid when absent
            and a reference is given.
        scores: method -> no-reference scores (e.g. QNR, D_lambda, D_s), shown when there is no reference.
        options, seconds: method -> its options / its run time.
        title, command, notes: page title, the command line that made the run, free lines shown under it.
    """

    results: Mapping[str, Any]
    hsi: Any = None
    msi: Any = None
    reference: Any = None
    physics: Any = None
    operators: str = "given"
    metrics: Sequence[Mapping[str, Any]] | None = None
    scores: Mapping[str, Mapping[str, Any]] | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    title: str = "hsfuse report"
    command: str | None = None
    notes: Sequence[str] = ()


@dataclass
class ReportSummary:
    """What :func:`write_report` wrote: the path, its size in bytes, the display and spectra grid steps."""

    path: Path
    bytes: int
    display_step: int
    spectra_step: int
    seconds: float


# ------------------------------------------------------------------------------------------------ data access


def _lazy(x: Any, name: str) -> Any:
    """``x`` as a ``(band, y, x)`` DataArray (a Cube wrapped without a copy; a path opened lazily)."""
    from ..io.lazy import cube_to_dataarray, open_lazy
    from ..types import Cube

    if x is None:
        return None
    if isinstance(x, Cube):
        return cube_to_dataarray(x)
    if isinstance(x, (str, os.PathLike)):
        return open_lazy(x)
    if hasattr(x, "dims") and tuple(x.dims) == ("band", "y", "x"):
        return x
    raise InputError(f"{name} must be a Cube, a (band, y, x) DataArray or a file path, got {type(x).__name__}")


def _wavelengths(da: Any) -> np.ndarray | None:
    """Band centres in nm, when the cube records them."""
    from ..io.lazy import band_info

    w = band_info(da).get("wavelengths")
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    return w if w.size == da.sizes["band"] and np.all(np.isfinite(w)) else None


def _read(da: Any, *, bands: Sequence[int] | None = None, step: int = 1, rows: slice | None = None) -> np.ndarray:
    """``(h, w, b)`` float32 NumPy array of ``da`` decimated by ``step`` (rows of the decimated grid ``rows``)."""
    sel = da
    if bands is not None:
        sel = sel.isel(band=list(bands))
    ys = slice(None, None, step) if rows is None else slice(rows.start * step, rows.stop * step, step)
    sel = sel.isel(y=ys, x=slice(None, None, step))
    return np.moveaxis(np.asarray(sel.values, dtype=np.float32), 0, -1)


def _png(rgb: np.ndarray, limits: np.ndarray) -> str:
    """A PNG data URI of ``rgb`` ``(h, w, 3)`` stretched to ``limits`` (:func:`~hsfuse.viz.figures.apply_stretch`)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((apply_stretch(rgb, limits) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


# ------------------------------------------------------------------------------------------------ validation


@dataclass
class _Scene:
    results: dict[str, Any]
    hsi: Any
    msi: Any
    reference: Any
    shape: tuple[int, int, int]  # H, W, B of the results
    ratio: int | None
    wavelengths: np.ndarray | None


def _scene(inputs: ReportInputs) -> _Scene:
    if not inputs.results:
        raise InputError("a report needs at least one result (method -> fused cube)")
    results = {str(k): _lazy(v, f"result {k!r}") for k, v in inputs.results.items()}
    shapes = {k: (v.sizes["y"], v.sizes["x"], v.sizes["band"]) for k, v in results.items()}
    first = next(iter(shapes.values()))
    bad = {k: s for k, s in shapes.items() if s != first}
    if bad:
        raise InputError(f"the results must share one shape; got {shapes}")
    H, W, B = first
    reference = _lazy(inputs.reference, "reference")
    if reference is not None and (reference.sizes["y"], reference.sizes["x"], reference.sizes["band"]) != first:
        raise InputError(f"the reference is {reference.sizes['y']}x{reference.sizes['x']}x{reference.sizes['band']} "
                         f"but the results are {H}x{W}x{B}")
    hsi = _lazy(inputs.hsi, "hsi")
    ratio = None
    if hsi is not None:
        h, w = hsi.sizes["y"], hsi.sizes["x"]
        if hsi.sizes["band"] != B or H % h or W % w or H // h != W // w:
            raise InputError(f"the HSI is {h}x{w}x{hsi.sizes['band']}, which is not the {H}x{W}x{B} results "
                             "reduced by one integer ratio")
        ratio = H // h
    msi = _lazy(inputs.msi, "msi")
    if msi is not None and (msi.sizes["y"], msi.sizes["x"]) != (H, W):
        raise InputError(f"the MSI is {msi.sizes['y']}x{msi.sizes['x']} but the results are {H}x{W}")
    wavelengths = next((w for w in (_wavelengths(d) for d in (reference, *results.values(), hsi) if d is not None)
                        if w is not None), None)
    return _Scene(results, hsi, msi, reference, (H, W, B), ratio, wavelengths)


# ------------------------------------------------------------------------------------------------ computations


def _composites(scene: _Scene, step: int, srf: np.ndarray | None) -> tuple[dict[str, dict[str, Any]], str]:
    """name -> {source (PNG URI), x0, dx} of every composite, and the HSI composite's name."""
    H, W, B = scene.shape
    idx, label = display_bands(scene.wavelengths, B)
    hr = {**({"reference": scene.reference} if scene.reference is not None else {}), **scene.results}
    rgbs = {name: _read(da, bands=idx, step=step) for name, da in hr.items()}
    limits = stretch_limits(next(iter(rgbs.values())))
    out: dict[str, dict[str, Any]] = {}
    if scene.hsi is not None:
        r = scene.ratio or 1
        lr_step = max(1, step // r)
        out["LR HSI"] = {"source": _png(_read(scene.hsi, bands=idx, step=lr_step), limits), "dx": r * lr_step,
                         "x0": (r * lr_step - 1) / 2}
    if scene.msi is not None:
        m = scene.msi.sizes["band"]
        centres = _wavelengths(scene.msi)
        if centres is None and srf is not None and scene.wavelengths is not None and srf.shape == (m, B):
            centres = (srf @ scene.wavelengths) / np.where(srf.sum(axis=1) > 0, srf.sum(axis=1), 1.0)
        if centres is not None and m == 3:  # an RGB-like camera: its bands by wavelength, longest as red
            order = np.argsort(-np.asarray(centres, dtype=np.float64))
            msi_idx = (int(order[0]), int(order[1]), int(order[2]))
        elif centres is not None:
            msi_idx, _ = display_bands(np.asarray(centres, dtype=np.float64), m)
        else:
            msi_idx = (0, 1, 2) if m >= 3 else (0, 0, 0)
        rgb = _read(scene.msi, bands=msi_idx, step=step)
        out["MSI"] = {"source": _png(rgb, stretch_limits(rgb)), "dx": step, "x0": 0.0}
    for name, rgb in rgbs.items():
        out[name] = {"source": _png(rgb, limits), "dx": step, "x0": 0.0}
    return out, label


def _row_blocks(n: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def _errors(scene: _Scene, step: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Per-pixel RMSE/SAM maps (:func:`~hsfuse.viz.figures.error_maps`) on the grid of every ``step``-th pixel and
    per-band RMSE/PSNR there (peak: the reference band maximum on that grid), read row block by row block."""
    from ..types import Cube

    H, W, B = scene.shape
    block = max(1, int(64e6 // max(1, 4 * B * len(range(0, W, step)))))
    maps: dict[str, dict[str, list[np.ndarray]]] = {k: {"rmse": [], "sam_deg": []} for k in scene.results}
    sq = {k: np.zeros(B) for k in scene.results}
    peak = np.full(B, -np.inf)
    count = 0
    for rs in _row_blocks(len(range(0, H, step)), block):
        ref = _read(scene.reference, step=step, rows=rs).astype(np.float64)
        peak = np.maximum(peak, ref.reshape(-1, B).max(axis=0))
        count += ref.shape[0] * ref.shape[1]
        for name, da in scene.results.items():
            est = _read(da, step=step, rows=rs).astype(np.float64)
            sq[name] += ((est - ref) ** 2).reshape(-1, B).sum(axis=0)
            for key, value in error_maps(Cube(ref), Cube(est)).items():
                maps[name][key].append(value)
    per_band = {}
    for name in scene.results:
        mse = sq[name] / count
        with np.errstate(divide="ignore"):
            psnr = 10 * np.log10(np.where(peak > 0, peak**2, np.nan) / mse)
        per_band[name] = {"rmse": np.sqrt(mse), "psnr": psnr}
    return {k: {m: np.concatenate(v) for m, v in d.items()} for k, d in maps.items()}, per_band


def _consistency(scene: _Scene, step: int, physics: Any) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Per-pixel consistency maps without a reference (module docstring) and notes on what was left out. The MSI
    map is read row block by row block (each MSI block once for every result); the HSI map needs the whole result
    (skipped beyond 1 GiB)."""
    import torch

    H, W, B = scene.shape
    srf = physics.spectral.matrix.detach().cpu().double().numpy()
    block = max(1, int(64e6 // max(1, 4 * B * len(range(0, W, step)))))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in scene.results}
    for rs in _row_blocks(len(range(0, H, step)), block):
        msi = _read(scene.msi, step=step, rows=rs).astype(np.float64)
        for name, da in scene.results.items():
            est = _read(da, step=step, rows=rs).astype(np.float64)
            parts[name].append(np.sqrt(np.mean((est @ srf.T - msi) ** 2, axis=2)))  # R z - y_m per pixel
    out: dict[str, dict[str, np.ndarray]] = {k: {"msi": np.concatenate(v)} for k, v in parts.items()}
    notes = []
    if H * W * B * 4 <= 1 << 30:
        spatial = copy.deepcopy(physics.spatial).double()  # nn.Module.double() converts in place: not the caller's
        hsi = torch.as_tensor(_read(scene.hsi).astype(np.float64)).permute(2, 0, 1)[None]
        for name, da in scene.results.items():
            est = torch.as_tensor(_read(da).astype(np.float64)).permute(2, 0, 1)[None]
            with torch.no_grad():
                lr = spatial(est)
            out[name]["hsi"] = torch.sqrt(((lr - hsi) ** 2).mean(dim=1))[0].numpy()
    else:
        notes.append("the HSI consistency maps are left out: the results do not fit the 1 GiB budget of that "
                     "check (it needs the whole result)")
    return out, notes


def _spectra(scene: _Scene, step: int, budget_mb: float) -> dict[str, Any]:
    """The spectra grid: every result, the reference and the LR pixel under each grid point, float32, base64."""
    H, W, B = scene.shape
    cubes = {**({"reference": scene.reference} if scene.reference is not None else {}), **scene.results}
    count = len(cubes) + (scene.hsi is not None)
    points = max(1.0, budget_mb * 1e6 / (4 * B * count))
    sstep = max(step, math.ceil(math.sqrt(H * W / points)))
    ys, xs = np.arange(0, H, sstep), np.arange(0, W, sstep)
    data = {name: _b64(_read(da, step=sstep)) for name, da in cubes.items()}
    if scene.hsi is not None:
        r = scene.ratio or 1
        lr = scene.hsi.isel(y=list(ys // r), x=list(xs // r))
        data["LR HSI"] = _b64(np.moveaxis(np.asarray(lr.values, dtype=np.float32), 0, -1))
    return {"step": sstep, "rows": len(ys), "cols": len(xs), "bands": B, "data": data}


# ------------------------------------------------------------------------------------------------ figures


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("the HTML report needs plotly: pip install plotly") from exc
    return go


def _image_grid(panels: Mapping[str, dict[str, Any]], *, kind: str, cols: int = 4) -> Any:
    """One figure of image (or heatmap) panels sharing zoom and pan."""
    go = _plotly()
    from plotly.subplots import make_subplots

    names = list(panels)
    rows = math.ceil(len(names) / cols)
    ncols = min(cols, len(names))
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=names, horizontal_spacing=0.02,
                        vertical_spacing=0.08 / max(1, rows - 1) if rows > 1 else 0.08)
    for i, name in enumerate(names):
        p = panels[name]
        r, c = divmod(i, ncols)
        if kind == "image":
            trace = go.Image(source=p["source"], x0=p["x0"], dx=p["dx"], y0=p["x0"], dy=p["dx"], name=name,
                             hovertemplate=f"{name}<br>row %{{y:.0f}}, col %{{x:.0f}}<extra></extra>")
        else:
            trace = go.Heatmap(z=p["z"], x0=p["x0"], dx=p["dx"], y0=p["x0"], dy=p["dx"], zmin=0, zmax=p["zmax"],
                               colorscale=p["colorscale"], showscale=p.get("showscale", False),
                               colorbar=p.get("colorbar"), name=name,
                               hovertemplate=f"{name}<br>row %{{y:.0f}}, col %{{x:.0f}}: %{{z:.4g}}<extra></extra>")
        fig.add_trace(trace, row=r + 1, col=c + 1)
    fig.update_xaxes(matches="x", showticklabels=False)
    fig.update_yaxes(matches="y", autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_layout(height=300 * rows + 60, margin=dict(l=10, r=10, t=40, b=10), dragmode="pan")
    return fig


#: a 1 x 1 transparent PNG: the blink panel's images until the page fills them from the composites
_EMPTY_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="


def _blink() -> Any:
    """Two overlaid image traces (A over B); the page fills them from the composites figure (the images are not
    embedded twice) and its menus choose A and B, show either or blink."""
    go = _plotly()
    fig = go.Figure([go.Image(source=_EMPTY_PNG, name=label, visible=label == "A") for label in ("A", "B")])
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10), dragmode="pan")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    return fig


def _map_panels(maps: Mapping[str, Mapping[str, np.ndarray]],
                metrics: Sequence[tuple[str, str, str, int, float]]) -> dict[str, dict[str, Any]]:
    """Heatmap panels ``(key, title, colour scale, pixel size and first pixel centre in HR pixels)``, one colour
    scale per metric (its top: the 99th percentile over every method's map)."""
    panels: dict[str, dict[str, Any]] = {}
    present = [entry for entry in metrics if any(entry[0] in m for m in maps.values())]
    for row, (key, title, colorscale, dx, x0) in enumerate(present):  # one panel row and colour bar per metric
        values = [m[key] for m in maps.values() if key in m]
        zmax = float(np.nanpercentile(np.concatenate([v.ravel() for v in values]), 99)) or 1.0
        for i, (name, m) in enumerate((n, m) for n, m in maps.items() if key in m):
            panels[f"{title}: {name}"] = {"z": m[key].astype(np.float32), "dx": dx, "x0": x0,
                                          "zmax": zmax,
                                          "colorscale": colorscale, "showscale": i == 0,
                                          "colorbar": dict(title=dict(text=title, side="right"),
                                                           len=0.9 / len(present),
                                                           y=1 - (row + 0.5) / len(present))}
    return panels


def _lines(x: np.ndarray | None, series: Mapping[str, np.ndarray], *, title: str, ytitle: str) -> Any:
    go = _plotly()
    fig = go.Figure()
    for name, y in series.items():
        xs = x if x is not None else np.arange(1, len(y) + 1)
        fig.add_trace(go.Scatter(x=xs, y=np.where(np.isfinite(y), y, None), mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title="wavelength (nm)" if x is not None else "band",
                      yaxis_title=ytitle, height=380, margin=dict(l=60, r=10, t=50, b=50))
    return fig


def _operators(physics: Any, wavelengths: np.ndarray | None, operators: str) -> list[Any]:
    go = _plotly()
    psf = physics.spatial.psf.detach().cpu().double().numpy()
    psf = psf.mean(axis=0) if psf.ndim == 3 else psf
    f1 = go.Figure(go.Heatmap(z=psf, colorscale="Viridis", hovertemplate="%{z:.4g}<extra></extra>"))
    f1.update_layout(title=f"PSF ({operators}), {psf.shape[0]}x{psf.shape[1]}, ratio {physics.spatial.ratio}",
                     height=360, width=420, margin=dict(l=40, r=10, t=50, b=40))
    f1.update_yaxes(autorange="reversed", scaleanchor="x")
    srf = physics.spectral.matrix.detach().cpu().double().numpy()
    names = getattr(physics.spectral, "band_names", None) or [f"band {i + 1}" for i in range(srf.shape[0])]
    f2 = _lines(wavelengths, {str(n): row for n, row in zip(names, srf)}, title=f"SRF ({operators})",
                ytitle="response")
    return [f1, f2]


# ------------------------------------------------------------------------------------------------ page


def _table(rows: Sequence[Mapping[str, Any]], *, table_id: str) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f'<td data-v="{v!r}">{v:.5g}</td>'
        if isinstance(v, (dict, list)):
            return f"<td>{html.escape(json.dumps(v, default=str))}</td>"
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f'<th onclick="hsfuseSort(\'{table_id}\', {i})">{html.escape(str(c))} &#8597;</th>'
                   for i, c in enumerate(cols))
    body = "".join("<tr>" + "".join(cell(r.get(c, "")) for c in cols) + "</tr>" for r in rows)
    return f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _provenance(inputs: ReportInputs) -> dict[str, Any]:
    from .. import __version__
    from ..bench.machine import machine_description

    import plotly

    return {"hsfuse": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "plotly": plotly.__version__, "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": inputs.command or " ".join(sys.argv), **machine_description()}


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;cursor:pointer}td[data-v]{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.5em;overflow:auto;font-size:.85em}
"""

_JS = r"""
function hsfuseSort(id, col){
  const t=document.getElementById(id), b=t.tBodies[0], rows=[...b.rows];
  const asc=t.dataset.col==col && t.dataset.dir!='asc'; t.dataset.col=col; t.dataset.dir=asc?'asc':'desc';
  const key=r=>{const c=r.cells[col]; return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent};
  rows.sort((a,b)=>{const x=key(a),y=key(b); const s=(x>y)-(x<y); return asc?s:-s}); rows.forEach(r=>b.appendChild(r));
}
function hsfuseDecode(s){const b=atob(s), u=new Uint8Array(b.length); for(let i=0;i<b.length;i++)u[i]=b.charCodeAt(i);
  return new Float32Array(u.buffer)}
const HS=JSON.parse(document.getElementById('hsfuse-data').textContent);
const HSD={}; for(const k in HS.spectra.data) HSD[k]=hsfuseDecode(HS.spectra.data[k]);
function hsfuseSpectrum(row, col){
  const g=HS.spectra, gy=Math.min(g.rows-1,Math.max(0,Math.round(row/g.step))),
        gx=Math.min(g.cols-1,Math.max(0,Math.round(col/g.step))), off=(gy*g.cols+gx)*g.bands, out={};
  for(const k in HSD) out[k]=Array.from(HSD[k].subarray(off, off+g.bands));
  return {row: gy*g.step, col: gx*g.step, spectra: out};
}
function hsfuseShowSpectrum(row, col){
  const s=hsfuseSpectrum(row, col), x=HS.wavelengths||s.spectra[Object.keys(s.spectra)[0]].map((_,i)=>i+1), tr=[];
  for(const [name,resp] of Object.entries(HS.srf||{})) tr.push({x:x,y:resp,name:'SRF '+name,yaxis:'y2',
      fill:'tozeroy',mode:'none',opacity:0.15,hoverinfo:'skip',showlegend:false});
  for(const k in s.spectra) tr.push({x:x,y:s.spectra[k],name:k,mode:'lines',
      line:k=='LR HSI'?{dash:'dot'}:(k=='reference'?{width:3,color:'black'}:{})});
  Plotly.react('spectrum', tr, {title:{text:`spectra at pixel (row ${s.row}, col ${s.col})`},
      xaxis:{title:{text:HS.wavelengths?'wavelength (nm)':'band'}}, yaxis:{title:{text:'value'}},
      yaxis2:{overlaying:'y',side:'right',showgrid:false,range:[0,1.05*HS.srfmax],title:{text:'MSI response'}},
      height:420, margin:{l:60,r:60,t:50,b:50}});
  window.hsfuseLastClick=s;
}
let hsfuseSyncing=false;
function hsfuseSync(src, ev){
  if(hsfuseSyncing) return; const keys=Object.keys(ev).filter(k=>/^[xy]axis\d*\.(range|autorange)/.test(k));
  if(!keys.length) return; const upd={};
  for(const k of keys){const m=k.match(/^([xy])axis\d*\.(range\[(\d)\]|range|autorange)$/); if(!m) continue;
    upd[m[1]+'axis.'+(m[2].startsWith('range[')?'range['+m[3]+']':m[2])]=ev[k]}
  hsfuseSyncing=true;
  const jobs=HS.images.filter(id=>id!==src).map(id=>{const d=document.getElementById(id), u={};
    for(const a in d.layout) if(/^[xy]axis\d*$/.test(a)) for(const k in upd) if(k.startsWith(a[0]+'axis.'))
      u[a+k.slice(5)]=upd[k];
    return Plotly.relayout(d,u)});
  Promise.all(jobs).finally(()=>{hsfuseSyncing=false});
}
let hsfuseBlinkTimer=null;
function hsfuseBlink(){const d=document.getElementById('blink');
  if(hsfuseBlinkTimer){clearInterval(hsfuseBlinkTimer);hsfuseBlinkTimer=null;return}
  let a=true; hsfuseBlinkTimer=setInterval(()=>{a=!a; Plotly.restyle(d,{visible:[a,!a]})},700)}
function hsfuseBlinkShow(i){Plotly.restyle('blink',{visible:[i==0,i==1]})}
function hsfuseBlinkSet(i){const sel=document.getElementById(i?'blink-b':'blink-a'),
  t=document.getElementById('composites').data[+sel.value];
  return Plotly.restyle('blink',{source:[t.source],x0:[t.x0],dx:[t.dx],y0:[t.y0],dy:[t.dy],name:[t.name]},[i])}
window.addEventListener('load',()=>{
  const comp=document.getElementById('composites').data;
  ['blink-a','blink-b'].forEach((id,i)=>{const sel=document.getElementById(id);
    comp.forEach((t,k)=>sel.add(new Option(t.name,k))); sel.value=Math.max(0,comp.length-1-i)});
  hsfuseBlinkSet(0); hsfuseBlinkSet(1);
  for(const id of HS.images){const d=document.getElementById(id); if(!d) continue;
    d.on('plotly_click',ev=>{const p=ev.points[0], xa=p.xaxis, ya=p.yaxis, r=d.getBoundingClientRect();
      let row=p.y, col=p.x;  // the pixel under the cursor in HR coordinates (an LR pixel spans several)
      if(ev.event && xa && xa.p2l){col=xa.p2l(ev.event.clientX-r.left-xa._offset);
        row=ya.p2l(ev.event.clientY-r.top-ya._offset)}
      hsfuseShowSpectrum(Math.round(row),Math.round(col))});
    d.on('plotly_relayout',ev=>hsfuseSync(id,ev))}
  hsfuseShowSpectrum(HS.start[0], HS.start[1]);
  document.body.dataset.ready='1';
});
"""


def build_report(inputs: ReportInputs, *, max_side: int = 1024, spectra_mb: float = 4.0) -> tuple[str, int, int]:
    """The report page (module docstring) as HTML text, with its display and spectra grid steps.

    Args:
        inputs: what to show (:class:`ReportInputs`).
        max_side: composites and maps are at most this many pixels on a side (decimated reads).
        spectra_mb: budget of the embedded spectra (float32) in MB.
    """
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    if not (isinstance(max_side, int) and max_side >= 16):
        raise InputError(f"max_side must be an integer >= 16, got {max_side!r}")
    if not (isinstance(spectra_mb, (int, float)) and math.isfinite(spectra_mb) and spectra_mb > 0):
        raise InputError(f"spectra_mb must be a positive number, got {spectra_mb!r}")
    scene = _scene(inputs)
    H, W, B = scene.shape
    step = max(1, math.ceil(max(H, W) / max_side))
    map_step = max(step, math.ceil(max(H, W) / MAP_SIDE))  # maps carry numbers (hover): a coarser grid
    physics = inputs.physics
    srf = physics.spectral.matrix.detach().cpu().double().numpy() if physics is not None else None
    if srf is not None and srf.shape[1] != B:
        raise InputError(f"the physics' SRF has {srf.shape[1]} HSI bands but the results have {B}")
    composites, composite_label = _composites(scene, step, srf)
    sections: list[str] = []
    figures: list[tuple[str, Any]] = []
    image_ids = ["composites"]
    figures.append(("composites", _image_grid(composites, kind="image")))
    sections.append(f"<h2>Composites</h2><p class=note>{html.escape(composite_label)}; every image panel shares "
                    "zoom and pan (drag to pan, scroll to zoom, double-click to reset); click a pixel for its "
                    f"spectra. Display grid: every {step} pixel(s) of {H} x {W}.</p>" + "@@composites@@")
    figures.append(("blink", _blink()))
    image_ids.append("blink")
    sections.append("<h2>Blink</h2><p class=note>A <select id=blink-a onchange='hsfuseBlinkSet(0)'></select> "
                    "B <select id=blink-b onchange='hsfuseBlinkSet(1)'></select> "
                    "<button onclick='hsfuseBlinkShow(0)'>show A</button> "
                    "<button onclick='hsfuseBlinkShow(1)'>show B</button> "
                    "<button id=blink-button onclick='hsfuseBlink()'>blink</button></p>@@blink@@")
    metric_rows = [dict(r) for r in inputs.metrics] if inputs.metrics else []
    if scene.reference is not None:
        maps, per_band = _errors(scene, map_step)
        panels = _map_panels(maps, [("rmse", "RMSE", "Viridis", map_step, 0.0),
                                    ("sam_deg", "SAM (deg)", "Magma", map_step, 0.0)])
        figures.append(("errors", _image_grid(panels, kind="heatmap", cols=len(maps))))
        image_ids.append("errors")
        sections.append("<h2>Errors against the reference</h2><p class=note>Per-pixel RMSE over bands and spectral "
                        "angle; one colour scale per metric (top: 99th percentile of all methods)"
                        + ("" if map_step == 1 else f"; every {map_step}-th pixel") + ".</p>@@errors@@")
        if not metric_rows:
            metric_rows = [{"method": k, "psnr_band_mean": float(np.nanmean(v["psnr"])),
                            "rmse": float(np.sqrt(np.mean(v["rmse"] ** 2))),
                            "sam_deg_mean": float(np.mean(maps[k]["sam_deg"]))} for k, v in per_band.items()]
        figures.append(("psnr", _lines(scene.wavelengths, {k: v["psnr"] for k, v in per_band.items()},
                                       title="PSNR per band (peak: the reference band maximum)", ytitle="dB")))
        figures.append(("rmse", _lines(scene.wavelengths, {k: v["rmse"] for k, v in per_band.items()},
                                       title="RMSE per band", ytitle="RMSE")))
        grid_note = "" if map_step == 1 else f" (computed on every {map_step}-th pixel)"
        sections.append(f"<h2>Per band{grid_note}</h2>@@psnr@@@@rmse@@")
    elif scene.hsi is not None and scene.msi is not None and physics is not None:
        maps, notes = _consistency(scene, map_step, physics)
        r = scene.ratio or 1
        panels = _map_panels(maps, [("msi", "MSI consistency RMSE", "Viridis", map_step, 0.0),
                                    ("hsi", "HSI consistency RMSE", "Cividis", r, (r - 1) / 2)])
        figures.append(("consistency", _image_grid(panels, kind="heatmap", cols=len(maps))))
        image_ids.append("consistency")
        note = " ".join(notes)
        sections.append("<h2>Consistency with the inputs (no reference)</h2><p class=note>Per-pixel RMSE of the "
                        "result degraded by the operators against each input. " + html.escape(note) +
                        "</p>@@consistency@@")
    if inputs.scores:
        rows = [{"method": k, **dict(v)} for k, v in inputs.scores.items()]
        sections.append("<h2>No-reference scores</h2>" + _table(rows, table_id="scores"))
    if metric_rows:
        for row in metric_rows:
            if row.get("method") in inputs.seconds and "time_s" not in row:
                row["time_s"] = float(inputs.seconds[row["method"]])
        sections.insert(2, "<h2>Metrics</h2><p class=note>Click a column header to sort.</p>"
                        + _table(metric_rows, table_id="metrics"))
    sections.append("<h2>Spectra</h2><p class=note>Click any image. Shaded: the MSI band responses (right axis)."
                    "</p><div id=spectrum></div>")
    if physics is not None:
        f_psf, f_srf = _operators(physics, scene.wavelengths, inputs.operators)
        figures += [("psf", f_psf), ("srf", f_srf)]
        sections.append("<h2>Operators</h2><div style='display:flex;flex-wrap:wrap'>@@psf@@@@srf@@</div>")
    settings = [{"method": k, "seconds": inputs.seconds.get(k), "options": dict(inputs.options.get(k, {}))}
                for k in scene.results]
    sections.append("<h2>Methods</h2>" + _table(settings, table_id="settings"))
    spectra = _spectra(scene, step, spectra_mb)
    prov = _provenance(inputs)
    sections.append(f"<h2>Provenance</h2><p class=note>Spectra grid: every {spectra['step']} pixel(s) "
                    f"({spectra['rows']} x {spectra['cols']} points); a click shows the nearest point.</p>"
                    f"<pre>{html.escape(json.dumps(prov, indent=1, default=str))}</pre>")
    rendered = {}
    for div_id, fig in figures:
        rendered[div_id] = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                                       config={"scrollZoom": True, "displaylogo": False})
    body = "\n".join(sections)
    for div_id, snippet in rendered.items():
        body = body.replace(f"@@{div_id}@@", snippet)
    srf_rows = {}
    if srf is not None:
        names = getattr(physics.spectral, "band_names", None) or [f"band {i + 1}" for i in range(srf.shape[0])]
        srf_rows = {str(n): [float(v) for v in row] for n, row in zip(names, srf)}
    centre = (H // 2, W // 2)
    data = {"images": image_ids, "spectra": spectra, "start": centre, "srf": srf_rows,
            "srfmax": float(srf.max()) if srf is not None and srf.size else 1.0,
            "wavelengths": None if scene.wavelengths is None else [float(w) for w in scene.wavelengths]}
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for n in inputs.notes)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(inputs.title)}</title>"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(inputs.title)}</h1><p class=note>{len(scene.results)} result(s), {H} x {W} x {B}"
            f"{'' if scene.ratio is None else f', ratio {scene.ratio}'}; made by hsfuse {prov['hsfuse']}</p>{notes}"
            f"{body}<script type='application/json' id='hsfuse-data'>{json.dumps(data)}</script>"
            f"<script>{_JS}</script></body></html>")
    return page, step, spectra["step"]


def write_report(path: str | os.PathLike[str], inputs: ReportInputs, *, overwrite: bool = False,
                 max_side: int = 1024, spectra_mb: float = 4.0) -> ReportSummary:
    """Build the report (:func:`build_report`) and write it to ``path`` (``.html``) atomically; refuses an
    existing file unless ``overwrite`` (checked before any work)."""
    from ..io.atomic import atomic_output, check_output_path

    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"a report is an HTML page: give a path ending in .html, got {target.name!r}")
    check_output_path(target, overwrite=overwrite)
    t0 = time.perf_counter()
    page, step, sstep = build_report(inputs, max_side=max_side, spectra_mb=spectra_mb)
    with atomic_output(target, overwrite=overwrite) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return ReportSummary(target, target.stat().st_size, step, sstep, time.perf_counter() - t0)
