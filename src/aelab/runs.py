"""Run directories: what ``aelab train`` writes (:func:`train_run`) and :func:`load_run` reads
back, as the run contract (:mod:`aelab.runconfig`) describes them.

A run directory holds::

    config.json          the RunConfig: recipe, family and config, data, split, schedule, versions
    model.safetensors    the weights
    history.json         [{"epoch", "loss", "heldout_loss", "validation_loss", "seconds"}, ...]
    optimizer.json       optimizer hyper-parameters and step counts   (for resuming)
    optimizer.safetensors  optimizer state tensors                    (for resuming)
    trainer.json         epochs completed, convolution kernels chosen  (for resuming)

Nothing is unpickled: configuration is JSON, tensors are safetensors.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed, tracking
from .callbacks import Checkpoint
from .checkpoint import STATE_FILES, check_history, load_state, load_weights, read_json
from .data import ImageFolderDataset, ImageSet, carve_validation, load_dataset, mirror, split
from .device import memory_format, resolve_device
from .manifest import Manifest
from .models import MODELS, BaseAutoencoder, Recipe, build_model, get_recipe
from .runconfig import DataSpec, RunConfig, current_versions
from .rundir import RunDir
from .train import TrainConfig, Trainer


@dataclasses.dataclass
class Split:
    """The training, held-out and (for recipes that choose their epoch) validation sets: in
    memory, or streamed folders (``DataSpec.stream``). The validation set is carved out of the
    training people (:func:`aelab.data.carve_validation`); the held-out set only measures."""

    train: ImageSet | ImageFolderDataset
    heldout: ImageSet | ImageFolderDataset
    validation: ImageSet | ImageFolderDataset | None = None
    # unseen images of the training people (DataSpec.normals): the usual images against which
    # the report asks whether the held-out people look unusual
    normals: ImageSet | ImageFolderDataset | None = None

    def with_validation(self, fraction: float, spec: DataSpec) -> Split:
        """This split with ``fraction`` of its training people (when the held-out set is whole
        people) or images carved out as a validation set; itself when ``fraction`` is 0 or it
        has one already."""
        if not fraction or self.validation is not None:
            return self
        train, validation = carve_validation(
            self.train,
            fraction,
            by_people="holdout_people" in spec.split_kwargs(),
            mirrored=spec.mirror,
            seed=spec.seed,
        )
        return Split(train, self.heldout, validation, self.normals)

    @functools.cached_property
    def fingerprint(self) -> dict[str, str]:
        """A SHA-256 of each part (the pixels and labels in memory; the files' names, sizes and
        labels when streamed), computed once: every run trained on this split records it, and
        resuming and the report compare it with the data they load."""
        parts = {"train": fingerprint(self.train), "heldout": fingerprint(self.heldout)}
        if self.validation is not None:
            parts["validation"] = fingerprint(self.validation)
        if self.normals is not None:
            parts["normals"] = fingerprint(self.normals)
        return parts

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` records of the split, its fingerprint included."""
        out = {
            "n_train": len(self.train),
            "n_heldout": len(self.heldout),
            "image_shape": list(self.train.image_shape),
            "fingerprint": self.fingerprint,
        }
        if self.validation is not None:
            out["n_validation"] = len(self.validation)
        if self.normals is not None:
            out["n_normals"] = len(self.normals)
        return out


