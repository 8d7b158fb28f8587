"""The notebook's Keras port, run at the same epochs, and the ratios against it."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run_keras(
    python: str, script: str, *, scale: float, mat: str | None, models: Sequence[str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "keras.json"
        cmd = [python, script, "--epochs-scale", str(scale), "--holdout-people", "4"]
        cmd += ["--models", ",".join(models), "--json", str(out)]
        if mat is not None:
            cmd += ["--mat", mat]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = " ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the Keras port failed (exit {proc.returncode}): {tail}")
        result = json.loads(out.read_text())
    result["wall_seconds"] = time.perf_counter() - start
    return result


def merge_keras(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Keras result from runs of one model each: their models together, wall times summed."""
    merged = {**runs[0], "models": {}, "wall_seconds": 0.0}
    for run_ in runs:
        merged["models"].update(run_["models"])
        merged["wall_seconds"] += run_["wall_seconds"]
    return merged


def compare(aelab: dict[str, Any], keras: dict[str, Any]) -> dict[str, Any]:
    """Per model: how many times faster per epoch aelab is, and its final loss over Keras's."""
    rows = {}
    for name, ours in aelab.items():
        theirs = keras["models"].get(name)
        if theirs is None:
            continue
        rows[name] = {
            "epochs": ours["epochs"],
            "keras_epochs": theirs["epochs"],
            "aelab_seconds_per_epoch": ours["seconds_per_epoch"],
            "keras_seconds_per_epoch": theirs["seconds_per_epoch"],
            "speedup": theirs["seconds_per_epoch"] / ours["seconds_per_epoch"],
            "aelab_final_loss": ours["final_loss"],
            "keras_final_loss": theirs["final_loss"],
            "loss_ratio": ours["final_loss"] / theirs["final_loss"],
        }
    return rows


def keras_seed_total(keras: dict[str, Any]) -> float:
    """The Keras port's total fit time for the notebook's full schedule: measured when it ran
    at ``--epochs-scale 1``, otherwise its first epoch plus the median epoch times the rest."""
    from ..models import get_recipe

    total = 0.0
    for name, row in keras["models"].items():
        if keras.get("epochs_scale") == 1:
            total += row["fit_seconds"]
        else:
            total += row["first_epoch_seconds"] + row["seconds_per_epoch"] * (
                get_recipe(name).train["epochs"] - 1
            )
    return total
