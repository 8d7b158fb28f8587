"""Run directories: what ``aelab train`` writes (:func:`train_run`) and :func:`load_run` reads
back, as the run contract (:mod:`aelab.runconfig`) describes them.

A run directory holds::

    config.json          the RunConfig: recipe, family and config, data, split, schedule, versions
    model.safetensors    the weights
    history.json         [{"epoch", "loss", "heldout_loss", "seconds"}, ...]
    optimizer.json       optimizer hyper-parameters and step counts   (for resuming)
    optimizer.safetensors  optimizer state tensors                    (for resuming)
    trainer.json         epochs completed, convolution kernels chosen  (for resuming)

Nothing is unpickled: configuration is JSON, tensors are safetensors.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from .callbacks import Checkpoint
from .checkpoint import load_state, load_weights, read_json
from .data import ImageFolderDataset, ImageSet, load_dataset, mirror, split
from .device import memory_format, resolve_device
from .models import MODELS, BaseAutoencoder, Recipe, build_model, get_recipe
from .runconfig import DataSpec, RunConfig, current_versions
from .rundir import check_out_dir
from .train import TrainConfig, Trainer


@dataclasses.dataclass
class Split:
    """The training and held-out sets: in memory, or streamed folders (``DataSpec.stream``)."""

    train: ImageSet | ImageFolderDataset
    heldout: ImageSet | ImageFolderDataset

    def describe(self) -> dict[str, Any]:
        return {
            "n_train": len(self.train),
            "n_heldout": len(self.heldout),
            "image_shape": list(self.train.image_shape),
        }


def prepare_data(spec: DataSpec) -> Split:
    """Load, split (held-out images never reach training), then add mirrors to both parts.

    With ``spec.stream`` nothing is loaded: the folder is listed and split by its labels into
    :class:`~aelab.data.ImageFolderDataset` parts that read images as they are used.
    """
    if spec.stream:
        folder = Path(spec.source).expanduser()
        data = ImageFolderDataset(folder, image_size=spec.image_size, channels=spec.channels)
    else:
        data = load_dataset(
            spec.source,
            data_home=spec.data_home,
            image_size=spec.image_size,
            channels=spec.channels,
            skip_bad=spec.skip_bad,
        )
    train, heldout = split(data, seed=spec.seed, **spec.split_kwargs())
    if spec.mirror:
        train, heldout = mirror(train), (mirror(heldout) if len(heldout) else heldout)
    return Split(train, heldout)


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

    def data(self) -> Split:
        """Rebuild the run's training and held-out sets.

        A streamed run gives streamed folders; ``.load()`` reads one into memory.
        """
        return prepare_data(self.data_spec)

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

    def _map(self, fn, a, batch_size: int) -> np.ndarray:
        self.model.eval()
        outs = [fn(self._on_device(b)).float().cpu() for b in _tensor(a).split(batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0,), np.float32)

    def _on_device(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` on the model's device, images in the layout the model trained in."""
        fmt = memory_format(self.model) if t.ndim == 4 else torch.contiguous_format
        return t.to(next(self.model.parameters()).device, memory_format=fmt)


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
    out: str | os.PathLike,
    *,
    model_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    split_data: Split | None = None,
) -> Run:
    """Train recipe ``name`` as ``train`` says and write its run directory ``out``.

    Everything is validated and the data loaded before anything is written. ``resume=True`` is
    :func:`resume_run` with ``train.epochs`` and ``train.device`` (the rest is the run's own).

    Under ``torchrun`` (a process group initialised, see :mod:`aelab.distributed`) every process
    calls this with the same arguments: each validates and loads (a failure anywhere stops all
    of them with the same error), only rank 0 writes ``out``, and every process reads it to
    resume, so ``out`` must be on a file system they share.
    """
    if resume:
        if overwrite:
            raise ValueError("resume and overwrite exclude each other; pass one")
        return resume_run(
            out, model=name, epochs=train.epochs, device=train.device, progress=progress
        )
    out = Path(out)

    def prepare() -> tuple[Trainer, RunConfig, Split]:
        if distributed.is_main():  # only rank 0 writes
            check_out_dir(out, resume=False, overwrite=overwrite)
        get_recipe(name)  # an unknown name fails before any data is read
        check_workers(data, train)
        split = prepare_data(data) if split_data is None else split_data
        with torch.random.fork_rng():
            torch.manual_seed(train.seed)  # same seed, same initial weights
            model = build_model(name, split.train.image_shape, **(model_overrides or {}))
        config = RunConfig.of(name, model, train, data=data, split=split.describe())
        return Trainer(model, train), config, split

    trainer, config, split = distributed.agree(prepare)
    if distributed.is_main():
        if overwrite and out.is_dir():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        config.save(out)
    return _fit(trainer, config, split, out, progress)


