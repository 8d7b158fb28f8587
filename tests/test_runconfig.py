"""The run contract (RunConfig, config.json): every writer's folder opens with every reader, and
a malformed file is one clear error naming the file and the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aelab.cli import main
from aelab.estimator import Autoencoder
from aelab.runs.config import FORMAT_VERSION, RunConfig
from aelab.runs.run import load_run
from aelab.runs.training import resume_run


@pytest.fixture(scope="module")
def three_writers(tmp_path_factory, workshop):
    """One run directory from each writer: aelab train, Autoencoder.save and aelab run."""
    root = tmp_path_factory.mktemp("writers")
    assert main(["train", "deep", "--data", "digits", "--holdout", "0.2", "--epochs", "1",
                 "--out", str(root / "train"), "--quiet"]) == 0  # fmt: skip
    images = load_run(root / "train").data().train.images  # (N, 1, 8, 8)
    est = Autoencoder(model="deep", epochs=1, random_state=0, device="cpu",
                      data_format="channels_first").fit(images)  # fmt: skip
    est.save(root / "estimator")
    return {"train": root / "train", "estimator": root / "estimator", "run": workshop / "deep"}


@pytest.mark.parametrize("writer", ["train", "estimator", "run"])
def test_every_writer_opens_with_every_reader(three_writers, writer):
    path = three_writers[writer]
    config = RunConfig.load(path)
    assert config.format == FORMAT_VERSION and config.model == "deep"
    assert config.family == "dense" and config.model_config.input_shape == (1, 8, 8)
    assert set(config.versions) == {"aelab", "torch", "numpy", "scikit-learn", "python"}
    assert (config.data is None) == (writer == "estimator")
    assert (config.estimator is not None) == (writer == "estimator")
    # the same JSON layout from every writer
    raw = json.loads((path / "config.json").read_text())
    keys = {"format", "model", "data", "split", "train", "versions"}
    assert set(raw) == keys | ({"estimator"} if writer == "estimator" else set())
    assert RunConfig.from_dict(raw) == config  # and it reads back to the same thing
    run = load_run(path)
    est = Autoencoder.load(path, device="cpu")
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    codes = run.encode(x)
    if writer == "estimator":
        np.testing.assert_array_equal(est.transform(x.numpy()), codes)
    else:  # a training run: the estimator takes its images as it was trained on them
        np.testing.assert_array_equal(est.transform(x.numpy()), codes)
        assert est.data_format == "channels_first"
    assert len(run.history) == len(est.history_) >= 1


def test_an_estimator_run_cannot_be_resumed(three_writers):
    with pytest.raises(ValueError, match=r"holds a run of kind 'estimator', not 'train'"):
        resume_run(three_writers["estimator"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "[1, 2]", r"holds a list, not an object"),
        (lambda d: {**d, "format": 99}, r"format=99, this aelab reads format 1"),
        (lambda d: {**d, "model": {"name": "deep"}}, r"'model' needs 'name', 'family' and"),
        (lambda d: {**d, "model": {**d["model"], "family": "gan"}}, r"family='gan' is not known"),
        (lambda d: {**d, "model": {**d["model"], "config": {"latent_dim": -1}}},
         r"latent_dim=-1 is not valid"),
        (lambda d: {**d, "train": {**d["train"], "optimizer": "lbfgs"}},
         r"optimizer='lbfgs' is not valid"),
        (lambda d: {**d, "train": {**d["train"], "speed": 3}}, r"unknown fields \['speed'\]"),
        (lambda d: {**d, "data": [1]}, r"'data' is neither an object nor null"),
        (lambda d: {**d, "data": {"source": "digits", "colour": 1}}, r"unknown fields"),
    ],
)  # fmt: skip
def test_a_malformed_config_is_one_clear_error_naming_the_file(
    three_writers, tmp_path, edit, message
):
    good = json.loads((three_writers["train"] / "config.json").read_text())
    folder = tmp_path / "bad"
    folder.mkdir()
    edited = edit(good)
    (folder / "config.json").write_text(edited if isinstance(edited, str) else json.dumps(edited))
    for reader in (RunConfig.load, load_run, Autoencoder.load):  # a folder of aelab 0.1
        with pytest.raises(ValueError, match=message) as info:
            reader(folder, legacy=True)
        assert str(folder / "config.json") in str(info.value)
        assert "\n" not in str(info.value)


def test_a_config_that_is_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: not valid JSON"):
        load_run(tmp_path, legacy=True)
    with pytest.raises(FileNotFoundError, match=r"is not a run directory \(no config.json\)"):
        load_run(tmp_path / "nothing")


# -- fuzz: any JSON where a config, a history or a manifest belongs ---------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aelab.runs.checkpoint import check_history  # noqa: E402
from aelab.runs.manifest import Manifest  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)  # fmt: skip
FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


def _one_line_error(fn, *args):
    try:
        fn(*args)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)


@pytest.mark.slow
@FUZZ
@given(JSON)
def test_any_json_is_a_config_or_one_line(value):
    _one_line_error(RunConfig.from_dict, value, "config.json")
    _one_line_error(check_history, value, "history.json")
    _one_line_error(Manifest.from_dict, value, "aelab-run.json")


@FUZZ
@given(st.data())
def test_a_valid_config_with_any_field_replaced_is_read_or_one_line(three_writers, data):
    good = json.loads((three_writers["train"] / "config.json").read_text())
    section = data.draw(st.sampled_from(["model", "train", "data", "split", "format"]))
    edited = json.loads(json.dumps(good))
    if isinstance(edited[section], dict) and edited[section] and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(edited[section])))
        edited[section][key] = data.draw(JSON)
    else:
        edited[section] = data.draw(JSON)
    _one_line_error(RunConfig.from_dict, edited, "config.json")
