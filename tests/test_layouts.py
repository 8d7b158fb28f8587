"""Every public entry point reads each layout it documents as the canonical one, or refuses the
input in one line naming the argument, the shape received and the shape expected: never a
silent misreading (the ``faces`` encoder took grey ``(N, 64, 64)`` images and reconstructed them
3.4x worse than ``(N, 1, 64, 64)``), never a traceback from deep inside a model.

Run (encode, decode, reconstruct, map, extra_metrics) and the anomaly Detector over it, the
explorer's LatentSpace and the scikit-learn estimator, for every registered recipe; the exported
graphs are checked in ``test_export.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aelab import Autoencoder
from aelab.analysis.detector import Detector
from aelab.apps.explorer.space import LatentSpace
from aelab.data.images import ImageSet
from aelab.data.prepare import Split
from aelab.models import MODELS, build_model
from aelab.runs.config import RunConfig
from aelab.runs.run import Run, decoded, reconstructed
from aelab.training.config import TrainConfig

SHAPES = [(1, 16, 16), (3, 16, 16)]
N = 5


def _images(n, shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _run(name: str, shape) -> Run:
    """A small untrained model of recipe ``name`` as a Run (the faces encoder with 2 steps: its
    search is where grey images were misread)."""
    torch.manual_seed(0)
    overrides = {"refine_steps": 2} if MODELS[name].family == "aligned" else {}
    model = build_model(name, shape, **overrides)
    if model.needs_data_init:  # a basis, an input mean: not their placeholders
        model.init_from_data(torch.from_numpy(_images(16, shape, seed=2)))
    return Run(model.eval(), RunConfig.of(name, model, TrainConfig()), [])


def image_layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """``x`` ``(N, C, H, W)`` in the layouts users hand over, and some wrong ones."""
    n, c, h, w = x.shape
    out = {
        "N,C,H,W": x,
        "N,H,W,C": x.transpose(0, 2, 3, 1),
        "N,D": x.reshape(n, -1),
        "wrong size": x[:, :, : h // 2, : w // 2],
        "C,H,W": x[0],
        "N,1,C,H,W": x[:, None],
    }
    if c == 1:
        out["N,H,W"] = x[:, 0]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def code_layouts(z: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "N,d": z,
        "N,d+1": np.pad(z, ((0, 0), (0, 1))),
        "N,d-1": z[:, :-1],
        "d": z[0],
        "N,d,1": z[..., None],
    }


def same_or_refused(call, arg, want, name: str, expected: str) -> str:
    """``call(arg)`` gives exactly ``want``, or raises a one-line ValueError that names ``name``,
    ``arg``'s shape and the ``expected`` shape."""
    try:
        got = call(arg)
    except ValueError as e:
        message = str(e)
        assert "\n" not in message, message
        assert message.startswith(f"{name} has shape {tuple(np.shape(arg))}"), message
        assert expected in message, message
        return "refused"
    misread = f"{name} of shape {tuple(np.shape(arg))} was taken, and read otherwise"
    if isinstance(want, dict):
        assert got == want, misread
    else:
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape and np.array_equal(got, want), misread
    return "same"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}ch")
@pytest.mark.parametrize("name", list(MODELS))
def test_run_reads_images_as_documented_or_refuses_them(name, shape):
    run = _run(name, shape)
    x = _images(N, shape)
    expected = "the model takes images (N, " + ", ".join(map(str, shape)) + ")"
    detector = Detector(run)
    entry_points = {
        "encode": run.encode,
        "reconstruct": run.reconstruct,
        "map": lambda a: run.map(reconstructed, a).numpy(),
        "extra_metrics": run.extra_metrics,
        "Detector.scores": lambda a: detector.scores(torch.as_tensor(a)),
        "Detector.maps": lambda a: detector.maps(torch.as_tensor(a)),
    }
    if run.model.variational:
        elbo = Detector(run, score="elbo")
        entry_points["Detector.scores(elbo)"] = lambda a: elbo.scores(torch.as_tensor(a))
    for entry, call in entry_points.items():
        want = call(x)
        outcomes = {
            layout: same_or_refused(call, a, want, "x", expected)
            for layout, a in image_layouts(x).items()
        }
        assert outcomes.pop("N,C,H,W") == "same", entry
        # Run documents (N, C, H, W) alone: every other layout is refused, none guessed at
        assert set(outcomes.values()) == {"refused"}, (entry, outcomes)


@pytest.mark.parametrize("name", list(MODELS))
def test_run_reads_codes_as_documented_or_refuses_them(name):
    run = _run(name, SHAPES[0])
    z = run.encode(_images(N, SHAPES[0]))
    d = run.model.latent_dim
    entry_points = {
        "decode": run.decode,
        "map": lambda a: run.map(decoded, a, takes="codes").numpy(),
    }
    for entry, call in entry_points.items():
        want = call(z)
        outcomes = {
            layout: same_or_refused(call, a, want, "z", f"the model takes codes (N, {d})")
            for layout, a in code_layouts(z).items()
        }
        assert outcomes.pop("N,d") == "same", entry
        assert set(outcomes.values()) == {"refused"}, (entry, outcomes)


