"""The run files fuzzed as an attacker would: a field of ``config.json``, ``history.json``,
``trainer.json``, the optimizer state, ``workshop.json``, ``export.json`` or an estimator's
record replaced, removed or added, and the manifest signed again so that the checksums let the
change through to the parsers. Every outcome is a working run or one line (``ValueError`` or
``FileNotFoundError``), never a traceback, a write outside the folder or a huge allocation (a
model too large to load is refused from its config before anything is allocated)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aelab.apps.export import export_run
from aelab.cli import main
from aelab.data import load_dataset
from aelab.estimator import Autoencoder
from aelab.runs.manifest import MANIFEST
from aelab.runs.open import open_runs
from aelab.runs.run import load_run
from aelab.runs.training import resume_run
from aelab.utils.files import sha256_file

# one line each; FloatingPointError: training resumed from an edited state diverged, which the
# command line reports in one line (exit 1) with the checkpoint it kept
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)
EXAMPLES, SLOW_EXAMPLES = 20, 300
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def _places(obj, at=()):
    """Every place in a JSON value: the paths of its containers' entries."""
    yield at
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _places(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _places(v, (*at, i))


@st.composite
def edits(draw, obj):
    """A JSON value changed at one place: replaced, removed, or given a new key."""
    places = list(_places(obj))
    at = draw(st.sampled_from(places))
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    value = draw(VALUES)
    return at, how, value, draw(st.text(max_size=5))


def _apply(obj, edit):
    at, how, value, key = edit
    if not at:
        return value if how == "replace" else obj
    parent = obj
    for step in at[:-1]:
        parent = parent[step]
    last = at[-1]
    if how == "replace":
        parent[last] = value
    elif how == "remove":
        parent.pop(last)
    elif isinstance(parent[last], dict):
        parent[last][key] = value
    else:
        parent[last] = value
    return obj


def _resign(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"] = {n: sha256_file(folder / n) for n in manifest["files"]}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A run checkpointed every epoch, a workshop of one model, an export and an estimator."""
    root = tmp_path_factory.mktemp("originals")
    digits = ["--data", "digits", "--quiet", "--batch-size", "512", "--device", "cpu"]
    run = root / "run"
    assert main(["train", "deep", *digits, "--epochs", "2", "--checkpoint-every", "1",
                 "--out", str(run)]) == 0  # fmt: skip
    ws = root / "ws"
    assert main(["run", "--data", "digits", "--quiet", "--models", "shallow", "--epochs", "1",
                 "--out", str(ws), "--device", "cpu"]) == 0  # fmt: skip
    export = root / "export"
    export_run(run, export, "torchscript")
    x = load_dataset("digits").images[:300, 0]
    est = root / "est"
    Autoencoder(model="deep", latent_dim=4, epochs=2, random_state=0, device="cpu").fit(x).save(est)
    return {"run": run, "ws": ws, "export": export, "est": est}


def _read_run(folder: Path) -> None:
    run = load_run(folder)
    run.reconstruct(np.zeros((2, *run.model.input_shape), np.float32))
    open_runs(folder, data=True)


def _resume(folder: Path) -> None:
    resume_run(folder, epochs=3, progress=False)


def _read_workshop(folder: Path) -> None:
    open_runs(folder, data=True)


def _export_again(folder: Path) -> None:
    # the folder an export wrote, replaced by a new export only if it holds aelab's files only
    source = folder.parent / "source"
    export_run(source, folder, "torchscript", overwrite=True)


def _read_estimator(folder: Path) -> None:
    est = Autoencoder.load(folder, device="cpu")
    est.score_samples(np.zeros((3, *est.sample_shape_)))


TARGETS = {  # what is edited, in which folder, and who reads it
    "config.json": ("run", "config.json", _read_run),
    "history.json": ("run", "history.json", _read_run),
    "trainer.json": ("run", "checkpoint-000002/trainer.json", _resume),
    "optimizer.json": ("run", "checkpoint-000002/optimizer.json", _resume),
    "workshop.json": ("ws", "workshop.json", _read_workshop),
    "export.json": ("export", "export.json", _export_again),
    "estimator": ("est", "config.json", _read_estimator),
}


def _attack(originals, tmp: Path, target: str, data) -> None:
    kind, name, read = TARGETS[target]
    work = tmp / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    folder = work / kind
    shutil.copytree(originals[kind], folder)
    if kind == "export":
        shutil.copytree(originals["run"], work / "source")
    obj = json.loads((folder / name).read_text())
    if target == "estimator":  # the record inside config.json
        obj["estimator"] = _apply(obj["estimator"], data.draw(edits(obj["estimator"])))
    else:
        obj = _apply(obj, data.draw(edits(obj)))
    (folder / name).write_text(json.dumps(obj))
    if (folder / MANIFEST).is_file():
        _resign(folder)
    outside = {p.name for p in work.iterdir()}
    try:
        read(folder)
    except USER_ERRORS as e:
        assert "\n" not in str(e).strip(), str(e)
    assert {p.name for p in work.iterdir()} == outside  # nothing written beside the folder


@pytest.mark.parametrize("target", list(TARGETS))
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_any_edit_of_a_run_file_is_a_run_or_one_line(originals, tmp_path_factory, target, data):
    _attack(originals, tmp_path_factory.mktemp("fuzz"), target, data)


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
@settings(max_examples=SLOW_EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_many_edits_of_a_run_file(originals, tmp_path_factory, target, data):
    _attack(originals, tmp_path_factory.mktemp("fuzz"), target, data)


@pytest.mark.parametrize(
    "edit, words",
    [
        ({"sample_shape": [False, False]}, "'estimator.sample_shape' is [0, 0]; expected 1 to 3"),
        ({"sample_shape": [8, 10**8]}, "'estimator.sample_shape' is [8, 100000000]"),
        ({"n_features_in": 10**9}, "'estimator.n_features_in' is 1000000000; expected 64"),
        ({"scaling": {"kind": "minmax", "shape": [3, 1, 1], "data_min": [0, 0, 0],
                      "data_range": [1, 1, 1]}}, "'estimator.scaling' has shape [3, 1, 1]"),
    ],
)  # fmt: skip
def test_an_estimators_shapes_must_fit_its_model(originals, tmp_path, edit, words):
    """Found by the fuzzer: a sample shape of [0, 0] was a torch traceback, and one of 8 x 10^8
    had the scoring allocate gigabytes; the record's shapes are checked against the model's."""
    folder = tmp_path / "est"
    shutil.copytree(originals["est"], folder)
    obj = json.loads((folder / "config.json").read_text())
    obj["estimator"].update(edit)
    (folder / "config.json").write_text(json.dumps(obj))
    _resign(folder)
    with pytest.raises(ValueError, match=re.escape(words)):
        Autoencoder.load(folder, device="cpu")
