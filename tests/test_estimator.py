"""aelab.estimator.Autoencoder: scikit-learn's own estimator checks, pipelines, model selection,
input shapes, scaling, files, pickling and sampling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from aelab.estimator import Autoencoder
from aelab.runs.run import DataSpec, load_run
from aelab.runs.training import train_run
from aelab.training.config import TrainConfig


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These models are tiny: intra-op threads gain nothing, and on a busy machine torch's
    OpenMP threads waiting for one another made training up to 100x slower (measured on 2 shared
    cores: 4 s instead of 0.04 s an epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Small and quick: scikit-learn's checks fit dozens of times on tiny data sets.
FAST = {"hidden": (8,), "latent_dim": 2, "epochs": 5, "batch_size": 16, "device": "cpu"}


@parametrize_with_checks(
    [
        Autoencoder(model="deep", random_state=0, **FAST),
        Autoencoder(model="vae", random_state=0, **FAST),
    ]
)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input skips itself unless SCIPY_ARRAY_API is set; set it so that this check
    # runs too (NumPy inputs with scikit-learn's array API dispatch switched on).
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits as a table (pixel values 0..16), split 75/25."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def digits_ae(digits):
    X_train = digits[0]
    return Autoencoder(latent_dim=16, epochs=20, random_state=0, device="cpu").fit(X_train)


def _low_rank(n=120, n_features=6, low=-5.0, high=5.0, seed=0):
    """Rows on a 2-D curved surface, rescaled per column to exactly [low, high]."""
    rng = np.random.RandomState(seed)
    t = rng.uniform(-1, 1, size=(n, 2))
    X = np.tanh(t @ rng.normal(size=(2, n_features)) + 0.3 * t[:, :1] ** 2)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    return low + (high - low) * X


# ---------------------------------------------------------------------------- where PCA stands


def test_pipeline_with_logistic_regression_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("ae", Autoencoder(latent_dim=16, epochs=20, random_state=0, device="cpu")),
            ("clf", LogisticRegression(max_iter=2000)),
        ]
    ).fit(X_train, y_train)
    # Measured 0.95-0.96 over random_state 0, 1, 2 (PCA(16) in the same pipeline: 0.956);
    # chance is 0.1.
    assert pipe.score(X_test, y_test) > 0.9
    assert pipe.predict(X_test).shape == y_test.shape
    assert pipe["ae"].data_min_ is None  # MinMaxScaler already gave [0, 1]: nothing to scale


def test_grid_search_over_latent_dim(digits):
    X_train = digits[0][:400]
    ae = Autoencoder(hidden=(32,), epochs=5, random_state=0, device="cpu")
    search = GridSearchCV(ae, {"latent_dim": [2, 8]}, cv=2).fit(X_train)
    assert search.best_params_ in ({"latent_dim": 2}, {"latent_dim": 8})
    assert [p["latent_dim"] for p in search.cv_results_["params"]] == [2, 8]
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)  # negative reconstruction MSE
    assert search.best_params_ == {"latent_dim": 8}  # more code, less reconstruction error
    assert search.best_estimator_.transform(X_train).shape == (400, 8)


def test_numpy_integer_parameters_from_a_grid():
    X = _low_rank(low=0, high=1)
    ae = Autoencoder(
        latent_dim=np.int64(3), hidden=(np.int64(5),), epochs=np.int64(2), device="cpu"
    ).fit(X)
    assert ae.transform(X).shape == (len(X), 3)


def test_fit_transform_matches_fit_then_transform(digits):
    X = digits[0][:300]
    params = {"latent_dim": 4, "hidden": (16,), "epochs": 3, "random_state": 7, "device": "cpu"}
    a = Autoencoder(**params).fit(X).transform(X)
    b = Autoencoder(**params).fit_transform(X)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_random_state_decides_the_model_and_the_global_rng_is_untouched(digits):
    X = digits[0][:300]
    params = {"latent_dim": 4, "hidden": (16,), "epochs": 2, "device": "cpu"}
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 - the legacy global RNG
    a = Autoencoder(random_state=0, **params).fit_transform(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    b = Autoencoder(random_state=0, **params).fit_transform(X)
    c = Autoencoder(random_state=1, **params).fit_transform(X)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_set_output_pandas_names_the_codes(digits):
    X = digits[0][:200]
    ae = Autoencoder(latent_dim=3, hidden=(8,), epochs=1, device="cpu").set_output(
        transform="pandas"
    )
    Z = ae.fit_transform(X)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["autoencoder0", "autoencoder1", "autoencoder2"]
    assert list(ae.get_feature_names_out()) == list(Z.columns)


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("shape", "data_format", "input_shape"),
    [
        ((30, 12), "channels_last", (1, 1, 12)),
        ((30, 6, 5), "channels_last", (1, 6, 5)),
        ((30, 6, 5, 3), "channels_last", (3, 6, 5)),
        ((30, 3, 6, 5), "channels_first", (3, 6, 5)),
    ],
)
def test_shapes_in_and_out(shape, data_format, input_shape):
    X = np.random.RandomState(0).uniform(size=shape)
    ae = Autoencoder(data_format=data_format, random_state=0, **{**FAST, "epochs": 1}).fit(X)
    assert ae.input_shape_ == input_shape
    assert ae.sample_shape_ == shape[1:]
    assert ae.n_features_in_ == int(np.prod(shape[1:]))
    Z = ae.transform(X)
    assert Z.shape == (30, 2)
    assert ae.inverse_transform(Z).shape == shape
    assert np.isfinite(ae.score(X))


def test_conv_model_on_images_and_conv_vae_samples():
    images = load_digits().images[:200] / 16.0  # (200, 8, 8) in [0, 1]
    small = {"model_params": {"channels": (4,)}, "latent_dim": 4, "epochs": 2, "device": "cpu"}
    ae = Autoencoder(model="conv", random_state=0, **small).fit(images)
    assert ae.input_shape_ == (1, 8, 8)
    assert ae.transform(images).shape == (200, 4)
    assert ae.inverse_transform(ae.transform(images)).shape == (200, 8, 8)
    vae = Autoencoder(model="conv-vae", random_state=0, **small).fit(images)
    assert vae.sample(5, random_state=0).shape == (5, 8, 8)
    # a seeded estimator keeps PyTorch's kernels, whose floats do not depend on timing
    assert ae.run_.config.train.conv_kernels == "default"
    unseeded = Autoencoder(model="conv", **small).fit(images)
    assert unseeded.run_.config.train.conv_kernels == "auto"


def test_conv_model_refuses_a_table():
    X = np.random.RandomState(0).uniform(size=(20, 64))
    ae = Autoencoder(device="cpu", epochs=1).fit(X)
    with pytest.raises(ValueError, match=r"model='conv' is convolutional and needs images"):
        ae.set_params(model="conv").fit(X)
    with pytest.raises(NotFittedError):  # a failed refit leaves no stale model behind
        ae.transform(X)


def test_denoising_recipe_keeps_its_noise_unless_switched_off(tmp_path):
    images = load_digits().images[:64] / 16.0
    small = {"model_params": {"channels": (4,)}, "latent_dim": 4, "epochs": 1, "device": "cpu"}
    noisy = Autoencoder(model="denoising", **small).fit(images).save(tmp_path / "noisy")
    clean = Autoencoder(model="denoising", noise="none", **small).fit(images)
    clean = clean.save(tmp_path / "clean")
    assert json.loads((noisy / "config.json").read_text())["train"]["noise"] == "gaussian:0.05"
    assert json.loads((clean / "config.json").read_text())["train"]["noise"] is None


def test_images_of_another_shape_are_refused():
    X = np.random.RandomState(0).uniform(size=(20, 6, 5))
    ae = Autoencoder(**{**FAST, "epochs": 1}).fit(X)
    with pytest.raises(ValueError, match=r"samples of shape \(5, 6\).*fitted on samples of"):
        ae.transform(X.transpose(0, 2, 1))


def test_wrong_number_of_features_is_a_value_error(digits):
    X = digits[0][:100]
    ae = Autoencoder(**{**FAST, "epochs": 1}).fit(X)
    with pytest.raises(ValueError, match="X has 63 features, but Autoencoder is expecting 64"):
        ae.transform(X[:, :-1])
    with pytest.raises(ValueError, match="expecting 2 codes"):
        ae.inverse_transform(np.zeros((3, 5)))


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "score"])
def test_unfitted_estimator_raises_not_fitted(method):
    with pytest.raises(NotFittedError):
        getattr(Autoencoder(), method)(np.zeros((3, 2)))
    with pytest.raises(NotFittedError):
        Autoencoder().get_feature_names_out()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "pca"}, r"model='pca' is not a known model; allowed: shallow, deep"),
        ({"scale": "standard"}, r"scale='standard' is not valid; allowed: 'auto', 'minmax'"),
        ({"data_format": "NCHW"}, r"data_format='NCHW' is not valid"),
        ({"epochs": -1}, r"epochs=-1 is not valid"),
        ({"optimizer": "lbfgs"}, r"optimizer='lbfgs' is not valid"),
        ({"hidden": (0,)}, r"hidden=\(0,\) is not valid"),
        ({"model_params": {"latent_dim": 3}}, r"model_params may not hold 'latent_dim'"),
        ({"model": "conv", "hidden": (8,)}, r"hidden is not a parameter of model 'conv'"),
    ],
)
def test_bad_parameters_fail_at_fit_with_a_clear_message(params, match):
    X = np.random.RandomState(0).uniform(size=(10, 4, 4))
    with pytest.raises(ValueError, match=match):
        Autoencoder(**{"device": "cpu", "epochs": 1, **params}).fit(X)


# ---------------------------------------------------------------------------- scaling


def test_dataframe_out_of_range_is_scaled_and_round_trips_the_range():
    X = pd.DataFrame(_low_rank(), columns=[f"f{i}" for i in range(6)])
    ae = Autoencoder(latent_dim=2, hidden=(16,), epochs=150, batch_size=16, random_state=0)
    ae.set_params(device="cpu").fit(X)
    assert list(ae.feature_names_in_) == list(X.columns)
    np.testing.assert_allclose(ae.data_min_, X.min().to_numpy())
    np.testing.assert_allclose(ae.data_range_, (X.max() - X.min()).to_numpy())
    X_hat = ae.inverse_transform(ae.transform(X))
    assert X_hat.shape == X.shape
    # Back in X's units: the sigmoid's (0, 1) maps onto each column's [-5, 5].
    assert X_hat.min() >= -5 - 1e-9 and X_hat.max() <= 5 + 1e-9
    assert X_hat.min() < -3 and X_hat.max() > 3
    mean_mse = np.mean((X.to_numpy() - X.to_numpy().mean(0)) ** 2)
    assert -ae.score(X) < 0.5 * mean_mse  # a 2-D code of 2-D data beats the column means


def test_scale_none_refuses_out_of_range_input():
    X = _low_rank()
    ae = Autoencoder(scale=None, device="cpu", epochs=1)
    with pytest.raises(ValueError, match=r"X has values in \[-5, 5\].*\[0, 1\].*scale='auto'"):
        ae.fit(X)
    ae.fit((X + 5) / 10)  # within [0, 1]: fine
    assert ae.data_min_ is None
    with pytest.raises(ValueError, match=r"X has values in \[-5, 5\]"):
        ae.transform(X)


def test_scale_auto_leaves_unit_data_alone_and_minmax_always_scales():
    X = np.random.RandomState(0).uniform(size=(20, 4))
    assert Autoencoder(**FAST).fit(X).data_min_ is None
    ae = Autoencoder(scale="minmax", **FAST).fit(X)
    np.testing.assert_allclose(ae.data_min_, X.min(0))


def test_linear_output_needs_no_scaling():
    X = _low_rank()
    params = {**FAST, "model_params": {"output_activation": None}}
    assert Autoencoder(**params).fit(X).data_min_ is None
    Autoencoder(scale=None, **params).fit(X)  # any range is fine for a linear output


def test_constant_features_are_safe():
    X = _low_rank(low=-5, high=5)
    X[:, 2] = 3.0
    ae = Autoencoder(scale="minmax", latent_dim=2, hidden=(16,), epochs=50, random_state=0)
    ae.set_params(device="cpu").fit(X)
    assert ae.data_range_[2] == 1.0 and ae.data_min_[2] == 2.5  # 3.0 maps to 0.5
    X_hat = ae.inverse_transform(ae.transform(X))
    assert np.all(np.isfinite(X_hat))
    error = np.abs(X_hat[:, 2] - 3.0)  # measured: mean 0.02, max 0.09 (the column spans 0)
    assert error.mean() < 0.05 and error.max() < 0.25


def test_uint8_images_are_scaled_per_channel():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(40, 6, 6, 3)).astype(np.uint8)
    images[..., 2] //= 2  # channel 2 only reaches 127
    ae = Autoencoder(**{**FAST, "epochs": 1}).fit(images)
    assert ae.data_min_.shape == (1, 1, 3)
    assert ae.data_min_.ravel().tolist() == [0, 0, 0]
    assert ae.data_range_.ravel().tolist() == [255, 255, 127]
    X_hat = ae.inverse_transform(ae.transform(images))
    assert X_hat.shape == images.shape and 0 <= X_hat.min() and X_hat[..., 2].max() <= 127


# ---------------------------------------------------------------------------- quality


def test_reconstruction_beats_the_mean_image(digits):
    X_train, X_test = digits[0], digits[1]
    ae = Autoencoder(latent_dim=16, epochs=20, random_state=0, device="cpu").fit(X_train)
    score = ae.score(X_test)
    mean_image = -np.mean((X_test - X_train.mean(0)) ** 2)  # about -18.8 (pixel units 0..16)
    assert np.isfinite(score)
    assert score > 0.5 * mean_image  # measured: -2.7 vs -18.8
    X_hat = ae.inverse_transform(ae.transform(X_test))
    np.testing.assert_allclose(-np.mean((X_test - X_hat) ** 2), score, rtol=1e-5)


def test_float32_in_float32_out(digits_ae, digits):
    X = digits[1].astype(np.float32)
    Z = digits_ae.transform(X)
    assert Z.dtype == np.float32
    assert digits_ae.inverse_transform(Z).dtype == np.float32
    np.testing.assert_allclose(Z, digits_ae.transform(digits[1]), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- files and pickles


def test_save_and_load_give_the_same_estimator(digits_ae, digits, tmp_path):
    X_test = digits[1]
    path = digits_ae.save(tmp_path / "ae")
    assert sorted(p.name for p in path.iterdir()) == [
        ".lock",
        "aelab-run.json",
        "config.json",
        "history.json",
        "model.safetensors",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["model"]["name"] == "deep" and config["model"]["family"] == "dense"
    assert config["model"]["config"]["latent_dim"] == 16
    assert set(config["train"]) == set(TrainConfig().to_dict())
    assert config["train"]["seed"] == 0 and config["train"]["epochs"] == 20
    assert {"aelab", "torch", "python"} <= set(config["versions"])
    section = config["estimator"]
    assert section["params"] == json.loads(json.dumps(digits_ae.get_params()))
    assert section["scaling"]["kind"] == "minmax" and len(section["scaling"]["data_min"]) == 64

    loaded = Autoencoder.load(path)
    assert loaded.get_params() == digits_ae.get_params()
    assert np.array_equal(loaded.transform(X_test), digits_ae.transform(X_test))
    Z = digits_ae.transform(X_test)
    assert np.array_equal(loaded.inverse_transform(Z), digits_ae.inverse_transform(Z))
    assert loaded.score(X_test) == digits_ae.score(X_test)
    assert loaded.history_ == digits_ae.history_
    assert loaded.n_features_in_ == 64

    # The same directory is an ordinary aelab run.
    run = load_run(path)
    scaled = ((X_test - digits_ae.data_min_) / digits_ae.data_range_).astype(np.float32)
    codes = run.encode(scaled.reshape(-1, 1, 1, 64))
    np.testing.assert_allclose(codes, digits_ae.transform(X_test.astype(np.float32)), atol=1e-5)
    assert run.name == "deep" and len(run.history) == 20


def test_save_refuses_to_overwrite_unless_asked(digits_ae, tmp_path):
    path = digits_ae.save(tmp_path / "ae")
    with pytest.raises(ValueError, match="already holds files; pass overwrite=True"):
        digits_ae.save(path)
    digits_ae.save(path, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an aelab run"):
        digits_ae.save(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"


def test_dataframe_feature_names_survive_save_and_load(tmp_path):
    X = pd.DataFrame(_low_rank(), columns=list("abcdef"))
    ae = Autoencoder(random_state=0, **FAST).fit(X)
    loaded = Autoencoder.load(ae.save(tmp_path / "df"))
    assert list(loaded.feature_names_in_) == list("abcdef")
    assert list(loaded.get_feature_names_out()) == ["autoencoder0", "autoencoder1"]
    assert np.array_equal(loaded.transform(X), ae.transform(X))


def test_load_opens_a_run_of_aelab_train(tmp_path):
    spec = DataSpec(source="digits", holdout=0.2, seed=0)
    train = TrainConfig(epochs=1, device="cpu")
    overrides = {"hidden": (8,), "latent_dim": 3}
    run = train_run("deep", spec, train, tmp_path / "run", model_overrides=overrides)
    ae = Autoencoder.load(tmp_path / "run")
    images = run.data().heldout.images  # (N, 1, 8, 8) in [0, 1]
    assert ae.data_format == "channels_first" and ae.sample_shape_ == (1, 8, 8)
    np.testing.assert_allclose(ae.transform(images), run.encode(images), atol=1e-6)
    assert ae.inverse_transform(ae.transform(images)).shape == images.shape


def test_pickle_round_trip(digits_ae, digits):
    X_test = digits[1]
    restored = pickle.loads(pickle.dumps(digits_ae))
    assert np.array_equal(restored.transform(X_test), digits_ae.transform(X_test))
    clone(digits_ae)  # unfitted copy with the same parameters


# ---------------------------------------------------------------------------- sampling


def test_vae_samples_in_the_input_shape_and_units():
    X = _low_rank()
    vae = Autoencoder(model="vae", random_state=0, **FAST).fit(X)
    a = vae.sample(7, random_state=0)
    assert a.shape == (7, 6)
    assert np.array_equal(a, vae.sample(7, random_state=0))
    assert not np.array_equal(a, vae.sample(7, random_state=1))
    assert a.min() >= -5 - 1e-9 and a.max() <= 5 + 1e-9  # unscaled back to [-5, 5]


def test_only_variational_models_sample():
    ae = Autoencoder(**FAST).fit(np.random.RandomState(0).uniform(size=(20, 4)))
    assert not hasattr(ae, "sample")
    assert hasattr(Autoencoder(model="vae"), "sample")
    with pytest.raises(AttributeError, match="only available for models with a prior"):
        ae.sample(3)


# ---------------------------------------------------------------------------- fuzz

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.float16]),
    shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6),
    elements=None,
)


@settings(max_examples=40, deadline=5000, derandomize=True, database=None)
@given(_ARRAYS, st.sampled_from(["deep", "vae", "conv"]))
def test_fit_and_transform_take_anything_or_raise_one_clear_error(X, model):
    """Any array: fitted (then transform gives finite codes of the right shape) or refused with
    a ValueError (or scikit-learn's TypeError) of one line."""
    params = {"channels": (2,)} if model == "conv" else None
    ae = Autoencoder(model=model, latent_dim=2, epochs=1, batch_size=8, device="cpu",
                     random_state=0, model_params=params)  # fmt: skip
    try:
        ae.fit(X)
    except (ValueError, TypeError) as e:
        assert str(e) and "Traceback" not in str(e)
        return
    Z = ae.transform(X)
    assert Z.shape == (len(X), 2) and np.isfinite(Z).all()
