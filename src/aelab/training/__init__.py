"""Training: the generic :class:`~.trainer.Trainer` and its :class:`~.trainer.TrainConfig`,
callbacks (:mod:`.callbacks`, experiment trackers in :mod:`.tracking`), where batches come from
(:mod:`.batches`), optimizers (:mod:`.optim`), the convolution kernels chosen by timing
(:mod:`.kernels`), corruptions and warps of the inputs (:mod:`.noise`, :mod:`.augment`) and the one
resolution of a recipe, a schedule and overrides into the configs a run trains with
(:mod:`.recipes`). Nothing here knows of run folders: :mod:`aelab.runs` stands on it."""
