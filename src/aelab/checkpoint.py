"""Files of a run directory: JSON for configuration, safetensors for tensors, atomic writes.

Nothing here unpickles. An optimizer's state is split into its tensors (``optimizer.safetensors``)
and everything else (``optimizer.json``); both are written to a temporary name and renamed, so a
run interrupted mid-write keeps its previous checkpoint.
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


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load safetensors weights into ``model`` (every key must match)."""
    device = next(model.parameters()).device
    state = load_tensors(path, device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    return model


def save_optimizer(optimizer: torch.optim.Optimizer, directory: str | os.PathLike) -> None:
    """``optimizer.safetensors`` (its state tensors) and ``optimizer.json`` (all the rest)."""
    state = optimizer.state_dict()
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


def load_optimizer(optimizer: torch.optim.Optimizer, directory: str | os.PathLike) -> None:
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
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # safetensors stores tensors contiguous; give each state tensor its parameter's layout again
    # (fused optimizers walk parameter and state memory in step, e.g. channels-last convolutions)
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if (
                    torch.is_tensor(value)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    optimizer.state[p][name] = torch.empty_like(p).copy_(value)
