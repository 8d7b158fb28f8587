"""A trained run, opened: what ``aelab train`` writes (:func:`aelab.runs.train_run`) and
:func:`load_run` reads back, as the run contract (:mod:`aelab.runs.config`) describes them.

A run directory holds::

    config.json          the RunConfig: recipe, family and config, data, split, schedule, versions
    model.safetensors    the weights
    history.json         [{"epoch", "loss", "heldout_loss", "validation_loss", "seconds",
                          "threads"}, ...]
    optimizer.json       optimizer hyper-parameters and step counts   (for resuming)
    optimizer.safetensors  optimizer state tensors                    (for resuming)
    trainer.json         epochs completed, convolution kernels chosen  (for resuming)

Nothing is unpickled: configuration is JSON, tensors are safetensors.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aelab.data.prepare import Split, prepare_data
from aelab.data.spec import DataSpec
from aelab.models import MODELS, BaseAutoencoder, Recipe
from aelab.runs.checkpoint import check_history
from aelab.runs.config import RunConfig
from aelab.runs.manifest import Manifest, unchecked
from aelab.training.config import TrainConfig
from aelab.utils import views
from aelab.utils.device import memory_format, resolve_device
from aelab.utils.files import load_weights, read_json

INFER_BATCH = 512  # images per forward pass when encoding, decoding or scoring


def register_html(render: Callable[[Run], str]) -> Callable[[Run], str]:
    """Make ``render(run) -> html`` Jupyter's view of every :class:`Run`."""
    views.RUN_HTML.append(render)
    return render


class Run:
    """A trained model with its configuration and history, as stored in a run directory."""

    def __init__(
        self,
        model: BaseAutoencoder,
        config: RunConfig,
        history: list[dict[str, Any]],
        path: Path | None = None,
        *,
        legacy: bool = False,
    ):
        self.model = model
        self.config = config
        self.history = history
        self.path = path
        self.legacy = legacy  # read without a manifest (aelab 0.1): its split is not checked

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
        check_split(self.config, split, self.path, legacy=self.legacy)
        return split

    def map(
        self, fn: Callable[[BaseAutoencoder, torch.Tensor], torch.Tensor], x: Any,
        batch_size: int = INFER_BATCH, *, takes: str = "images",
    ) -> torch.Tensor:  # fmt: skip
        """``fn(model, batch)`` over ``x`` in batches of ``batch_size``, on the model's device and
        in eval mode; the result on the CPU. Arrays are taken as float32. A float64 tensor runs
        through a float64 copy of the weights (the result for an image is then the same, to
        float64 precision, whatever batch it comes in: BLAS picks other float32 kernels for one
        row and for many), except on Apple's MPS, which has no float64.

        ``takes`` says what ``x`` holds: ``"images"`` ``(N, C, H, W)`` of the model's
        ``input_shape``, or ``"codes"`` ``(N, latent_dim)``. Any other shape is refused in one
        line (:func:`check_input`): a grey ``(N, H, W)``, channels-last ``(N, H, W, C)`` or
        flattened ``(N, C*H*W)`` batch is never guessed at, as some families would misread it.
        """
        model, t = self.model, check_input(self.model, x, takes)
        device = next(model.parameters()).device
        if t.dtype == torch.float64 and device.type != "mps":
            model = copy.deepcopy(model).double()
        else:
            t = t.float()
        model.eval()
        fmt = memory_format(model) if t.ndim == 4 else torch.contiguous_format  # as trained
        with torch.no_grad():
            outs = [fn(model, b.to(device, memory_format=fmt)).cpu() for b in t.split(batch_size)]
            return torch.cat(outs) if outs else fn(model, t.to(device)).cpu()

    def encode(self, x: np.ndarray | torch.Tensor, batch_size: int = INFER_BATCH) -> np.ndarray:
        """Codes ``(N, latent_dim)`` of images ``(N, C, H, W)`` in [0, 1]; images of another
        shape are refused (:meth:`map`)."""
        return self.map(encoded, x, batch_size).float().numpy()

    def decode(self, z: np.ndarray | torch.Tensor, batch_size: int = INFER_BATCH) -> np.ndarray:
        """Images ``(N, C, H, W)`` from codes ``(N, latent_dim)``; codes of another shape are
        refused (:meth:`map`)."""
        return self.map(decoded, z, batch_size, takes="codes").float().numpy()

    def reconstruct(
        self, x: np.ndarray | torch.Tensor, batch_size: int = INFER_BATCH
    ) -> np.ndarray:
        """Reconstructions ``(N, C, H, W)`` of images ``(N, C, H, W)``."""
        return self.decode(self.encode(x, batch_size), batch_size)

    @torch.no_grad()
    def extra_metrics(self, x: np.ndarray | torch.Tensor) -> dict[str, float]:
        """The model family's own metrics on images ``x`` ``(N, C, H, W)`` (often none)."""
        self.model.eval()
        return dict(self.model.extra_metrics(self._on_device(check_input(self.model, x))))

    def _repr_html_(self) -> str | None:
        """Jupyter's view: the run's summary and learning curves, drawn by the renderer an
        application layer registered (:func:`register_html`; ``import aelab`` registers
        :func:`aelab.apps.display.run_html`)."""
        return views.run_html(self)

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


