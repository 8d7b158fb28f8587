"""The report reading its own numbers: each sentence on records built by hand where the answer is
known (a denoiser worse than its input, dead units, a collapsed VAE, identical reconstructions, a
model losing to PCA), said where the numbers support it and never where they do not, with one
seed or several."""

from __future__ import annotations

import pytest

from aelab.analysis import interpret
from aelab.analysis.spread import summary


def record(**fields):
    """A model's record as ``metrics.json`` holds it, one seed, nothing surprising."""
    m = {
        "code_size": 20, "code_activation": "relu", "epochs": 100, "dead_units": 0,
        "heldout": {"mse": 0.010, "psnr": 24.0, "ssim": 0.8, "knn_accuracy": 0.9,
                    "variance_ratio": 0.8},
        "pca": {"n_components": 20, "mse": 0.012, "psnr": 23.0, "ssim": 0.8,
                "knn_accuracy": 0.9, "variance_ratio": 0.85},
        "pca_ratio": 0.010 / 0.012,
        "heldout_curve": {"best_epoch": 100, "best": 0.01, "last": 0.01, "best_early": 0.01},
        "seeds": [0], "spread": {},
    }  # fmt: skip
    for path, value in fields.items():
        *parents, last = path.split("__")
        target = m
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return m


def seeded(m, **values):
    """``m`` as the mean of several seeds, with the spread of each number given."""
    m = {**m, "seeds": [0, 1, 2], "spread": dict(m["spread"])}
    for path, per_seed in values.items():
        s = summary(per_seed)
        m["spread"][path.replace("__", ".")] = s
        *parents, last = path.split("__")
        target = m
        for key in parents:
            target = target[key]
        target[last] = s["mean"]
    return m


def curve_with(method: str, psnr: list[float], noisy: list[float]) -> dict:
    """A robustness curve of Gaussian noise with one model besides the corrupted input."""
    return {
        "levels": {"gaussian": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]},
        "input": {"gaussian": noisy},
        "methods": {method: {"gaussian": psnr}},
    }


NOISY = [100.0, 26.0, 20.1, 14.0, 10.5, 6.0]  # the corrupted input's PSNR at each level


# --- a denoiser worse than its input --------------------------------------------------------


def test_a_denoiser_worse_than_its_noisy_input_says_so_and_where_it_helps():
    """Olivetti's denoising panel read 26.0 -> 20.1 dB without a word."""
    d = {"noise": "gaussian:0.05", "noisy_psnr": 26.0, "denoised_psnr": 20.1}
    m = record(heldout__psnr=20.6, denoising=d)
    curve = curve_with("denoising", [20.6, 20.1, 19.0, 16.5, 13.2, 9.0], NOISY)
    text = interpret.denoising_note("denoising", m, curve)
    assert text.startswith(
        "At the noise it was trained on (Gaussian noise, σ = 0.05) denoising's output is 5.9 dB "
        "worse than its noisy input: 26.0 dB noisy, 20.1 dB denoised."
    )
    assert "Even clean images come back at only 20.6 dB" in text  # milder than its own error
    assert "It does help from σ = 0.2 on: 16.5 dB against the noisy input's 14.0 dB." in text
    assert text in interpret.model_notes("denoising", m, curve=curve)


def test_a_denoiser_that_never_helps_says_that_too():
    m = record(
        heldout__psnr=27.0,
        denoising={"noise": "gaussian:0.05", "noisy_psnr": 26.0, "denoised_psnr": 12.0},
    )
    curve = curve_with("d", [12.0, 12.0, 11.0, 8.0, 6.0, 5.0], NOISY)
    text = interpret.denoising_note("d", m, curve)
    assert "It reconstructs clean images at 27.0 dB, so it has not learned to remove" in text
    assert "At no level measured, up to σ = 0.5, is its output better than the input." in text


def test_a_denoiser_that_helps_or_whose_seeds_disagree_gets_no_sentence():
    helps = record(denoising={"noise": "gaussian:0.05", "noisy_psnr": 26.0, "denoised_psnr": 27.5})
    assert interpret.denoising_note("d", helps) is None
    assert interpret.model_notes("d", helps) == []
    loses = record(denoising={"noise": "gaussian:0.05", "noisy_psnr": 26.0, "denoised_psnr": 25.0})
    assert interpret.denoising_note("d", loses) is not None  # one seed: its value decides
    straddles = seeded(loses, denoising__denoised_psnr=[23.0, 25.5, 27.0])
    assert interpret.denoising_note("d", straddles) is None  # the interval holds 26.0
    below = seeded(loses, denoising__denoised_psnr=[24.8, 25.0, 25.2])
    assert interpret.denoising_note("d", below) is not None


