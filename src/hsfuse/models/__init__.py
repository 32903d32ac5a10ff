"""Supervised fusion networks, each a :class:`~hsfuse.models.base.FusionNet` in its own module.

:mod:`.two_branch` (Yang et al. 2018), :mod:`.dbin` (DBIN, ICCV 2019), :mod:`.edbin` (EDBIN, TNNLS 2021),
:mod:`.dhifnet` (DHIF-Net, TCI 2022); :mod:`.catalog` names them (:func:`~hsfuse.models.catalog.build_model`),
:mod:`.checkpoint` saves and loads them (safetensors + JSON card), :mod:`.inference` runs them with band scaling
and :mod:`.tiling` on large images. Nothing is imported here: import the module you need.
"""
