"""The catalogue of fusion methods: an explicit ``name -> MethodSpec`` dict, filled in plain code.

Every method is a function ``fuse_<name>(y, physics, *, options...)`` taking a
:class:`~hsfuse.types.FusionMeasurement` and a :class:`~hsfuse.physics.FusionObservation` and returning the fused
HSI ``(N, L, H, W)`` on the input's device and dtype. Its :class:`MethodSpec` says what it needs and how it
behaves, and carries its options dataclass (:mod:`hsfuse.methods.options`), so the command line, the benchmark
runner, the large-scene engine and the Python API treat every method alike and no caller branches on a name.

Adding a method touches its own module (the function and its ``<Name>Options``) and one entry below; the networks
of :mod:`hsfuse.models.catalog` are added by the loop at the end.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._checks import check_device
from ..errors import InputError
from ..models.catalog import MODELS
from ..physics import FusionObservation
from ..physics.specs import build_observation
from ..progress import ProgressFn, reporter
from ..types import FusionMeasurement
from .bicubic import BICUBIC_CHUNKED, BicubicOptions, fuse_bicubic
from .chunking import Chunked
from .cnmf import CNMF_CHUNKED, CnmfOptions, fuse_cnmf
from .cstf import CSTF_CHUNKED, CstfOptions, fuse_cstf
from .glp import GLP_CHUNKED, GlpOptions, fuse_glp
from .gsa import GSA_CHUNKED, GsaOptions, fuse_gsa
from .networks import NETWORK_CHUNKED, NetworkOptions, network_function
from .hysure import HYSURE_CHUNKED, HysureOptions, fuse_hysure
from .ltmr import LTMR_CHUNKED, LtmrOptions, fuse_ltmr
from .options import RUNTIME_ARGUMENTS, MethodOptions, options_from
from .sfim import SFIM_CHUNKED, SfimOptions, fuse_sfim
from .sylvester import FUSE_CHUNKED, FuseOptions, fuse_fuse
from .udaln import UdalnOptions, fit_udaln_pair, fuse_udaln

__all__ = ["MethodSpec", "METHODS", "Need", "Locality", "get_method", "fuse"]

#: what a method needs besides the two images
Need = Literal["psf", "srf", "weights"]
#: how far an output pixel's inputs reach: a halo in LR pixels (``halo * r`` HR pixels), or ``"global"``
Locality = int | Literal["global"]


@dataclass(frozen=True)
class MethodSpec:
    """A fusion method, what it needs and how it behaves.

    Attributes:
        name: registry key (``hsfuse fuse --method NAME``).
        function: ``function(y, physics, **options, **runtime) -> (N, L, H, W)``; its keyword-only parameters are
            exactly the fields of ``options`` plus runtime arguments among ``progress``, ``device``, ``weights``,
            ``valid`` (``tests/test_methods_contract.py`` checks it).
        description: one line for listings.
        reference: the paper (and code base) the implementation follows.
        options: the frozen dataclass of the method's options (defaults = the paper's or code base's).
        needs: what must be right for a good result: ``"psf"`` and ``"srf"`` (the operators in ``physics``; a
            guessed PSF degrades the result), ``"weights"`` (a trained checkpoint).
        blind: estimates the operators it needs from the pair itself (UDALN).
        fits_per_image: optimises a model on each pair (minutes on a CPU); the demo and the default benchmark
            leave it out (name it to run it).
        locality: an HR output pixel depends on inputs within ``locality`` LR pixels (``locality * r`` HR pixels,
            see :meth:`halo`), or ``"global"``: on statistics of the whole image (subspace, regression, a fitted
            network), which the large-scene engine computes in a separate fit step.
        devices: device types it runs on.
        fit: blind methods only: like ``function`` (same options, plus ``support=``: an ``(m, L)`` boolean of the
            HSI bands each MSI band may respond to) but returning the whole fit: an object with ``estimate``
            ``(N, L, H, W)``, ``operators`` (its own :class:`~hsfuse.estimation.operators.EstimatedOperators`),
            ``history`` (one dict per record, e.g. ``loss``, ``fit_db``) and ``iterations``; the real-pair
            workflow scores the method with its own operators too and draws its convergence.
        chunked: how the method runs on a scene cut into chunks (:mod:`hsfuse.methods.chunking`: streamed
            statistics, then a per-chunk apply); ``None`` if it cannot (the large-scene engine refuses it).
        real_pair_options: the options the real-pair workflow (``hsfuse pair``) uses unless told otherwise: there
            the two images are scaled separately, so a blind method's SRF must carry a gain, and a shorter schedule
            may suffice.
    """

    name: str
    function: Callable[..., torch.Tensor]
    description: str
    reference: str
    options: type[MethodOptions]
    needs: frozenset[Need] = frozenset()
    blind: bool = False
    fits_per_image: bool = False
    locality: Locality = "global"
    devices: tuple[str, ...] = ("cpu", "cuda")
    fit: Callable[..., Any] | None = None
    real_pair_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    chunked: Chunked | None = None

    @property
    def needs_psf(self) -> bool:
        return "psf" in self.needs

    @property
    def needs_srf(self) -> bool:
        return "srf" in self.needs

    @property
    def needs_training(self) -> bool:
        """The method needs trained weights (a network)."""
        return "weights" in self.needs

    @property
    def direct(self) -> bool:
        """Runs in seconds with nothing prepared: no trained weights, no per-image fitting (demo, default bench)."""
        return not (self.needs_training or self.fits_per_image)

    def halo(self, ratio: int) -> int | None:
        """The halo in HR pixels at ``ratio`` (``None`` for a global method)."""
        return None if self.locality == "global" else int(self.locality) * int(ratio)

    def runtime_arguments(self) -> tuple[str, ...]:
        """The runtime arguments (``progress``, ``device``, ``weights``, ``valid``) the function accepts."""
        params = inspect.signature(self.function).parameters
        return tuple(n for n in RUNTIME_ARGUMENTS if n in params)

    def check_runtime(self, *, weights: Any = None, valid: Any = None,
                      device: str | torch.device | None = None) -> None:
        """Refuse runtime arguments the method cannot take, or a missing checkpoint, before any work."""
        accepted = self.runtime_arguments()
        if self.needs_training and weights is None:
            raise InputError(f"{self.name} is a trained network: pass weights= (CLI: --weights CHECKPOINT: a run folder "
                             "from 'hsfuse train', one of its checkpoint folders, or a model.safetensors)")
        if weights is not None and "weights" not in accepted:
            raise InputError(f"weights are for trained networks; {self.name} needs none")
        if valid is not None and "valid" not in accepted:
            raise InputError(f"{self.name} cannot ignore masked pixels (valid=); fill or crop them first")
        if device is not None:
            check_device(device, allowed=tuple(self.devices), who=self.name)

    def make_options(self, values: Mapping[str, Any] | MethodOptions | None = None) -> MethodOptions:
        """The method's options from a mapping (unknown keys and wrong types refused) or an instance."""
        return options_from(self.options, values, method=self.name)

    def run(self, y: FusionMeasurement, physics: FusionObservation | None, *,
            options: Mapping[str, Any] | MethodOptions | None = None, weights: Any = None,
            device: str | torch.device | None = None, progress: ProgressFn | None = None,
            valid: torch.Tensor | None = None) -> torch.Tensor:
        """Run the method with its options and the runtime arguments it takes.

        ``weights`` is required by (and only accepted for) trained networks; ``valid`` (an ``(H, W)`` usable-pixel
        mask) only by methods that can ignore pixels. A method without a ``device`` argument runs where ``y`` and
        ``physics`` are moved to; one without ``progress`` reports ``(0, 1)`` and ``(1, 1)``.
        """
        opts = self.make_options(options)
        self.check_runtime(weights=weights, valid=valid, device=device)
        accepted = self.runtime_arguments()
        runtime: dict[str, Any] = {k: v for k, v in (("weights", weights), ("valid", valid)) if v is not None}
        if device is not None:
            dev = torch.device(device)
            if "device" in accepted:
                runtime["device"] = str(dev)
            else:
                y = FusionMeasurement(y.hsi.to(dev), y.msi.to(dev))
                physics = copy.deepcopy(physics).to(device=dev) if physics is not None else None
        report = reporter(progress)
        if "progress" in accepted:
            runtime["progress"] = progress
        else:
            report(0, 1, info=self.name)
        out = self.function(y, physics, **opts.as_kwargs(), **runtime)
        if "progress" not in accepted:
            report(1, 1, info=self.name)
        return out


