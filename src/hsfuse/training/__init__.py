"""Training: :mod:`.engine` (the resumable step loop every trainer runs on: run folder, checkpoints, pointers,
RNG state, history, weight averages, progress), :mod:`.loop` (the fusion networks on that engine: samples,
validation, TensorBoard) and :mod:`.distributed` (torchrun / DistributedDataParallel). Samples come from
:mod:`hsfuse.data.patches`."""