def fingerprint(part: ImageSet | ImageFolderDataset) -> str:
    """A SHA-256 of one part of a split, in its order."""
    digest = hashlib.sha256()
    if isinstance(part, ImageSet):
        digest.update(np.ascontiguousarray(part.images, dtype=np.float32).tobytes())
    else:
        for name, size, flipped in part.listing():
            digest.update(f"{name}\0{size}\0{int(flipped)}\n".encode("utf-8", "surrogateescape"))
    if part.labels is not None:
        digest.update(np.asarray(part.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def prepare_data(spec: DataSpec, validation: float = 0.0) -> Split:
    """Load, split (held-out images never reach training), then add mirrors to both parts;
    with ``validation`` > 0, carve that share of the training people or images out for choosing
    the epoch (:meth:`Split.with_validation`).

    With ``spec.stream`` nothing is loaded: the folder is listed and split by its labels into
    :class:`~aelab.data.ImageFolderDataset` parts that read images as they are used.
    """
    reading = {
        "image_size": spec.image_size,
        "channels": spec.channels,
        "follow_links": spec.follow_links,
        "max_image_pixels": spec.max_image_pixels,
    }
    if spec.stream:
        cache = {"auto": True, "off": None}.get(spec.cache, spec.cache)
        data = ImageFolderDataset(Path(spec.source).expanduser(), cache=cache, **reading)
    else:
        data = load_dataset(
            spec.source, data_home=spec.data_home, skip_bad=spec.skip_bad, **reading
        )
    train, heldout = split(data, seed=spec.seed, **spec.split_kwargs())
    normals = None
    if spec.normals:  # a stratified share of every training person's images, never trained on
        train, normals = split(train, holdout=spec.normals, seed=spec.seed)
    if spec.mirror:
        train, heldout = mirror(train), (mirror(heldout) if len(heldout) else heldout)
        normals = None if normals is None else mirror(normals)
    return Split(train, heldout, normals=normals).with_validation(validation, spec)


class Run:
    """A trained model with its configuration and history, as stored in a run directory."""

    def __init__(
        self,
        model: BaseAutoencoder,
        config: RunConfig,
        history: list[dict[str, Any]],
        path: Path | None = None,
    ):
        self.model = model
        self.config = config
        self.history = history
        self.path = path

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.config.model

    @property
    def recipe(self) -> Recipe | None:
        """The registered recipe of that name (None if this aelab does not know it)."""
        return MODELS.get(self.config.model)

    @property
    def data_spec(self) -> DataSpec:
        if self.config.data is None:
            raise ValueError(
                f"run='{self.path}' was fitted on in-memory arrays (aelab.Autoencoder) and "
                "records no data set to rebuild"
            )
        return self.config.data

    @property
    def train_config(self) -> TrainConfig:
        return self.config.train

    def data(self, data_home: str | os.PathLike | None = None, *, carve: bool = True) -> Split:
        """Rebuild the run's training and held-out sets, checked against its record of them.

        ``carve=False`` leaves a validation set (``train.validation``) in the training set: the
        split every model of an ``aelab run`` shares, and PCA's training set.

        ``data_home`` is where named data sets are (see :func:`aelab.data.get_data_home`); it is
        never taken from the run's files, which could name any folder. A streamed run gives
        streamed folders; ``.load()`` reads one into memory.
        """
        spec = _local(self.data_spec, data_home)
        split = prepare_data(spec, self.config.train.validation if carve else 0.0)
        check_split(self.config, split, self.path)
        return split

    @torch.no_grad()
    def encode(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Codes ``(N, latent_dim)`` of images ``(N, C, H, W)`` in [0, 1]."""
        return self._map(self.model.encode, x, batch_size)

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Images ``(N, C, H, W)`` from codes ``(N, latent_dim)``."""
        return self._map(self.model.decode, z, batch_size)

    @torch.no_grad()
    def extra_metrics(self, x: np.ndarray | torch.Tensor) -> dict[str, float]:
        """The model family's own metrics on images ``x`` ``(N, C, H, W)`` (often none)."""
        self.model.eval()
        return dict(self.model.extra_metrics(self._on_device(_tensor(x))))

    def reconstruct(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        return self.decode(self.encode(x, batch_size), batch_size)

    def _repr_html_(self) -> str:
        """Jupyter's view: the run's summary and learning curves (:mod:`aelab.display`)."""
        from .display import run_html

        return run_html(self)

    def explore(self, **kwargs: Any) -> Any:
        """The Jupyter explorer of this run: sliders over its code and the live decode (see
        :func:`aelab.explore`; needs ``pip install aelab[notebook]``)."""
        from .explorer import explore

        return explore(self, **kwargs)

    def _map(self, fn, a, batch_size: int) -> np.ndarray:
        self.model.eval()
        outs = [fn(self._on_device(b)).float().cpu() for b in _tensor(a).split(batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0,), np.float32)

    def _on_device(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` on the model's device, images in the layout the model trained in."""
        fmt = memory_format(self.model) if t.ndim == 4 else torch.contiguous_format
        return t.to(next(self.model.parameters()).device, memory_format=fmt)


def _local(spec: DataSpec, data_home: str | None, cache: str | None = None) -> DataSpec:
    """The run's data spec with this machine's folders: ``data_home`` and ``cache`` are never
    taken from the run's files, which could name any folder (a pixel cache is written to); a
    recorded cache folder gives way to the default one, unless ``cache`` says otherwise."""
    if cache is None:
        cache = spec.cache if spec.cache in ("auto", "off") else "auto"
    return dataclasses.replace(spec, data_home=data_home, cache=cache)


def _tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``a`` as a tensor: arrays as float32, tensors as they are."""
    return a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a, dtype=np.float32))


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
    train: TrainConfig,
    out: str | os.PathLike | None,
    *,
    model_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    split_data: Split | None = None,
    log: Any = None,
) -> Run:
    """Train recipe ``name`` as ``train`` says and write its run directory ``out``.

    Everything is validated and the data loaded before anything is written, and ``out`` is
    claimed (:class:`~aelab.rundir.RunDir`): locked, and with ``overwrite`` an earlier run there
    is replaced only once this one has finished; ``out=None`` claims a new folder
    ``runs/NAME-DATE-TIME`` (the returned run's ``path``). A run that fails before its first
    checkpoint leaves nothing behind; one that fails later keeps its last checkpoint, to be
    resumed.
    ``resume=True`` is :func:`resume_run` with ``train.epochs`` and ``train.device``.
    ``log`` names experiment trackers, e.g. ``"tensorboard"`` (:func:`aelab.tracking.parse_log`;
    by default in ``out/tensorboard`` and ``out/mlruns``).

    Under ``torchrun`` (a process group initialised, see :mod:`aelab.distributed`) every process
    calls this with the same arguments: each validates and loads (a failure anywhere stops all
    of them with the same error), only rank 0 writes ``out``, and every process reads it to
    resume, so ``out`` must be on a file system they share.
    """
    if resume:
        if overwrite:
            raise ValueError("resume=True and overwrite=True exclude each other; pass one")
        return resume_run(
            out, model=name, epochs=train.epochs, device=train.device, progress=progress, log=log
        )

    def prepare() -> tuple[Trainer, RunConfig, Split]:
        get_recipe(name)  # an unknown name fails before any data is read
        tracking.parse_log(log)
        check_workers(data, train)
        if split_data is None:
            split = prepare_data(data, train.validation)
        else:
            split = split_data.with_validation(train.validation, data)
        model = _seeded(train.seed, build_model, name, split.train.image_shape,
                        **(model_overrides or {}))  # fmt: skip
        config = RunConfig.of(name, model, train, data=data, split=split.describe())
        return Trainer(model, train), config, split

    trainer, config, split = distributed.agree(prepare)
    rundir = distributed.agree(
        lambda: (
            RunDir.create(out, kind="train", overwrite=overwrite) if distributed.is_main() else None
        )
    )
    return _train_into(rundir, out, trainer, config, split, progress, log)


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
        :class:`~aelab.runconfig.DataSpec`); default the run's own, except that a folder named
        in the run's files is never written to (the default folder is used instead).
    """
    out = Path(out)
    tracking.parse_log(log)

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
        checkpoint = Checkpoint(rundir, every=trainer.config.checkpoint_every)
        trainer.fit(
            x_train,
            x_heldout,
            x_validation=x_validation,
            callbacks=[checkpoint, *tracking.for_run(log, rundir, config, split.heldout)],
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


def check_split(config: RunConfig, split: Split, out: str | os.PathLike) -> None:
    """Refuse data whose split differs from the one the run recorded (images added, removed or
    changed since): its held-out images might have been trained on."""
    recorded = config.split.get("fingerprint")
    if recorded is None:  # a run of aelab 0.1: no record to compare with
        return
    if config.data is not None:  # the run's own validation set, carved as it was
        split = split.with_validation(config.train.validation, config.data)
    now = split.fingerprint
    parts = ("train", "heldout", "validation", "normals")
    changed = [part for part in parts if recorded.get(part) != now.get(part)]
    if changed:
        source = config.data.source if config.data is not None else "the data"
        raise ValueError(
            f"data={source!r} is not the data the run in '{out}' was trained on: its "
            f"{' and '.join(changed)} images differ from the ones recorded in config.json "
            "(files added, removed or changed); held-out images could reach training, so "
            "restore the data or train a new run"
        )


def read_state(out: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint in force in ``out``, its files verified; None when there is none yet."""
    manifest = Manifest.read(out)
    if manifest is None or manifest.checkpoint is None:
        return None
    for name in STATE_FILES:
        manifest.verified(out, f"{manifest.checkpoint}/{name}")
    return load_state(Path(out) / manifest.checkpoint)


def load_run(path: str | os.PathLike, device: str = "cpu") -> Run:
    """Rebuild the model of a run directory from ``config.json`` and its weights, each file
    checked against the SHA-256 its manifest records.

    A finished run gives its final weights; one still training or interrupted, the weights of
    its last checkpoint.

    Examples
    --------
    >>> run = load_run("runs/deep")            # doctest: +SKIP
    >>> z = run.encode(images)                 # doctest: +SKIP
    """
    return open_run(path, RunConfig.load(path), device)


def open_run(path: str | os.PathLike, config: RunConfig, device: str = "cpu") -> Run:
    """:func:`load_run` for a ``config`` already read from ``path``."""
    path = Path(path)
    weights, history = _weights_and_history(path)
    model = config.build_model()
    model.to(resolve_device(device), memory_format=memory_format(model))
    load_weights(model, weights)
    model.eval()
    return Run(model, config, check_history(read_json(history), str(history)), path)


def _final_prefix(path: Path, manifest: Manifest | None) -> str | None:
    """Where a run's weights and history are: ``""`` (at the top: finished, or a run of aelab
    0.1), the checkpoint in force (``"checkpoint-N/"``), or None when it has none yet."""
    if manifest is None:
        return "" if (path / "model.safetensors").is_file() else None
    if manifest.complete:
        return ""
    return None if manifest.checkpoint is None else f"{manifest.checkpoint}/"


def has_weights(path: str | os.PathLike) -> bool:
    """Whether the run in ``path`` has trained weights to load (nothing is verified here)."""
    return _final_prefix(Path(path), Manifest.read(path)) is not None


def _weights_and_history(path: Path) -> tuple[Path, Path]:
    manifest = Manifest.read(path)
    prefix = _final_prefix(path, manifest)
    if manifest is None:  # aelab 0.1: no record to check against
        return path / "model.safetensors", path / "history.json"
    if prefix is None:
        raise ValueError(
            f"run='{path}' holds no trained weights yet: it stopped before its first "
            "checkpoint (resume=True trains it from the start)"
        )
    return (
        manifest.verified(path, f"{prefix}model.safetensors"),
        manifest.verified(path, f"{prefix}history.json"),
    )
