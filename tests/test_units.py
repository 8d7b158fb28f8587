"""Looking inside: unit pages, units matched across seeds, what reconstructions keep, retrieval,
attribute directions and what the error numbers mean, each checked against a hand computation
on a small built case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from aelab.analysis import keeps, units

P = 24  # pixels of the toy images (1, 4, 6)


def _linear(weights):
    """A linear decoder of codes (N, D) to images (N, 1, 4, 6): ``z @ W``."""
    return lambda z: (np.asarray(z, dtype=np.float64) @ weights).reshape(len(z), 1, 4, 6)


def test_a_linear_decoders_directions_and_usefulness_by_hand():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, P))
    codes = rng.normal(size=(200, 3)) * np.array([1.0, 2.0, 0.0])  # unit 2 never varies
    dirs, steps = units.directions(_linear(w), codes)
    std = codes.std(axis=0)
    assert steps[:2] == pytest.approx(2 * std[:2]) and steps[2] == 1.0
    assert dirs.reshape(3, P) == pytest.approx(steps[:, None] * w)
    x = _linear(w)(codes)
    use = units.usefulness(_linear(w), codes, x)
    by_hand = [np.mean((codes[:, i : i + 1] * w[i]) ** 2) / x.var() for i in range(3)]
    assert use == pytest.approx(by_hand)
    page = units.unit_pages(_linear(w), codes, codes[:50], x[:50], k=3)
    assert list(page["order"]) == [1, 0, 2] and bool(page["dead"][2])
    assert codes[page["top"][1][0], 1] == codes[:50, 1].max()
    assert codes[page["bottom"][0][0], 0] == codes[:50, 0].min()
    assert page["density"][2] == 0.0 and page["histograms"].sum(axis=1).tolist() == [50] * 3


def test_a_planted_dictionary_is_found_again_across_seeds_and_a_random_one_is_not():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(10, P))
    seeds = [w]
    for _ in range(2):  # the same units, in another order, some flipped, slightly noisy
        perm = rng.permutation(10)
        signs = rng.choice([-1.0, 1.0], size=(10, 1))
        seeds.append(signs * w[perm] + rng.normal(scale=0.01, size=(10, P)))
    planted = units.stability(seeds)
    assert planted.min() > 0.99
    partner, sim = units.match(seeds[0], seeds[1])
    assert sorted(partner.tolist()) == list(range(10)) and sim.min() > 0.99
    random = units.stability([w, rng.normal(size=(10, P)), rng.normal(size=(10, P))])
    assert random.mean() < 0.6
    with pytest.raises(ValueError, match="at least two seeds"):
        units.stability([w])


def test_pcas_components_are_stable_under_resampling_where_the_data_has_structure():
    x, _ = load_digits(return_X_y=True)
    top = units.pca_stability(x[:, None].reshape(len(x), 1, 8, 8), 3, resamples=3)
    assert top.shape == (3,) and top.min() > 0.9


def test_the_probe_score_is_one_for_identity_and_zero_for_the_mean_image():
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    fit, test = slice(0, 1200), slice(1200, None)
    mean = x[fit].mean(axis=0)
    blank = np.repeat(mean[None], len(x[test]), axis=0)
    out = keeps.preservation(x[fit], y[fit], x[test], y[test],
                             {"identity": x[test], "mean": blank}, mean)  # fmt: skip
    for probe in ("logistic", "1nn"):
        assert out[probe]["reconstructed"]["identity"]["score"] == pytest.approx(1.0)
        assert out[probe]["reconstructed"]["mean"]["score"] == pytest.approx(0.0)
        assert out[probe]["original"] > 0.9


def test_halves_split_every_label():
    first, second = keeps.halves_of_each_label(np.array([0, 0, 0, 0, 1, 1]))
    assert sorted([*first, *second]) == list(range(6))
    assert {0, 1} <= set(np.array([0, 0, 0, 0, 1, 1])[first])


def test_retrieval_precision_on_a_separable_toy_set():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 20)
    codes = labels[:, None] * 10.0 + rng.normal(size=(60, 4))
    assert keeps.precision_at_k(codes, labels, k=5) == 1.0
    assert keeps.precision_at_k(rng.normal(size=(60, 4)), labels, k=5) < 0.6
    # an image's own mirror (its group) is never its neighbour
    groups = np.tile(np.arange(30), 2)
    near = keeps.neighbours(codes, 3, groups)
    assert not np.any(groups[near] == groups[:, None])


def test_an_attribute_direction_and_its_morph_by_hand():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    labels = np.array(["a", "a", "b", "b"])
    d = keeps.direction(codes, labels, "b", "a")
    assert d.tolist() == [-1.0, 3.0]
    strip = keeps.morph(codes[0], d, steps=3)
    assert strip.tolist() == [[0.0, 0.0], [-0.5, 1.5], [-1.0, 3.0]]
    with pytest.raises(ValueError, match="must each label"):
        keeps.direction(codes, labels, "c")


def test_a_one_pixel_shift_scores_worse_than_a_blur():
    image = load_digits().images[0][None] / 16.0  # (1, 8, 8)
    changes = {c["change"]: c for c in keeps.misleading_mse(image)}
    assert changes["shifted one pixel"]["mse"] > changes["blurred"]["mse"]
    assert set(changes) == {"shifted one pixel", "blurred", "a patch masked", "noised"}
    assert all(-1 <= c["ssim"] <= 1 for c in changes.values())


def test_the_fraction_unexplained_is_zero_for_the_images_and_one_for_their_mean():
    x = np.random.default_rng(3).random((10, 1, 4, 6))
    assert keeps.fraction_unexplained(x, x) == 0.0
    assert keeps.fraction_unexplained(x, np.full_like(x, x.mean())) == pytest.approx(1.0)


def test_a_unit_that_barely_varies_has_a_histogram():
    """A saturated sigmoid's float32 codes differ by 6e-8: too little range for 20 finite bins,
    which stopped a report on Olivetti's shallow model."""
    from aelab.analysis.units import unit_pages

    codes = np.ones((10, 2), np.float32)
    codes[::2, 0] = np.float32(1.0) - np.float32(6e-8)
    codes[:, 1] = np.linspace(0, 1, 10)
    pages = unit_pages(lambda z: np.repeat(z[:, :1], 4, axis=1).reshape(len(z), 1, 2, 2),
                       codes, codes, np.zeros((10, 1, 2, 2), np.float32), k=3)  # fmt: skip
    assert pages["histograms"].shape == (2, 20) and pages["histograms"][0].sum() == 10
    assert np.all(np.isfinite(pages["edges"]))


