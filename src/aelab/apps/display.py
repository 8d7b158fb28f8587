"""Runs that show themselves in Jupyter, the way pandas frames and scikit-learn estimators do.

:meth:`aelab.Run._repr_html_` and :class:`Workshop` (``aelab.open_workshop(DIR)``, the folder
``aelab run`` wrote) render a small summary table and the learning curves as inline HTML: no
network, no JavaScript, everything escaped. Nothing here trains or writes.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

from aelab import plots
from aelab.analysis.spread import plus_minus
from aelab.runs.manifest import Manifest
from aelab.runs.open import open_runs
from aelab.runs.run import Run, register_html
from aelab.runs.workshop import is_workshop
from aelab.utils.files import read_json


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _curves(histories: dict[str, list[dict[str, Any]]]) -> str:
    """The learning curves as an inline PNG ('' when no model has a history)."""
    histories = {n: h for n, h in histories.items() if h}
    if not histories:
        return ""
    png = plots.png_bytes(plots.learning_curves(histories))
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="learning curves" style="max-width:100%" src="data:image/png;base64,{data}">'


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    return history[-1].get(key) if history else None


def run_html(run: Run) -> str:
    """One run: what it is, how it trained, its learning curves."""
    data = run.config.data
    rows = [
        ["model", f"{run.name} ({run.config.family})"],
        ["code size", str(run.model.latent_dim)],
        ["parameters", f"{run.model.num_parameters():,}"],
        ["data", "in-memory arrays" if data is None else data.source],
        ["epochs", str(len(run.history))],
        ["final loss", _num(_last(run.history, "loss"), ".5f")],
        ["held-out loss", _num(_last(run.history, "heldout_loss"), ".5f")],
        ["folder", "—" if run.path is None else str(run.path)],
    ]
    title = f"<b>aelab run</b> {html.escape(run.name)}"
    return f"<div>{title}{_table(['', ''], rows)}{_curves({run.name: run.history})}</div>"


class Workshop:
    """The folder ``aelab run`` wrote, opened from Python: its runs as :class:`~aelab.Run`
    objects (``.runs`` by folder name, ``.groups`` by model and seed; ``workshop["vae"]`` is a
    model's first seed), its measurements (``.metrics``, ``metrics.json``) and, in Jupyter, a
    summary of both."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", legacy: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_dir() or not is_workshop(self.path):
            raise ValueError(f"workshop='{self.path}' holds no workshop.json (not an aelab run)")
        opened = open_runs(self.path, device=device, legacy=legacy)
        self.record, self.runs, self.groups = opened.workshop, opened.runs, opened.groups
        self.metrics = read_metrics(self.path)

    def __getitem__(self, name: str) -> Run:
        if name in self.runs:
            return self.runs[name]
        if name in self.groups:
            return next(iter(self.groups[name].values()))
        raise KeyError(f"{name!r}: no model or run of that name (models: {', '.join(self.groups)})")

    def __repr__(self) -> str:
        return f"Workshop('{self.path}', models={list(self.runs)})"

    def _repr_html_(self) -> str:
        measured = (self.metrics or {}).get("models", {})
        rows = []
        for name, seeds in self.groups.items():
            m, run = measured.get(name, {}), next(iter(seeds.values()))
            pca = m.get("pca", {})
            rows.append([
                name, str(run.model.latent_dim), str(len(seeds)), str(len(run.history)),
                plus_minus(m, "heldout.mse", ".5f"), _num(pca.get("mse"), ".5f"),
                plus_minus(m, "pca_ratio", ".2f"), plus_minus(m, "heldout.psnr", ".2f"),
            ])  # fmt: skip
        header = ["model", "code", "seeds", "epochs", "held-out MSE", "PCA MSE", "÷ PCA", "PSNR dB"]
        data = (self.metrics or {}).get("data", {})
        what = (
            f"{data.get('n_train', '?')} training and {data.get('n_heldout', '?')} held-out "
            f"images of {data.get('name', '?')}"
            if data
            else "no report yet (aelab report DIR)"
        )
        title = f"<b>aelab workshop</b> {html.escape(str(self.path))}: {html.escape(what)}"
        curves = _curves({n: [r.history for r in s.values()] for n, s in self.groups.items()})
        return f"<div>{title}{_table(header, rows)}{curves}</div>"


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """A workshop's ``metrics.json`` (checked against its manifest), None before a report."""
    manifest = Manifest.read(folder)
    if manifest is not None and "metrics.json" in manifest.files:
        return read_json(manifest.verified(folder, "metrics.json"))
    path = folder / "metrics.json"
    return read_json(path) if manifest is None and path.is_file() else None


register_html(run_html)  # Run._repr_html_: the run layer knows nothing of this display


def open_workshop(path: str | os.PathLike, device: str = "cpu", legacy: bool = False) -> Workshop:
    """The workshop in ``path`` (``aelab run --out path``), its files checked as the report
    checks them (``legacy=True``: a workshop of aelab 0.1, unchecked)."""
    return Workshop(path, device, legacy)


__all__ = ["Workshop", "open_workshop", "run_html"]
