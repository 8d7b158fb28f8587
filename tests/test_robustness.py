"""The corruption curve and the detection summary, on arrays whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.analysis import anomaly
from aelab.analysis.metrics import psnr
from aelab.analysis.robustness import corrupt, corruption_curve, shortfalls


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0.2, 0.8, (12, 1, 8, 8)).astype(np.float32)


def test_identity_is_the_input_and_a_perfect_denoiser_leads(images):
    levels = {"gaussian": (0.0, 0.1, 0.3), "mask": (0.0, 0.2)}
    clean = images.copy()
    curve = corruption_curve(
        {"identity": lambda x: np.clip(x, 0, 1),
         "oracle": lambda x: np.concatenate([clean] * (len(x) // len(clean))),
         "grey": lambda x: np.full_like(x, 0.5)},
        images, levels=levels, seed=3,
    )  # fmt: skip
    assert curve["levels"] == {"gaussian": [0.0, 0.1, 0.3], "mask": [0.0, 0.2]}
    for kind in levels:
        assert curve["methods"]["identity"][kind] == pytest.approx(curve["input"][kind])
        assert all(v == pytest.approx(100.0) for v in curve["methods"]["oracle"][kind])
    # by hand: the same seeded draw as the curve's for gaussian:0.1 (kind 0, level 1)
    noisy = corrupt(images, "gaussian", 0.1, seed=3 + 1)
    assert curve["input"]["gaussian"][1] == pytest.approx(psnr(images, np.clip(noisy, 0, 1)))
    assert shortfalls(curve, "oracle", list(curve["methods"])) == []
    notes = shortfalls(curve, "grey", list(curve["methods"]))
    assert len(notes) == 3 and all("oracle 100.0 dB above" in n for n in notes)


def test_the_stacked_calls_give_each_level_what_a_call_of_its_own_gives(images, monkeypatch):
    from aelab.analysis import robustness

    def blur(x):  # each image on its own, as a model's reconstruction is
        return (x + np.roll(x, 1, axis=-1) + np.roll(x, 1, axis=-2)) / 3

    levels = {"gaussian": (0.0, 0.1, 0.3), "saltpepper": (0.0, 0.2), "mask": (0.0, 0.5)}
    calls = []
    stacked = corruption_curve({"blur": lambda x: calls.append(len(x)) or blur(x)}, images,
                               levels=levels, seed=5)  # fmt: skip
    assert calls == [len(images) * 5]  # the clean images once, and 4 corrupted copies
    for i, (kind, kind_levels) in enumerate(levels.items()):
        for j, level in enumerate(kind_levels):
            noisy = corrupt(images, kind, level, seed=5 + 1000 * i + j)
            assert stacked["methods"]["blur"][kind][j] == psnr(images, blur(noisy))
    monkeypatch.setattr(robustness, "STACK_BYTES", 2 * images.nbytes)  # two copies a call
    calls.clear()
    again = corruption_curve({"blur": lambda x: calls.append(len(x)) or blur(x)}, images,
                             levels=levels, seed=5)  # fmt: skip
    assert calls == [2 * len(images)] * 2 + [len(images)] and again == stacked


def test_known_clean_reconstructions_are_not_made_again(images):
    def blur(x):
        return (x + np.roll(x, 1, axis=-1) + np.roll(x, 1, axis=-2)) / 3

    levels = {"gaussian": (0.0, 0.1, 0.3), "mask": (0.0, 0.5)}
    calls = []
    made = corruption_curve({"blur": lambda x: calls.append(len(x)) or blur(x)}, images,
                            levels=levels, seed=5)  # fmt: skip
    calls.clear()
    known = corruption_curve({"blur": lambda x: calls.append(len(x)) or blur(x)}, images,
                             levels=levels, seed=5, clean={"blur": blur(images)})  # fmt: skip
    assert calls == [len(images) * 3]  # the 3 corrupted copies only, not the clean images
    assert known == made
    # what is given for level 0 is what level 0 scores: a wrong one shows
    wrong = corruption_curve({"blur": blur}, images, levels=levels, seed=5,
                             clean={"blur": images})  # fmt: skip
    assert wrong["methods"]["blur"]["gaussian"][0] == psnr(images, images)
    assert wrong["methods"]["blur"]["gaussian"][1:] == made["methods"]["blur"]["gaussian"][1:]
    calls.clear()
    counted = {"blur": lambda x: calls.append(len(x)) or blur(x)}
    only = corruption_curve(counted, images, levels={"mask": (0.0,)}, clean={"blur": blur(images)})
    assert only["methods"]["blur"]["mask"] == [psnr(images, blur(images))] and calls == []


def test_corrupt_leaves_the_input_alone_and_level_zero_is_a_copy(images):
    before = images.copy()
    out = corrupt(images, "saltpepper", 0.5, seed=0)
    assert np.array_equal(images, before) and not np.array_equal(out, images)
    share = np.mean((out == 0) | (out == 1))
    assert 0.35 < share < 0.65
    same = corrupt(images, "mask", 0.0)
    assert np.array_equal(same, images) and same is not images


def test_detection_separates_and_keeps_its_false_positive_rate():
    rng = np.random.default_rng(1)
    normal_cal, normal = rng.normal(0, 1, 999), rng.normal(0, 1, 20000)
    unusual = rng.normal(-3, 1, 500)  # lower scores: more unusual
    d = anomaly.detection(normal_cal, normal, unusual, fpr=0.05)
    assert d["fpr"] == pytest.approx(0.05, abs=0.01)
    assert d["auc"] > 0.95 and d["detected"] > 0.7
    assert (d["n_calibration"], d["n_normal"], d["n_unusual"]) == (999, 20000, 500)
    # too few calibration scores for the rate: no threshold, nothing flagged, AUC still there
    d = anomaly.detection(normal_cal[:5], normal, unusual, fpr=0.05)
    assert d["threshold"] is None and d["fpr"] == 0 and d["detected"] == 0
    with pytest.raises(ValueError, match="at least one normal and one unusual"):
        anomaly.detection(normal_cal, normal, unusual[:0])
    with pytest.raises(ValueError, match=r"fpr=1\.5 is not valid"):
        anomaly.detection(normal_cal, normal, unusual, fpr=1.5)