METHODS: dict[str, MethodSpec] = {
    "bicubic": MethodSpec(
        name="bicubic",
        function=fuse_bicubic,
        description="Keys-cubic upsampling of the HSI on the decimation grid (ignores the MSI): the floor",
        reference="R. Keys, 'Cubic convolution interpolation for digital image processing', IEEE TASSP 29(6), 1981",
        options=BicubicOptions,
        locality=2,  # the Keys kernel reaches 2 LR pixels on each side
        chunked=BICUBIC_CHUNKED,
    ),
    "gsa": MethodSpec(
        name="gsa",
        function=fuse_gsa,
        description="Gram-Schmidt Adaptive component substitution per MSI band on its most correlated HSI bands",
        reference="Aiazzi, Baronti, Selva, IEEE TGRS 45(10), 2007; HS-MS form of Yokoya, Grohnfeldt, Chanussot, "
        "IEEE GRSM 5(2), 2017 (HSMSFusionToolbox GSA_wrapper.m)",
        options=GsaOptions,
        locality="global",  # band groups and regression weights over the whole image
        chunked=GSA_CHUNKED,
    ),
    "sfim": MethodSpec(
        name="sfim",
        function=fuse_sfim,
        description="SFIM-HS: per HSI band a non-negative synthetic PAN from the MSI, intensity modulation by its "
        "ratio to its low-pass",
        reference="Liu, IJRS 21(18), 2000; HS-MS form Yokoya, Grohnfeldt, Chanussot, IEEE GRSM 5(2), 2017 (SFIM.m)",
        options=SfimOptions,
        locality="global",  # the synthesis regressions over the whole image
        chunked=SFIM_CHUNKED,
    ),
    "glp": MethodSpec(
        name="glp",
        function=fuse_glp,
        description="MTF-GLP-HS: generalized Laplacian pyramid, MTF-matched low-pass, per-band injection gains",
        reference="Aiazzi et al., PE&RS 72(5), 2006; Selva et al., IEEE JSTARS 8(6), 2015; Yokoya et al. 2017 "
        "(MTF_GLP_wrapper.m)",
        options=GlpOptions,
        locality="global",  # the regressions and gains over the whole image (streamed exactly; local filtering)
        chunked=GLP_CHUNKED,
    ),
    "fuse": MethodSpec(
        name="fuse",
        function=fuse_fuse,
        description="FUSE/R-FUSE: closed-form Sylvester solution in a PCA subspace (circular model, FFT)",
        reference="Wei, Dobigeon, Tourneret, IEEE TIP 24(11), 2015; R-FUSE, IEEE SPL 23(11), 2016",
        options=FuseOptions,
        needs=frozenset({"psf", "srf"}),
        locality="global",  # PCA subspace of the whole HSI, FFT over the whole image
        chunked=FUSE_CHUNKED,
    ),
    "hysure": MethodSpec(
        name="hysure",
        function=fuse_hysure,
        description="HySure: vector-TV-regularised subspace fusion by ADMM (circular model, FFT); "
        "estimate_operators=true takes the PSF/SRF from HySure's estimator",
        reference="Simoes, Bioucas-Dias, Almeida, Chanussot, IEEE TGRS 53(6), 2015 (alfaiate/HySure data_fusion.m)",
        options=HysureOptions,
        needs=frozenset({"psf", "srf"}),  # only the ratio and offset with estimate_operators=true
        locality="global",  # a global ADMM over the whole image
        chunked=HYSURE_CHUNKED,
    ),
    "cnmf": MethodSpec(
        name="cnmf",
        function=fuse_cnmf,
        description="CNMF: coupled NMF unmixing of both images (VCA start, multiplicative updates)",
        reference="Yokoya, Yairi, Iwasaki, IEEE TGRS 50(2), 2012 (hif-benchmarking methods/CNMF)",
        options=CnmfOptions,
        needs=frozenset({"psf", "srf"}),
        locality="global",  # endmembers of the whole image; chunked: abundances per overlapping tile (approximate)
        chunked=CNMF_CHUNKED,
    ),
    "ltmr": MethodSpec(
        name="ltmr",
        function=fuse_ltmr,
        description="LTMR: subspace fusion regularised by the low tensor multi-rank of k-means patch groups (ADMM)",
        reference="Dian, Li, IEEE TIP 28(10), 2019 (renweidian/LTMR TSVD_Subpace_FUS.m)",
        options=LtmrOptions,
        needs=frozenset({"psf", "srf"}),
        fits_per_image=True,  # about 100 s at 512^2 on two CPU cores
        locality="global",  # subspace of the whole image; chunked: ADMM and k-means per overlapping tile (approximate)
        chunked=LTMR_CHUNKED,
    ),
    "cstf": MethodSpec(
        name="cstf",
        function=fuse_cstf,
        description="CSTF: coupled sparse Tucker factorisation (row/column/spectral dictionaries, L1 core by ADMM; "
        "separable circular PSF)",
        reference="Li, Dian, Fang, Bioucas-Dias, IEEE TIP 27(8), 2018 (renweidian/CSTF CSTF_FUS.m)",
        options=CstfOptions,
        needs=frozenset({"psf", "srf"}),
        fits_per_image=True,  # fits dictionaries and a core per pair: about 15 s at 512^2 on one CPU thread
        locality="global",  # dictionaries and core of the whole image; chunked: CSTF per overlapping tile (approximate)
        chunked=CSTF_CHUNKED,
    ),
    "udaln": MethodSpec(
        name="udaln",
        function=fuse_udaln,
        description="UDALN: unsupervised and blind; learns the PSF, the SRF and a spectral upsampling net from "
        "the pair itself (three stages; option schedule=paper|fast)",
        reference="Li, Zheng, Yao, Gao, Hong, IEEE GRSL 19, 2022, art. 6007305 (JiaxinLiCAS/UDALN_GRSL)",
        options=UdalnOptions,
        blind=True,
        fits_per_image=True,
        locality="global",  # a network fitted to the whole pair
        fit=fit_udaln_pair,
        # a free SRF gain (the pair's images are scaled separately); the fast schedule (README: "Schedules")
        real_pair_options={"schedule": "fast", "srf_normalize": "none"},
    ),
}

