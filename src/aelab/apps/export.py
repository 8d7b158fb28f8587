"""``aelab export``: a trained model's encoder and decoder as two graphs, ONNX or TorchScript.

``encoder.onnx`` maps ``x`` ``(B, C, H, W)`` in [0, 1] to ``z`` ``(B, d)``, ``decoder.onnx`` ``z``
to ``x_hat`` (or ``encoder.pt``, ``decoder.pt``), the batch axis free; ``export.json`` records
shapes, code, versions and each file's SHA-256 (aelab's mark that it wrote the folder). The code is
what ``decode`` takes: a variational family's posterior mean (``logvar=True`` adds ``logvar``), a
vqvae's quantised code vectors. Both graphs are run against the model at batch sizes 3 and 1
before they are kept. A run is exported into a hidden sibling of ``out`` renamed into place whole,
so a killed export leaves nothing half-written; an earlier export is replaced only with
``overwrite``, a folder holding files aelab did not write never. With a ``scorer``
(:mod:`aelab.apps.export_scorer`), ``scorer.onnx`` and export.json's ``"scorer"`` section carry
the preprocessing, the score, the threshold and the calibration scores as well.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aelab._version import __version__
from aelab.apps.export_scorer import check_scorer, write_scorer
from aelab.apps.scoring import Scorer
from aelab.models import BaseAutoencoder
from aelab.runs.manifest import MANIFEST
from aelab.runs.open import open_runs
from aelab.runs.ownership import (
    LOCK,
    NEW_MARK,
    check_writable,
    lock_folder,
    repair_siblings,
    replace_folder,
)
from aelab.utils.choices import not_one_of
from aelab.utils.files import fsync_dir, read_json, sha256_file, write_bytes

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1  # of export.json
OPSET = 18  # the opset torch.onnx's translations are written in (no conversion); onnxruntime 1.14+
CHECK_BATCHES = (3, 1)  # traced at the first; the second shows the batch axis is free


class NotExportable(ValueError):
    """A model whose encoder is not a network."""


class _Graphs(nn.Module):
    """``parts`` of ``model`` side by side: ``"encoder"`` (``x -> z`` or ``(z, logvar)``),
    ``"decoder"`` (``z -> x_hat``). ONNX exports both at once and splits them: each
    torch.onnx.export call first rebuilds its table of op translations (2.5 s on 2 cores)."""

    def __init__(self, model: BaseAutoencoder, logvar: bool, parts: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.logvar, self.parts = model, logvar, parts

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None):
        out = []  # torch.export takes no *args: one input per part
        for part, t in zip(self.parts, (a, b)):
            if part == "encoder":  # (B, d), or (mu, logvar) each (B, d)
                out += self.model.export_encode(t, self.logvar)
            else:
                out.append(self.model.decode(t))
        return tuple(out) if len(out) > 1 else out[0]


class _Shaped(nn.Module):
    """A traced ``graph`` that first refuses an input ``name`` whose shape is not ``(B, *shape)``:
    a trace records no checks, and a dense encoder's flatten would take a channels-last batch
    of the same size without a word. (An ONNX graph's axes other than the batch are static:
    onnxruntime refuses another shape itself.)"""

    def __init__(self, graph: torch.jit.ScriptModule, name: str, shape: list[int]) -> None:
        super().__init__()
        self.graph, self.name, self.shape = graph, name, shape

    def forward(self, x: torch.Tensor):
        if x.shape[1:] != self.shape:
            got = ", ".join([str(s) for s in x.shape]) + ("," if x.dim() == 1 else "")
            want = ", ".join([str(s) for s in self.shape])
            raise ValueError(f"{self.name} has shape ({got}); the graph takes (B, {want})")
        return self.graph(x)


def check_format(format: str) -> str:
    """``format`` if it is one of FORMATS and what it needs is installed."""
    if format not in FORMATS:
        raise not_one_of("format", format, FORMATS)
    if format == "onnx":
        try:  # torch.onnx's exporter translates with onnxscript; the check runs onnxruntime
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise ImportError(f'format="onnx" needs {e.name}: pip install "aelab[onnx]"') from None
    return format


def export_model(
    model: BaseAutoencoder,
    out_dir: str | os.PathLike,
    format: str = "onnx",
    logvar: bool = False,
    *,
    recipe: str | None = None,
    run_format: int | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Write ``model``'s encoder and decoder as ``format`` graphs (``"onnx"``, ``"torchscript"``)
    and ``export.json`` into the new or empty ``out_dir``; returns what export.json records.
    With ``scorer`` (whose detector's run holds ``model``), also ``scorer.onnx`` and the
    ``"scorer"`` section (:func:`aelab.apps.export_scorer.write_scorer`).

    ONNX comes from ``torch.onnx.export(dynamo=True)``, reliable for every family with an encoder
    network: torch.export keeps the batch axis symbolic, where the deprecated TorchScript-based
    exporter froze vqvae's batch size without a word. TorchScript comes from ``torch.jit.trace``.
    """
    check_format(format)
    if scorer is not None:
        check_scorer(scorer, format)
    if logvar and not model.variational:
        raise ValueError(f"logvar=True is not valid for family {model.family!r}: not variational")
    if not model.exportable:  # the class's capability (models.base)
        raise NotExportable(
            f"family {model.family!r} cannot be exported: its encode() is not a network but a "
            "search for the code (gradient steps on the decoder's error), which a graph cannot hold"
        )
    out = Path(out_dir)
    if out.exists() and any(e.name != LOCK for e in out.iterdir()):
        raise ValueError(f"out_dir='{out}' is not empty; expected a new or empty folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if any(t.device.type != "cpu" for t in model.state_dict().values()):
        model = copy.deepcopy(model).cpu()  # graphs that run anywhere
    g = torch.Generator().manual_seed(0)
    x = torch.rand(CHECK_BATCHES[0], *model.input_shape, generator=g)  # (B, C, H, W) in [0, 1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model.encode(x)  # (B, latent_dim)
            parts = {"encoder": (x, "x", ["z", "logvar"] if logvar else ["z"]),
                     "decoder": (z, "z", ["x_hat"])}  # fmt: skip
            write = _write_onnx if format == "onnx" else _write_torchscript
            runs = write(_Graphs(model, logvar, tuple(parts)).eval(), parts, out, FORMATS[format])
            model_fns = {"encoder": model.posterior if logvar else model.encode,
                         "decoder": model.decode}  # what the graphs must give  # fmt: skip
            errors = {}
            for part, (example, _, names) in parts.items():
                errors |= _check(model_fns[part], example, runs[part], names)
            section = None if scorer is None else write_scorer(out, scorer, x)
    except BaseException:  # out_dir held nothing: what it holds now is this export's
        for p in out.iterdir():
            if p.name != LOCK:
                p.unlink()
        if created:
            out.rmdir()
        raise
    finally:
        model.train(was_training)
    code = "the code decode() takes"
    if model.variational:
        code = "the posterior mean" + (", and its log-variance" if logvar else "")
    elif model.discrete_codes:
        code = "the quantised code vectors decode() takes (each slot a codebook row)"
    record = {
        "aelab_export": EXPORT_FORMAT, "format": format, "recipe": recipe, "family": model.family,
        "input_shape": list(model.input_shape),  # (C, H, W); inputs (B, C, H, W) float32
        "pixel_range": [0.0, 1.0], "code_size": model.latent_dim, "code": code,
        **{part: {"file": f"{part}{FORMATS[format]}", "inputs": [name], "outputs": names}
           for part, (_, name, names) in parts.items()},
        "batch_axis": "free" + (" (named batch)" if format == "onnx" else ""),
        "opset": OPSET if format == "onnx" else None,
        "max_abs_error": errors,  # against the model, over batch sizes CHECK_BATCHES
        "run_format": run_format,
        "versions": {"aelab": __version__, "torch": torch.__version__},
        **({} if section is None else {"scorer": section}),
        "files": {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.name != LOCK},
    }  # fmt: skip
    write_bytes(out / EXPORT_FILE, _json(record))
    return record


def export_run(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    format: str = "onnx",
    logvar: bool = False,
    *,
    overwrite: bool = False,
    legacy: bool = False,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """Export the run in ``path`` (``aelab train``) into ``out``, or each model of a workshop
    (``aelab run``) into ``out/NAME/`` (one that cannot be exported is left out, under
    ``skipped``; with ``logvar``, variational ones give ``logvar``). ``scorer``: the run's
    scorer (:func:`aelab.apps.scoring.open_scorer`, one run only), exported with it. ``out``
    defaults to ``RUN-FORMAT`` beside the run (``WORKSHOP-RUN-FORMAT`` for a workshop's model),
    never inside an aelab folder, whose manifest lists every file it holds. Returns the top
    ``export.json``'s record, and ``out``."""
    check_format(format)
    if scorer is not None:
        check_scorer(scorer, format)
    source = Path(path)
    target = Path(out) if out is not None else _default_out(source, format)
    _check_target(target, overwrite)
    opened = open_runs(source, legacy=legacy)  # every file checked against the run's manifest
    runs, workshop = opened.runs, opened.workshop is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    repair_siblings(target)  # what a killed export left beside it
    staging = target.with_name(f".{target.name}{NEW_MARK}{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    fd = lock_folder(staging, "out")
    try:
        records, skipped = {}, {}
        for name, run in runs.items():
            try:
                records[name] = export_model(
                    run.model, staging / name if workshop else staging, format,
                    logvar and (run.model.variational or not workshop),
                    recipe=name, run_format=run.config.format,
                    scorer=None if workshop else scorer,
                )  # fmt: skip
            except NotExportable as e:
                if not workshop:
                    raise NotExportable(f"model {name!r}: {e}") from None
                skipped[name] = str(e)
        if not records:
            raise NotExportable(f"run='{source}' holds no model that can be exported")
        record = next(iter(records.values()))
        if workshop:
            files = {f"{n}/{f}": sha256_file(staging / n / f)
                     for n, r in records.items() for f in [*r["files"], EXPORT_FILE]}  # fmt: skip
            record = {"aelab_export": EXPORT_FORMAT, "format": format, "models": records,
                      "skipped": skipped, "files": files}  # fmt: skip
            write_bytes(staging / EXPORT_FILE, _json(record))
        _check_target(target, overwrite)  # again: another process may have written there since
        if target.exists() and any(target.iterdir()):
            shutil.rmtree(replace_folder(staging, target), ignore_errors=True)
        else:
            os.rename(staging, target)  # onto a missing or empty folder
        fsync_dir(target.parent)
        with contextlib.suppress(OSError):
            (target / LOCK).unlink()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(fd)
    return {**record, "out": str(target)}


def _default_out(source: Path, format: str) -> Path:
    folder = source.resolve()
    name = folder.name
    while (folder.parent / MANIFEST).is_file():  # a model of a workshop: beside the workshop
        folder = folder.parent
        name = f"{folder.name}-{name}"
    out = folder.with_name(f"{name}-{format}")
    return out if source.is_absolute() else Path(os.path.relpath(out))


def _check_target(target: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a link or a file, lies inside an aelab folder, holds files
    aelab did not write, or holds an earlier export without ``overwrite``."""
    if target.is_symlink():
        raise ValueError(f"out='{target}' is a symbolic link; aelab exports only into real folders")
    if target.exists() and not target.is_dir():
        raise ValueError(f"out='{target}' is a file; expected a folder for the export")
    inside = [p for p in target.resolve().parents if (p / MANIFEST).is_file()]
    if inside or (target / MANIFEST).is_file():
        raise ValueError(
            f"out='{target}' is in the aelab folder '{(inside or [target])[0]}', whose manifest "
            "lists every file it holds; choose a folder outside it"
        )
    check_writable(target)
    if not target.exists() or not any(e.name != LOCK for e in target.iterdir()):
        return
    foreign = _foreign(target)
    if foreign:
        listing = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise ValueError(
            f"out='{target}' holds files aelab did not write ({listing}); refusing to replace it "
            "even with overwrite=True: move them, or choose another folder"
        )
    if not overwrite:
        raise ValueError(
            f"out='{target}' holds an earlier export; pass overwrite=True to replace it, or "
            "choose another folder"
        )


def _foreign(folder: Path) -> list[str]:
    """What ``folder`` holds that its ``export.json`` does not list with the SHA-256 it has now
    (all of it without one: a name proves nothing)."""
    try:
        files = read_json(folder / EXPORT_FILE).get("files")
    except (ValueError, FileNotFoundError, AttributeError):
        files = None
    files = files if isinstance(files, dict) and not (folder / EXPORT_FILE).is_symlink() else {}
    found = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            found.append(rel)
        elif p.is_dir():
            if not any(isinstance(f, str) and f.startswith(f"{rel}/") for f in files):
                found.append(rel)
        elif files and rel in (EXPORT_FILE, LOCK):
            continue
        elif not (isinstance(files.get(rel), str) and p.is_file() and sha256_file(p) == files[rel]):
            found.append(rel)
    return found


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


def _write_onnx(graphs: _Graphs, parts: dict, out: Path, suffix: str) -> dict:
    """Both graphs from one export, split in two; returns a runner of each file."""
    import onnx.utils
    import onnxruntime

    # torch.onnx logs a warning per optional library not installed (torchvision), and torch.export
    # warns of its own deprecations: nothing a user can act on
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec", FutureWarning)
            program = torch.onnx.export(
                graphs, tuple(p[0] for p in parts.values()), None, dynamo=True,
                opset_version=OPSET, verbose=False, input_names=[p[1] for p in parts.values()],
                output_names=[n for p in parts.values() for n in p[2]],
                dynamic_shapes=({0: "batch"},) * len(parts),
            )  # fmt: skip
    finally:
        logger.setLevel(level)
    extractor, runs = onnx.utils.Extractor(program.model_proto), {}
    for part, (_, name, names) in parts.items():
        path = out / f"{part}{suffix}"
        write_bytes(path, extractor.extract_model([name], names).SerializeToString())
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runs[part] = lambda a, s=session, n=name: s.run(None, {n: a.numpy()})
    return runs


def _write_torchscript(graphs: _Graphs, parts: dict, out: Path, suffix: str) -> dict:
    """Each graph traced, behind a check of its input's shape (:class:`_Shaped`); returns the
    modules, which are what was written (aelab never loads a TorchScript file: that unpickles)."""
    runs = {}
    for part, (example, name, _) in parts.items():
        graph = _Graphs(graphs.model, graphs.logvar, (part,)).eval()
        with warnings.catch_warnings():  # vqvae's commitment loss checks shapes: not in the graph
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn")
            traced = torch.jit.trace(graph, (example,), check_trace=False)  # _check runs it
        traced = torch.jit.script(_Shaped(traced, name, list(example.shape[1:])))
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        write_bytes(out / f"{part}{suffix}", buffer.getvalue())
        runs[part] = lambda a, t=traced: [r.numpy() for r in _as_tuple(t(a))]
    return runs


def _check(fn, example: torch.Tensor, run, names: list[str]) -> dict[str, float]:
    """The largest difference between the written graph (``run``) and the model's ``fn`` per
    output over CHECK_BATCHES; one off by more than 1e-4 of its outputs' scale is refused."""
    errors = dict.fromkeys(names, 0.0)
    for n in CHECK_BATCHES:
        for name, got, ref in zip(names, run(example[:n]), _as_tuple(fn(example[:n]))):
            if got.shape != tuple(ref.shape):
                raise ValueError(f"the exported {name} has shape {got.shape}, not {ref.shape}")
            err = float(np.abs(got - ref.numpy()).max())
            if not err <= 1e-4 * max(1.0, float(ref.abs().max())):
                raise ValueError(
                    f"the exported {name} differs from the model's by {err:.3g}: nothing was kept"
                )
            errors[name] = max(errors[name], err)
    return errors


def _as_tuple(t) -> tuple[torch.Tensor, ...]:
    return tuple(t) if isinstance(t, (tuple, list)) else (t,)


__all__ = ["EXPORT_FILE", "FORMATS", "NotExportable", "export_model", "export_run"]
