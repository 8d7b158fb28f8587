"""Run directories: what ``aelab train`` writes and :func:`load_run` reads back.

A run directory holds::

    config.json          model family and config, data pipeline, training schedule, versions
    model.safetensors    the weights
    history.json         [{"epoch", "loss", "heldout_loss", "seconds"}, ...]
    optimizer.json       optimizer hyper-parameters and step counts   (for --resume)
    optimizer.safetensors  optimizer state tensors                    (for --resume)
    trainer.json         epochs completed, convolution kernels chosen  (for --resume)

Nothing is unpickled: configuration is JSON, tensors are safetensors.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from ._version import __version__
from .callbacks import Checkpoint
from .checkpoint import load_state, load_weights, read_json, write_json
from .data import (
    DATASETS,
    ImageFolderDataset,
    ImageSet,
    default_split,
    load_dataset,
    mirror,
    split,
)
from .device import memory_format, resolve_device
from .models import MODELS, BaseAutoencoder, build_model, model_from_config
from .train import TrainConfig, Trainer

FORMAT_VERSION = 1


@dataclasses.dataclass
class DataSpec:
    """Where the images come from and how they are split; enough to rebuild the same split."""

    source: str = "mnist"
    data_home: str | None = None
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    skip_bad: bool = False
    mirror: bool = False
    holdout_people: int | None = None
    holdout: float | None = None
    seed: int = 0
    stream: bool = False  # read a folder one batch at a time instead of loading it whole

    def __post_init__(self) -> None:
        self.source = str(self.source)
        if self.image_size is not None:
            self.image_size = tuple(self.image_size)
        if not isinstance(self.stream, bool):
            raise ValueError(f"stream={self.stream!r} is not valid; expected True or False")
        path = Path(self.source).expanduser()
        if self.stream and (self.source in DATASETS or not path.is_dir()):
            if self.source in DATASETS:
                what = "a registered data set"
            else:
                what = "a file" if path.exists() else "no such folder"
            raise ValueError(
                f"stream=True (--stream) is not valid for data={self.source!r} ({what}); "
                "allowed: a folder of images; drop --stream to load other data into memory"
            )
        if self.stream and self.skip_bad:
            raise ValueError(
                "skip_bad=True (--skip-bad) is not valid with stream=True (--stream): "
                "unreadable images are found only by reading every image; drop one of the two"
            )

    def split_kwargs(self) -> dict[str, Any]:
        if self.holdout_people is not None:
            return {"holdout_people": self.holdout_people}
        if self.holdout is not None:
            return {"holdout": self.holdout}
        return default_split(self.source)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d


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
        config: dict[str, Any],
        history: list[dict[str, Any]],
        path: Path | None = None,
    ):
        self.model = model
        self.config = config
        self.history = history
        self.path = path

    @property
    def name(self) -> str:
        return self.config["model"]["name"]

    @property
    def data_spec(self) -> DataSpec:
        if not self.config.get("data"):
            raise ValueError(
                f"run='{self.path}' was fitted on in-memory arrays (aelab.Autoencoder) and "
                "records no data set to rebuild"
            )
        return DataSpec(**self.config["data"])

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.config["train"])

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

    def reconstruct(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        return self.decode(self.encode(x, batch_size), batch_size)

    def _map(self, fn, a, batch_size: int) -> np.ndarray:
        self.model.eval()
        device = next(self.model.parameters()).device
        t = torch.as_tensor(np.asarray(a, dtype=np.float32) if not torch.is_tensor(a) else a)
        fmt = memory_format(self.model) if t.ndim == 4 else torch.contiguous_format
        outs = [fn(b.to(device, memory_format=fmt)).float().cpu() for b in t.split(batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0,), np.float32)


def make_config(
    name: str, model: BaseAutoencoder, data: DataSpec, train: TrainConfig, split_info: dict
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "model": {"name": name, "family": model.family, "config": model.config.to_dict()},
        "data": data.to_dict(),
        "split": split_info,
        "train": train.to_dict(),
        "versions": {
            "aelab": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def check_workers(data: DataSpec, train: TrainConfig) -> None:
    """Worker processes read streamed folders only."""
    if train.workers and not data.stream:
        raise ValueError(
            f"workers={train.workers} is not valid without stream=True (--stream): in-memory "
            "data is batched on the device; allowed: workers=0, or stream a folder of images"
        )


def check_out_dir(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path:
    """Refuse to overwrite an earlier run unless asked; refuse what cannot be written."""
    out = Path(out)
    if resume:
        if out.exists() and not out.is_dir():
            raise ValueError(f"out='{out}' is a file; expected a folder for the run")
        if not (out / "config.json").is_file():
            raise ValueError(f"out='{out}' holds no run to resume (no config.json)")
        if overwrite:
            raise ValueError("resume and overwrite exclude each other; pass one")
        return out
    check_replaceable(out, overwrite=overwrite, also="--resume to continue it, ")
    check_writable(out)
    return out


def check_replaceable(
    out: Path,
    *,
    overwrite: bool,
    marker: str = "config.json",
    name: str = "out",
    flag: str = "--overwrite",
    also: str = "",
) -> None:
    """Refuse a folder that holds files unless ``overwrite``, and never one without ``marker``.

    An earlier run is only ever replaced when asked; a folder that is not an aelab run (it has
    no ``marker`` file) is never deleted, even when asked.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}='{out}' is a file; expected a folder for the run")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not overwrite:
        raise ValueError(
            f"{name}='{out}' already holds files; pass {flag} to replace an earlier run, "
            f"{also}or choose another folder"
        )
    if not (out / marker).is_file():
        raise ValueError(
            f"{name}='{out}' is not an aelab run (no {marker}); refusing to delete it even "
            f"with {flag}"
        )