def resume_run(
    out: str | os.PathLike,
    *,
    model: str | None = None,
    epochs: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Run:
    """Continue the run in ``out`` from its last checkpoint, to the result an uninterrupted run
    would have reached.

    Parameters
    ----------
    out : str or path-like
        The run directory.
    model : str, optional
        The recipe the caller expects there; a different one is an error.
    epochs : int, optional
        Train up to this many epochs in all (to train longer); default the run's own.
    device : str, optional
        Where to train now; default the run's own setting.
    progress : bool, optional
        See :meth:`Trainer.fit`.
    """
    out = Path(out)

    def prepare() -> tuple[Trainer, RunConfig, Split]:
        check_out_dir(out, resume=True, overwrite=False)
        saved = RunConfig.load(out)
        if model is not None and saved.model != model:
            raise ValueError(f"model={model!r} does not match the run in '{out}' ({saved.model!r})")
        if saved.data is None:
            raise ValueError(
                f"out='{out}' was fitted on in-memory arrays (aelab.Autoencoder): there is no "
                "data set to resume it on"
            )
        train = dataclasses.replace(
            saved.train,
            epochs=saved.train.epochs if epochs is None else epochs,
            device=saved.train.device if device is None else device,
        )
        split = prepare_data(saved.data)
        config = dataclasses.replace(
            saved, train=train, split=split.describe(), versions=current_versions()
        )
        trainer = Trainer(saved.build_model(), train)
        trainer.load_state_dict(load_state(out))
        return trainer, config, split

    trainer, config, split = distributed.agree(prepare)
    if distributed.is_main():
        config.save(out)
    return _fit(trainer, config, split, out, progress)


def _fit(trainer: Trainer, config: RunConfig, split: Split, out: Path, progress) -> Run:
    """Train ``trainer`` on ``split``, checkpointing into ``out``."""
    x_train, x_heldout = (
        torch.from_numpy(part.images) if isinstance(part, ImageSet) else part
        for part in (split.train, split.heldout)
    )
    checkpoint = Checkpoint(out, every=trainer.config.checkpoint_every)
    trainer.fit(x_train, x_heldout, callbacks=[checkpoint], progress=progress, desc=config.model)
    return Run(trainer.model, config, trainer.history, out)


def load_run(path: str | os.PathLike, device: str = "cpu") -> Run:
    """Rebuild the model of a run directory from ``config.json`` and ``model.safetensors``.

    Examples
    --------
    >>> run = load_run("runs/deep")            # doctest: +SKIP
    >>> z = run.encode(images)                 # doctest: +SKIP
    """
    return open_run(path, RunConfig.load(path), device)


def open_run(path: str | os.PathLike, config: RunConfig, device: str = "cpu") -> Run:
    """:func:`load_run` for a ``config`` already read from ``path``."""
    path = Path(path)
    model = config.build_model()
    model.to(resolve_device(device), memory_format=memory_format(model))
    load_weights(model, path / "model.safetensors")
    model.eval()
    history_path = path / "history.json"
    history = read_json(history_path) if history_path.is_file() else []
    return Run(model, config, history, path)
