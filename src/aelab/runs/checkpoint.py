"""A trainer's checkpoint as files of a run directory: the weights and the optimizer's tensors
as safetensors, everything else as JSON (:func:`save_state`, :func:`load_state`), and the check of
a history's epoch records. Files are written atomically (:mod:`aelab.utils.files`); an optimizer's
state is split into its tensors (``optimizer.safetensors``) and the rest (``optimizer.json``).
Nothing here unpickles.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from aelab.training.kernels import KERNELS, ConvKernels
from aelab.utils.files import load_tensors, read_json, save_tensors, write_json

HISTORY_KEYS = {"epoch", "loss", "heldout_loss", "validation_loss", "seconds"}
_HISTORY_KEYS_0_2 = HISTORY_KEYS - {"validation_loss"}  # runs written before validation
# runs since the thread count follows the free cores record it per epoch (aelab.utils.threads)
_KEY_SETS = (HISTORY_KEYS | {"threads"}, HISTORY_KEYS, _HISTORY_KEYS_0_2)


def check_history(history: Any, source: str) -> list[dict[str, Any]]:
    """``history`` if it is a list of epoch records ``{"epoch", "loss", "heldout_loss",
    "validation_loss", "seconds", "threads"}`` numbered 1, 2, ... (older runs have no
    threads, the oldest no validation_loss); otherwise one error naming ``source``."""

    def number(v: Any, none: bool = False) -> bool:
        if v is None:
            return none
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(history, list):
        raise ValueError(f"{source}: holds a {type(history).__name__}, not a list of epochs")
    for i, record in enumerate(history, start=1):
        ok = (
            isinstance(record, dict)
            and set(record) in _KEY_SETS
            and record["epoch"] == i
            and number(record["loss"])
            and number(record["heldout_loss"], none=True)
            and number(record.get("validation_loss"), none=True)
            and number(record["seconds"])
            and math.isfinite(record["seconds"])
            and _count(record.get("threads", 1))
        )
        if not ok:
            raise ValueError(
                f"{source}: epoch record {i} is not valid; expected "
                f'{{"epoch": {i}, "loss", "heldout_loss", "validation_loss", "seconds", '
                '"threads"} with numbers (threads a positive integer)'
            )
    return history


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


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


def check_trainer(trainer: Any, source: str | os.PathLike) -> dict[str, Any]:
    """``trainer.json``'s record if it is one: ``epoch`` a count, ``conv_kernels`` (if any) a
    kernel name for each pass of each convolution, ``precision`` (if any) fp32 or bf16."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{source}: {what}; it is not a trainer state aelab can resume")

    if not isinstance(trainer, dict):
        raise bad(f"it holds a {type(trainer).__name__}, not an object")
    epoch = trainer.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad(f"epoch={epoch!r} is not a count of epochs")
    chosen = trainer.get("conv_kernels")
    if chosen is not None and not (
        isinstance(chosen, dict)
        and all(
            isinstance(k, str)
            and isinstance(v, list)
            and len(v) == len(ConvKernels._fields)
            and all(n in KERNELS for n in v)
            for k, v in chosen.items()
        )
    ):
        raise bad(f"conv_kernels is not a map of layers to {len(ConvKernels._fields)} of {KERNELS}")
    if trainer.get("precision") not in (None, "fp32", "bf16"):
        raise bad(f"precision={trainer['precision']!r} is not fp32 or bf16")
    return trainer


def load_state(directory: str | os.PathLike) -> dict[str, Any]:
    """What :func:`save_state` wrote, as the dict ``Trainer.load_state_dict`` takes (the run's
    manifest has verified the files: :meth:`aelab.rundir.RunDir.load_state`)."""
    directory = Path(directory)
    trainer = check_trainer(read_json(directory / "trainer.json"), directory / "trainer.json")
    source = str(directory / "history.json")
    history = check_history(read_json(directory / "history.json"), source)
    if len(history) < trainer["epoch"]:
        raise ValueError(
            f"{source}: holds {len(history)} epochs, fewer than the {trainer['epoch']} that "
            "trainer.json counts"
        )
    return {
        "epoch": trainer["epoch"],
        "history": history,
        "model": load_tensors(directory / "model.safetensors"),
        "optimizer": load_optimizer(directory),
        "conv_kernels": trainer.get("conv_kernels"),
        "precision": trainer.get("precision"),  # absent before 0.2.1: "auto" decides again
    }
