"""``aelab run``: the workshop notebook in one command.

Trains the five models (each a sub-run as ``aelab train`` writes it) on one shared split, then
builds ``metrics.json``, ``figures/`` and ``report.html`` with :mod:`aelab.apps.report`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aelab.apps.report import build_report
from aelab.data.groups import read_split_groups
from aelab.data.prepare import Split, prepare_data
from aelab.data.spec import DataSpec
from aelab.models import MODELS
from aelab.runs.config import RunConfig
from aelab.runs.manifest import Manifest
from aelab.runs.run import check_split
from aelab.runs.rundir import RunDir
from aelab.runs.training import resume_run, train_run
from aelab.runs.workshop import GROUPS_FILE, WORKSHOP_FILE, WorkshopRecord, check_seeds
from aelab.training.config import TrainConfig
from aelab.training.recipes import SCHEDULES, resolve
from aelab.training.tracking import check_outside, defaults, parse_log
from aelab.utils.choices import did_you_mean, not_one_of, suggestion

WORKSHOP_MODELS = ("shallow", "deep", "conv", "denoising", "vae")
# beside them on a set of faces (aelab run's default data): the recipe that beats PCA on people
# the models never saw, so the first report shows the notebook's lesson and how to do better
FACE_MODELS = ("faces",)
# A workshop's models checkpoint after the first epoch that ends 30 s after the last checkpoint,
# so an interrupted model resumes (aelab run --resume) with at most about 30 s of its training
# lost. A checkpoint writes the model and its optimizer's state; see README, "A workshop
# interrupted", for what that costs.
CHECKPOINT_SECONDS = 30.0


def check_models(models: list[str] | tuple[str, ...]) -> list[str]:
    """The workshop's models as a list: known names, each once (a model's folder is its name)."""
    models = list(models)
    if not models:
        raise ValueError(
            f"models='' is not valid; allowed: a comma-separated list of {', '.join(MODELS)}"
        )
    unknown = [m for m in models if m not in MODELS]
    if unknown:  # the item, not the whole list: which of five names is wrong is the question
        if len(unknown) == 1:
            what = f"{unknown[0]!r} is not a known model; {did_you_mean(unknown[0], MODELS)}"
        else:
            near = [(m, suggestion(m, MODELS)) for m in unknown]
            named = (f"{m!r}" + (f" (did you mean {s!r}?)" if s else "") for m, s in near)
            what = f"{', '.join(named)} are not known models; "
        raise ValueError(f"models: {what}allowed: a comma-separated list of {', '.join(MODELS)}")
    repeated = {m: models.count(m) for m in models if models.count(m) > 1}
    if repeated:
        times = (f"{m} {'twice' if n == 2 else f'{n} times'}" for m, n in repeated.items())
        raise ValueError(
            f"models={','.join(models)!r} is not valid: it names {', '.join(times)}; name each "
            "model once"
        )
    return models


def run_workshop(
    data: DataSpec,
    out: str | os.PathLike | None,
    *,
    schedule: str = "quick",
    models: list[str] | tuple[str, ...] = WORKSHOP_MODELS,
    train: Mapping[str, Any] | None = None,
    seeds: list[int] | tuple[int, ...] | None = None,
    model: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    report: bool = True,
    split: Split | None = None,
    tracking: Any = None,
    insides: bool = True,
    groups: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train ``models`` on one split of ``data`` into ``out/<model>/``, then write the report.

    ``schedule`` is ``quick`` or ``seed`` (:mod:`aelab.training.recipes`); ``train`` holds
    :class:`~aelab.TrainConfig` fields given to every model on top of its schedule, e.g.
    ``{"seed": 1, "device": "cpu", "epochs": 3}`` (``epochs``: a quick look). ``seeds`` trains
    each model once per training seed (``out/<model>-seed<S>/``; the split stays ``data``'s), and
    the report gives every number's mean, spread and interval over them. ``model`` holds config
    fields for every model (``latent_dim``...). ``out`` is claimed
    as :func:`aelab.runs.train_run` claims a run's folder (locked; an earlier workshop replaced
    only with ``overwrite``, once this one is whole). An interrupted workshop continues with
    :func:`resume_workshop`. ``tracking`` names experiment trackers, as ``log`` does for
    :func:`aelab.runs.train_run`: each model logs as its own run (TensorBoard: ``DIR/<model>``).
    ``insides=False`` leaves out of the report the figures of the models' insides (weights,
    codes, generated images, embeddings): its table, the comparison with PCA and the learning
    curves remain (``aelab train --seeds``). ``groups`` names a CSV of the user's groups of
    images (:mod:`aelab.data.groups`), checked against the data before anything is trained and
    copied into the workshop as ``groups.csv``: the report's attribute directions then come from
    these groups instead of the data's labels.
    Returns the workshop record (also ``out/workshop.json``) as a dict, with ``out``.
    """
    log = log or (lambda _msg: None)
    targets = parse_log(tracking)
    if out is not None:
        check_outside(targets, out)
    if schedule not in SCHEDULES:
        raise not_one_of("schedule", schedule, SCHEDULES)
    models = check_models(models)
    if split is None:
        split = prepare_data(data)
    if seeds is not None:
        check_seeds(list(seeds))
    record = WorkshopRecord(
        models, data, schedule, dict(train or {}),
        seeds=None if seeds is None else list(seeds), model=dict(model) if model else None,
    )  # fmt: skip
    configs = _configs(record, split)  # validated before anything is written
    groups_csv = None
    if groups is not None:  # checked against the data; the bytes checked are the copy kept
        groups_csv = read_split_groups(groups, split).data
    rundir = RunDir.create(out, kind="workshop", overwrite=overwrite, stem="workshop")
    with _saying_what_is_kept(rundir, log):
        targets = defaults(targets, rundir.target)  # beside the workshop, never inside
        rundir.manifest.runs = [name for _, _, name in record.runs()]
        if groups_csv is not None:
            rundir.write(GROUPS_FILE, groups_csv, commit=False)
        rundir.write_json(WORKSHOP_FILE, record.to_dict())
        for note in split.train.notes:
            log(note)
        log(
            f"{len(split.train)} training and {len(split.heldout)} held-out images of "
            f"{'x'.join(map(str, split.train.image_shape))} from {data.source}; "
            f"schedule {schedule}"
        )
        memo: dict = {}  # each run measured once, for the partial pages and the last
        _train_models(
            rundir, record, configs, split, progress, log, targets, resume=False,
            partial=report, memo=memo,
        )  # fmt: skip
        if report:
            _report(rundir, split, log, insides, memo)
    return {**record.to_dict(), "out": str(rundir.target)}


