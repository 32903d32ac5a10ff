"""Raw spectral-response tables from installed packages and published code (internal).

Each loader returns plain arrays ``(wavelengths_nm (K,), responses (K, m), band_names, source)`` and imports
its package inside the function, so importing :mod:`hsfuse` stays light. :mod:`hsfuse.physics.srf_library`
wraps them into :class:`~hsfuse.physics.srf_library.SensorResponse` objects and the ``SENSORS`` registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FileFormatError, MissingDependencyError

__all__ = ["RawResponse", "DHSIS_CREATE_F", "dhsis_nikon_d700", "from_pyrsr", "from_colour_cmfs",
           "from_colour_camera", "from_colour_canon_eos_5d_mark_ii"]

RawResponse = tuple[np.ndarray, np.ndarray, list[str], str]

# The integer "Nikon D700" SRF of the CAVE/Harvard fusion literature: ``create_F.m`` of the DHSIS
# (Dian et al., IEEE TNNLS 2018), NSSR (Dong et al., IEEE TIP 2016) and DBIN (Wang et al., ICCV 2019) MATLAB
# code. Rows R, G, B; columns 400:10:700 nm (31 bands). Those codes divide each row by its sum before use.
DHSIS_CREATE_F: tuple[tuple[int, ...], ...] = (
    (2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 6, 11, 17, 21, 22, 21, 20, 20, 19, 19, 18, 18, 17, 17),
    (1, 1, 1, 1, 1, 1, 2, 4, 6, 8, 11, 16, 19, 21, 20, 18, 16, 14, 11, 7, 5, 3, 2, 2, 1, 1, 2, 2, 2, 2, 2),
    (7, 10, 15, 19, 25, 29, 30, 29, 27, 22, 16, 9, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
)


def dhsis_nikon_d700() -> RawResponse:
    """``create_F`` integers on 400:10:700 nm, unnormalised (rows R, G, B become columns)."""
    wavelengths = np.arange(400.0, 701.0, 10.0)
    responses = np.asarray(DHSIS_CREATE_F, dtype=np.float64).T
    source = ("create_F.m of the DHSIS / NSSR / DBIN MATLAB code (Nikon D700-like, integer weights, rows "
              "R,G,B over 400:10:700 nm; normalise rows to sum 1 as those codes do)")
    return wavelengths, responses, ["R", "G", "B"], source


def _missing(package: str, what: str) -> MissingDependencyError:
    return MissingDependencyError(f"{what} needs the '{package}' package: pip install {package}")


def from_pyrsr(satellite: str, sensor: str, bands: tuple[str, ...]) -> RawResponse:
    """Peak-normalised relative spectral responses from pyrsr (``RSR(satellite=, sensor=)``, 1 nm grid).

    ``bands`` are pyrsr's band identifiers (``"1"``, ``"8A"``, ``"3N"``); names become ``"B" + id``.
    """
    try:
        import pyrsr
    except ImportError:
        raise _missing("pyrsr", f"the {satellite} {sensor} spectral response") from None
    rsr = pyrsr.RSR(satellite=satellite, sensor=sensor, LayerBandsAssignment=list(bands))
    wavelengths = np.asarray(rsr.rsrs_wvl, dtype=np.float64)
    responses = np.stack([np.asarray(rsr.rsrs_norm01[b], dtype=np.float64) for b in rsr.bands], axis=1)
    reference = ""
    sat_dir = "RapidEye" if satellite.startswith("RapidEye") else satellite
    ref_path = Path(pyrsr.__path__[0]) / "data" / sat_dir / sensor / "reference"
    if ref_path.is_file():
        reference = "; " + " | ".join(line.strip() for line in ref_path.read_text().splitlines() if line.strip())
    source = f"pyrsr {getattr(pyrsr, '__version__', '?')} (Apache-2.0): {satellite} {sensor}{reference}"
    return wavelengths, responses, [f"B{b}" for b in rsr.bands], source


def _colour():
    try:
        import colour
    except ImportError:
        raise _missing("colour-science", "this colour-science sensor") from None
    return colour


def from_colour_cmfs(key: str) -> RawResponse:
    """A colour-matching-function set from ``colour.MSDS_CMFS`` (columns x_bar, y_bar, z_bar as X, Y, Z)."""
    colour = _colour()
    cmfs = colour.MSDS_CMFS[key]
    names = ["X", "Y", "Z"] if list(cmfs.labels) == ["x_bar", "y_bar", "z_bar"] else [str(n) for n in cmfs.labels]
    source = f"colour-science {colour.__version__} (BSD-3-Clause): colour.MSDS_CMFS[{key!r}]"
    return np.asarray(cmfs.wavelengths, np.float64), np.asarray(cmfs.values, np.float64), names, source


def from_colour_camera(key: str) -> RawResponse:
    """Camera RGB sensitivities from ``colour.MSDS_CAMERA_SENSITIVITIES`` (columns R, G, B)."""
    colour = _colour()
    cam = colour.MSDS_CAMERA_SENSITIVITIES[key]
    source = f"colour-science {colour.__version__} (BSD-3-Clause): colour.MSDS_CAMERA_SENSITIVITIES[{key!r}]"
    return np.asarray(cam.wavelengths, np.float64), np.asarray(cam.values, np.float64), ["R", "G", "B"], source


def from_colour_canon_eos_5d_mark_ii() -> RawResponse:
    """Canon EOS 5D Mark II RGB sensitivities shipped with colour-science as a rawtoaces resource file.

    colour-science 0.4.x does not list this camera in ``MSDS_CAMERA_SENSITIVITIES``; the AMPAS rawtoaces
    table it ships (``colour.characterisation.aces_it.ROOT_RESOURCES_RAWTOACES``) is read instead.
    """
    colour = _colour()
    try:
        from colour.characterisation.aces_it import ROOT_RESOURCES_RAWTOACES
    except ImportError:
        raise _missing("colour-science", "the Canon EOS 5D Mark II sensitivities (rawtoaces resources)") from None
    path = Path(ROOT_RESOURCES_RAWTOACES) / "CANON_EOS_5DMark_II_RGB_Sensitivities.csv"
    if not path.is_file():
        raise FileFormatError(f"{path} not found in the installed colour-science {colour.__version__}; "
                              "reinstall colour-science or load the camera from a CSV with load_response_csv")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    source = (f"colour-science {colour.__version__} (BSD-3-Clause) rawtoaces resource "
              "CANON_EOS_5DMark_II_RGB_Sensitivities.csv (AMPAS rawtoaces)")
    return table[:, 0], table[:, 1:4], ["R", "G", "B"], source
