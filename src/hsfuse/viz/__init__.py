"""Figures: false-colour composites, spectra at pixels, per-pixel error maps, the demo summary figure.

matplotlib is imported only when a figure is drawn (see :mod:`hsfuse.viz.figures`).
"""

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
]