def resume_workshop(
    out: str | os.PathLike,
    *,
    data_home: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    report: bool = True,
    tracking: Any = None,
    insides: bool = True,
) -> dict[str, Any]:
    """Finish the workshop in ``out``: models already trained are kept as they are, one that was
    interrupted continues from its last checkpoint, the others train; then the report.

    The data is read again as ``workshop.json`` describes it, from ``data_home`` (the user's, never
    one the folder's files name), and checked against each model's record of its split.
    """
    log = log or (lambda _msg: None)
    targets = parse_log(tracking)
    check_outside(targets, out)
    rundir = RunDir.resume(out, kind="workshop")
    with _saying_what_is_kept(rundir, log):
        targets = defaults(targets, rundir.target)
        record = WorkshopRecord.read(rundir.path, rundir.manifest)
        data, _, _ = record.resumable(str(rundir.path / WORKSHOP_FILE), data_home)
        record.data = data
        check_models(record.models)
        split = prepare_data(data)
        configs = _configs(record, split)
        memo: dict = {}
        _train_models(
            rundir, record, configs, split, progress, log, targets, resume=True,
            partial=report, memo=memo,
        )  # fmt: skip
        if report:
            _report(rundir, split, log, insides, memo)
    return {**record.to_dict(), "out": str(rundir.target)}


