"""Names chosen from a list: the suggestion for a near miss (aelab.utils.choices)."""

from __future__ import annotations

import pytest

from aelab.utils.choices import did_you_mean, not_one_of, suggestion

MODELS = ("shallow", "deep", "conv", "denoising", "vae", "conv-vae", "beta-vae")


@pytest.mark.parametrize(
    ("value", "near"),
    [("cnov", "conv"), ("vea", "vae"), ("Conv", "conv"), ("denosing", "denoising"),
     ("resnet", None), ("", None), (3, None)],
)  # fmt: skip
def test_a_near_miss_finds_the_name_it_meant(value, near):
    assert suggestion(value, MODELS) == near


def test_aliases_win_over_spelling():
    devices = ("auto", "cpu", "cuda", "mps")
    assert suggestion("gpu", devices) == "cpu"  # spelling alone misleads
    assert suggestion("gpu", devices, aliases={"gpu": "cuda"}) == "cuda"
    assert suggestion("tpu", devices, aliases={"tpu": None}) is None


def test_the_message_names_the_argument_the_value_the_suggestion_and_what_is_allowed():
    assert did_you_mean("adm", ("adam", "sgd")) == "did you mean 'adam'? "
    assert did_you_mean("lbfgs", ("adam", "sgd")) == ""
    e = not_one_of("optimizer", "adm", ("adam", "sgd"))
    assert str(e) == "optimizer='adm' is not valid; did you mean 'adam'? allowed: adam, sgd"
    e = not_one_of("model", "x", ("a",), what="is not a known model")
    assert str(e) == "model='x' is not a known model; allowed: a"
