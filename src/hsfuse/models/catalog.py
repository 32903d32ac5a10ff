"""The catalogue of supervised fusion networks: an explicit ``name -> ModelSpec`` dict, filled in plain code.

Each entry says how to build the network (class and config dataclass), its named configurations
(``"paper"``: the published architecture; ``"tiny"``: a few-thousand-parameter version for tests), which
ratios it supports, and the paper's training recipe. :func:`build_model` is the one way to make a network
from a name, so the CLI, the training engine and checkpoints agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InputError
from .base import FusionNet, config_from_dict
from .dbin import DBIN, DBINConfig
from .dhifnet import DHIFNet, DHIFNetConfig
from .edbin import EDBIN, EDBINConfig
from .two_branch import TwoBranchCNN, TwoBranchConfig

__all__ = ["TrainingRecipe", "ModelSpec", "MODELS", "get_model_spec", "build_model", "resolve_config"]


@dataclass(frozen=True)
class TrainingRecipe:
    """A paper's training recipe.

    Attributes:
        loss: ``"l1"`` (mean absolute error) or ``"l2"`` (mean squared error).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr_schedule: piecewise-constant learning rate as ``((first_step, lr), ...)``, first step 0.
        steps: optimiser steps of the paper's run.
        batch_size, patch_size: samples per step and their high-resolution side in pixels.
        momentum, weight_decay, betas: optimiser settings.
        source: where the recipe was read (code file of the authors' repository).
    """

    loss: Literal["l1", "l2"]
    optimizer: Literal["adam", "sgd"]
    lr_schedule: tuple[tuple[int, float], ...]
    steps: int
    batch_size: int
    patch_size: int
    source: str
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def lr_at(self, step: int, *, total_steps: int | None = None) -> float:
        """Learning rate at ``step``; with ``total_steps`` the milestones are rescaled to that run length."""
        scale = 1.0 if total_steps is None else total_steps / self.steps
        lr = self.lr_schedule[0][1]
        for first, value in self.lr_schedule:
            if step >= first * scale:
                lr = value
        return lr


@dataclass(frozen=True)
class ModelSpec:
    """A network and what is known about it.

    Attributes:
        name: registry key (also the ``hsfuse fuse/train --method`` name).
        model_class: the :class:`FusionNet` subclass.
        configs: named configurations; ``"paper"`` and ``"tiny"`` always exist.
        description: one line for listings.
        reference: the paper and the authors' code the implementation follows.
        ratios: which ratios the architecture supports, in words.
        recipe: the paper's training recipe.
        authors_parameters: parameter count of the authors' released code in its paper setting, with that
            setting, e.g. ``(1_585_306, "31 bands, RGB (3), ratio 8, ...")`` for DBIN; ``None`` where it could not be counted.
    """

    name: str
    model_class: type[FusionNet]
    configs: dict[str, Any]
    description: str
    reference: str
    ratios: str
    recipe: TrainingRecipe
    authors_parameters: tuple[int, str] | None = None


def _piecewise(base: float, every: int, first: int, gamma: float, count: int) -> tuple[tuple[int, float], ...]:
    return ((0, base),) + tuple((first + i * every, base * gamma ** (i + 1)) for i in range(count))


_DBIN_RECIPE = TrainingRecipe(
    loss="l1", optimizer="adam",
    lr_schedule=((0, 4e-4), (20_000, 2e-4), (60_000, 1e-4), (1_400_000, 5e-5)),
    steps=251_000, batch_size=32, patch_size=64,
    source="wwhappylife/Deep-Blind-Hyperspectral-Image-Fusion train_boost_res.py / train_cave_edbin.py "
           "(L1 loss, Adam, the declared L2 regulariser is never added to the loss)")

MODELS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    MODELS[spec.name] = spec


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``, or :class:`InputError` listing the known names."""
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InputError(f"unknown network {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return spec


def resolve_config(spec: ModelSpec, config: str | dict[str, Any] | Any | None) -> Any:
    """A config instance from a name (``"paper"``, ``"tiny"``...), a dict of options, or an instance."""
    config_cls = spec.model_class.config_class
    if config is None:
        return spec.configs["paper"]
    if isinstance(config, str):
        if config not in spec.configs:
            raise InputError(f"{spec.name} has no configuration {config!r}; known: {', '.join(spec.configs)}")
        return spec.configs[config]
    if isinstance(config, dict):
        return config_from_dict(config_cls, config)
    if isinstance(config, config_cls):
        return config
    raise InputError(f"config for {spec.name} must be a name, a dict or a {config_cls.__name__}")


def build_model(name: str, *, hsi_bands: int, msi_bands: int, ratio: int,
                config: str | dict[str, Any] | Any | None = None) -> FusionNet:
    """Build the network ``name`` for ``hsi_bands`` / ``msi_bands`` / ``ratio`` with a named or given config.

    Example:
        >>> net = build_model("dbin", hsi_bands=31, msi_bands=3, ratio=8, config="tiny")
        >>> type(net).__name__
        'DBIN'
    """
    spec = get_model_spec(name)
    return spec.model_class(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio,
                            config=resolve_config(spec, config))


_register(ModelSpec(
    name="two_branch",
    model_class=TwoBranchCNN,
    configs={"paper": TwoBranchConfig(), "tiny": TwoBranchConfig.tiny()},
    description="Two-branch CNN: 1-D convs on the upsampled pixel spectrum + 2-D convs on the MSI window -> FC",
    reference="J. Yang, Y.-Q. Zhao, J. C.-W. Chan, 'Hyperspectral and multispectral image fusion via deep "
              "two-branches convolutional neural network', Remote Sensing 10(5):800, 2018; "
              "polwork/Hyperspectral-and-Multispectral-fusion-via-Two-branch-CNN (Caffe prototxt v7)",
    ratios="any integer ratio >= 2 (the HSI is upsampled to the MSI grid first)",
    recipe=TrainingRecipe(
        loss="l2", optimizer="sgd", lr_schedule=((0, 1e-4),), steps=10_000_000, batch_size=128, patch_size=31,
        momentum=0.9, weight_decay=5e-4,
        source="super_resolution_solver.prototxt (SGD momentum 0.9, fixed lr 1e-4, weight decay 5e-4, "
               "Euclidean loss, batch 128)"),
    authors_parameters=TwoBranchCNN.AUTHORS_PARAMETERS,
))
_register(ModelSpec(
    name="dbin",
    model_class=DBIN,
    configs={"paper": DBINConfig(), "tiny": DBINConfig.tiny()},
    description="DBIN: deep blind iterative network, fusion block + learned observation model, unrolled",
    reference="W. Wang, W. Zeng, Y. Huang, X. Ding, J. Paisley, 'Deep blind hyperspectral image fusion', "
              "ICCV 2019; wwhappylife/Deep-Blind-Hyperspectral-Image-Fusion train_boost_res.py",
    ratios=DBIN.RATIOS,
    recipe=_DBIN_RECIPE,
    authors_parameters=DBIN.AUTHORS_PARAMETERS,
))
_register(ModelSpec(
    name="edbin",
    model_class=EDBIN,
    configs={"paper": EDBINConfig(), "tiny": EDBINConfig.tiny()},
    description="EDBIN: DBIN with spectral normalisation, squeeze-excitation blocks, CARAFE upsampling, 8 iterations",
    reference="W. Wang, X. Fu, W. Zeng, L. Sun, R. Zhan, Y. Huang, X. Ding, 'Enhanced deep blind hyperspectral "
              "image fusion', IEEE TNNLS 34(3):1513-1523, 2023 (early access 2021); train_cave_edbin.py, utils3.py",
    ratios=EDBIN.RATIOS,
    recipe=_DBIN_RECIPE,
    authors_parameters=EDBIN.AUTHORS_PARAMETERS,
))
_register(ModelSpec(
    name="dhifnet",
    model_class=DHIFNet,
    configs={"paper": DHIFNetConfig(), "tiny": DHIFNetConfig.tiny()},
    description="DHIF-Net: unfolded gradient steps with a spatially adaptive separable 3-D filter prior",
    reference="T. Huang, W. Dong, J. Wu, L. Li, X. Li, G. Shi, 'Deep hyperspectral image fusion network with "
              "iterative spatio-spectral regularization', IEEE TCI 8:201-214, 2022; TaoHuang95/DHIF-Net "
              "CAVE/Model.py",
    ratios=DHIFNet.RATIOS,
    recipe=TrainingRecipe(
        loss="l1", optimizer="adam",
        lr_schedule=_piecewise(3e-4, every=25_000, first=5_000, gamma=0.95, count=30),
        steps=2_500_000, batch_size=4, patch_size=96,
        source="CAVE/Train.py (Adam 3e-4, MultiStepLR at epochs 1, 6, ..., 146 of 5,000 iterations, gamma 0.95, "
               "500 epochs, batch 4, 96x96 patches, L1)"),
    authors_parameters=DHIFNet.AUTHORS_PARAMETERS,
))
