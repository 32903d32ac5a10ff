"""Geometry of real pairs: grids, their comparison and the fused grid, lazy warping (:mod:`.grids`)."""

from .grids import Grid, GridPlan, grid_of, plan_grids, warp_to_grid

__all__ = ["Grid", "GridPlan", "grid_of", "plan_grids", "warp_to_grid"]