def encoded(model: BaseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """``model``'s codes of ``x``: a function for :meth:`Run.map`."""
    return model.encode(x)


def decoded(model: BaseAutoencoder, z: torch.Tensor) -> torch.Tensor:
    """``model``'s images of codes ``z``: a function for :meth:`Run.map`."""
    return model.decode(z)


def reconstructed(model: BaseAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """``model``'s reconstructions of ``x``: a function for :meth:`Run.map`."""
    return model.decode(model.encode(x))


def _tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``a`` as a tensor: arrays as float32, tensors as they are."""
    return a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a, dtype=np.float32))


def check_input(
    model: BaseAutoencoder, x: np.ndarray | torch.Tensor, takes: str = "images"
) -> torch.Tensor:
    """``x`` as a tensor, if it is what ``model`` takes: ``"images"`` ``(N, *input_shape)`` or
    ``"codes"`` ``(N, latent_dim)``; otherwise one line naming the shape received and the shape
    expected (with the fix, for the common other layouts of images)."""
    if takes not in ("images", "codes"):
        raise ValueError(f"takes={takes!r} is not valid; allowed: 'images', 'codes'")
    t = _tensor(x)
    one = tuple(model.input_shape) if takes == "images" else (int(model.latent_dim),)
    got = tuple(t.shape)
    if got[1:] == one:
        return t
    name, want = ("x", "images") if takes == "images" else ("z", "codes")
    hint = _layout_hint(got, one) if takes == "images" else ""
    raise ValueError(f"{name} has shape {got}; the model takes {want} {_batch_of(one)}{hint}")


def _batch_of(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(s) for s in shape) + ")"


def _layout_hint(got: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """How to turn another layout of images into ``(N, C, H, W)``, where it is plain."""
    c, h, w = shape
    if got == shape:
        return " (one image (C, H, W): x[None])"
    if got[1:] == (h, w) and c == 1:
        return " (grey images (N, H, W): x[:, None])"
    if got[1:] == (h, w, c):
        return " (channels-last images (N, H, W, C): x.transpose(0, 3, 1, 2))"
    if got[1:] == (c * h * w,):
        return f" (flattened images: x.reshape(-1, {c}, {h}, {w}))"
    return ""


def check_split(
    config: RunConfig, split: Split, out: str | os.PathLike, *, legacy: bool = False
) -> None:
    """Refuse data whose split differs from the one the run recorded (images added, removed or
    changed since): its held-out images might have been trained on. A config without the
    split's fingerprint is refused too, unless ``legacy`` (a run of aelab 0.1, which recorded
    none, opened with ``legacy=True``)."""
    recorded = config.split.get("fingerprint")
    if recorded is None and legacy:
        return
    if not isinstance(recorded, dict):
        raise ValueError(
            f"the run in '{out}' records no fingerprint of its data split in config.json (a run "
            "of aelab 0.1, or the field was removed): its held-out images cannot be told from "
            "its training images, so its data is not read again; train the run again"
        )
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


def load_run(path: str | os.PathLike, device: str = "cpu", *, legacy: bool = False) -> Run:
    """Rebuild the model of a run directory from ``config.json`` and its weights, each file
    checked against the SHA-256 its manifest records.

    A finished run gives its final weights; one still training or interrupted, the weights of
    its last checkpoint. A folder without a manifest is refused; ``legacy=True`` reads a run of
    aelab 0.1 (which wrote none) unchecked, and then no data split is checked either.

    Examples
    --------
    >>> run = load_run("runs/deep")            # doctest: +SKIP
    >>> z = run.encode(images)                 # doctest: +SKIP
    """
    return open_run(path, RunConfig.load(path, legacy=legacy), device, legacy=legacy)


def open_run(
    path: str | os.PathLike, config: RunConfig, device: str = "cpu", *, legacy: bool = False
) -> Run:
    """:func:`load_run` for a ``config`` already read from ``path``."""
    path = Path(path)
    weights, history = _weights_and_history(path, legacy)
    model = config.build_model()
    model.to(resolve_device(device), memory_format=memory_format(model))
    load_weights(model, weights)
    model.eval()
    history = check_history(read_json(history), str(history))
    return Run(model, config, history, path, legacy=Manifest.read(path) is None)


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


def _weights_and_history(path: Path, legacy: bool) -> tuple[Path, Path]:
    manifest = Manifest.read(path)
    prefix = _final_prefix(path, manifest)
    if manifest is None:  # aelab 0.1: no record to check against
        if not legacy:
            raise unchecked(path)
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
