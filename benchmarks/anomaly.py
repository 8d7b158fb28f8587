"""Does an aelab model tell unseen kinds of image from normal ones better than PCA and PyOD?

    pip install "pyod>=2"   # the benchmark's extra, never a dependency of aelab
    python benchmarks/anomaly.py --out benchmarks/results/anomaly.json \
        [--tasks mnist,olivetti,mnist-oneclass,olivetti-geron] [--seeds 0,1,2]

Two leave-one-out tasks, every rotation (``--seed``):

``mnist``
    The shipped 5,000 digits. For each digit d: the other nine are normal; 80% of their images
    train (stratified, seeded), 20% are the normal test images; every image of d is an anomaly.
``olivetti``
    40 people, 10 images each, in 10 rotations of 4 people: those 4 are anomalies (40 images);
    of the other 36, images 0-6 of each train (with true mirrors), image 7 sets the threshold
    (``set_threshold``) and images 8-9 are the normal test images (72).

Two published protocols, each over ``--seeds``:

``mnist-oneclass``
    Ruff et al. 2018, "Deep One-Class Classification" (ICML), Table 1's protocol: one digit is
    normal, the other nine are anomalies, ROC-AUC per digit. Here on the 5,000 shipped digits
    (the paper: MNIST's 60,000 and its test set): of the normal digit's ~500 images, a seeded 60%
    train, 20% calibrate (the threshold and each pixel's calibration) and 20% are the normal test
    images; every image of the other nine digits is an anomaly.
``olivetti-geron``
    Géron, "Hands-On Machine Learning" (2nd ed., chapter 9, exercises 10-13): a stratified split
    of Olivetti's 400 faces into 280 training, 80 validation and 40 test faces (his random
    states 42 and 43 at seed 0, plus the seed after), and faces modified as he modifies them:
    rotated (transposed), flipped upside down, darkened (every value but the first and the
    last times 0.3). Here the modified faces are the 40 test faces (he modified training faces);
    the 80 validation faces calibrate; AUC per kind of modification and for all three.

Scores are the reconstruction error (higher = more anomalous). Per rotation and method: the
ROC-AUC (anomalies positive) and wall time; for aelab, also the realised false-positive rate on
the normal test images of its threshold at ``fpr=0.05`` and, in the published protocols, the
realised per-pixel rate of its calibrated maps (each pixel's error against the same pixel's on
the calibration images, aelab.analysis.anomaly.pixel_p_values, level 0.05, no correction)
beside its bound, floor(0.05 (n + 1)) / (n + 1). Methods: each ``--models`` recipe through
:class:`aelab.Autoencoder`, PCA with as many components as that model's code (and, for Géron's
protocol, with 99% of the variance, as he does), PyOD's ``AutoEncoder`` with its defaults.
Writes one JSON file (never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from aelab import Autoencoder
from aelab.analysis import anomaly
from aelab.bench.machine import machine_info
from aelab.data import load_dataset, load_olivetti, mirror

FPR = 0.05
RATES = (
    "fpr",
    "pixel_fpr",
    "pixel_bound",
    "n_calibration",
    "n_components",
)  # per rotation, beside the AUCs

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


def _olivetti(mat: Path):
    with tempfile.TemporaryDirectory() as home:  # a data home holding only the .mat file
        (Path(home) / "olivettifaces.mat").write_bytes(mat.read_bytes())
        return load_olivetti(home, download=False)


def olivetti_rotations(mat: Path):
    faces = _olivetti(mat)
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


def oneclass_rotations(seed: int):
    """Ruff et al. 2018's protocol on the shipped digits: (name, train, calibration, normal,
    {kind: anomalies}) per normal digit."""
    data = load_dataset("mnist")
    x, y = data.images[:, 0], data.labels
    rng = np.random.default_rng(seed)
    for d in range(10):
        own = rng.permutation(np.flatnonzero(y == d))
        a, b = int(0.6 * len(own)), int(0.8 * len(own))
        yield f"digit {d}", x[own[:a]], x[own[a:b]], x[own[b:]], {"other digits": x[y != d]}


def geron_rotations(mat: Path, seed: int):
    """Géron's split and modified faces (see the module's docstring)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    faces = _olivetti(mat)
    x, y = faces.images[:, 0], faces.labels  # (400, 64, 64)
    split = StratifiedShuffleSplit(n_splits=1, test_size=40, random_state=42 + seed)
    rest, test = next(split.split(x, y))
    split = StratifiedShuffleSplit(n_splits=1, test_size=80, random_state=43 + seed)
    train, valid = (rest[i] for i in next(split.split(x[rest], y[rest])))
    normal = x[test]
    darkened = normal.reshape(len(normal), -1).copy()
    darkened[:, 1:-1] *= 0.3
    kinds = {"rotated": np.transpose(normal, (0, 2, 1)), "flipped": normal[:, ::-1],
             "darkened": darkened.reshape(normal.shape)}  # fmt: skip
    yield "faces", x[train], x[valid], normal, kinds