# --- dead units --------------------------------------------------------------------------------


def test_dead_units_say_what_they_mean_and_what_would_revive_them():
    """Olivetti's deep model: 16 of 20 units dead, never commented."""
    text = interpret.dead_note("deep", record(dead_units=16))
    assert text.startswith("16 of deep's 20 code units are dead (80%)")
    assert "in effect 4 numbers wide, not 20" in text
    assert "ReLU" in text and "lower learning rate (--lr)" in text
    sigmoid = interpret.dead_note("shallow", record(dead_units=42, code_size=100,
                                                    code_activation="sigmoid"))  # fmt: skip
    assert sigmoid.startswith("42 of shallow's 100 code units are dead (42%)")
    assert "sigmoid unit stuck at 0 or 1" in sigmoid
    every = interpret.dead_note("conv", record(dead_units=32, code_size=32))
    assert every.startswith("Every one of conv's 32 code units is dead")


def test_few_dead_units_or_seeds_that_disagree_get_no_sentence():
    assert interpret.dead_note("deep", record(dead_units=1)) is None  # 5%: below DEAD_SHARE
    assert interpret.dead_note("deep", record(dead_units=0)) is None
    some = seeded(record(dead_units=5), dead_units=[0, 0, 15])  # the interval holds 0
    assert interpret.dead_note("deep", some) is None
    all_seeds = seeded(record(dead_units=5), dead_units=[4, 5, 6])
    assert "(mean of 3 seeds)" in interpret.dead_note("deep", all_seeds)
    # a variational model's units are judged by KL, not by range
    assert interpret.dead_note("vae", record(dead_units=5), variational=True) is None


# --- a collapsed VAE ---------------------------------------------------------------------------


def test_a_vae_using_fewer_units_than_its_code_says_so():
    """Olivetti's VAE used one unit of two (the other's largest mean 0.05), while the chart
    said "0 of 2 units dead"."""
    m = record(code_size=2, code_activation=None, dead_units=0,
               family={"active_units": 1, "kl_total": 3.2, "kl_max_unit": 3.2})  # fmt: skip
    text = interpret.collapse_note("vae", m)
    assert text.startswith("vae uses 1 of its 2 code units")
    assert "posterior collapse" in text and "--beta" in text and "--warmup" in text
    notes = interpret.model_notes("vae", m)
    assert text in notes and not any("are dead" in n for n in notes)
    none = record(code_size=2, family={"active_units": 0})
    assert interpret.collapse_note("vae", none).startswith("vae uses none of its 2 code units")
    assert interpret.collapse_note("vae", record(code_size=2, family={"active_units": 2})) is None
    doubt = seeded(m, family__active_units=[1, 2, 2])  # one seed of three used both
    assert interpret.collapse_note("vae", doubt) is None


# --- reconstructions that are all the same image ------------------------------------------------


def test_reconstructions_that_are_nearly_one_image_say_so_in_the_datas_words():
    """A face folder's shallow model drew five times the same mean face."""
    m = record(heldout__variance_ratio=0.004)
    data = {"kind": "faces"}
    text = interpret.same_image_note("shallow", m, data)
    assert text.startswith("shallow's reconstructions are nearly all the same image")
    assert "under 1% of what the original faces do; PCA with 20 components keeps 85%" in text
    assert "average face" in text
    assert "average digit" in interpret.same_image_note("s", m, {"kind": "digits"})
    assert interpret.same_image_note("s", record(heldout__variance_ratio=0.5), data) is None
    doubt = seeded(m, heldout__variance_ratio=[0.02, 0.05, 0.4])
    assert interpret.same_image_note("s", doubt, data) is None


# --- against PCA -------------------------------------------------------------------------------


