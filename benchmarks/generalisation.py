"""Does the ``faces`` recipe beat PCA on people it never saw? Every number of issue 17, in one run.

    python benchmarks/generalisation.py --olivetti-mat olivettifaces.mat --out results/gen.json

Sections (``--sections``, default all):

``search``
    The choices, made on validation people only: Olivetti people 0-23 (with mirrors) train,
    people 24-29 validate; the test people 30-39 are not loaded. The untrained model (PCA's basis
    plus a fitted pose) and each fine-tuning epoch are scored on the validation people, against
    PCA fitted on 0-23; the best epoch is the recipe's schedule.
``olivetti``
    The recipe as shipped, trained on people 0-29 with mirrors and tested on 30-39 through
    ``aelab.train_run`` and ``aelab evaluate``'s code path: held-out MSE over PCA's at the same
    code size (fitted on the same training images), 1-NN identity accuracy of the test people's
    codes (leave-one-out, own mirror excluded), train seconds; 3 seeds at code size 30, one at
    10, 20, 50 and 100 (``--curve-seeds`` for more).
``mnist``
    The shipped 5,000 digits, 10% held out stratified, code size 30.

Writes one JSON file (never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from aelab.analysis import metrics
from aelab.analysis.spread import summary as spread_summary
from aelab.apps.evaluation import evaluate
from aelab.bench.machine import cpu_flags
from aelab.data import load_olivetti, mirror
from aelab.data.spec import DataSpec
from aelab.models import build_model
from aelab.runs.training import train_run
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer

SECTIONS = ("search", "olivetti", "mnist")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def search(data_home: str, epochs: int = 30) -> dict:
    """Validation-people scores of the untrained model and of every fine-tuning epoch."""
    data = load_olivetti(data_home, download=False)
    people = data.labels
    train = torch.from_numpy(mirror(data.subset(people < 24)).images)
    val = torch.from_numpy(data.subset((people >= 24) & (people < 30)).images)
    pca = metrics.pca_baseline(train.numpy(), val.numpy(), n_components=30)
    pca_mse = metrics.mse(val.numpy(), pca.x_test_hat)
    r = resolve("faces", (1, 64, 64), train={"epochs": epochs, "validation": 0.2, "patience": 5})
    torch.manual_seed(0)
    model = build_model("faces", (1, 64, 64))
    trainer = Trainer(model, r.train)
    model.init_from_data(train)
    start = float(trainer.evaluate(val))
    history = trainer.fit(train, x_validation=val, progress=False)
    curve = [{"epoch": 0, "ratio": start / pca_mse}] + [
        {"epoch": h["epoch"], "ratio": h["validation_loss"] / pca_mse} for h in history
    ]
    best = min(curve, key=lambda p: p["ratio"])
    log(
        f"search: untrained {curve[0]['ratio']:.4f}, best epoch {best['epoch']} {best['ratio']:.4f}"
    )
    return {"pca30_validation_mse": pca_mse, "curve": curve, "best_epoch": best["epoch"]}


def one_run(data: DataSpec, code: int, seed: int, folder: Path) -> dict:
    r = resolve("faces", _shape(data), model={"latent_dim": code}, train={"seed": seed})
    start = time.perf_counter()
    out = folder / f"{data.source}-faces-{code}-{seed}"
    train_run("faces", data, r.train, out, model_overrides={"latent_dim": code}, progress=False)
    seconds = time.perf_counter() - start
    m = evaluate(out, data_home=data.data_home)["models"]["faces"]
    log(f"{data.source} code {code} seed {seed}: ratio {m['ratio']:.4f} in {seconds:.0f} s")
    return {**m, "code": code, "seed": seed, "seconds": seconds}


_SHAPES: dict[str, tuple[int, ...]] = {"olivetti": (1, 64, 64), "mnist": (1, 28, 28)}


def _shape(data: DataSpec) -> tuple[int, ...]:
    return _SHAPES[data.source]


def summary(rows: list[dict]) -> dict:
    """The ratio over the seeds' runs, through the report's own summary
    (:func:`aelab.analysis.spread.summary`: mean, standard deviation, 95% interval)."""
    spread = spread_summary([r["ratio"] for r in rows])
    return {
        "ratio_mean": spread["mean"],
        "ratio_std": spread["std"] if spread["std"] is not None else 0.0,
        "ratio_ci95": spread["ci95"],
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/generalisation.py")
    p.add_argument("--olivetti-mat", required=True, help="the original olivettifaces.mat")
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--seeds", type=int, default=3, help="seeds at code size 30")
    p.add_argument("--curve-seeds", type=int, default=1, help="seeds at the other code sizes")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"--out {out} exists; choose a new file")
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"--sections {unknown[0]} is not valid; allowed: {', '.join(SECTIONS)}")
    result: dict = {
        "machine": {
            "cpu_flags": cpu_flags(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
    }
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section: a stopped run keeps what it measured
        out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "olivettifaces.mat").write_bytes(Path(args.olivetti_mat).read_bytes())
        runs = Path(tmp) / "runs"
        if "search" in sections:
            result["search"] = search(str(home))
            save()
        if "olivetti" in sections:
            faces = DataSpec("olivetti", data_home=str(home), mirror=True, holdout_people=10)
            result["olivetti"] = by_size = {}
            for code in (30, 10, 20, 50, 100):
                seeds = args.seeds if code == 30 else args.curve_seeds
                by_size[code] = summary([one_run(faces, code, s, runs) for s in range(seeds)])
                save()
        if "mnist" in sections:
            digits = DataSpec("mnist", data_home=str(home))
            result["mnist"] = summary([one_run(digits, 30, s, runs) for s in range(args.seeds)])
            save()
    save()
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
