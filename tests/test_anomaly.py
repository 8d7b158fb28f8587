"""Anomaly scores: the threshold's arithmetic, and the estimator's outlier methods, which agree
with each other and hold the false-positive rate they were set at on normal data."""

from __future__ import annotations

import numpy as np
import pytest

from aelab import Autoencoder
from aelab.analysis import anomaly


def test_threshold_and_p_values_by_hand():
    cal = anomaly.calibrate([-5.0, -1.0, -3.0, -2.0, -4.0, -0.5, -0.1, -0.2, -0.3])  # n = 9
    # fpr 0.2: m = floor(0.2 * 10) - 1 = 1 -> the 2nd smallest score
    assert anomaly.threshold_at(cal, 0.2) == -4.0
    assert anomaly.threshold_at(cal, 0.05) == -np.inf  # 0.05 * 10 < 1: too few to say
    np.testing.assert_allclose(anomaly.p_values(cal, [-6.0, -4.0, -0.05]), [0.1, 0.3, 1.0])


def test_p_values_at_most_fpr_are_exactly_the_scores_below_the_threshold():
    rng = np.random.default_rng(0)
    for n in (1, 7, 50, 333):
        cal = anomaly.calibrate(rng.standard_normal(n))
        s = np.concatenate([rng.standard_normal(500), cal])  # ties with the calibration too
        for fpr in (0.01, 0.05, 0.1, 0.3):
            t = anomaly.threshold_at(cal, fpr)
            assert np.array_equal(anomaly.p_values(cal, s) <= fpr, s < t), (n, fpr)


def test_the_rate_holds_on_new_normal_scores():
    rng = np.random.default_rng(1)
    cal = anomaly.calibrate(rng.standard_normal(1000))
    fresh = rng.standard_normal(200_000)
    for fpr in (0.01, 0.05, 0.2):
        assert abs(np.mean(fresh < anomaly.threshold_at(cal, fpr)) - fpr) < 0.01


