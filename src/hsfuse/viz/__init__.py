"""Figures: false-colour composites, spectra at pixels, per-pixel error maps, the demo summary figure; estimated
PSF/SRF, convergence curves and real-pair overviews (:mod:`hsfuse.viz.blind_figures`).

matplotlib is imported only when a figure is drawn (see :mod:`hsfuse.viz.figures`).
"""

from .blind_figures import plot_convergence, plot_psf, plot_real_pair, plot_srf
from .figures import (
    composite_bands,
    demo_figure,
    error_maps,
    false_colour,
    plot_composites,
    plot_error_maps,
    plot_spectra,
)

__all__ = [
    "composite_bands",
    "demo_figure",
    "error_maps",
    "false_colour",
    "plot_composites",
    "plot_error_maps",
    "plot_spectra",
    "plot_convergence",
    "plot_psf",
    "plot_real_pair",
    "plot_srf",
]
