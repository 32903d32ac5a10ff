"""hsfuse: hyperspectral + multispectral image fusion (hyperspectral super-resolution).

Layers (lower never import higher): ``types``/``io`` -> ``physics`` -> ``metrics`` -> ``methods``/``models``
-> ``data``/``training`` -> ``bench``/``viz``/``cli``.
"""

from .errors import HsfuseError
from .types import Cube, FusionMeasurement, GeoInfo

__version__ = "0.1.0"
__all__ = ["Cube", "FusionMeasurement", "GeoInfo", "HsfuseError", "__version__"]
