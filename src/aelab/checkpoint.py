"""Files of a run directory: JSON for configuration, safetensors for tensors, written atomically.

Nothing here unpickles. Every file is written to a temporary name beside it
(``.NAME.aelab-tmp-*``), flushed to the disk, given the mode the umask asks for, and renamed
over the old one, so an interrupted write leaves the previous file whole; the writers return the
SHA-256 of what they wrote, for the run's manifest (:mod:`aelab.manifest`). An optimizer's state is
split into its tensors (``optimizer.safetensors``) and everything else (``optimizer.json``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .manifest import sha256_bytes

TMP_MARK = ".aelab-tmp-"  # in the name of every temporary file or folder aelab makes
HISTORY_KEYS = {"epoch", "loss", "heldout_loss", "validation_loss", "seconds"}
_HISTORY_KEYS_0_2 = HISTORY_KEYS - {"validation_loss"}  # runs written before validation


def _file_mode() -> int:
    """0o666 less the process's umask (mkstemp makes 0o600 files whatever the umask)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, at once restored
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``directory`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically and durably; returns its SHA-256.

    A symbolic link at ``path`` is replaced by the file, never written through.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return sha256_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> str:
    """Write ``obj`` as indented JSON, atomically; returns its SHA-256."""
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def check_history(history: Any, source: str) -> list[dict[str, Any]]:
    """``history`` if it is a list of epoch records ``{"epoch", "loss", "heldout_loss",
    "validation_loss", "seconds"}`` numbered 1, 2, ... (older runs have no validation_loss);
    otherwise one error naming ``source``."""

    def number(v: Any, none: bool = False) -> bool:
        if v is None:
            return none
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(history, list):
        raise ValueError(f"{source}: holds a {type(history).__name__}, not a list of epochs")
    for i, record in enumerate(history, start=1):
        ok = (
            isinstance(record, dict)
            and set(record) in (HISTORY_KEYS, _HISTORY_KEYS_0_2)
            and record["epoch"] == i
            and number(record["loss"])
            and number(record["heldout_loss"], none=True)
            and number(record.get("validation_loss"), none=True)
            and number(record["seconds"])
            and math.isfinite(record["seconds"])
        )
        if not ok:
            raise ValueError(
                f"{source}: epoch record {i} is not valid; expected "
                f'{{"epoch": {i}, "loss", "heldout_loss", "validation_loss", "seconds"}} with '
                "numbers"
            )
    return history


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> str:
    """Write ``tensors`` as one safetensors file, atomically; returns its SHA-256."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return write_bytes(path, safetensors_bytes(cpu))


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # safetensors raises its own error type for malformed files
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{path}: not a readable safetensors file ({reason})") from None


def save_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """The model's state dict as safetensors; returns the file's SHA-256."""
    return save_tensors(path, model.state_dict())


def fit_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Copy ``state`` into ``model``'s parameters and buffers; every key and shape must match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not fit the model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"{source}: weights do not fit the model ({key} has shape "
                f"{tuple(value.shape)}; the model's is {tuple(own[key].shape)})"
            )
    model.load_state_dict(state)
    return model


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load safetensors weights into ``model`` (every key must match)."""
    device = next(model.parameters()).device
    return fit_weights(model, load_tensors(path, device), str(path))


def save_optimizer(state: dict[str, Any], directory: str | os.PathLike) -> dict[str, str]:
    """An optimizer's ``state_dict()``: ``optimizer.safetensors`` (its state tensors) and
    ``optimizer.json`` (all the rest). Returns each file's SHA-256 by name."""
    tensors: dict[str, torch.Tensor] = {}
    meta_state: dict[str, dict[str, Any]] = {}
    for pid, s in state["state"].items():
        meta_state[str(pid)] = {}
        for name, value in s.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value
            else:
                meta_state[str(pid)][name] = value
    directory = Path(directory)
    meta = {"param_groups": state["param_groups"], "state": meta_state}
    return {
        "optimizer.safetensors": save_tensors(directory / "optimizer.safetensors", tensors),
        "optimizer.json": write_json(directory / "optimizer.json", meta),
    }


def load_optimizer(directory: str | os.PathLike) -> dict[str, Any]:
    """The optimizer ``state_dict()`` that :func:`save_optimizer` wrote, for ``load_state_dict``."""
    directory = Path(directory)
    meta = read_json(directory / "optimizer.json")
    tensors = load_tensors(directory / "optimizer.safetensors")
    try:
        state: dict[int, dict[str, Any]] = {int(pid): dict(s) for pid, s in meta["state"].items()}
        for key, value in tensors.items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        groups = meta["param_groups"]
        for g in groups:  # JSON turns tuples into lists; torch compares betas as tuples
            for k, v in g.items():
                if isinstance(v, list) and k != "params":
                    g[k] = tuple(v)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{directory / 'optimizer.json'}: not an optimizer state") from None
    return {"state": state, "param_groups": groups}


STATE_FILES = (
    "model.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "history.json",
    "trainer.json",
)


def save_state(directory: str | os.PathLike, state: dict[str, Any]) -> dict[str, str]:
    """A trainer's :meth:`~aelab.train.Trainer.state_dict` as the files of :data:`STATE_FILES`
    in ``directory`` (``trainer.json``: the epoch, the convolution kernels chosen and the
    precision). Returns each file's SHA-256 by name."""
    directory = Path(directory)
    digests = {"model.safetensors": save_tensors(directory / "model.safetensors", state["model"])}
    digests |= save_optimizer(state["optimizer"], directory)
    digests["history.json"] = write_json(directory / "history.json", state["history"])
    trainer = {"epoch": state["epoch"]}
    if state.get("conv_kernels") is not None:
        trainer["conv_kernels"] = state["conv_kernels"]
    if state.get("precision") is not None:
        trainer["precision"] = state["precision"]
    digests["trainer.json"] = write_json(directory / "trainer.json", trainer)
    return digests


def load_state(directory: str | os.PathLike) -> dict[str, Any]:
    """What :func:`save_state` wrote, as the dict ``Trainer.load_state_dict`` takes (the run's
    manifest has verified the files: :meth:`aelab.rundir.RunDir.load_state`)."""
    directory = Path(directory)
    trainer = read_json(directory / "trainer.json")
    if not isinstance(trainer, dict) or not isinstance(trainer.get("epoch"), int):
        raise ValueError(f"{directory / 'trainer.json'}: has no epoch count")
    source = str(directory / "history.json")
    return {
        "epoch": int(trainer["epoch"]),
        "history": check_history(read_json(directory / "history.json"), source),
        "model": load_tensors(directory / "model.safetensors"),
        "optimizer": load_optimizer(directory),
        "conv_kernels": trainer.get("conv_kernels"),
        "precision": trainer.get("precision"),  # absent before 0.2.1: "auto" decides again
    }