def check_writable(out: Path) -> None:
    """Raise when ``out`` (or the nearest existing folder above it) cannot take new files."""
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    try:  # a real probe: permission bits lie for root and read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ValueError(f"out='{out}' is not writable ({parent}: {e.strerror or e})") from None


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
    """Train preset ``name`` and write its run directory ``out``.

    Everything is validated and the data loaded before anything is written. With ``resume``,
    the saved configuration is used (``train.epochs`` may be raised to train longer).

    Under ``torchrun`` (a process group initialised, see :mod:`aelab.distributed`) every process
    calls this with the same arguments: each validates and loads (a failure anywhere stops all
    of them with the same error), only rank 0 writes ``out``, and every process reads it to
    resume, so ``out`` must be on a file system they share.
    """

    def prepare() -> tuple[Trainer, dict[str, Any], Split]:
        return _prepare_run(
            name, data, train, Path(out), model_overrides, resume, overwrite, split_data
        )

    trainer, config, split_data = distributed.agree(prepare)
    out = Path(out)
    if distributed.is_main():
        if not resume:
            if overwrite and out.is_dir():
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)

    x_train, x_heldout = (
        torch.from_numpy(part.images) if isinstance(part, ImageSet) else part
        for part in (split_data.train, split_data.heldout)
    )
    checkpoint = Checkpoint(out, every=trainer.config.checkpoint_every)
    trainer.fit(x_train, x_heldout, callbacks=[checkpoint], progress=progress, desc=name)
    return Run(trainer.model, config, trainer.history, out)


def _prepare_run(
    name: str,
    data: DataSpec,
    train: TrainConfig,
    out: Path,
    model_overrides: dict[str, Any] | None,
    resume: bool,
    overwrite: bool,
    split_data: Split | None,
) -> tuple[Trainer, dict[str, Any], Split]:
    """Everything :func:`train_run` does before it writes: check, read, load, build."""
    if resume or distributed.is_main():  # only rank 0 writes; every rank reads to resume
        check_out_dir(out, resume=resume, overwrite=overwrite)
    if resume:
        saved = read_json(out / "config.json")
        if saved["model"]["name"] != name:
            raise ValueError(
                f"model={name!r} does not match the run in '{out}' ({saved['model']['name']!r})"
            )
        data = DataSpec(**saved["data"])
        train = TrainConfig(**{**saved["train"], "epochs": train.epochs, "device": train.device})
        model = model_from_config(saved["model"]["family"], saved["model"]["config"])
    check_workers(data, train)
    if split_data is None:
        split_data = prepare_data(data)
    if not resume:
        if name not in MODELS:
            raise ValueError(f"model={name!r} is not a known model; allowed: {', '.join(MODELS)}")
        with torch.random.fork_rng():
            torch.manual_seed(train.seed)  # same seed, same initial weights
            model = build_model(name, split_data.train.image_shape, **(model_overrides or {}))
    trainer = Trainer(model, train)
    config = make_config(name, model, data, train, split_data.describe())
    if resume:
        trainer.load_state_dict(load_state(out))
    return trainer, config, split_data


def load_run(path: str | os.PathLike, device: str = "cpu") -> Run:
    """Rebuild the model of a run directory from ``config.json`` and ``model.safetensors``.

    Examples
    --------
    >>> run = load_run("runs/deep")            # doctest: +SKIP
    >>> z = run.encode(images)                 # doctest: +SKIP
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"run='{path}' is not a run directory (no config.json)")
    config = read_json(path / "config.json")
    model = model_from_config(config["model"]["family"], config["model"]["config"])

    model.to(resolve_device(device), memory_format=memory_format(model))
    load_weights(model, path / "model.safetensors")
    model.eval()
    history_path = path / "history.json"
    history = read_json(history_path) if history_path.is_file() else []
    return Run(model, config, history, path)
