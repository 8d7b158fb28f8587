"""Every model in the registry: shapes, loss, gradients, learning, saving; the notebook recipes."""

from __future__ import annotations

import math

import pytest
import torch

from aelab.models import FAMILIES, MODELS, build_model, layer_shapes, model_from_config
from aelab.utils.files import load_weights, save_weights

SHAPES = [(1, 28, 28), (3, 32, 48), (1, 64, 64)]


def _batch(shape, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MODELS))
def test_shapes(name, shape):
    model = build_model(name, shape)
    x = _batch(shape)
    z = model.encode(x)
    assert z.shape == (4, model.latent_dim)
    assert model.decode(z).shape == x.shape
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.z.shape == z.shape
    assert out.loss.shape == ()


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_finite_with_gradients(name):
    model = build_model(name, (1, 28, 28))
    out = model(_batch((1, 28, 28)))
    assert torch.isfinite(out.loss)
    assert torch.allclose(out.loss, out.recon_loss + out.reg_loss)
    out.loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_one_step_changes_every_weight(name):
    torch.manual_seed(0)
    model = build_model(name, (1, 28, 28))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(_batch((1, 28, 28), n=8)).loss.backward()
    opt.step()
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    # every parameter tensor that received a gradient moves (relu units may be dead for a batch)
    assert len(changed) >= len(before) - 2, set(before) - set(changed)


# 300 steps take a second or more for the convolutional families; faces encodes each batch by
# 100 steps of its own (18 s)
SLOW_TO_OVERFIT = {"conv", "denoising", "conv-vae", "vqvae", "faces"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_OVERFIT else n for n in MODELS]
)
def test_tiny_batch_can_be_overfit(name):
    torch.manual_seed(0)
    model = build_model(name, (1, 16, 16), latent_dim=8)
    x = _batch((1, 16, 16), n=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        out = model(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = out.recon_loss.item() if first is None else first
    assert out.recon_loss.item() < 0.2 * first, (first, out.recon_loss.item())


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_identical_outputs(name, tmp_path):
    torch.manual_seed(1)
    model = build_model(name, (1, 28, 28))
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    clone = model_from_config(model.family, model.config.to_dict())
    assert (
        not torch.equal(  # a fresh model differs before loading
            next(clone.parameters()), next(model.parameters())
        )
        or clone.num_parameters() == 0
    )
    load_weights(clone, path)
    x = _batch((1, 28, 28))
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model.encode(x), clone.encode(x))
        z = model.encode(x)
        assert torch.equal(model.decode(z), clone.decode(z))


# The notebook's Keras models (channels last in Keras; here channels first).
KERAS_CONV_SHAPES = [
    ("Conv2d", (32, 62, 62)), ("ReLU", (32, 62, 62)), ("MaxPool2d", (32, 31, 31)),
    ("Conv2d", (64, 29, 29)), ("ReLU", (64, 29, 29)), ("MaxPool2d", (64, 14, 14)),
    ("Conv2d", (128, 12, 12)), ("ReLU", (128, 12, 12)), ("MaxPool2d", (128, 6, 6)),
    ("Flatten", (4608,)), ("Linear", (32,)), ("ReLU", (32,)),
    ("Linear", (4608,)), ("ReLU", (4608,)), ("Unflatten", (128, 6, 6)),
    ("ConvTranspose2d", (128, 15, 15)), ("ReLU", (128, 15, 15)),
    ("ConvTranspose2d", (64, 31, 31)), ("ReLU", (64, 31, 31)),
    ("ConvTranspose2d", (32, 62, 62)), ("ReLU", (32, 62, 62)),
    ("ConvTranspose2d", (1, 64, 64)), ("Sigmoid", (1, 64, 64)),
]  # fmt: skip


def test_conv_recipe_matches_notebook_layers():
    model = build_model("conv", (1, 64, 64))
    assert layer_shapes(model, (1, 64, 64)) == KERAS_CONV_SHAPES
    assert model.num_parameters() == 884_257  # Keras' count_params() of createConvModel


@pytest.mark.parametrize(
    ("name", "params"),
    [("shallow", 823_396), ("deep", 2_112_020), ("conv", 884_257), ("denoising", 884_257),
     ("vae", 4_202_500)],
)  # fmt: skip
def test_recipes_match_keras_parameter_counts(name, params):
    assert build_model(name, (1, 64, 64)).num_parameters() == params


def test_shapes_are_derived_from_the_input():
    small = build_model("conv", (1, 28, 28))
    big = build_model("conv", (3, 96, 80))
    assert small.num_parameters() != big.num_parameters()
    assert big.decode(big.encode(_batch((3, 96, 80)))).shape == (4, 3, 96, 80)
    # an 8x8 image only fits one (conv, pool) stage; the recipe keeps what fits
    tiny = build_model("conv", (1, 8, 8))
    assert tiny.config.channels == (32,)


def test_overrides_replace_recipe_defaults():
    model = build_model("deep", (1, 28, 28), latent_dim=5, hidden=(64, 32))
    assert model.latent_dim == 5
    assert model.encode(_batch((1, 28, 28))).shape == (4, 5)
    assert build_model("vae", (1, 28, 28), beta=0.5).config.beta == 0.5


def test_vae_encode_is_posterior_mean_and_forward_samples():
    torch.manual_seed(0)
    model = build_model("vae", (1, 28, 28))
    x = _batch((1, 28, 28))
    mu, logvar = model.posterior(x)
    assert torch.equal(model.encode(x), mu)
    assert logvar.shape == mu.shape
    z1, z2 = model(x).z, model(x).z
    assert not torch.equal(z1, z2)
    assert model(x).reg_loss > 0


def test_dense_weight_images_have_input_shape():
    model = build_model("shallow", (1, 28, 28))
    w_in, w_out = model.weight_images()
    assert w_in.shape == (100, 1, 28, 28)
    assert w_out.shape == (100, 1, 28, 28)


def test_registry_names():
    assert set(MODELS) >= {"shallow", "deep", "conv", "denoising", "vae", "conv-vae"}
    assert {p.family for p in MODELS.values()} == set(FAMILIES)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latent_dim": 0}, r"latent_dim=0 is not valid; expected an integer >= 1"),
        ({"latent_dim": -3}, r"latent_dim=-3 is not valid"),
        ({"hidden": (0,)}, r"hidden=\(0,\) is not valid; expected positive integers"),
        ({"activation": "swish"}, r"activation='swish' is not valid; allowed: elu, gelu"),
        ({"dropout": 0.1}, r"dropout is not a parameter of model 'deep'; allowed: activation"),
    ],
)
def test_model_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("deep", (1, 28, 28), **kwargs)


