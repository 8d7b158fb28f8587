"""The notebook's five models trained on Olivetti: images/s, s/epoch, FLOPs and MFU."""

from __future__ import annotations

from typing import Any

from .machine import typical_epoch

BENCH_MODELS = ("shallow", "deep", "conv", "denoising", "vae")
_HOLDOUT_PEOPLE = 4  # the Keras port's --holdout-people


def olivetti_split(data_home: str | None) -> tuple[Any, Any]:
    """People 0-35 with their mirrors for training, 36-39 with mirrors held out: the split the
    Keras port's ``--holdout-people 4`` makes, so the two train on the same images."""
    import numpy as np

    from ..data import load_dataset, mirror

    faces = load_dataset("olivetti", data_home=data_home, download=False)
    held = faces.labels >= 40 - _HOLDOUT_PEOPLE
    train = mirror(faces.subset(np.flatnonzero(~held)))
    heldout = mirror(faces.subset(np.flatnonzero(held)))
    return train, heldout


def scaled_epochs(name: str, scale: float) -> int:
    """The recipe's (the notebook's) epochs times ``scale``, at least 2, as the Keras port
    scales its own."""
    from ..models import get_recipe

    return max(2, round(get_recipe(name).train["epochs"] * scale))


def step_flops(model, x, corrupt=None) -> int:
    """FLOPs of one training step (forward and backward) on batch ``x``."""
    from torch.utils.flop_counter import FlopCounterMode

    x_in = corrupt(x) if corrupt is not None else x
    with FlopCounterMode(display=False) as counter:
        model(x_in, x).loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_model(
    name: str,
    x_train,
    *,
    epochs: int,
    precision: str,
    device: str,
    peaks: dict[str, dict[str, Any]],
    seed: int = 0,
    x_heldout=None,
) -> dict[str, Any]:
    """Train recipe ``name`` on ``x_train`` for ``epochs`` with its (the notebook's) schedule, in
    ``precision`` (``auto``: the trainer's choice for this model); MFU is against the matmul
    peak of the precision it ran in (``peaks``, from :func:`~aelab.bench.machine.matmul_peak`).
    With ``x_heldout``, also the mean squared error of its reconstructions of those images,
    computed in float32 whatever the training precision (:func:`heldout_mse`)."""
    import torch

    from aelab.training.recipes import resolve
    from aelab.training.trainer import Trainer

    settings = {"epochs": epochs, "seed": seed, "device": device, "precision": precision}
    resolved = resolve(name, tuple(x_train.shape[1:]), train=settings)
    config = resolved.train
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = resolved.recipe.family_class(resolved.model)
    trainer = Trainer(model, config)
    peak = peaks[trainer.precision]["flops_per_s"]
    # as for the notebook's full schedule, however few epochs are measured here
    trainer.tune_conv_kernels(x_train)
    probe = x_train[: config.batch_size].to(trainer.device, memory_format=trainer.memory_format)
    with trainer.autocast():
        flops_per_image = step_flops(trainer.model, probe, trainer.corrupt) / len(probe)
    history = trainer.fit(x_train, progress=False)
    seconds = [h["seconds"] for h in history]
    per_epoch = typical_epoch(seconds)
    n = len(x_train)
    achieved = flops_per_image * n / per_epoch
    return {
        "params": model.num_parameters(),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "precision": trainer.precision,
        "precision_asked": precision,
        "n_train": n,
        "seconds_per_epoch": per_epoch,
        "first_epoch_seconds": seconds[0],
        "images_per_s": n / per_epoch,
        "flops_per_image": flops_per_image,
        "flops_per_s": achieved,
        "mfu": achieved / peak,
        "conv_kernels": {k: list(v) for k, v in (trainer.conv_kernels or {}).items()},
        "tuning_seconds": trainer.tuning_seconds,
        "first_loss": history[0]["loss"],
        "final_loss": history[-1]["loss"],
        "heldout_mse": None if x_heldout is None else heldout_mse(model, x_heldout),
    }


def heldout_mse(model, x) -> float:
    """Mean squared error of ``model``'s reconstructions of ``x`` (clean inputs, the mean code
    of a variational model), in eval mode and float32: the number the workshop sets against
    PCA, so that a precision is judged by what it leaves on unseen images."""
    import torch

    from aelab.runs.run import reconstructed

    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        for batch in x.split(256):
            batch = batch.to(device, dtype=torch.float32)
            x_hat = reconstructed(model, batch).float()
            total += float(((x_hat - batch) ** 2).sum())
    return total / x.numel()
