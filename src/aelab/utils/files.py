"""Files aelab writes and reads: bytes, JSON and safetensors, written atomically and durably, and
the SHA-256 digests that record them.

Nothing here unpickles. Every file is written to a temporary name beside it
(``.NAME.aelab-tmp-*``), flushed to the disk, given the mode the umask asks for, and renamed
over the old one, so an interrupted write leaves the previous file whole; the writers return the
SHA-256 of what they wrote, for a run's manifest (:mod:`aelab.runs.manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

TMP_MARK = ".aelab-tmp-"  # in the name of every temporary file or folder aelab makes


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
