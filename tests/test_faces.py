"""The ``faces`` recipe (aligned family), its validation split and its augmentation: test people
never reach training, validation, augmentation or the basis; held-out images are never warped;
the recipe builds for any image size; early stopping keeps the best epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aelab.analysis.metrics import pca_baseline
from aelab.cli import main
from aelab.data import ImageSet, carve_validation, load_olivetti, mirror
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec
from aelab.models import AlignedAutoencoder, AlignedConfig, build_model
from aelab.models.aligned import auto_pose, pose_matrix, warp
from aelab.training.augment import Affine, parse_augment
from aelab.training.config import TrainConfig
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer


def _rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)}


def _faces(olivetti_home) -> DataSpec:
    return DataSpec("olivetti", data_home=str(olivetti_home), mirror=True, holdout_people=10)


def test_validation_people_are_training_people_and_never_test_people(olivetti_home):
    split = prepare_data(_faces(olivetti_home), validation=0.2)
    train, val, test = (set(p.labels.tolist()) for p in (split.train, split.validation,
                                                          split.heldout))  # fmt: skip
    assert test == set(range(30, 40))
    assert val == set(range(24, 30))  # 20% of the 30 training people: the last six
    assert train == set(range(24))
    for a, b in ((split.train, split.heldout), (split.validation, split.heldout),
                 (split.train, split.validation)):  # fmt: skip
        assert not _rows(a.images) & _rows(b.images)  # no image (nor mirror) on both sides
    assert split.describe()["n_validation"] == len(split.validation) == 120


def test_carving_a_share_of_images_keeps_an_image_and_its_mirror_together():
    rng = np.random.default_rng(0)
    data = ImageSet(
        rng.random((40, 1, 4, 4)).astype(np.float32), np.repeat(np.arange(4), 10), "toy"
    )
    both = mirror(data)
    train, val = carve_validation(both, 0.25, by_people=False, mirrored=True)
    assert len(val) == 20 and len(train) == 60
    flipped = _rows(val.images[..., ::-1])
    assert flipped == _rows(val.images) and not flipped & _rows(train.images)
    assert sorted(np.bincount(val.labels).tolist()) == [4, 4, 6, 6]  # stratified by label
    with pytest.raises(ValueError, match=r"validation=1\.5 is not valid"):
        carve_validation(both, 1.5, by_people=False, mirrored=True)


@pytest.mark.slow
def test_the_test_people_reach_neither_the_basis_nor_the_augmentation(olivetti_home):
    split = prepare_data(_faces(olivetti_home), validation=0.2)
    r = resolve("faces", (1, 64, 64), train={"epochs": 2, "validation": 0.2, "patience": 1})
    trainer = Trainer(build_model("faces", (1, 64, 64), refine_steps=3), r.train)
    seen = {"init": [], "augment": []}
    init, augment = trainer.model.init_from_data, trainer.augment

    def record_init(x):
        seen["init"].append(x.numpy().copy())
        init(x)

    def record_augment(x):
        seen["augment"].append(x.numpy().copy())
        return augment(x)

    trainer.model.init_from_data, trainer.augment = record_init, record_augment
    x_test = torch.from_numpy(split.heldout.images)
    x_val = torch.from_numpy(split.validation.images)
    before = x_test.clone(), x_val.clone()
    trainer.fit(torch.from_numpy(split.train.images), x_test, x_validation=x_val, progress=False)
    assert _rows(seen["init"][0]) == _rows(split.train.images)
    augmented = _rows(np.concatenate(seen["augment"]))
    assert augmented <= _rows(split.train.images)
    assert not augmented & (_rows(split.heldout.images) | _rows(split.validation.images))
    assert torch.equal(x_test, before[0]) and torch.equal(x_val, before[1])  # never in place
    assert all(r["validation_loss"] is not None for r in trainer.history)


def test_augmentation_changes_training_batches_only():
    x = torch.rand(16, 1, 28, 28)
    model = build_model("deep", (1, 28, 28))
    plain = Trainer(model, TrainConfig(epochs=1))
    warped = Trainer(model, TrainConfig(epochs=1, augment="affine"))
    assert torch.equal(plain.evaluate(x), warped.evaluate(x))  # held-out losses: no warp
    torch.manual_seed(0)
    out = warped.augment(x)
    assert out.shape == x.shape and not torch.allclose(out, x) and 0 <= out.min() <= out.max() <= 1
    assert torch.allclose(Affine(0, 0, 0, 0, 0)(x), x, atol=1e-5)  # zero bounds: the identity


@pytest.mark.parametrize(
    ("spec", "where"),
    [("blur", "blur"), ("affine:shift=-1", "shift=-1"), ("affine:spin=3", "spin=3"),
     ("affine:shift=0.1,shift=0.2", "shift=0.2"), ("affine:rotate=x", "rotate=x")],
)  # fmt: skip
def test_bad_augment_specs_name_the_value(spec, where):
    with pytest.raises(ValueError, match="augment=") as e:
        parse_augment(spec)
    assert where in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="augment="):
        TrainConfig(augment=spec)


def test_patience_needs_validation_images():
    with pytest.raises(ValueError, match=r"patience=3 needs validation images"):
        TrainConfig(patience=3)
    with pytest.raises(ValueError, match=r"validation=1 is not valid"):
        TrainConfig(validation=1)
    trainer = Trainer(build_model("deep", (1, 8, 8)), TrainConfig(validation=0.2, patience=2))
    with pytest.raises(ValueError, match="pass x_validation"):
        trainer.fit(torch.rand(8, 1, 8, 8), progress=False)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 64, 64), (1, 112, 92), (3, 32, 40)])
def test_the_recipe_builds_for_any_image_size(shape):
    model = build_model("faces", shape)
    x = torch.rand(6, *shape)
    model.init_from_data(x)
    z = model.encode(x)
    assert z.shape == (6, 30) and model.decode(z).shape == x.shape
    assert model.config.pose == "affine" and model.n_appearance == 24


def test_codes_are_split_between_pose_and_appearance_by_size():
    assert [auto_pose(k) for k in (2, 10, 12, 20, 100)] == [
        "none",
        "shift",
        "similarity",
        "affine",
        "affine",
    ]
    with pytest.raises(ValueError, match=r"latent_dim=5 is too small for pose='affine'"):
        AlignedConfig(latent_dim=5, pose="affine")
    with pytest.raises(ValueError, match=r"pose='warp' is not valid; allowed: none, shift"):
        AlignedConfig(pose="warp")


@pytest.mark.parametrize("pose_size", [2, 4, 6])
def test_warp_is_affine_grid_and_grid_sample_with_their_gradients(pose_size):
    # the warp builds affine_grid's sampling grid itself (one matrix product, a cached base):
    # the same images and the same gradients, on a non-square image so x and y cannot swap
    torch.manual_seed(0)
    images = torch.rand(3, 2, 5, 7, requires_grad=True)
    pose = (0.3 * torch.randn(3, pose_size)).requires_grad_(True)
    ours = warp(images, pose)
    grid = F.affine_grid(pose_matrix(pose), [3, 2, 5, 7], align_corners=False)
    theirs = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    weights = torch.rand_like(ours)
    for a, b in zip(
        torch.autograd.grad((ours * weights).sum(), (images, pose)),
        torch.autograd.grad((theirs * weights).sum(), (images, pose)),
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.inference_mode():  # a grid cached here still serves autograd afterwards
        warp(torch.rand(1, 1, 9, 4), torch.zeros(1, pose_size))
    pose9 = torch.zeros(1, pose_size, requires_grad=True)
    warp(torch.rand(1, 1, 9, 4), pose9).sum().backward()
    assert pose9.grad is not None


def test_untrained_and_unrefined_it_is_pca():
    rng = np.random.default_rng(0)
    x_train = rng.random((50, 1, 6, 6)).astype(np.float32)
    x_test = rng.random((20, 1, 6, 6)).astype(np.float32)
    model = AlignedAutoencoder(
        AlignedConfig(input_shape=(1, 6, 6), latent_dim=5, pose="none", refine_steps=0)
    )
    model.init_from_data(torch.from_numpy(x_train))
    with torch.no_grad():
        ours = model.decode(model.encode(torch.from_numpy(x_test))).numpy()
    pca = pca_baseline(x_train, x_test, n_components=5)
    np.testing.assert_allclose(ours, pca.x_test_hat, atol=2e-5)


def test_refining_the_code_fits_a_shifted_face_better_than_pca(olivetti_home):
    data = load_olivetti(olivetti_home, download=False)
    train = torch.from_numpy(mirror(data.subset(data.labels < 30)).images)
    test = torch.from_numpy(data.subset(data.labels >= 30).images[:20])
    shift = torch.zeros(20, 2)
    shift[:, 0] = 0.15  # the test faces moved sideways by 7.5% of the image
    moved = warp(test, shift)
    errors = {}
    for steps in (0, 100):
        config = AlignedConfig(input_shape=(1, 64, 64), latent_dim=30, refine_steps=steps)
        model = AlignedAutoencoder(config)
        model.init_from_data(train)
        with torch.no_grad():
            errors[steps] = float(((model.decode(model.encode(moved)) - moved) ** 2).mean())
    assert errors[100] < 0.8 * errors[0]  # the pose takes the shift; PCA's projection cannot


def test_early_stopping_from_the_config_restores_the_best_epoch():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    model = build_model("deep", (1, 8, 8))
    config = TrainConfig(epochs=30, batch_size=8, learning_rate=0.05, validation=0.2, patience=3)
    trainer = Trainer(model, config)
    states = {}

    class Keep:
        def on_fit_start(self, t): ...
        def on_epoch_end(self, t, record):
            states[record["epoch"]] = {k: v.clone() for k, v in t.model.state_dict().items()}

        def on_fit_end(self, t): ...
        def close(self, t): ...

    trainer.fit(x[:48], x_validation=x[48:], callbacks=[Keep()], progress=False)
    losses = {r["epoch"]: r["validation_loss"] for r in trainer.history}
    best = min(losses, key=losses.get)
    assert trainer.epoch < 30 and trainer.epoch - best == 3  # stopped after 3 epochs no better
    final = trainer.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in states[best].items())
    assert not all(torch.equal(final[k], v) for k, v in states[trainer.epoch].items())


@pytest.mark.slow
def test_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "faces"
    code = main(["train", "faces", "--data", "digits", "--holdout-people", "2", "--epochs", "1",
                 "--out", str(run), "--quiet"])  # fmt: skip
    assert code == 0
    capsys.readouterr()
    table = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--curve", "--out", str(table)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].startswith("faces")
    result = json.loads(table.read_text())
    m = result["models"]["faces"]
    assert m["code_size"] == 30 and m["ratio"] == pytest.approx(m["mse"] / m["pca_mse"])
    assert [p["n_components"] for p in result["pca_curve"]] == [10, 20, 30, 50, 64]
    assert main(["evaluate", str(run), "--out", str(table)]) == 2  # exists: not overwritten
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2


def test_validation_patience_and_augment_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "deep"
    code = main(["train", "deep", "--data", "digits", "--holdout-people", "2", "--epochs", "40",
                 "--validation", "0.2", "--patience", "2", "--augment", "affine:rotate=3",
                 "--out", str(run), "--quiet"])  # fmt: skip
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["augment"] == "affine:rotate=3" and config["train"]["patience"] == 2
    assert config["split"]["n_validation"] > 0
    history = json.loads((run / "history.json").read_text())
    assert all(r["validation_loss"] is not None for r in history)
    capsys.readouterr()
    assert main(["train", "deep", "--data", "digits", "--patience", "3", "--out",
                 str(tmp_path / "x")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--patience 3 needs validation images" in err
    assert not (tmp_path / "x").exists()
