"""Geometry of real pairs: grids, their comparison and the fused grid, lazy warping (:mod:`.grids`), and local
resampling by a displacement field (:mod:`.local`)."""

from .grids import Grid, GridPlan, grid_of, plan_grids, warp_to_grid
from .local import warp_with_field

__all__ = ["Grid", "GridPlan", "grid_of", "plan_grids", "warp_to_grid", "warp_with_field"]