def test_the_refusal_says_how_to_fix_the_common_layouts():
    run = _run("faces", (1, 64, 64))
    x = _images(2, (1, 64, 64))
    with pytest.raises(ValueError, match=r"^x has shape \(2, 64, 64\); the model takes images "
                       r"\(N, 1, 64, 64\) \(grey images \(N, H, W\): x\[:, None\]\)$"):  # fmt: skip
        run.reconstruct(x[:, 0])
    with pytest.raises(ValueError, match=r"\(channels-last images \(N, H, W, C\): x\.transpose"):
        run.encode(x.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"\(flattened images: x\.reshape\(-1, 1, 64, 64\)\)"):
        run.encode(x.reshape(2, -1))
    with pytest.raises(ValueError, match=r"\(one image \(C, H, W\): x\[None\]\)"):
        run.encode(x[0])
    with pytest.raises(ValueError, match=r"^takes='pixels' is not valid; allowed: 'images'"):
        run.map(reconstructed, x, takes="pixels")


@pytest.mark.parametrize(
    "name", [n for n, r in MODELS.items() if not r.family_class.discrete_codes]
)
def test_the_explorer_reads_images_and_codes_as_documented_or_refuses_them(name):
    shape = SHAPES[0]
    run = _run(name, shape)
    split = Split(
        ImageSet(_images(12, shape, 3), None, "t"), ImageSet(_images(4, shape), None, "h")
    )
    space = LatentSpace(run, split)
    x = _images(N, shape)
    expected = "the model takes images (N, 1, 16, 16)"
    outcomes = {
        layout: same_or_refused(space.encode, a, space.encode(x), "x", expected)
        for layout, a in image_layouts(x).items()
    }
    assert outcomes.pop("N,C,H,W") == "same" and set(outcomes.values()) == {"refused"}
    z = space.encode(x).astype(np.float32)
    d = run.model.latent_dim
    outcomes = {
        layout: same_or_refused(space.decode, a, space.decode(z), "z", f"codes (N, {d})")
        for layout, a in code_layouts(z).items()
    }
    assert outcomes.pop("N,d") == "same" and set(outcomes.values()) == {"refused"}
    small = Split(ImageSet(_images(12, (1, 8, 8)), None, "t"), split.heldout)
    with pytest.raises(ValueError, match=r"^split has train images of shape \(1, 8, 8\); model "
                       rf"'{name}' takes images of shape \(1, 16, 16\)$"):  # fmt: skip
        LatentSpace(run, small)


def _estimator(name: str, **params) -> Autoencoder:
    model_params = {"refine_steps": 2} if MODELS[name].family == "aligned" else None
    small = {"latent_dim": 8, "epochs": 1, "batch_size": 8, "calibration": 0, "device": "cpu"}
    return Autoencoder(model=name, random_state=0, model_params=model_params, **small, **params)


def _one_line(match: str):
    return pytest.raises(ValueError, match=rf"^{match}[^\n]*$")


@pytest.mark.parametrize("name", list(MODELS))
def test_the_estimator_reads_each_documented_layout_alike_and_refuses_others(name):
    x = _images(16, (1, 16, 16))  # (n, C, H, W)
    grey, last = x[:, 0], x.transpose(0, 2, 3, 1)  # (n, H, W), (n, H, W, 1)
    ae = _estimator(name).fit(last)
    z = ae.transform(last)
    scores = ae.score_samples(last)
    # the same images, as each documented layout gives them: the same model, codes, scores
    for X, data_format in ((grey, "channels_last"), (x, "channels_first")):
        other = _estimator(name, data_format=data_format).fit(X)
        assert other.input_shape_ == (1, 16, 16)
        assert np.array_equal(other.transform(X), z)
        assert np.array_equal(other.score_samples(X), scores)
        assert other.inverse_transform(z).shape == X.shape
    # after fit: any other layout is refused in one line, naming the shapes
    fitted_on = r"but Autoencoder was fitted on samples of shape \(16, 16, 1\)"
    for X in (grey, x, x.reshape(16, -1), x[:, :, :8, :8].transpose(0, 2, 3, 1)):
        for method in (ae.transform, ae.score_samples, ae.score):
            with _one_line(rf"X has samples of shape \({X.shape[1]},.*{fitted_on}"):
                method(X)
    with _one_line(r"X has shape \(256,\); expected \(n_samples, n_features\), \(n, H, W\) or "):
        ae.transform(x[0].ravel())  # scikit-learn's "Reshape your data", in one line
    with _one_line(r"X has shape \(16, 1, 1, 16, 16\); expected \(n_samples, n_features\)"):
        ae.transform(x[:, None])
    with _one_line(r"X has 9 features, but Autoencoder is expecting 8 codes \(latent_dim\)"):
        ae.inverse_transform(np.pad(z, ((0, 0), (0, 1))))
    with _one_line(r"X has shape \(8,\); expected codes \(n_samples, 8\)\. Reshape your data"):
        ae.inverse_transform(z[0])
    with _one_line(r"X has shape \(16, 8, 1\); expected codes \(n_samples, 8\)$"):
        ae.inverse_transform(z[..., None])


@pytest.mark.parametrize("name", list(MODELS))
def test_the_estimator_refuses_images_whose_channels_are_plainly_on_the_other_side(name):
    x = _images(4, (1, 16, 16))
    with _one_line(r"X has shape \(4, 1, 16, 16\), which data_format='channels_last' reads as "
                   r"16 channels of 1x16 images; pass data_format='channels_first'"):  # fmt: skip
        _estimator(name).fit(x)  # aelab's own ImageSet.images are (n, C, H, W)
    rgb = _images(4, (16, 16, 3))
    with _one_line(r"X has shape \(4, 16, 16, 3\), which data_format='channels_first' reads as "
                   r"16 channels of 16x3 images; pass data_format='channels_last'"):  # fmt: skip
        _estimator(name, data_format="channels_first").fit(rgb)