def test_unknown_model_and_too_small_image():
    with pytest.raises(ValueError, match=r"model='resnet' is not a known model; allowed: shallow"):
        build_model("resnet", (1, 28, 28))
    with pytest.raises(ValueError, match=r"too small for 3 convolution stages .* at most 1 stages"):
        build_model("conv", (1, 8, 8), channels=(32, 64, 128))
    with pytest.raises(ValueError, match=r"beta=-1 is not valid; expected a finite number >= 0"):
        build_model("vae", (1, 28, 28), beta=-1)


@pytest.mark.parametrize("name", list(MODELS))
def test_capabilities_on_the_class_say_what_the_model_does(name):
    model = build_model(name, (1, 28, 28))
    cls = type(model)
    assert cls is FAMILIES[MODELS[name].family] and cls.input_layout in ("any", "image")
    x = _batch((1, 28, 28))
    if cls.draws_weights:
        w_in, w_out = model.weight_images()
        assert w_in.shape[1:] == w_out.shape[1:] == (1, 28, 28)
    else:
        with pytest.raises(NotImplementedError, match=r"no weights to draw as images"):
            model.weight_images()
    if cls.variational:
        mu, logvar = model.posterior(x)
        assert mu.shape == logvar.shape == (4, model.latent_dim)
    else:
        assert not hasattr(model, "posterior")
    if cls.input_layout == "image":
        assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    else:  # a table of 28 values is a (1, 1, 28) image to these
        table = build_model(name, (1, 1, 28))
        assert table.decode(table.encode(torch.rand(3, 1, 1, 28))).shape == (3, 1, 1, 28)
    metrics = model.extra_metrics(x)  # a family's own: named numbers, finite
    assert isinstance(metrics, dict) and all(
        isinstance(k, str) and math.isfinite(float(v)) for k, v in metrics.items()
    )
    if cls.discrete_codes:  # codes index a codebook
        assert model.code_indices(x).dtype == torch.long