def _counted_decoder(w, calls):
    """A non-linear decoder of codes (N, D) to images (N, 1, 3, 4) that records each call's
    batch size in ``calls``."""

    def decode(c):
        calls.append(len(c))
        return np.tanh(np.asarray(c, np.float64) @ w).reshape(len(c), 1, 3, 4).astype(np.float32)

    return decode


def test_usefulness_ablates_every_unit_the_same_in_one_call_or_many(monkeypatch):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 12))
    x = rng.uniform(size=(7, 1, 3, 4))
    calls = []
    decode = _counted_decoder(w, calls)
    codes = rng.normal(size=(7, 5)).astype(np.float32)
    by_hand = []
    for i in range(5):  # the unit set to zero in every code, one decode each
        ablated = codes.copy()
        ablated[:, i] = 0
        by_hand.append(np.mean((decode(ablated) - x) ** 2) - np.mean((decode(codes) - x) ** 2))
    by_hand = np.array(by_hand) / x.var()
    calls.clear()
    np.testing.assert_allclose(units.usefulness(decode, codes, x), by_hand, rtol=1e-12)
    assert calls == [7, 35]  # the codes, then all five ablations at once
    monkeypatch.setattr(units, "STACK_BYTES", 4 * 12 * 7 * 2)  # two ablations a call
    calls.clear()
    np.testing.assert_allclose(units.usefulness(decode, codes, x), by_hand, rtol=1e-12)
    assert calls == [7, 14, 14, 7]


def test_a_unit_zero_in_every_code_costs_nothing_and_is_not_decoded():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 12))
    x = rng.uniform(size=(6, 1, 3, 4))
    calls = []
    decode = _counted_decoder(w, calls)
    codes = np.maximum(rng.normal(size=(6, 4)), 0.0).astype(np.float32)
    codes[:, 2] = 0.0  # a dead ReLU unit
    codes[0, 1] = 0.0  # zero in one code only: ablated like any other
    use = units.usefulness(decode, codes, x)
    assert use[2] == 0.0 and calls == [6, 18]  # the codes, then units 0, 1 and 3 at once
    ablated = codes.copy()
    ablated[:, 1] = 0
    by_hand = np.mean((decode(ablated) - x) ** 2) - np.mean((decode(codes) - x) ** 2)
    assert use[1] == pytest.approx(by_hand / x.var(), rel=1e-12)
