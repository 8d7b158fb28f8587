"""Training into a run directory: :func:`train_run` claims the folder, trains and publishes the
run; :func:`resume_run` continues an interrupted one from its last checkpoint, its data checked
against the run's record of its split."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from aelab.data.images import ImageSet
from aelab.data.prepare import Split, prepare_data
from aelab.data.spec import DataSpec
from aelab.models import BaseAutoencoder, get_recipe
from aelab.runs.checkpoint import STATE_FILES, load_state
from aelab.runs.config import RunConfig, current_versions
from aelab.runs.manifest import Manifest
from aelab.runs.run import Run, _local, check_split
from aelab.runs.rundir import RunDir, check_out_dir
from aelab.training import tracking
from aelab.training.callbacks import Callback, Checkpoint
from aelab.training.config import TrainConfig
from aelab.training.recipes import quick_schedule, resolve
from aelab.training.trainer import Trainer
from aelab.utils import distributed


def check_workers(data: DataSpec, train: TrainConfig) -> None:
    """Worker processes read streamed folders only."""
    if train.workers and not data.stream:
        raise ValueError(
            f"workers={train.workers} is not valid without stream=True: in-memory "
            "data is batched on the device; allowed: workers=0, or stream a folder of images"
        )


def train_run(
    name: str,
    data: DataSpec,
    train: TrainConfig | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    *,
    schedule: str = "seed",
    model_overrides: Mapping[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    split_data: Split | None = None,
    log: Any = None,
    notify: Callable[[str], None] | None = None,
) -> Run:
    """Train recipe ``name`` and write its run directory ``out``.

    The recipe is resolved as every entry point resolves it
    (:func:`aelab.training.recipes.resolve`): ``schedule`` (``"seed"``, the recipe's own, or
    ``"quick"``), then ``train`` on top (:class:`~aelab.TrainConfig` fields, or a whole
    TrainConfig), with ``model_overrides`` of the family's config; ``precision="auto"`` is
    decided there. Everything is validated (the folder first) and the data loaded before anything
    is written, and ``out`` is claimed (:class:`~aelab.runs.rundir.RunDir`): locked, and with
    ``overwrite`` an earlier run there is replaced only once this one has finished; ``out=None``
    claims a new folder ``runs/NAME-DATE-TIME`` (the returned run's ``path``). A run that fails
    before its first checkpoint leaves nothing behind; one that fails later keeps its last
    checkpoint, to be resumed. ``resume=True`` is :func:`resume_run` with ``train``'s ``epochs``
    and ``device``. ``log`` names experiment trackers, e.g. ``"tensorboard"``
    (:func:`aelab.training.tracking.parse_log`; by default beside ``out``, in
    ``tensorboard/NAME`` and ``mlruns``; never inside it). ``notify`` receives a line on the
    data read (rank 0 only).

    Under ``torchrun`` (a process group initialised, see :mod:`aelab.utils.distributed`) every
    process calls this with the same arguments: each validates and loads (a failure anywhere
    stops all of them with the same error), only rank 0 writes ``out``, and every process reads
    it to resume, so ``out`` must be on a file system they share.
    """
    settings = train.to_dict() if isinstance(train, TrainConfig) else dict(train or {})
    if resume:
        if overwrite:
            raise ValueError("resume=True and overwrite=True exclude each other; pass one")
        return resume_run(
            out, model=name, epochs=settings.get("epochs"), device=settings.get("device"),
            progress=progress, log=log,
        )  # fmt: skip

    def prepare() -> tuple[Trainer, RunConfig, Split]:
        get_recipe(name)  # an unknown name fails before any data is read
        tracking.parse_log(log)
        if out is not None and distributed.is_main():  # only rank 0 writes
            check_out_dir(out, resume=False, overwrite=overwrite)
            tracking.check_outside(log, out)
        split = prepare_data(data) if split_data is None else split_data
        resolved = resolve(
            name, split.train.image_shape, schedule_name=schedule, n_train=len(split.train),
            model=model_overrides, train=settings,
        )  # fmt: skip
        config = resolved.train
        check_workers(data, config)
        split = split.with_validation(config.validation, data)
        model = _seeded(config.seed, resolved.recipe.family_class, resolved.model)
        if notify is not None and distributed.is_main():
            for note in split.train.notes:
                notify(note)
            how_long = _schedule_line(name, schedule, config, settings, split)
            notify(f"{describe(name, data, split)}; {how_long}")
        run_config = RunConfig.of(name, model, config, data=data, split=split.describe())
        return Trainer(model, config), run_config, split

    trainer, config, split = distributed.agree(prepare)
    rundir = distributed.agree(
        lambda: (  # out=None: a new folder runs/NAME-DATE-TIME
            RunDir.create(out, kind="train", overwrite=overwrite, stem=name)
            if distributed.is_main()
            else None
        )
    )
    # the folder rank 0 claimed, for every process (out=None names it only there)
    target = distributed.broadcast(None if rundir is None else str(rundir.target))
    return _train_into(rundir, Path(target), trainer, config, split, progress, log)


def describe(name: str, data: DataSpec, split: Split) -> str:
    """One line on what a run trains on."""
    cache = getattr(split.train, "cache_path", None)
    world = distributed.world()
    return (
        f"{name}: {len(split.train)} training, {len(split.heldout)} held-out images of "
        f"{'x'.join(map(str, split.train.image_shape))} from {data.source}"
        + (" (streamed from disk)" if data.stream else "")
        + (f", pixels cached in {cache.parent}" if cache is not None else "")
        + (f", {world} processes" if world > 1 else "")
    )


def _schedule_line(
    name: str, schedule: str, config: TrainConfig, settings: Mapping[str, Any], split: Split
) -> str:
    """How long the run trains, and (where it is shorter) what the quick schedule would take:
    the notebook's schedule can take many minutes, which a user should know before waiting."""
    line = f"schedule {schedule}: {config.epochs} epochs in batches of {config.batch_size}"
    if schedule == "seed" and "epochs" not in settings:
        quick = quick_schedule(name, len(split.train), split.train.image_shape)["epochs"]
        if quick < config.epochs:
            line += f" (schedule='quick' trains {quick})"
    return line


def resume_run(
    out: str | os.PathLike,
    *,
    model: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    data_home: str | None = None,
    progress: bool | None = None,
    log: Any = None,
    cache: str | None = None,
) -> Run:
    """Continue the run in ``out`` from its last checkpoint (or from the start, if it stopped
    before its first), to the result an uninterrupted run would have reached.

    The data is checked against the run's record of its split: a changed data set is refused,
    so held-out images never reach training.

    Parameters
    ----------
    out : str or path-like
        The run directory.
    model : str, optional
        The recipe the caller expects there; a different one is an error.
    epochs : int, optional
        Train up to this many epochs in all (to train longer); default the run's own. Fewer
        than the run has already trained is an error.
    device : str, optional
        Where to train now; default the run's own setting.
    data_home : str, optional
        Where named data sets are (see :func:`aelab.data.get_data_home`); never taken from the
        run's files, which could name any folder.
    progress : bool, optional
        See :meth:`Trainer.fit`.
    log : str or list of str, optional
        Experiment trackers, as for :func:`train_run`.
    cache : str, optional
        A streamed run's pixel cache now: ``"auto"``, ``"off"`` or a folder (see
        :class:`~aelab.data.DataSpec`); default the run's own, except that a folder named
        in the run's files is never written to (the default folder is used instead).
    """
    out = Path(out)
    tracking.check_outside(log, out)

    def prepare() -> tuple[Trainer, RunConfig, Split, RunDir | None]:
        rundir = RunDir.resume(out) if distributed.is_main() else None
        try:
            saved = RunConfig.load(out)
            if model is not None and saved.model != model:
                raise ValueError(
                    f"model={model!r} does not match the run in '{out}' ({saved.model!r})"
                )
            if saved.data is None:
                raise ValueError(
                    f"out='{out}' was fitted on in-memory arrays (aelab.Autoencoder): there is "
                    "no data set to resume it on"
                )
            state = read_state(out)
            done = 0 if state is None else state["epoch"]
            if epochs is not None and epochs < done:
                raise ValueError(
                    f"epochs={epochs} is not valid: the run in '{out}' has trained {done} "
                    f"epochs already; pass at least {done}"
                )
            train = dataclasses.replace(
                saved.train,
                epochs=saved.train.epochs if epochs is None else epochs,
                device=saved.train.device if device is None else device,
            )
            spec = _local(saved.data, data_home, cache)
            split = prepare_data(spec, saved.train.validation)
            check_split(saved, split, out)
            config = dataclasses.replace(saved, train=train, versions=current_versions())
            # from the start (no checkpoint yet): the initial weights a new run would draw
            trainer = Trainer(_seeded(train.seed, saved.build_model), train)
            if state is not None:
                trainer.load_state_dict(state)
        except BaseException:
            if rundir is not None:
                rundir.close()  # nothing was written: release the lock only
            raise
        return trainer, config, split, rundir

    trainer, config, split, rundir = distributed.agree(prepare)
    return _train_into(rundir, out, trainer, config, split, progress, log)


def _seeded(seed: int, build, *args, **kwargs) -> BaseAutoencoder:
    """``build(*args, **kwargs)`` with the global RNG seeded, and left as it was: the same seed
    gives the same initial weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build(*args, **kwargs)


def _train_into(
    rundir: RunDir | None,
    out: Path,
    trainer: Trainer,
    config: RunConfig,
    split: Split,
    progress,
    log: Any = None,
) -> Run:
    """Train ``trainer`` on ``split``, checkpointing into ``rundir`` (rank 0's; None on the
    others), and publish the finished run."""
    x_train, x_heldout, x_validation = (
        torch.from_numpy(part.images) if isinstance(part, ImageSet) else part
        for part in (split.train, split.heldout, split.validation)
    )
    try:
        if rundir is not None:
            rundir.write_json("config.json", config.to_dict())
        every, seconds = trainer.config.checkpoint_every, trainer.config.checkpoint_seconds
        checkpoint = Checkpoint(rundir, every=every, seconds=seconds)
        trainer.fit(
            x_train,
            x_heldout,
            x_validation=x_validation,
            callbacks=[checkpoint, *for_run(log, rundir, config, split.heldout)],
            progress=progress,
            desc=config.model,
        )
        if rundir is not None:
            rundir.publish()
            rundir.close()
    except BaseException as e:
        if rundir is None:
            raise
        kept = rundir.kept()
        rundir.abort()
        if isinstance(e, FloatingPointError):
            raise FloatingPointError(f"{e}; {kept}") from None
        raise
    distributed.barrier()
    return Run(trainer.model, config, trainer.history, out)


def read_state(out: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint in force in ``out``, its files verified; None when there is none yet."""
    manifest = Manifest.read(out)
    if manifest is None or manifest.checkpoint is None:
        return None
    for name in STATE_FILES:
        manifest.verified(out, f"{manifest.checkpoint}/{name}")
    return load_state(Path(out) / manifest.checkpoint)


def for_run(log: Any, rundir: RunDir | None, config: RunConfig, heldout: Any) -> list[Callback]:
    """The trackers of a run of ``aelab train`` written into ``rundir`` (None, off rank 0:
    none), logging ``config`` and the images of the held-out set ``heldout``."""
    targets = tracking.parse_log(log)
    if not targets or rundir is None:
        return []
    d = config.to_dict()
    params = {"model": {k: v for k, v in d["model"].items() if k != "config"}}
    params["model"] |= d["model"]["config"]
    split = {k: v for k, v in d["split"].items() if k != "fingerprint"}
    params |= {"train": d["train"], "data": d["data"] or {}, "split": split}
    return tracking.trackers(tracking.defaults(targets, rundir.target), config.model,
                             params=params, heldout=tracking.heldout_of(heldout))  # fmt: skip
