"""How many search steps does the ``faces`` encoder need under the quick schedule?

    python benchmarks/faces_refine.py --out results/faces-refine.json

The ``faces`` encoder finds each code by gradient steps (Adam) from PCA's projection; the steps
are most of its training time and of its part of a report. Sections (``--sections``, default
both):

``validation``
    The choice, on validation people only: the quick schedule on Olivetti (as ``aelab run``
    trains it, with mirrors) with a fifth of the training people carved out
    (``validation=0.2``); each candidate ``steps:lr`` trained on every seed, its final
    validation MSE (its own encoder's) and training seconds. Then, on the first seed's model of
    the first candidate, the encoder alone at every ``steps`` x ``lr`` of a grid: validation
    MSE and seconds.
``test``
    The confirmation on the test people, after the choice: the first candidate (today's) and
    ``--chosen`` trained on the whole training set, their held-out MSE per seed.

Writes one JSON file (never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from aelab.analysis.spread import summary
from aelab.bench.machine import cpu_flags
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec
from aelab.runs.training import train_run

SECTIONS = ("validation", "test")
GRID_STEPS = (25, 40, 50, 60, 75, 100)
GRID_LR = (0.02, 0.03, 0.04, 0.06)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pair(text: str) -> tuple[int, float]:
    steps, lr = text.split(":")
    return int(steps), float(lr)


def train(split, data, steps, lr, seed, folder, validation):
    """One quick-schedule run: its history, the split it trained on, and its model."""
    start = time.perf_counter()
    run = train_run(
        "faces", data, {"seed": seed, "validation": validation}, folder / f"{steps}-{lr}-{seed}",
        schedule="quick", model_overrides={"refine_steps": steps, "refine_lr": lr},
        split_data=split, progress=False,
    )  # fmt: skip
    return run, time.perf_counter() - start


def candidates(split, data, pairs, seeds, folder, validation: float) -> dict:
    key = "validation_loss" if validation else "heldout_loss"
    out = {}
    for steps, lr in pairs:
        rows = []
        for seed in range(seeds):
            run, seconds = train(split, data, steps, lr, seed, folder, validation)
            rows.append({"seed": seed, "mse": run.history[-1][key], "seconds": seconds})
            log(f"{steps}:{lr} seed {seed}: {key} {rows[-1]['mse']:.6f} in {seconds:.1f} s")
            shutil.rmtree(run.path)
        out[f"{steps}:{lr}"] = {"mse": summary([r["mse"] for r in rows]), "runs": rows}
    first = next(iter(out.values()))["runs"]
    for entry in list(out.values())[1:]:  # against today's, seed by seed
        entry["minus_first"] = summary([r["mse"] - f["mse"] for r, f in zip(entry["runs"], first)])
    return out


def grid(split, data, steps, lr, folder) -> dict:
    """The first seed's model, its encoder alone at every steps x lr, on the validation people."""
    run, _ = train(split, data, steps, lr, 0, folder, 0.2)
    x = torch.from_numpy(split.with_validation(0.2, data).validation.images)
    model = run.model.eval()
    out = {}
    for s in GRID_STEPS:
        for r in GRID_LR:
            model.config.refine_steps, model.config.refine_lr = s, r
            start = time.perf_counter()
            with torch.no_grad():
                x_hat = model.decode(model.encode(x))
            seconds = time.perf_counter() - start
            out[f"{s}:{r}"] = {"mse": float(((x_hat - x) ** 2).mean()), "seconds": seconds}
    shutil.rmtree(run.path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/faces_refine.py")
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", default="100:0.02,60:0.06,50:0.06",
                   help="steps:lr pairs, today's first")  # fmt: skip
    p.add_argument("--chosen", default="60:0.06", help="the candidate the test section confirms")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"--out {out} exists; name a new file")
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"--sections {unknown[0]} is not valid; allowed: {', '.join(SECTIONS)}")
    pairs = [_pair(c) for c in args.candidates.split(",")]
    data = DataSpec(source="olivetti", mirror=True)  # aelab run's data and split
    split = prepare_data(data)
    result: dict = {
        "machine": {"cpu_flags": cpu_flags(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "data": {"source": "olivetti", "mirror": True, "schedule": "quick"},
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section: a stopped run keeps what it measured
        out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "validation" in sections:
            result["validation"] = candidates(split, data, pairs, args.seeds, folder, 0.2)
            save()
            result["encoder_grid"] = grid(split, data, *pairs[0], folder)
            save()
        if "test" in sections:
            chosen = [pairs[0], _pair(args.chosen)]
            result["test"] = candidates(split, data, chosen, args.seeds, folder, 0.0)
            save()
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
