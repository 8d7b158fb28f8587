"""Experiment tracking: a training run's curves, reconstructions, configuration and codes, sent
to TensorBoard or MLflow by a :class:`~aelab.training.callbacks.Callback` each.

``log="tensorboard[:DIR]"``, ``log="mlflow[:URI]"`` or both (comma-separated, or a list) name
them. Every epoch: the training, held-out and validation losses and the learning rate; every
``image_every`` epochs and at the end: held-out images above their reconstructions; at the end:
the configuration flattened (``model.latent_dim``, ``train.epochs``...) with the final losses,
and for TensorBoard the held-out codes with thumbnails and labels for its Embedding Projector.

TensorBoard and MLflow are imported only when a tracker starts, and only rank 0 of a
``torchrun`` group logs. Logs never go inside a run folder (``overwrite=True`` replaces it
whole): by default beside it (:func:`defaults`), and a folder inside it is refused
(:func:`check_outside`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from aelab.training.callbacks import Callback
from aelab.utils import distributed
from aelab.utils.choices import did_you_mean
from aelab.utils.device import rng_devices

if TYPE_CHECKING:
    from aelab.training.trainer import Trainer

KINDS = {"tensorboard": "TensorBoard", "mlflow": "MLflow"}  # also the module and the extra
IMAGE_EVERY = 10  # epochs between reconstruction images (and one at the end)
SHOWN = 8  # held-out images in a reconstruction image
EMBEDDED = 256  # held-out images whose codes the projector shows
THUMBNAIL = 64  # the largest side of a sprite thumbnail (a sprite is at most 8192 px a side)
# MLflow retries a failed request 7 times with exponential backoff (factor 2 s), each try waiting
# up to 120 s: a refused connection was reported after 254 s. aelab's first request to a server is
# one try of PROBE_TIMEOUT seconds (a server that answers at all answers a lookup in well under
# one); once it has answered, MLflow's own retries apply.
PROBE_TIMEOUT = 5
CURVES = dict(loss="loss/train", heldout_loss="loss/heldout", validation_loss="loss/validation")


class Target(NamedTuple):
    """One tracker that ``log`` names: its kind and where it writes (None: the default)."""

    kind: str
    where: str | None = None

    def for_model(self, name: str) -> Target:
        """The target of model ``name`` of a workshop: a TensorBoard folder of its own."""
        if self.kind == "tensorboard" and self.where is not None:
            return Target(self.kind, str(Path(self.where) / name))
        return self


def parse_log(log: str | Target | Iterable[str | Target] | None) -> tuple[Target, ...]:
    """The trackers ``log`` names: None or ``""`` for none, ``"tensorboard[:DIR]"``,
    ``"mlflow[:URI]"``, several comma-separated or in a list. Each kind's extra must be
    installed (found without importing it)."""
    items = [] if log is None else [log] if isinstance(log, (str, Target)) else list(log)
    targets: list[Target] = []
    for item in items:
        if isinstance(item, Target):
            targets.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"log={log!r} is not valid; expected a string, a list of them or None")
        for part in filter(None, (p.strip() for p in item.split(","))):
            kind, _, where = part.partition(":")
            targets.append(Target(kind.strip().lower(), where.strip() or None))
    for kind in dict.fromkeys(t.kind for t in targets):
        if kind not in KINDS:
            raise ValueError(
                f"log={kind!r} is not valid; {did_you_mean(kind, KINDS)}allowed: "
                "tensorboard[:DIR], mlflow[:URI] (several comma-separated)"
            )
        if importlib.util.find_spec(kind) is None:
            raise ValueError(
                f"log={kind!r} needs {KINDS[kind]}, which is not installed: "
                f'pip install "aelab[{kind}]"'
            )
    return tuple(dict.fromkeys(targets))


class Heldout(NamedTuple):
    """Fixed images to reconstruct and encode: ``images`` ``(N, C, H, W)``, a label each (None:
    their index), and whether they are ``pictures`` (not for tables: codes only)."""

    images: torch.Tensor
    labels: list[str] | None = None
    pictures: bool = True


def heldout_of(part: Any, n: int = EMBEDDED) -> Heldout | None:
    """The first ``n`` images of a held-out set (an ImageSet or a streamed folder)."""
    n = min(n, len(part))
    if n == 0:
        return None
    if hasattr(part, "images"):
        images = torch.from_numpy(np.ascontiguousarray(part.images[:n]))
    else:
        images = torch.stack([part[i] for i in range(n)])
    labels, names = getattr(part, "labels", None), getattr(part, "class_names", None)
    if labels is not None:
        labels = [names[k] if names else str(k) for k in np.asarray(labels[:n]).tolist()]
    return Heldout(images, labels)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``; values other than numbers, strings and booleans
    as text (all that both trackers take)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value if isinstance(value, (int, float, str)) else str(value)
    return out


def defaults(log: Any, folder: str | os.PathLike) -> tuple[Target, ...]:
    """The trackers of ``log`` for the run folder ``folder``, each with where it writes: a DIR
    or URI given, else beside the folder, never inside it (``--overwrite`` replaces a run folder
    whole): TensorBoard in ``PARENT/tensorboard/NAME``, MLflow in a file store
    ``PARENT/mlruns``."""
    folder = Path(folder)
    out = []
    for target in parse_log(log):
        if target.where is None and target.kind == "tensorboard":
            target = Target(target.kind, str(folder.parent / "tensorboard" / folder.name))
        elif target.where is None:
            target = Target(target.kind, (folder.parent / "mlruns").absolute().as_uri())
        out.append(target)
    return tuple(out)


def check_outside(log: Any, folder: str | os.PathLike) -> None:
    """Refuse a tracker of ``log`` that would write inside the run folder ``folder``: a later
    ``--overwrite`` replaces that folder, logs and all."""
    inside = Path(folder).absolute()
    for target in parse_log(log):
        where = target.where
        local = None if where is None else Path(where) if target.kind == "tensorboard" else None
        if where is not None and target.kind == "mlflow":
            local = _file_store(where)
        if local is not None and Path(local).absolute().is_relative_to(inside):
            raise ValueError(
                f"log='{target.kind}:{where}' writes inside the run folder '{folder}', which "
                "overwrite=True replaces whole; choose a folder outside it (by default the logs "
                "go beside it)"
            )


def trackers(log: Any, name: str, **common: Any) -> list[Callback]:
    """One callback per tracker of ``log`` for a run called ``name`` (a DIR or URI not given:
    ``runs/tensorboard/NAME-DATE-TIME`` and a file store ``runs/mlruns``; a run folder's are
    :func:`defaults`). ``common``: see :class:`TensorBoardLogger`."""
    out = []
    for target in parse_log(log):
        if target.kind == "tensorboard":
            default = Path("runs", "tensorboard", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
            out.append(TensorBoardLogger(target.where or default, **common))
        else:
            uri = target.where or Path("runs", "mlruns").absolute().as_uri()
            out.append(MLflowLogger(uri, run_name=name, **common))
    return out


class _Tracker(Callback):
    """When to log what, and the pictures; a subclass writes them (``_open``, ``_scalars``,
    ``_image``, ``_finish``, ``_close``)."""

    def __init__(self, *, params=None, heldout=None, image_every=IMAGE_EVERY):
        if isinstance(image_every, bool) or not isinstance(image_every, int) or image_every < 1:
            raise ValueError(f"image_every={image_every!r} is not valid; expected an integer >= 1")
        self.params, self.heldout, self.image_every = flatten(params or {}), heldout, image_every
        self.active, self.finished, self._imaged = False, False, -1

    def on_fit_start(self, trainer: Trainer) -> None:
        self.active, self.finished, self._imaged = distributed.is_main(), False, -1
        if self.active:
            self._open()

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not self.active:
            return
        values = {CURVES[k]: record[k] for k in CURVES if record.get(k) is not None}
        values["lr"] = record.get("lr", trainer.optimizer.param_groups[0]["lr"])
        self._scalars(values, record["epoch"])
        if record["epoch"] % self.image_every == 0:
            self._reconstructions(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        if not self.active:
            return
        if self._imaged != trainer.epoch:
            self._reconstructions(trainer)
        last = trainer.history[-1] if trainer.history else {}
        self._finish(trainer, {f"final/{k}": last[k] for k in CURVES if last.get(k) is not None})
        self.finished = True

    def close(self, trainer: Trainer) -> None:
        if self.active:
            self.active = False
            self._close()

    def _reconstructions(self, trainer: Trainer) -> None:
        self._imaged = trainer.epoch
        if self.heldout is not None and self.heldout.pictures:
            x = self.heldout.images[:SHOWN]
            self._image(_mosaic([x, _encode_decode(trainer, x)[1]]), trainer.epoch)


class TensorBoardLogger(_Tracker):
    """Log a training run to TensorBoard event files in ``log_dir``; at the end, the held-out
    codes for the Embedding Projector (``projector_config.pbtxt``, ``tensors.tsv``,
    ``metadata.tsv``, ``sprite.png``).

    Parameters
    ----------
    log_dir : str or path-like
    params : dict, optional
        The run's configuration, nested (logged flattened: ``model.latent_dim``).
    heldout : Heldout, optional
        The fixed images to reconstruct (the first :data:`SHOWN`) and encode.
    image_every : int, default=10
        Epochs between reconstruction images; one more at the end.
    """

    def __init__(self, log_dir: str | os.PathLike, **common: Any) -> None:
        super().__init__(**common)
        self.folder, self.writer = Path(log_dir), None

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.folder))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # curves show while training, not only every two minutes

    def _image(self, image: np.ndarray, step: int) -> None:
        self.writer.add_image("reconstructions", image, step, dataformats="HWC")

    def _finish(self, trainer: Trainer, final: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        if self.heldout is not None:
            z = _encode_decode(trainer, self.heldout.images)[0]  # (N, latent_dim)
            labels = self.heldout.labels or [str(i) for i in range(len(z))]
            thumbs = _thumbnails(self.heldout.images) if self.heldout.pictures else None
            self.writer.add_embedding(
                z, metadata=labels, label_img=thumbs, global_step=trainer.epoch, tag="codes"
            )
        if self.params:  # this run in the HParams dashboard: configuration and final losses
            for summary in hparams(self.params, final):
                self.writer.file_writer.add_summary(summary, trainer.epoch)
        self._scalars(final, trainer.epoch)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowLogger(_Tracker):
    """Log a training run to MLflow as run ``run_name`` of experiment ``experiment`` at
    ``tracking_uri``. The parameters are logged at the start, so a run that fails keeps them
    (marked FAILED). Other parameters: see :class:`TensorBoardLogger`."""

    def __init__(self, tracking_uri: str, *, run_name: str, experiment="aelab", **common: Any):
        super().__init__(**common)
        self.tracking_uri, self.run_name, self.experiment = tracking_uri, run_name, experiment
        self.folder, self.client, self.run_id = _file_store(tracking_uri), None, None

    def _open(self) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        with _file_store_allowed(self.folder):
            try:
                with _environ_defaults(
                    MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                    MLFLOW_HTTP_REQUEST_TIMEOUT=str(PROBE_TIMEOUT),
                ):  # the server answers now, or is reported now; later requests retry
                    self.client = MlflowClient(tracking_uri=self.tracking_uri)
                    found = self.client.get_experiment_by_name(self.experiment)
                    experiment = found.experiment_id if found else None
                    experiment = experiment or self.client.create_experiment(self.experiment)
            except Exception as e:  # an unknown scheme, a server that does not answer
                why = " ".join(str(e).split())
                raise ValueError(
                    f"log='mlflow:{self.tracking_uri}' cannot be opened: {why}"
                ) from None
            self.run_id = self.client.create_run(experiment, run_name=self.run_name).info.run_id
            params = [Param(k, str(v)) for k, v in self.params.items()]
            self.client.log_batch(self.run_id, params=params)

    def _scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with _file_store_allowed(self.folder):
            metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
            self.client.log_batch(self.run_id, metrics=metrics)

    def _image(self, image: np.ndarray, step: int) -> None:
        with _file_store_allowed(self.folder):
            name = f"reconstructions/epoch-{step:06d}.png"
            self.client.log_image(self.run_id, image, artifact_file=name)

    def _finish(self, trainer: Trainer, final: dict[str, float]) -> None:
        self._scalars(final, trainer.epoch)

    def _close(self) -> None:
        if self.run_id is not None:
            status = "FINISHED" if self.finished else "FAILED"
            with _file_store_allowed(self.folder):
                self.client.set_terminated(self.run_id, status=status)
            self.run_id = None


def _file_store_allowed(folder: Path | None) -> contextlib.AbstractContextManager[None]:
    """MLflow 3 refuses a file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set: set it while
    aelab writes to one (a setting of the user's own wins)."""
    if folder is None:
        return contextlib.nullcontext()
    return _environ_defaults(MLFLOW_ALLOW_FILE_STORE="true")


@contextlib.contextmanager
def _environ_defaults(**values: str) -> Iterator[None]:
    """Environment variables set for the block, each where the user has not set it (a setting
    of the user's own wins), and put back as they were after it."""
    before = {name: os.environ.get(name) for name in values}
    ours = {name: value for name, value in values.items() if not before[name]}
    os.environ.update(ours)
    try:
        yield
    finally:
        for name in ours:
            if before[name] is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before[name]


def _file_store(uri: str) -> Path | None:
    """The folder of a local file store URI (``file:...`` or a path), else None."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return Path(uri) if len(parsed.scheme) <= 1 else None  # "" or a Windows drive letter


@torch.no_grad()
def _encode_decode(trainer: Trainer, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(N, latent_dim)`` and reconstructions ``(N, C, H, W)`` of ``x`` by the model
    being trained, in eval mode (the next epoch puts it back in train mode)."""
    model, zs, xs = trainer.model, [], []
    model.eval()
    with torch.random.fork_rng(devices=rng_devices(trainer.device)):  # the run's draws stay
        for batch in x.split(256):
            z = model.encode(batch.to(trainer.device, memory_format=trainer.memory_format))
            zs.append(z.float().cpu())
            xs.append(model.decode(z).float().cpu())
    return torch.cat(zs).numpy(), torch.cat(xs).numpy()


def _mosaic(rows: list[Any], gap: int = 2) -> np.ndarray:
    """Rows of images ``(n, C, H, W)`` in [0, 1] as one RGB picture ``(H', W', 3)`` of uint8,
    small images enlarged (nearest) to about 32 pixels a side."""
    rows = [np.clip(np.asarray(r, dtype=np.float32), 0, 1) for r in rows]
    _, _, h, w = rows[0].shape
    k = max(1, 32 // max(h, w))
    h, w, n = h * k, w * k, max(len(r) for r in rows)
    out = np.ones((len(rows) * (h + gap) + gap, n * (w + gap) + gap, 3), np.float32)
    for i, row in enumerate(rows):
        tiles = row.repeat(k, axis=2).repeat(k, axis=3).transpose(0, 2, 3, 1)  # (n, h, w, C)
        y = gap + i * (h + gap)
        for j, tile in enumerate(tiles):  # C = 1 broadcasts to grey
            out[y : y + h, gap + j * (w + gap) :][:, :w] = tile
    return (out * 255).round().astype(np.uint8)


def _thumbnails(x: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` shrunk to at most :data:`THUMBNAIL` pixels a side."""
    scale = THUMBNAIL / max(x.shape[-2:])
    if scale < 1:
        x = torch.nn.functional.interpolate(x.float(), scale_factor=scale, mode="area")
    return x.float().clamp(0, 1)


__all__ = [
    "Heldout",
    "MLflowLogger",
    "TensorBoardLogger",
    "check_outside",
    "defaults",
    "parse_log",
    "trackers",
]
