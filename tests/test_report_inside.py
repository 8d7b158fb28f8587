"""The report's "Looking inside" section: its numbers in metrics.json are the pure functions of
aelab.analysis.units and aelab.analysis.keeps recomputed from the saved runs, its figures are
written and shown on the page, and with one seed the page says stability needs several."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aelab.analysis import inside_measure, keeps, units
from aelab.runs.open import open_runs


def _sample(split, mirror: bool):
    idx = inside_measure.sample(len(split.heldout.images), mirror)
    groups = np.tile(np.arange(len(idx) // 2), 2) if mirror else None
    return idx, split.heldout.images[idx], np.asarray(split.heldout.labels)[idx], groups


def test_the_inside_numbers_are_the_pure_functions_of_the_runs(workshop):
    metrics = json.loads((workshop / "metrics.json").read_text())
    opened = open_runs(workshop, data=True)
    split = opened.split
    idx, x, labels, groups = _sample(split, mirror=True)  # the workshop mirrors its images
    fit, test = inside_measure.probe_split(labels, mirror=True)
    for name in ("deep", "vae"):
        run = next(iter(opened.groups[name].values()))
        got = metrics["models"][name]["inside"]
        codes_tr = run.encode(split.train.images)
        codes = run.encode(split.heldout.images)[idx]
        x_hat = run.decode(codes)
        assert got["n_images"] == len(idx) <= inside_measure.LIMIT
        assert got["fraction_unexplained"] == pytest.approx(
            keeps.fraction_unexplained(x, x_hat), rel=1e-4
        )
        page = units.unit_pages(run.decode, codes_tr, codes, x)
        top = page["order"][: inside_measure.TOP_UNITS]
        assert [u["unit"] for u in got["units"]] == top.tolist()
        assert [u["usefulness"] for u in got["units"]] == pytest.approx(
            page["usefulness"][top], rel=1e-3, abs=1e-7
        )
        assert [u["density"] for u in got["units"]] == pytest.approx(page["density"][top])
        assert [u["dead"] for u in got["units"]] == page["dead"][top].tolist()
        assert got["n_units"] == run.model.latent_dim
        # held-out digits 8 and 9 never occur in training: the probe learns them on half
        kept = keeps.preservation(
            x[fit], labels[fit], x[test], labels[test], {"model": x_hat[test]},
            split.train.images.mean(axis=0),
        )  # fmt: skip
        score = kept["logistic"]["reconstructed"]["model"]["score"]
        assert got["preservation"]["logistic"]["score"] == pytest.approx(score, abs=0.02)
        assert got["precision_at_5"]["codes"] == pytest.approx(
            keeps.precision_at_k(codes, labels, 5, groups), abs=0.01
        )
        assert got["precision_at_5"]["pixels"] == keeps.precision_at_k(x, labels, 5, groups)
        assert 0 <= got["pca_preservation"]["logistic"]["score"] <= 1.5
        assert "stability" not in got  # one seed


def test_the_section_is_on_the_page_with_its_figures_and_says_stability_needs_seeds(workshop):
    page = (workshop / "report.html").read_text()
    metrics = json.loads((workshop / "metrics.json").read_text())
    assert '<h2 id="inside">Looking inside</h2>' in page and 'id="inside-table"' in page
    assert "Whether units come back across seeds needs several seeds" in page
    assert "<code>--seeds 0,1,2</code>" in page
    files = ["misleading_mse.png"]
    for name in metrics["models"]:
        files += [f"units_{name}.png", f"neighbours_{name}.png", f"morph_{name}.png"]
    for file in files:
        assert (workshop / "figures" / file).is_file(), file
        assert f'href="figures/{file}"' in page, file
    assert page.index('id="inside"') < page.index('id="units_deep"')
    assert "aelab explore shows every unit" in page or "aelab explore shows the same" in page


@pytest.mark.slow
def test_two_seeds_give_each_models_stability_beside_pcas(tmp_path):
    from aelab.cli import main

    out = tmp_path / "run"
    code = main(["run", "--data", "digits", "--models", "deep,vae", "--seeds", "0,1",
                 "--epochs", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    opened = open_runs(out, data=True)
    split = opened.split
    x_tr = split.train.images
    for name, seeds in opened.groups.items():
        dirs = [units.directions(r.decode, r.encode(x_tr))[0] for r in seeds.values()]
        got = metrics["models"][name]["inside"]["stability"]
        assert got["seeds"] == 2
        assert got["mean"] == pytest.approx(units.stability(dirs).mean(), abs=1e-3)
        tr = inside_measure.sample(len(x_tr), False, inside_measure.PCA_LIMIT)
        pca = units.pca_stability(x_tr[tr], len(dirs[0]), resamples=inside_measure.RESAMPLES)
        assert got["pca_mean"] == pytest.approx(pca.mean())
        assert (out / "figures" / f"stability_{name}.png").is_file()
    page = (out / "report.html").read_text()
    assert 'id="stability_deep"' in page
    assert "needs several seeds" not in page


def test_the_unit_pages_titles_stay_inside_the_figure_on_a_phones_screen():
    """The narrow figure (a phone's screen) breaks each unit's title in two: in one line, the
    longest model name's title ran past both sides of the 3.5-inch figure."""
    from aelab.apps import report_inside
    from aelab.plots import inside
    from aelab.plots.style import NARROW_WIDTH

    rng = np.random.default_rng(0)
    w = rng.normal(size=(12, 64 * 64))  # 12 units, each of little use: long titles

    def decode(z):
        return np.clip(0.5 + 0.002 * (np.asarray(z) @ w), 0, 1).reshape(len(z), 1, 64, 64)

    codes = rng.normal(size=(40, 12))
    x = np.clip(decode(codes) + 0.2 * rng.normal(size=(40, 1, 64, 64)), 0, 1)
    a = {"pages": units.unit_pages(decode, codes, codes, x)}
    k = report_inside.NARROW_IMAGES
    for narrow in (True, False):
        pages = report_inside._pages(a, x, "denoising", k, narrow)
        assert ("\n" in pages[0]["title"]) is narrow

    def overflowing(narrow: bool) -> list[str]:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        pages = report_inside._pages(a, x, "denoising", k, narrow)
        fig = inside.unit_pages(pages, tile=NARROW_WIDTH / (k + 4))
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        titles = [sub._suptitle for sub in fig.subfigs]  # each unit's, and its axes' titles
        titles += [t for ax in fig.get_axes() for t in (ax.title, ax._left_title)]
        extents = [(t.get_text(), t.get_window_extent(renderer)) for t in titles if t.get_text()]
        return [s for s, e in extents if e.x0 < fig.bbox.x0 - 1 or e.x1 > fig.bbox.x1 + 1]

    assert overflowing(narrow=False)  # the one-line titles: what the check catches
    assert overflowing(narrow=True) == []
