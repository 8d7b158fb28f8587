"""The explorer in Jupyter: ipywidgets sliders whose moves change the decoded image's bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

import aelab
from aelab.apps.explorer import open_spaces
from aelab.apps.explorer.widget import Explorer
from aelab.runs.run import load_run


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_a_slider_per_unit_decodes_as_it_moves(workshop):
    space = open_spaces(workshop / "deep")["deep"]
    ex = Explorer(space)
    assert len(ex.sliders) == space.dim and not ex.pca
    # it starts at the first held-out image: its code, its decode
    np.testing.assert_allclose(ex.code, space.codes_heldout[0], rtol=1e-5, atol=1e-6)
    want = space.decode(space.check_codes(space.codes_heldout[0]))[0]
    assert np.array_equal(_pixels(ex.image.value).reshape(want.shape), want)
    alive = int(np.flatnonzero(~space.dead)[0])
    before = ex.image.value
    ex.sliders[alive].value = ex.sliders[alive].max
    assert ex.image.value != before and ex.code[alive] == ex.sliders[alive].max
    assert all("(dead)" in s.description for s, d in zip(ex.sliders, space.dead) if d)
    before = ex.image.value
    ex.random("units")
    assert ex.image.value != before
    ex.start_from(3)
    np.testing.assert_allclose(ex.code, space.codes_heldout[3], rtol=1e-5, atol=1e-6)


def test_principal_component_sliders_for_a_wide_code(workshop):
    space = open_spaces(workshop / "shallow")["shallow"]
    ex = Explorer(space)
    assert ex.pca and len(ex.sliders) == 32
    assert sum(s.layout.display != "none" for s in ex.sliders) == 10
    ex.shown.value = 4
    assert sum(s.layout.display != "none" for s in ex.sliders) == 4
    start, before = ex.code.copy(), ex.image.value
    ex.sliders[0].value = ex.sliders[0].max
    assert ex.image.value != before
    # the code moved along the first component only
    moved = ex.code - start
    direction = space.pca.components_[0]
    np.testing.assert_allclose(moved, (moved @ direction) * direction, atol=1e-9)
    ex.sliders[7].value = ex.sliders[7].max  # hidden: shown only 4, it moves nothing
    np.testing.assert_allclose(ex.code - start, moved, atol=1e-12)


def test_explore_takes_a_run_or_its_folder(workshop):
    import ipywidgets

    run = load_run(workshop / "vae")
    assert isinstance(aelab.explore(run), ipywidgets.VBox)
    assert isinstance(aelab.explore(run, split=run.data(carve=False)), ipywidgets.VBox)
    assert isinstance(aelab.explore(workshop / "vae"), ipywidgets.VBox)