def test_a_model_level_with_pca_is_never_said_to_beat_it():
    """One seed 0.05% below PCA printed "0.0% lower" and was marked better."""
    m = record(heldout__mse=0.011995, pca__mse=0.012, pca_ratio=0.011995 / 0.012)
    assert interpret.standing(m) == 0
    text = interpret.verdict("deep", m)
    assert text.startswith("deep is level with PCA with 20 components")
    assert "under 0.1% lower" in text and "0.0%" not in text
    beats = record(heldout__mse=0.010, pca__mse=0.012, pca_ratio=0.010 / 0.012)
    assert interpret.standing(beats) == -1 and "beats PCA" in interpret.verdict("deep", beats)


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        (
            {"best_epoch": 30, "best": 0.02, "last": 0.02, "best_early": 0.025},
            "was still falling when training stopped (20% lower over the last quarter of its 30",
        ),
        (
            {"best_epoch": 10, "best": 0.02, "last": 0.03, "best_early": 0.02},
            "ended 50% higher: it overfit",
        ),
        (
            {"best_epoch": 29, "best": 0.02, "last": 0.0201, "best_early": 0.0202},
            "had levelled off (lowest at epoch 29 of 30",
        ),  # its best late, but by under 2%
    ],
)
def test_a_model_losing_to_pca_is_told_why(curve, expected):
    m = record(epochs=30, heldout__mse=0.02, pca__mse=0.01, pca_ratio=2.0, heldout_curve=curve)
    (note,) = interpret.model_notes("deep", m)
    assert expected in note
    wins = record(epochs=30, heldout_curve=curve)
    assert interpret.model_notes("deep", wins) == []


# --- the robustness paragraph and the data's words ---------------------------------------------


def test_the_robustness_sentences_group_levels_and_say_nothing_of_zero_differences():
    curve = {
        "levels": {"gaussian": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]},
        "input": {"gaussian": NOISY},
        "methods": {
            "denoising": {"gaussian": [17.0, 16.7, 16.0, 15.5, 14.0, 11.0]},
            "conv": {"gaussian": [17.5, 17.2, 16.9, 15.0, 13.0, 10.0]},
            "pca-32": {"gaussian": [20.0, 19.0, 16.0, 13.0, 14.02, 9.0]},  # 0.3: level
        },
    }
    (text,) = interpret.robustness_notes(curve, "denoising")
    assert text == (
        "denoising under Gaussian noise: the best of all at σ 0.2, 0.5; PCA-32 higher at σ 0.05 "
        "(by 2.3 dB); conv higher at σ 0.1 (by 0.9 dB); level with PCA-32 at σ 0.3; no better "
        "than the corrupted input at σ 0.05–0.1."
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "faces", "heldout": "people", "heldout_classes": ["36", "37", "38", "39"],
          "split": {"holdout_people": 4}},
         "The held-out faces are of 4 people never trained on: 36–39."),
        ({"kind": "digits", "heldout": "classes", "heldout_classes": ["8", "9"],
          "split": {"holdout_people": 2}},
         "The held-out digits are of 2 classes never trained on: 8 and 9."),
        ({"kind": "digits", "heldout": "images", "split": {"holdout": 0.1}},
         "The held-out digits are a random 10% of the images, never trained on; the same digits "
         "appear in training."),
        ({"kind": "images", "heldout": "images", "labelled": True, "split": {"holdout": 0.1}},
         "The held-out images are a random 10% of the images, never trained on; the same "
         "classes appear in training."),
        ({"kind": "images", "heldout": "images", "labelled": False, "split": {"holdout": 0.2}},
         "The held-out images are a random 20% of the images, never trained on."),
    ],
)  # fmt: skip
def test_the_heldout_sentence_is_true_of_the_split(data, expected):
    """ "These people were never trained on" was written on MNIST, and on a face folder whose
    held-out images were of people also trained on."""
    assert interpret.heldout_phrase(data) == expected


def test_reconstructions_alike_because_the_code_is_small_blame_the_code():
    """MNIST's two-unit VAE drew one blurry blob: so does PCA with two components."""
    m = record(code_size=2, heldout__variance_ratio=0.15, pca__variance_ratio=0.16,
               pca__n_components=2)  # fmt: skip
    (text,) = interpret.model_notes("vae", m, data={"kind": "digits"})
    assert text.startswith("vae's reconstructions look alike: they keep 15% of how the digits")
    assert "PCA with 2 components keeps 16%" in text and "--latent-dim" in text
    worse = record(heldout__variance_ratio=0.15, pca__variance_ratio=0.45)
    assert interpret.small_code_note("deep", worse) is None  # PCA keeps three times more
