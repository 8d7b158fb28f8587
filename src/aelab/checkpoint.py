"""Files of a run directory: JSON for configuration, safetensors for tensors, atomic writes.

Nothing here unpickles. An optimizer's state is split into its tensors (``optimizer.safetensors``)
and everything else (``optimizer.json``); every file is written to a temporary name and renamed,
so a run interrupted mid-write keeps its previous copy of that file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _atomic(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    _atomic(Path(path), write)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(cpu, tmp))


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return load_file(str(path), device=str(device))


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """The model's state dict as safetensors."""
    save_tensors(path, model.state_dict())


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


def save_optimizer(state: dict[str, Any], directory: str | os.PathLike) -> None:
    """An optimizer's ``state_dict()``: ``optimizer.safetensors`` (its state tensors) and
    ``optimizer.json`` (all the rest)."""
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
    save_tensors(directory / "optimizer.safetensors", tensors)
    write_json(
        directory / "optimizer.json",
        {"param_groups": state["param_groups"], "state": meta_state},
    )


def load_optimizer(directory: str | os.PathLike) -> dict[str, Any]:
    """The optimizer ``state_dict()`` that :func:`save_optimizer` wrote, for ``load_state_dict``."""
    directory = Path(directory)
    meta = read_json(directory / "optimizer.json")
    tensors = load_tensors(directory / "optimizer.safetensors")
    state: dict[int, dict[str, Any]] = {int(pid): dict(s) for pid, s in meta["state"].items()}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:  # JSON turns tuples into lists; torch compares betas as tuples
        for k, v in g.items():
            if isinstance(v, list) and k != "params":
                g[k] = tuple(v)
    return {"state": state, "param_groups": groups}


def save_state(directory: str | os.PathLike, state: dict[str, Any]) -> None:
    """A trainer's :meth:`~aelab.train.Trainer.state_dict` as a run directory's files:
    ``model.safetensors``, ``optimizer.*``, ``history.json`` and ``trainer.json`` (the epoch and
    the convolution kernels chosen)."""
    directory = Path(directory)
    save_tensors(directory / "model.safetensors", state["model"])
    save_optimizer(state["optimizer"], directory)
    write_json(directory / "history.json", state["history"])
    trainer = {"epoch": state["epoch"]}
    if state.get("conv_kernels") is not None:
        trainer["conv_kernels"] = state["conv_kernels"]
    write_json(directory / "trainer.json", trainer)


def load_state(directory: str | os.PathLike) -> dict[str, Any]:
    """What :func:`save_state` wrote, as the dict ``Trainer.load_state_dict`` takes."""
    directory = Path(directory)
    trainer = read_json(directory / "trainer.json")
    return {
        "epoch": int(trainer["epoch"]),
        "history": read_json(directory / "history.json"),
        "model": load_tensors(directory / "model.safetensors"),
        "optimizer": load_optimizer(directory),
        "conv_kernels": trainer.get("conv_kernels"),
    }
