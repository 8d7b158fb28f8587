"""A new model family is one file plus one registry line: nothing else in aelab names families.

The file below is a throw-away sparse dense autoencoder (an L1 penalty on its code, and a metric
of its own). It is written to a temporary folder and imported, which is what the one line in
``aelab/models/__init__.py`` would do; then the family must work in ``aelab train``,
``aelab run --models``, the estimator, ``aelab models`` and the report, with no other edit.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from aelab.cli import main
from aelab.estimator import Autoencoder
from aelab.models import FAMILIES, MODELS

SPARSE = """
import dataclasses

import torch

from aelab.models.base import ModelOutput
from aelab.models.dense import DenseAutoencoder, DenseConfig
from aelab.models.registry import Recipe, register_family, register_model


@dataclasses.dataclass
class SparseConfig(DenseConfig):
    l1: float = 1e-3  # weight of the mean absolute code


@register_family
class SparseAutoencoder(DenseAutoencoder):
    config_class = SparseConfig
    family = "sparse-test"

    def forward(self, x, target=None):
        target = x if target is None else target
        z = self.encode(x)
        x_hat = self.decode(z)
        recon = torch.nn.functional.mse_loss(x_hat, target)
        reg = self.config.l1 * z.abs().mean()
        return ModelOutput(recon + reg, recon, reg, x_hat, z)

    @torch.no_grad()
    def extra_metrics(self, x):
        return {"mean_active_units": float((self.encode(x) > 1e-6).float().sum(1).mean())}


register_model(
    Recipe(
        "sparse-test",
        "sparse-test",
        "dense, 64 relu units, an L1 penalty on the code",
        {"hidden": (64,), "latent_dim": 16},
        {"epochs": 3, "batch_size": 64, "optimizer": "adam"},
    )
)
"""


@pytest.fixture(scope="module")
def sparse_family(tmp_path_factory):
    path = tmp_path_factory.mktemp("family") / "aelab_sparse_test.py"
    path.write_text(SPARSE)
    spec = importlib.util.spec_from_file_location("aelab_sparse_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # the one registry line: an import
    yield module
    MODELS.pop("sparse-test")
    FAMILIES.pop("sparse-test")
    sys.modules.pop(spec.name)


def test_the_new_family_trains_from_the_command_line(sparse_family, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "sparse-test", "--data", "digits", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["name"] == model["family"] == "sparse-test"
    assert model["config"]["l1"] == 1e-3 and model["config"]["latent_dim"] == 16
    assert len(json.loads((out / "history.json").read_text())) == 3  # the recipe's schedule
    assert main(["models"]) == 0
    assert any(
        line.startswith("sparse-test") and "weights" in line
        for line in capsys.readouterr().out.splitlines()
    )


@pytest.mark.slow
def test_the_new_family_in_the_workshop_and_its_report(sparse_family, tmp_path, capsys):
    out = tmp_path / "workshop"
    args = ["run", "--data", "digits", "--models", "deep,sparse-test", "--epochs", "2",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    assert set(metrics) == {"deep", "sparse-test"}
    active = metrics["sparse-test"]["family"]["mean_active_units"]
    assert 0 <= active <= 16 and "family" not in metrics["deep"]
    figures = {p.name for p in (out / "figures").iterdir()}
    # a dense family draws its weights, and its codes can be sampled at random
    assert {"weights_sparse-test.png", "generated_random_sparse-test.png"} <= figures
    assert "mean active units" in (out / "report.html").read_text()


def test_the_new_family_in_the_estimator(sparse_family, tmp_path):
    X = np.random.default_rng(0).random((120, 20))
    ae = Autoencoder(model="sparse-test", latent_dim=4, epochs=2, random_state=0, device="cpu")
    Z = ae.fit(X).transform(X)
    assert Z.shape == (120, 4) and ae.model_.family == "sparse-test"
    assert ae.model_.config.l1 == 1e-3
    again = Autoencoder.load(ae.save(tmp_path / "ae"))
    np.testing.assert_array_equal(again.transform(X), Z)