for _name, _model in MODELS.items():
    METHODS[_name] = MethodSpec(name=_name, function=network_function(_name), description=_model.description,
                                reference=_model.reference, options=NetworkOptions, needs=frozenset({"weights"}),
                                locality=4,  # approximate: tiles overlap by 4 LR pixels and are blended
                                chunked=NETWORK_CHUNKED)


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name``, or :class:`InputError` listing the known names."""
    spec = METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InputError(f"unknown fusion method {name!r}; choose one of: {', '.join(sorted(METHODS))} (see "
                         "'hsfuse methods')")
    return spec


def fuse(name: str, y: FusionMeasurement, physics: FusionObservation | None = None, **options: Any) -> torch.Tensor:
    """Run the method ``name`` on the tensors ``y`` with ``physics``; ``options`` are the method's options and
    runtime arguments (``weights``, ``device``, ``progress``, ``valid``).

    ``physics=None`` is passed on to methods whose function accepts it (UDALN learns its operators); methods that
    need neither PSF nor SRF get the default observation (the ratio from the sizes, the default Gaussian PSF of FWHM
    ``r`` for the decimation phase); the others raise :class:`InputError`.
    For NumPy arrays, cubes and files use :func:`hsfuse.fuse`.

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.ones(1, 4) / 4))
        >>> tuple(fuse("bicubic", obs.A(torch.rand(1, 4, 6, 8)), obs).shape)
        (1, 4, 6, 8)
    """
    from .._checks import check_pair

    spec = get_method(name)
    takes_none = inspect.signature(spec.function).parameters["physics"].default is None
    if physics is None and not takes_none:
        if spec.needs_psf or spec.needs_srf:
            raise InputError(f"method {name!r} needs the observation operators ({' and '.join(sorted(spec.needs))}): "
                             "pass physics= (a FusionObservation), or use hsfuse.fuse(..., srf=..., psf=...)")
        hsi, msi, r = check_pair(y.hsi, y.msi, who=name)
        physics = build_observation(hsi_bands=hsi.shape[1], msi_bands=msi.shape[1], ratio=r, needs_srf=False)
        physics = physics.to(device=hsi.device, dtype=hsi.dtype)
    runtime = {k: options.pop(k) for k in RUNTIME_ARGUMENTS if k in options}
    return spec.run(y, physics, options=options, **runtime)


def options_table(spec: MethodSpec) -> list[dict[str, str]]:
    """``hsfuse methods NAME``: one row per option (name, type, default, help)."""
    from .options import describe_options

    return describe_options(spec.options)


def method_summary(spec: MethodSpec) -> dict[str, Any]:
    """``hsfuse methods``: one row per method (name, needs, blind, per-image fit, locality, devices, description)."""
    return {"method": spec.name, "needs": ",".join(sorted(spec.needs)) or "-", "blind": "yes" if spec.blind else "-",
            "fits_per_image": "yes" if spec.fits_per_image else "-",
            "locality": spec.locality if spec.locality == "global" else f"{spec.locality} LR px",
            "devices": ",".join(spec.devices), "options": ", ".join(f.name for f in dataclasses.fields(spec.options)),
            "description": spec.description}
