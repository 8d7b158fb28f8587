"""Dead code units under the quick schedule, with and without a centred input, over seeds.

    python benchmarks/dead_units.py --out benchmarks/results/cpu-2core-dead-units.json

The first command's split of Olivetti (mirrors, the last 4 of 40 people held out), each of the
notebook's models with a ReLU code (deep, conv, denoising) trained under the quick schedule as
``aelab run`` trains it, once with the encoder's input centred on the training mean
(``centre_input=True``, the quick schedule's default since it was measured here) and once as the
notebook built it; for each, over ``--seeds``: the code units that never vary over the training
images (dead), the held-out MSE and its ratio to PCA's at the same code size, each as mean, std
and 95% interval (the report's ``summary``), and the paired difference per seed.

Writes one JSON file (never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aelab.analysis import metrics
from aelab.analysis.spread import summary
from aelab.bench.machine import cpu_flags
from aelab.data.prepare import prepare_data
from aelab.data.spec import DataSpec
from aelab.models import build_model
from aelab.training.recipes import resolve
from aelab.training.trainer import Trainer

MODELS = ("deep", "conv", "denoising")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def one(name: str, split, centre: bool, seed: int) -> dict:
    x_tr = torch.from_numpy(split.train.images)
    x_te = split.heldout.images
    r = resolve(name, x_tr.shape[1:], schedule_name="quick", n_train=len(x_tr),
                model={"centre_input": centre}, train={"seed": seed, "device": "cpu"})  # fmt: skip
    torch.manual_seed(seed)
    model = build_model(name, x_tr.shape[1:], centre_input=centre)
    start = time.perf_counter()
    Trainer(model, r.train).fit(x_tr, progress=False)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        codes = model.encode(x_tr).numpy()
        x_hat = model.decode(model.encode(torch.from_numpy(x_te))).numpy()
    pca = metrics.pca_baseline(split.train.images, x_te, n_components=model.latent_dim)
    mse = metrics.mse(x_te, x_hat)
    return {
        "dead": int(metrics.dead_units(codes).sum()),
        "code_size": model.latent_dim,
        "epochs": r.train.epochs,
        "heldout_mse": mse,
        "pca_ratio": mse / metrics.mse(x_te, pca.x_test_hat),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new file")
    seeds = [int(s) for s in args.seeds.split(",")]
    split = prepare_data(DataSpec("olivetti", mirror=True))
    result: dict = {
        "machine": {
            "cpu_flags": cpu_flags(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "data": {
            "name": "olivetti",
            "mirror": True,
            "n_train": len(split.train),
            "n_heldout": len(split.heldout),
        },
        "seeds": seeds,
        "models": {},
    }
    for name in args.models.split(","):
        runs = {}
        for centre in (False, True):
            runs[centre] = []
            for seed in seeds:
                r = one(name, split, centre, seed)
                log(f"{name} centre={centre} seed={seed}: {r}")
                runs[centre].append(r)
        entry = {}
        for key, label in ((False, "notebook"), (True, "centred")):
            entry[label] = {
                k: summary([r[k] for r in runs[key]])
                for k in ("dead", "heldout_mse", "pca_ratio", "seconds")
            }
            entry[label]["per_seed"] = runs[key]
        entry["code_size"] = runs[True][0]["code_size"]
        entry["epochs"] = runs[True][0]["epochs"]
        entry["paired"] = {  # centred minus notebook, seed by seed
            k: summary([c[k] - n[k] for c, n in zip(runs[True], runs[False])])
            for k in ("dead", "heldout_mse")
        }
        result["models"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    for name, e in result["models"].items():
        n, c = e["notebook"], e["centred"]
        log(f"{name}: dead {n['dead']['mean']:.1f}±{n['dead']['std'] or 0:.1f} -> "
            f"{c['dead']['mean']:.1f}±{c['dead']['std'] or 0:.1f} of {e['code_size']}; "
            f"MSE {n['heldout_mse']['mean']:.5f}±{n['heldout_mse']['std'] or 0:.5f} -> "
            f"{c['heldout_mse']['mean']:.5f}±{c['heldout_mse']['std'] or 0:.5f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
