"""A model's latent space as the explorer sees it: slider ranges from the codes (a VAE's from its
prior), principal-component sliders for wide codes, maps and the way back from them."""

from __future__ import annotations

import numpy as np
import pytest

from aelab.apps.explorer.space import MAX_UNIT_SLIDERS, PRIOR_SIGMAS, LatentSpace
from aelab.data.prepare import Split
from aelab.runs.run import load_run


def _space(workshop, name: str, n: int = 120) -> LatentSpace:
    run = load_run(workshop / name)
    split = run.data(carve=False)
    small = Split(split.train.subset(np.arange(n)), split.heldout.subset(np.arange(n // 4)))
    return LatentSpace(run, small)


def test_unit_sliders_span_the_training_codes_and_mark_dead_units(workshop):
    s = _space(workshop, "deep")
    sliders = s.sliders()
    assert s.mode == "units" and len(sliders) == s.dim <= MAX_UNIT_SLIDERS
    for i, sl in enumerate(sliders):
        assert sl.dead == bool(s.dead[i])
        if not sl.dead:
            assert (sl.low, sl.high) == (s.codes_train[:, i].min(), s.codes_train[:, i].max())
        assert sl.low <= sl.value <= sl.high and sl.high > sl.low


def test_a_variational_code_spans_its_prior(workshop):
    s = _space(workshop, "vae")
    assert all((sl.low, sl.high, sl.value) == (-PRIOR_SIGMAS, PRIOR_SIGMAS, 0.0)
               for sl in s.sliders())  # fmt: skip
    p = s.points("pca")  # a 2-unit code is its own map, and the way back is the point itself
    assert p["method"] == "code" and p["invertible"]
    np.testing.assert_allclose(p["x"], np.concatenate([s.codes_train, s.codes_heldout])[:, 0],
                               atol=1e-5)  # fmt: skip


def test_a_wide_code_gets_component_sliders_and_an_invertible_map(workshop):
    s = _space(workshop, "shallow")
    assert s.dim > MAX_UNIT_SLIDERS and s.mode == "pca"
    meta = s.describe()
    assert len(meta["sliders"]) == len(meta["pca"]["components"]) == min(32, len(s.codes_train))
    p = s.points("pca")
    proj = np.asarray(p["projection"]["components"])
    code = s.codes_heldout[2]
    xy = (code - np.asarray(p["projection"]["mean"])) @ proj.T
    assert xy == pytest.approx([p["x"][len(s.train) + 2], p["y"][len(s.train) + 2]], abs=1e-4)


def test_tsne_has_no_way_back_and_random_codes_stay_in_range(workshop):
    s = _space(workshop, "conv", n=60)
    p = s.points("tsne")
    assert not p["invertible"] and len(p["x"]) == len(s.train) + len(s.heldout)
    lo, hi = s.codes_train.min(0), s.codes_train.max(0)
    for seed in range(5):
        z = s.random_code("units", seed)
        assert np.all(z >= lo - 1e-9) and np.all(z <= hi + 1e-9)
        assert s.random_code("pca", seed).shape == (s.dim,)
    with pytest.raises(ValueError, match="approach='gan'"):
        s.random_code("gan", 0)
    with pytest.raises(ValueError, match="method='umap'"):
        s.points("umap")


def test_every_unit_has_a_page_most_useful_first(workshop):
    space = _space(workshop, "deep")
    units = space.unit_list()
    assert sorted(u["unit"] for u in units) == list(range(space.dim))
    useful = [u["usefulness"] for u in units]
    assert useful == sorted(useful, reverse=True)
    assert space.unit_png(units[0]["unit"]).startswith(b"\x89PNG")
    for bad in (-1, space.dim, True, "1"):
        with pytest.raises(ValueError, match=r"unit=.* is not valid"):
            space.unit_png(bad)