def _pixel_rate(ae, calibration, normal) -> dict:
    """The realised share of the normal test images' pixels at p <= 0.05 against each pixel's
    calibration errors, and its bound."""
    cal = anomaly.calibrate_pixels(ae.error_map(calibration))
    p = anomaly.pixel_p_values(cal, ae.error_map(normal))
    n = len(cal)
    bound = math.floor(FPR * (n + 1)) / (n + 1)
    return {"pixel_fpr": float(np.mean(p <= FPR)), "pixel_bound": bound, "n_calibration": n}


def run_protocol(rotations, models, epochs, seed, pca_variance=False) -> list[dict]:
    """One seed of a published protocol: a row per rotation, method and kind of anomaly."""
    from pyod.models.auto_encoder import AutoEncoder as PyODAutoEncoder

    rows = []
    for rotation, train, calibration, normal, kinds in rotations:
        flat = {"train": train.reshape(len(train), -1), "normal": normal.reshape(len(normal), -1)}
        flat |= {k: v.reshape(len(v), -1) for k, v in kinds.items()}
        methods = {}  # name: (anomaly score of images, what else to record, seconds to fit)
        for name in models:
            t = time.perf_counter()
            ae = Autoencoder(model=name, epochs=epochs, random_state=seed, device="cpu",
                             calibration=0, fpr=FPR).fit(train)  # fmt: skip
            seconds = time.perf_counter() - t
            ae.set_threshold(calibration)
            extra = {"fpr": float(np.mean(ae.predict(normal) == -1)),
                     **_pixel_rate(ae, calibration, normal)}  # fmt: skip
            methods[name] = (lambda z, ae=ae: -ae.score_samples(z), extra, seconds)
            for k in [ae.model_.latent_dim] + ([0.99] if pca_variance else []):
                t = time.perf_counter()
                pca = PCA(n_components=k, random_state=seed).fit(flat["train"])

                def err(z, pca=pca):
                    z = z.reshape(len(z), -1)
                    return ((pca.inverse_transform(pca.transform(z)) - z) ** 2).mean(1)

                label = f"pca-{k}" if k >= 1 else f"pca-{k:.0%}-variance"
                methods[label] = (err, {"n_components": int(pca.n_components_)},
                                  time.perf_counter() - t)  # fmt: skip
        t = time.perf_counter()
        det = PyODAutoEncoder(random_state=seed, verbose=0).fit(flat["train"])
        methods["pyod-autoencoder"] = (
            lambda z, det=det: det.decision_function(z.reshape(len(z), -1)),
            {},
            time.perf_counter() - t,
        )
        for method, (score, extra, seconds) in methods.items():
            t = time.perf_counter()
            normal_scores = score(normal)
            aucs = {k: auc(normal_scores, score(v)) for k, v in kinds.items()}
            if len(kinds) > 1:
                aucs["all"] = auc(normal_scores, np.concatenate([score(v) for v in kinds.values()]))
            seconds += time.perf_counter() - t  # fit and score
            rows.append({"rotation": rotation, "seed": seed, "method": method, "auc": aucs,
                         "seconds": seconds, **extra})  # fmt: skip
        line = ", ".join(f"{r['method']} {list(r['auc'].values())[-1]:.3f}"
                         for r in rows[-len(methods):])  # fmt: skip
        print(f"seed {seed} {rotation}: {line}", file=sys.stderr, flush=True)
    return rows