@contextlib.contextmanager
def _saying_what_is_kept(rundir: RunDir, log: Callable[[str], None]):
    """``rundir`` as a context (closed at the end, aborted on a failure or an interruption),
    and when a failure leaves trained models behind, a line on how to continue."""
    with rundir:
        try:
            yield
        except BaseException:
            if rundir.trained_models():
                log(
                    f"stopped: {', '.join(_kept(rundir))} kept in '{rundir.target}'; "
                    f"aelab run --out {rundir.target} --resume continues"
                )
            raise


def _kept(rundir: RunDir) -> list[str]:
    """The models an interruption keeps: trained, or (``vae (at epoch 2)``) at a checkpoint."""
    kept = []
    for name in rundir.trained_models():
        manifest = Manifest.read(rundir.path / name)
        if manifest is not None and not manifest.complete and manifest.checkpoint:
            name += f" (at epoch {manifest.epoch})"
        kept.append(name)
    return kept


def _configs(record: WorkshopRecord, split: Split) -> dict[str, TrainConfig]:
    """Every run's training config, resolved (and so validated) before anything is written."""
    shape, n = split.train.image_shape, len(split.train)
    many = record.seeds is not None
    settings = {"checkpoint_seconds": CHECKPOINT_SECONDS, **(record.settings or {})}
    return {
        name: resolve(
            model, shape, schedule_name=record.schedule, n_train=n, model=record.model,
            train={**settings, **({"seed": seed} if many else {})},
        ).train
        for model, seed, name in record.runs()
    }  # fmt: skip


def _train_models(rundir, record, configs, split, progress, log, targets, *, resume, partial, memo):
    """Train (or, resuming, keep or continue) every run of ``record``; with ``partial``, a
    partial report after each but the last (:func:`_partial_report`), each run measured once
    (``memo``, kept for the last report)."""
    runs = list(record.runs())
    for i, (model, _, name) in enumerate(runs):
        trackers = [t.for_model(name) for t in targets]
        folder = rundir.path / name
        manifest = Manifest.read(folder) if folder.is_dir() else None
        start = time.perf_counter()
        if resume and manifest is not None and manifest.complete:
            check_split(RunConfig.load(folder), split, folder)
            log(f"{name}: already trained")
            continue
        if resume and manifest is not None:
            run = resume_run(
                folder, model=model, data_home=record.data.data_home, progress=progress,
                log=trackers,
            )  # fmt: skip
        else:
            run = train_run(  # the schedule's model too (quick: a centred input where set)
                model, record.data, configs[name], folder, schedule=record.schedule,
                model_overrides=record.model, progress=progress, split_data=split, log=trackers,
            )  # fmt: skip
        seconds = time.perf_counter() - start
        record.seconds[name] = record.seconds.get(name, 0.0) + seconds
        rundir.write_json(WORKSHOP_FILE, record.to_dict())
        log(f"{name}: {len(run.history)} epochs in {seconds:.1f} s")
        if partial and i < len(runs) - 1:
            _partial_report(rundir, split, log, first=i == 0, memo=memo)


def _partial_report(rundir: RunDir, split: Split, log, first: bool, memo=None) -> None:
    """The report of the models trained so far, while the others train: their table, learning
    curves and reconstructions (``build_report(partial=True)``, a few seconds)."""
    start = time.perf_counter()
    try:
        build_report(rundir.path, split=split, rundir=rundir, partial=True, memo=memo)
    except Exception as e:  # a page while it trains never stops the training: the last report
        #   (or aelab report DIR) raises it again where it can be dealt with
        log(f"report so far: not written ({type(e).__name__}: {e}); training goes on")
        return
    where = (rundir.path / "report.html").resolve().as_uri()
    seconds = time.perf_counter() - start
    log(f"report so far: {where} ({seconds:.1f} s; written again after each model)"
        if first else f"report so far: updated ({seconds:.1f} s)")  # fmt: skip


def _report(rundir: RunDir, split: Split, log, insides: bool = True, memo=None) -> None:
    start = time.perf_counter()
    build_report(rundir.path, split=split, rundir=rundir, insides=insides, memo=memo)
    log(f"report: {rundir.target / 'report.html'} ({time.perf_counter() - start:.1f} s)")
