"""HSI synthesis by unmixing and diffusion ("Unmixing Before Fusion", Yu, Pan, Wang et al., CVPR 2024).

Three stages, each a module:

1. :mod:`~hsfuse.synthesis.unmixing`: learn RGB -> abundances (on the simplex) and non-negative endmembers
   from real HSIs and their simulated RGB; apply it to any RGB image;
2. :mod:`~hsfuse.synthesis.diffusion`: train a DDPM (SR3 formulation) on abundance maps and sample new ones
   (ancestral or DDIM), projected back onto the simplex;
3. :mod:`~hsfuse.synthesis.dataset`: synthesise ``Y = E A`` and write a dataset (cubes with wavelengths, their
   simulated MSI/RGB, abundances, endmembers, provenance).

The networks are in :mod:`hsfuse.models.unmixing`, :mod:`hsfuse.models.ddpm_unet`; the diffusion math in
:mod:`hsfuse.models.diffusion`; training runs on :mod:`hsfuse.training.engine` (checkpoints, resume).
"""
