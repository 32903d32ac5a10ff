"""Training engine for the supervised networks: :mod:`.loop` (train, resume, validate, checkpoint, log) and
:mod:`.distributed` (torchrun / DistributedDataParallel). Samples come from :mod:`hsfuse.data.patches`."""
