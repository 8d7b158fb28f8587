"""Does an aelab model tell unseen kinds of image from normal ones better than PCA and PyOD?

    pip install pyod   # the benchmark's extra, never a dependency of aelab
    python benchmarks/anomaly.py --olivetti-mat olivettifaces.mat --out results/anomaly.json

Two one-class-out tasks, every rotation:

``mnist``
    The shipped 5,000 digits. For each digit d: the other nine are normal; 80% of their images
    train (stratified, seeded), 20% are the normal test images; every image of d is an anomaly.
``olivetti``
    40 people, 10 images each, in 10 rotations of 4 people: those 4 are anomalies (40 images);
    of the other 36, images 0-6 of each train (with true mirrors), image 7 sets the threshold
    (``set_threshold``) and images 8-9 are the normal test images (72).

Scores are the reconstruction error (higher = more anomalous). Per rotation and method: the
ROC-AUC (anomalies positive) and wall time; for aelab, also the realised false-positive rate on
the normal test images of its threshold at ``fpr=0.05`` (mnist: set at fit on the 10% of the
training images it held out; Olivetti: on each training person's image 7). Methods: each
``--models`` recipe through :class:`aelab.Autoencoder`, PCA with as many components as that
model's code, PyOD's ``AutoEncoder`` with its defaults.
Writes one JSON file (never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from aelab import Autoencoder
from aelab.bench.machine import machine_info
from aelab.data import load_dataset, load_olivetti, mirror

REPO = Path(__file__).resolve().parents[1]


def mnist_rotations(seed: int):
    data = load_dataset("mnist")
    x, y = data.images[:, 0], data.labels
    rng = np.random.default_rng(seed)
    for d in range(10):
        normal = np.flatnonzero(y != d)
        test = np.concatenate([rng.choice(np.flatnonzero(y == k), int(0.2 * np.sum(y == k)),
                                          replace=False) for k in range(10) if k != d])  # fmt: skip
        train = np.setdiff1d(normal, test)
        yield f"digit {d}", x[train], None, x[test], x[y == d]


def olivetti_rotations(mat: Path):
    with tempfile.TemporaryDirectory() as home:  # a data home holding only the .mat file
        (Path(home) / "olivettifaces.mat").write_bytes(mat.read_bytes())
        faces = load_olivetti(home, download=False)
    x, y = faces.images, faces.labels
    within = np.arange(len(y)) % 10  # each person's images are consecutive
    for r in range(10):
        out = np.isin(y, np.arange(4 * r, 4 * r + 4))
        train = faces.subset(np.flatnonzero(~out & (within < 7)))
        train = mirror(train).images[:, 0]
        # image 7 of each training person calibrates: a random share of the mirrored training
        # set would hold faces whose mirror was trained on, and set the threshold too low
        calibration = x[~out & (within == 7), 0]
        normal = x[~out & (within >= 8), 0]
        yield f"people {4 * r}-{4 * r + 3}", train, calibration, normal, x[out, 0]


def auc(normal_scores, anomaly_scores) -> float:
    labels = np.r_[np.zeros(len(normal_scores)), np.ones(len(anomaly_scores))]
    return float(roc_auc_score(labels, np.r_[normal_scores, anomaly_scores]))


def run_task(rotations, models, epochs, seed) -> dict:
    results: dict = {}

    def add(method, rotation, value):
        results.setdefault(method, []).append({"rotation": rotation, **value})

    for rotation, train, calibration, normal, anomalies in rotations:
        flat = [a.reshape(len(a), -1) for a in (train, normal, anomalies)]
        for name in models:
            t = time.perf_counter()
            ae = Autoencoder(model=name, epochs=epochs[name], random_state=seed, device="cpu",
                             calibration=0.1 if calibration is None else 0)  # fmt: skip
            ae.fit(train)
            if calibration is not None:
                ae.set_threshold(calibration)
            a = auc(-ae.score_samples(normal), -ae.score_samples(anomalies))
            fpr = float(np.mean(ae.predict(normal) == -1))
            add(name, rotation, {"auc": a, "fpr_at_0.05": fpr, "seconds": time.perf_counter() - t})
            k = ae.model_.latent_dim
            t = time.perf_counter()
            pca = PCA(n_components=k, random_state=seed).fit(flat[0])

            def err(z, pca=pca):
                return ((pca.inverse_transform(pca.transform(z)) - z) ** 2).mean(1)

            add(f"pca-{k}", rotation, {"auc": auc(err(flat[1]), err(flat[2])),
                                       "seconds": time.perf_counter() - t})  # fmt: skip
        from pyod.models.auto_encoder import AutoEncoder as PyODAutoEncoder

        t = time.perf_counter()
        det = PyODAutoEncoder(random_state=seed, verbose=0).fit(flat[0])
        a = auc(det.decision_function(flat[1]), det.decision_function(flat[2]))
        add("pyod-autoencoder", rotation, {"auc": a, "seconds": time.perf_counter() - t})
        line = ", ".join(f"{m} {v[-1]['auc']:.3f}" for m, v in results.items())
        print(f"{rotation}: {line}", file=sys.stderr, flush=True)
    summary = {}
    for method, rows in results.items():
        aucs = [r["auc"] for r in rows]
        s = {"auc_mean": statistics.mean(aucs), "auc_std": statistics.pstdev(aucs),
             "seconds_mean": statistics.mean(r["seconds"] for r in rows)}  # fmt: skip
        if "fpr_at_0.05" in rows[0]:
            s["fpr_at_0.05_mean"] = statistics.mean(r["fpr_at_0.05"] for r in rows)
        summary[method] = s
    return {"summary": summary, "rotations": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/anomaly.py")
    p.add_argument("--olivetti-mat", default=str(REPO / "tests/data/olivettifaces.mat"))
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--models", default="deep", help="aelab recipes, comma-separated")
    p.add_argument("--epochs", type=int, default=30, help="epochs of each aelab model")
    p.add_argument("--tasks", default="mnist,olivetti")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"error: --out {out} exists; choose a new file", file=sys.stderr)
        return 2
    models = args.models.split(",")
    epochs = dict.fromkeys(models, args.epochs)
    result = {"machine": machine_info("cpu"), "settings": vars(args), "tasks": {}}
    tasks = {"mnist": lambda: mnist_rotations(args.seed),
             "olivetti": lambda: olivetti_rotations(Path(args.olivetti_mat))}  # fmt: skip
    for task in args.tasks.split(","):
        result["tasks"][task] = run_task(tasks[task](), models, epochs, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for task, r in result["tasks"].items():
        for method, s in r["summary"].items():
            fpr = f"  fpr {s['fpr_at_0.05_mean']:.3f}" if "fpr_at_0.05_mean" in s else ""
            print(f"{task:9} {method:18} AUC {s['auc_mean']:.3f} ± {s['auc_std']:.3f}  "
                  f"{s['seconds_mean']:.1f} s{fpr}")  # fmt: skip
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
