"""``aelab run``: the workshop notebook in one command.

Trains the five models (each a sub-run as ``aelab train`` writes it) on one shared split, then
builds ``metrics.json``, ``figures/`` and ``report.html`` with :mod:`aelab.report`.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoint import write_json
from .models import MODELS
from .runs import DataSpec, Split, check_replaceable, check_writable, prepare_data, train_run
from .train import TrainConfig

WORKSHOP_MODELS = ("shallow", "deep", "conv", "denoising", "vae")

# The notebook's schedule: epochs 400/400/200/100/200, batch sizes 80/80/80/32/32.
SEED = {name: dict(MODELS[name].train) for name in MODELS}

# A schedule that finishes on a 2-core CPU in minutes: fewer images seen per model, larger
# batches for the convolutional models. Epochs scale with the training set and the image size
# so that a larger data set does not cost more time; see ``quick_schedule``.
_QUICK_PIXELS = 28 * 28  # the budgets below count images of this many values
_QUICK_IMAGES = {  # images seen in training per model (epochs x n_train), and epoch bounds
    "shallow": (300_000, 20, 300),
    "deep": (300_000, 20, 300),
    "conv": (60_000, 8, 80),
    "denoising": (60_000, 8, 80),
    "vae": (150_000, 15, 200),
    "conv-vae": (60_000, 8, 80),
}


def quick_schedule(
    name: str, n_train: int, image_shape: tuple[int, ...] = (1, 28, 28)
) -> dict[str, Any]:
    """The ``quick`` preset: the notebook's optimizers and noise, a bounded amount of work.

    Each model sees a fixed budget of 28x28-image equivalents (a 64x64 image counts 5.2), so the
    epoch count falls as the data set or its images grow, within per-model bounds.
    """
    images, lo, hi = _QUICK_IMAGES[name]
    images *= _QUICK_PIXELS / math.prod(image_shape)
    schedule = dict(SEED[name])
    schedule["epochs"] = int(min(hi, max(lo, round(images / max(n_train, 1)))))
    if MODELS[name].family in ("conv", "conv-vae"):
        schedule["batch_size"] = max(schedule["batch_size"], 64)
    return schedule


PRESETS: dict[str, Callable[..., dict[str, Any]]] = {
    "quick": quick_schedule,
    "seed": lambda name, n_train, image_shape: dict(SEED[name]),
}


def check_models(models: list[str] | tuple[str, ...]) -> list[str]:
    models = list(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(
            f"models={','.join(models)!r} is not valid; allowed: a comma-separated list of "
            f"{', '.join(MODELS)}"
        )
    return models


def run_workshop(
    data: DataSpec,
    out: str | os.PathLike,
    *,
    preset: str = "quick",
    models: list[str] | tuple[str, ...] = WORKSHOP_MODELS,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    conv_kernels: str = "auto",
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    report: bool = True,
    split: Split | None = None,
) -> dict[str, Any]:
    """Train ``models`` on one split of ``data`` into ``out/<model>/``, then write the report.

    ``epochs`` replaces every model's epoch count (a quick look; the preset sets the rest).
    Returns the workshop record (also written to ``out/workshop.json``).
    """
    log = log or (lambda _msg: None)
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not valid; allowed: {', '.join(PRESETS)}")
    models = check_models(models)
    out = Path(out)
    check_replaceable(out, overwrite=overwrite, marker="workshop.json")
    check_writable(out)
    if split is None:
        split = prepare_data(data)
    for note in split.train.notes:
        log(note)
    schedules = {
        name: PRESETS[preset](name, len(split.train), split.train.image_shape) for name in models
    }
    if epochs is not None:
        for schedule in schedules.values():
            schedule["epochs"] = epochs
    configs = {  # every config validated before anything is written
        name: TrainConfig(
            **schedules[name],
            seed=seed,
            device=device,
            precision=precision,
            conv_kernels=conv_kernels,
        )
        for name in models
    }
    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    log(
        f"{len(split.train)} training and {len(split.heldout)} held-out images of "
        f"{'x'.join(map(str, split.train.image_shape))} from {data.source}; preset {preset}"
    )
    record: dict[str, Any] = {
        "preset": preset if epochs is None else f"{preset}, {epochs} epochs",
        "models": models,
        "data": data.to_dict(),
        "seconds": {},
    }
    write_json(out / "workshop.json", record)
    for name in models:
        train = configs[name]
        start = time.perf_counter()
        train_run(name, data, train, out / name, progress=progress, split_data=split)
        seconds = time.perf_counter() - start
        record["seconds"][name] = seconds
        write_json(out / "workshop.json", record)
        log(f"{name}: {train.epochs} epochs in {seconds:.1f} s")
    if report:
        from .report import build_report

        start = time.perf_counter()
        build_report(out, split=split)
        log(f"report: {out / 'report.html'} ({time.perf_counter() - start:.1f} s)")
    return record
