"""Blind estimation of the observation operators of one HSI/MSI pair.

* :mod:`~hsfuse.estimation.operators`: :class:`EstimatedOperators` (the result every estimator returns) and the
  no-data footprint rule :func:`lowres_valid`.
* :mod:`~hsfuse.estimation.hysure`: HySure's least-squares PSF/SRF estimator.
* :mod:`~hsfuse.estimation.registration`: the co-registration check of a pair.

UDALN's stage 1 is the other estimator (:func:`hsfuse.methods.udaln.estimate_udaln`); the real-pair workflow
(:mod:`hsfuse.workflows.real_pair`) chooses between them by name.
"""
