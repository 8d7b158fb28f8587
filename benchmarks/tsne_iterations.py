"""How many t-SNE iterations does a report's embedding figure need?

    aelab run --out runs/first
    python benchmarks/tsne_iterations.py --workshop runs/first --out results/tsne.json

For the pixels of a workshop's training and held-out images, and for each model's codes of
them, the report's t-SNE (PCA initialisation, perplexity 30, seed 0) at each of ``--iterations``:
the final KL divergence, trustworthiness with 10 neighbours (scikit-learn's: how many of each
point's neighbours in 2-D are neighbours in the original space), the share of images whose
nearest neighbour in 2-D shows the same person or class, and the seconds. Writes one JSON file
(never over an earlier one) with the machine's CPU flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aelab.bench.machine import cpu_flags
from aelab.runs.open import open_runs


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def nearest_same_label(embedding: np.ndarray, labels: np.ndarray) -> float:
    d = ((embedding[:, None] - embedding[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def main(argv: list[str] | None = None) -> int:
    from sklearn.manifold import TSNE, trustworthiness

    p = argparse.ArgumentParser(prog="python benchmarks/tsne_iterations.py")
    p.add_argument("--workshop", required=True, help="a folder aelab run wrote")
    p.add_argument("--out", required=True, help="a new JSON file")
    p.add_argument("--iterations", default="500,750,1000")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"--out {out} exists; name a new file")
    opened = open_runs(args.workshop, data=True)
    train, heldout = opened.split.train, opened.split.heldout
    images = np.concatenate([train.images, heldout.images])
    labels = np.concatenate([train.labels, heldout.labels])
    sets = {"pixels": images.reshape(len(images), -1)}
    for name, seeds in opened.groups.items():
        run = next(iter(seeds.values()))
        sets[name] = np.concatenate([run.encode(train.images), run.encode(heldout.images)])
    result: dict = {
        "machine": {"cpu_flags": cpu_flags(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "points": len(images),
        "embeddings": {},
    }  # fmt: skip
    for name, x in sets.items():
        rows = result["embeddings"][name] = {}
        for n in (int(i) for i in args.iterations.split(",")):
            start = time.perf_counter()
            tsne = TSNE(n_components=2, perplexity=30.0, random_state=0, init="pca", max_iter=n)
            e = tsne.fit_transform(x)
            rows[n] = {
                "kl": float(tsne.kl_divergence_),
                "trustworthiness": float(trustworthiness(x, e, n_neighbors=10)),
                "nearest_same_label": nearest_same_label(e, labels),
                "seconds": time.perf_counter() - start,
            }
            log(f"{name} {n}: {rows[n]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