def _mean_std(values) -> dict:
    v = list(values)
    return {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}


def summarise(rows: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds, per rotation, method and kind; and the
    mean over rotations of each seed's mean, per method and kind."""
    out: dict = {"per_rotation": {}, "overall": {}}
    groups: dict = {}
    for r in rows:
        for kind, value in r["auc"].items():
            groups.setdefault((r["rotation"], r["method"], kind), {})[r["seed"]] = value
    for (rotation, method, kind), by_seed in groups.items():
        by_method = out["per_rotation"].setdefault(rotation, {}).setdefault(method, {})
        by_method[kind] = _mean_std(by_seed.values())
    seeds = sorted({r["seed"] for r in rows})
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        entry = {"seconds_mean": statistics.mean(r["seconds"] for r in mine)}
        for kind in mine[0]["auc"]:
            entry[kind] = _mean_std(
                statistics.mean(r["auc"][kind] for r in mine if r["seed"] == s) for s in seeds
            )
        for key in RATES:
            if key in mine[0]:
                entry[key] = _mean_std(r[key] for r in mine)
        out["overall"][method] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/anomaly.py")
    p.add_argument("--olivetti-mat", default=str(REPO / "tests/data/olivettifaces.mat"))
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--models", default="deep", help="aelab recipes, comma-separated")
    p.add_argument("--epochs", type=int, default=30, help="epochs of each aelab model")
    p.add_argument(
        "--epochs-small",
        type=int,
        default=100,
        help="epochs of each aelab model in the published protocols (small sets)",
    )
    p.add_argument("--tasks", default="mnist,olivetti,mnist-oneclass,olivetti-geron")
    p.add_argument("--seed", type=int, default=0, help="of the leave-one-out tasks")
    p.add_argument("--seeds", default="0,1,2", help="of the published protocols")
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
    protocols = {
        "mnist-oneclass": oneclass_rotations,
        "olivetti-geron": lambda s: geron_rotations(Path(args.olivetti_mat), s),
    }
    seeds = [int(s) for s in args.seeds.split(",")]
    for task in args.tasks.split(","):
        start = time.perf_counter()
        if task in protocols:
            rows = []
            for s in seeds:
                rows += run_protocol(protocols[task](s), models, args.epochs_small, s,
                                     pca_variance=task == "olivetti-geron")  # fmt: skip
            result["tasks"][task] = {**summarise(rows), "rows": rows}
        else:
            result["tasks"][task] = run_task(tasks[task](), models, epochs, args.seed)
        result["tasks"][task]["wall_seconds"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for task, r in result["tasks"].items():
        if "overall" in r:
            for method, s in r["overall"].items():
                aucs = "  ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in s.items()
                                 if isinstance(v, dict) and k not in RATES)  # fmt: skip
                if "pixel_fpr" in s:
                    px, bound = s["pixel_fpr"]["mean"], s["pixel_bound"]["mean"]
                    aucs += f"  pixel fpr {px:.4f} (bound {bound:.4f})"
                print(f"{task:15} {method:28} AUC {aucs}")
            continue
        for method, s in r["summary"].items():
            fpr = f"  fpr {s['fpr_at_0.05_mean']:.3f}" if "fpr_at_0.05_mean" in s else ""
            print(f"{task:9} {method:18} AUC {s['auc_mean']:.3f} ± {s['auc_std']:.3f}  "
                  f"{s['seconds_mean']:.1f} s{fpr}")  # fmt: skip
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
