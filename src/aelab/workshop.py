"""``aelab run``: the workshop notebook in one command.

Trains the five models (each a sub-run as ``aelab train`` writes it) on one shared split, then
builds ``metrics.json``, ``figures/`` and ``report.html`` with :mod:`aelab.report`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .manifest import Manifest
from .models import MODELS
from .recipes import SCHEDULES, resolve
from .runconfig import DataSpec, RunConfig
from .rundir import RunDir, check_name
from .runs import Split, check_split, prepare_data, resume_run, train_run
from .tracking import parse_log

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
    out: str | os.PathLike | None,
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
    tracking: Any = None,
) -> dict[str, Any]:
    """Train ``models`` on one split of ``data`` into ``out/<model>/``, then write the report.

    ``schedule`` is ``quick`` or ``seed`` (:mod:`aelab.recipes`); ``epochs`` replaces every
    model's epoch count (a quick look; the schedule sets the rest). ``out`` is claimed as
    :func:`aelab.runs.train_run` claims a run's folder (locked; an earlier workshop replaced only
    with ``overwrite``, once this one is whole). An interrupted workshop continues with
    :func:`resume_workshop`. ``tracking`` names experiment trackers, as ``log`` does for
    :func:`aelab.runs.train_run`: each model logs as its own run (TensorBoard: ``DIR/<model>``).
    Returns the workshop record (also ``out/workshop.json``).
    """
    log = log or (lambda _msg: None)
    targets = parse_log(tracking)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not valid; allowed: {', '.join(SCHEDULES)}")
    models = check_models(models)
    if split is None:
        split = prepare_data(data)
    settings: dict[str, Any] = {"seed": seed, "device": device, "precision": precision}
    settings |= {"conv_kernels": conv_kernels} | ({} if epochs is None else {"epochs": epochs})
    configs = _configs(models, split, schedule, settings)  # validated before anything is written
    record: dict[str, Any] = {
        "schedule": schedule if epochs is None else f"{schedule}, {epochs} epochs",
        "models": models,
        "data": data.to_dict(),
        "settings": {"schedule": schedule, **settings},
        "seconds": {},
    }
    with RunDir.create(out, kind="workshop", overwrite=overwrite, stem="workshop") as rundir:
        rundir.manifest.runs = list(models)
        rundir.write_json("workshop.json", record)
        for note in split.train.notes:
            log(note)
        log(
            f"{len(split.train)} training and {len(split.heldout)} held-out images of "
            f"{'x'.join(map(str, split.train.image_shape))} from {data.source}; "
            f"schedule {record['settings']['schedule']}"
        )
        _train_models(rundir, record, configs, data, split, progress, log, targets, resume=False)
        if report:
            _report(rundir, split, log)
    return {**record, "out": str(rundir.target)}


def resume_workshop(
    out: str | os.PathLike,
    *,
    data_home: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    report: bool = True,
    tracking: Any = None,
) -> dict[str, Any]:
    """Finish the workshop in ``out``: models already trained are kept as they are, one that was
    interrupted continues from its last checkpoint, the others train; then the report.

    The data is read again as ``workshop.json`` describes it, from ``data_home`` (the user's, never
    one the folder's files name), and checked against each model's record of its split.
    """
    log = log or (lambda _msg: None)
    targets = parse_log(tracking)
    with RunDir.resume(out, kind="workshop") as rundir:
        record = rundir.read_json("workshop.json")
        try:
            data = DataSpec.from_dict({**record["data"], "data_home": data_home})
            settings = dict(record["settings"])
            schedule = settings.pop("schedule")
            models = check_models(record["models"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{rundir.path / 'workshop.json'}: not a workshop record aelab can resume ({e})"
            ) from None
        split = prepare_data(data)
        configs = _configs(models, split, schedule, settings)
        record.setdefault("seconds", {})
        _train_models(rundir, record, configs, data, split, progress, log, targets, resume=True)
        if report:
            _report(rundir, split, log)
    return {**record, "out": str(rundir.target)}


def _configs(models, split: Split, schedule: str, settings: dict[str, Any]) -> dict:
    shape, n = split.train.image_shape, len(split.train)
    return {
        name: resolve(name, shape, schedule_name=schedule, n_train=n, train=settings).train
        for name in models
    }


def _train_models(rundir, record, configs, data, split, progress, log, targets, *, resume):
    for name in record["models"]:
        trackers = [t.for_model(name) for t in targets]
        folder = rundir.path / check_name(name, "model")
        manifest = Manifest.read(folder) if folder.is_dir() else None
        start = time.perf_counter()
        if resume and manifest is not None and manifest.complete:
            check_split(RunConfig.load(folder), split, folder)
            log(f"{name}: already trained")
            continue
        if resume and manifest is not None:
            run = resume_run(
                folder, model=name, data_home=data.data_home, progress=progress, log=trackers
            )
        else:
            run = train_run(
                name, data, configs[name], folder, progress=progress, split_data=split, log=trackers
            )
        seconds = time.perf_counter() - start
        record["seconds"][name] = record["seconds"].get(name, 0.0) + seconds
        rundir.write_json("workshop.json", record)
        log(f"{name}: {len(run.history)} epochs in {seconds:.1f} s")


def _report(rundir: RunDir, split: Split, log) -> None:
    from .report import build_report

    start = time.perf_counter()
    build_report(rundir.path, split=split, rundir=rundir)
    log(f"report: {rundir.target / 'report.html'} ({time.perf_counter() - start:.1f} s)")
