"""Dead code units: the quick schedule's deep, conv and denoising models see a centred input
(``models.base.Centred``), which keeps their ReLU code alive; the seed schedule keeps the
notebook's model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aelab.analysis.metrics.codes import dead_units
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec
from aelab.models import build_model, layer_shapes
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer


def test_a_centred_input_is_the_image_minus_the_training_mean():
    model = build_model("conv", (1, 64, 64), centre_input=True)
    plain = build_model("conv", (1, 64, 64))
    assert model.num_parameters() == plain.num_parameters() == 884257  # a buffer, not a weight
    assert model.needs_data_init and not plain.needs_data_init
    x = torch.rand(6, 1, 64, 64)
    model.init_from_data(x)
    assert torch.allclose(model.centre.mean, x.mean(0))
    with torch.no_grad():
        assert torch.equal(model.encode(x), model.encoder(x - x.mean(0)))
    assert "centre.mean" in model.state_dict() and "centre.mean" not in plain.state_dict()
    with pytest.raises(ValueError, match=r"centre_input=1 is not valid; expected True or False"):
        build_model("deep", (1, 8, 8), centre_input=1)
    with pytest.raises(ValueError, match=r"'sparse': its encoder sees the centred input already"):
        build_model("sparse", (1, 8, 8), centre_input=True)


@pytest.mark.parametrize("name", ["deep", "conv", "denoising"])
def test_the_quick_schedule_centres_the_notebooks_relu_codes_and_seed_does_not(name):
    quick = resolve(name, (1, 64, 64), schedule_name="quick", n_train=360)
    seed = resolve(name, (1, 64, 64), schedule_name="seed")
    assert quick.model.centre_input and not seed.model.centre_input
    assert not resolve(name, (1, 64, 64), schedule_name="quick", n_train=360,
                       model={"centre_input": False}).model.centre_input  # fmt: skip
    if name == "conv":  # the notebook's model, layer for layer, under its own schedule
        model = build_model(name, (1, 64, 64), **{"centre_input": seed.model.centre_input})
        assert len(layer_shapes(model, (1, 64, 64))) == 23


def _dead_after(olivetti_home, centre: bool, epochs: int = 3, seed: int = 1) -> int:
    split = prepare_data(DataSpec("olivetti", data_home=str(olivetti_home)))
    x = torch.from_numpy(split.train.images)
    r = resolve("deep", x.shape[1:], schedule_name="quick", n_train=len(x),
                model={"centre_input": centre},
                train={"epochs": epochs, "seed": seed, "device": "cpu"})  # fmt: skip
    torch.manual_seed(seed)
    model = build_model("deep", x.shape[1:], centre_input=centre)
    Trainer(model, r.train).fit(x, progress=False)
    model.eval()
    with torch.no_grad():
        return int(dead_units(model.encode(x).numpy()).sum())


def test_the_deep_models_code_survives_the_first_steps_on_faces(olivetti_home):
    # uncentred, most of deep's 20 ReLU code units die in the first epoch on Olivetti (each
    # answers mostly to the mean face; Adam's first steps switch it off for every image)
    assert _dead_after(olivetti_home, centre=False) >= 8
    assert _dead_after(olivetti_home, centre=True) <= 1


def test_dead_units_count_units_that_never_vary():
    codes = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 2.0]])
    assert dead_units(codes).tolist() == [True, False, True]