def _data(seed=0):
    """Normal samples near a 3-D subspace of 20-D; outliers uniform in the cube."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((3, 20))
    normal = np.clip(rng.standard_normal((1600, 3)) @ basis * 0.08 + 0.5, 0, 1)
    return normal, rng.uniform(0, 1, (100, 20))


@pytest.fixture(scope="module")
def fitted():
    normal, outliers = _data()
    ae = Autoencoder(model="deep", latent_dim=3, hidden=(32,), epochs=15, batch_size=64,
                     random_state=0, device="cpu", calibration=0.25).fit(normal[:1200])  # fmt: skip
    return ae, normal[1200:], outliers


@pytest.mark.slow
def test_scores_decisions_and_predictions_agree(fitted):
    ae, normal, outliers = fitted
    X = np.concatenate([normal, outliers])
    s, d, p = ae.score_samples(X), ae.decision_function(X), ae.predict(X)
    np.testing.assert_allclose(d, s - ae.threshold_)
    assert set(np.unique(p)) <= {-1, 1} and np.array_equal(p == -1, d < 0)
    assert np.array_equal(ae.p_values(X) <= ae.fpr, p == -1)
    assert ae.offset_ == ae.threshold_
    # the score is the negative mean of the error map, in X's units
    np.testing.assert_allclose(-ae.error_map(X).mean(axis=1), s)
    assert ae.error_map(X).shape == X.shape
    np.testing.assert_allclose(ae.score(X), s.mean())


def test_the_threshold_holds_its_rate_on_unseen_normals_and_catches_outliers(fitted):
    ae, normal, outliers = fitted
    assert abs(np.mean(ae.predict(normal) == -1) - 0.05) <= 0.03  # 400 unseen normal samples
    assert np.mean(ae.predict(outliers) == -1) > 0.9
    assert len(ae.calibration_scores_) == 300  # 25% of the 1,200 held out of training


def test_contamination_is_the_same_threshold_spelled_as_pyod_does(fitted):
    ae, _, _ = fitted
    at_ten = anomaly.threshold_at(ae.calibration_scores_, 0.1)
    try:
        ae.set_params(contamination=0.1)  # the threshold follows the parameter
        assert ae.threshold_ == at_ten
        ae.set_params(contamination=None, fpr=0.1)
        assert ae.threshold_ == at_ten
    finally:
        ae.set_params(contamination=None, fpr=0.05)


def test_set_threshold_from_other_normal_data(fitted):
    ae, normal, _ = fitted
    kept = ae.calibration_scores_
    try:
        ae.set_threshold(normal)
        assert len(ae.calibration_scores_) == len(normal)
        assert np.mean(ae.predict(normal) == -1) <= 0.05
    finally:
        ae.calibration_scores_ = kept


def test_save_and_load_keep_the_threshold(fitted, tmp_path):
    ae, normal, outliers = fitted
    ae.save(tmp_path / "ae")
    back = Autoencoder.load(tmp_path / "ae")
    X = np.concatenate([normal, outliers])
    assert back.threshold_ == ae.threshold_
    np.testing.assert_array_equal(back.predict(X), ae.predict(X))
    np.testing.assert_allclose(back.p_values(X), ae.p_values(X))


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"fpr": 0}, "fpr=0"),
        ({"fpr": 1.5}, "fpr=1.5"),
        ({"fpr": "5%"}, "fpr='5%'"),
        ({"contamination": 0.7}, "contamination=0.7"),
        ({"calibration": 1.0}, "calibration=1.0"),
        ({"calibration": -0.1}, "calibration=-0.1"),
        ({"anomaly_score": "nll"}, "anomaly_score='nll' is not valid; allowed"),
        ({"anomaly_score": "elbo", "model": "deep"}, "anomaly_score='elbo' is not valid for"),
    ],
)
def test_bad_rates_are_refused_before_training(params, words):
    X, _ = _data()
    with pytest.raises(ValueError, match=words.replace("%", "%")) as e:
        Autoencoder(epochs=1, device="cpu", **params).fit(X[:50])
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_run_of_aelab_train_has_scores_but_asks_for_a_threshold(workshop):
    est = Autoencoder.load(workshop / "deep")
    from aelab.runs.run import load_run

    x = load_run(workshop / "deep").data(carve=False).heldout.images[:20]
    assert est.score_samples(x).shape == (20,)
    with pytest.raises(ValueError, match="set_threshold"):
        est.predict(x)
    est.set_threshold(x)
    assert est.predict(x).shape == (20,)


def test_elbo_by_hand_and_below_the_importance_sampled_likelihood():
    """The ELBO: closed-form KL plus the mean Gaussian log-likelihood over the draws, computed
    here step by step; on average no higher than the k=200 importance-sampled log p(x)."""
    import math

    import torch

    from aelab.models import build_model
    from aelab.models.likelihood import elbo, log_likelihood, observation_sigma

    torch.manual_seed(0)
    model = build_model("vae", (1, 6, 6), latent_dim=3).eval()
    x = torch.rand(5, 1, 6, 6)
    got = elbo(model, x, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        eps = torch.randn((4, 5, 3), generator=torch.Generator().manual_seed(1))
        sigma, d = observation_sigma(model), 36
        want = []
        for i in range(5):
            terms = []
            for s in range(4):
                z = mu[i] + torch.exp(0.5 * logvar[i]) * eps[s, i]
                err = float(((model.decode(z[None])[0] - x[i]) ** 2).sum())
                terms.append(-err / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2))
            kl = 0.5 * float((mu[i] ** 2 + logvar[i].exp() - 1 - logvar[i]).sum())
            want.append(sum(terms) / 4 - kl)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    g = torch.Generator().manual_seed(2)
    bound = elbo(model, x, 200, generator=g).mean()
    assert float(bound) <= float(log_likelihood(model, x, 200, generator=g).mean()) + 1e-6


@pytest.mark.slow
def test_the_elbo_as_the_anomaly_score_of_a_vae():
    normal, outliers = _data(1)
    ae = Autoencoder(model="vae", latent_dim=3, hidden=(32,), epochs=10, batch_size=64,
                     random_state=0, device="cpu", calibration=0.25,
                     anomaly_score="elbo").fit(normal[:1200])  # fmt: skip
    X = np.concatenate([normal[1200:], outliers])
    s = ae.score_samples(X)
    np.testing.assert_array_equal(s, ae.score_samples(X))  # seeded: the same X, the same scores
    recon = -ae.error_map(X).mean(axis=1)
    assert not np.allclose(s, recon)  # nats of the scaled sample, not the error
    assert np.array_equal(ae.predict(X) == -1, s < ae.threshold_)
    assert abs(np.mean(ae.predict(normal[1200:]) == -1) - 0.05) <= 0.04
    assert np.median(ae.score_samples(outliers)) < np.median(ae.score_samples(normal[1200:]))
