"""``aelab run``: the workshop notebook in one command.

Trains the five models (each a sub-run as ``aelab train`` writes it) on one shared split, then
builds ``metrics.json``, ``figures/`` and ``report.html`` with :mod:`aelab.report`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoint import write_json
from .models import MODELS
from .recipes import SCHEDULES, resolve
from .runconfig import DataSpec
from .rundir import check_replaceable, check_writable
from .runs import Split, prepare_data, train_run

WORKSHOP_MODELS = ("shallow", "deep", "conv", "denoising", "vae")


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
    schedule: str = "quick",
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

    ``schedule`` is ``quick`` or ``seed`` (:mod:`aelab.recipes`); ``epochs`` replaces every
    model's epoch count (a quick look; the schedule sets the rest). Returns the workshop record
    (also written to ``out/workshop.json``).
    """
    log = log or (lambda _msg: None)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not valid; allowed: {', '.join(SCHEDULES)}")
    models = check_models(models)
    out = Path(out)
    check_replaceable(out, overwrite=overwrite, marker="workshop.json")
    check_writable(out)
    if split is None:
        split = prepare_data(data)
    for note in split.train.notes:
        log(note)
    settings = {"seed": seed, "device": device, "precision": precision}
    settings |= {"conv_kernels": conv_kernels} | ({} if epochs is None else {"epochs": epochs})
    configs = {  # every config validated before anything is written
        name: resolve(
            name,
            split.train.image_shape,
            schedule_name=schedule,
            n_train=len(split.train),
            train=settings,
        ).train
        for name in models
    }
    if overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    log(
        f"{len(split.train)} training and {len(split.heldout)} held-out images of "
        f"{'x'.join(map(str, split.train.image_shape))} from {data.source}; schedule {schedule}"
    )
    record: dict[str, Any] = {
        "schedule": schedule if epochs is None else f"{schedule}, {epochs} epochs",
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
