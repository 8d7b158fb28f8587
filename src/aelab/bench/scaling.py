"""Seconds per epoch and peak memory as a synthetic data set grows, in memory and streamed."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .end_to_end import timed_process
from .machine import log, typical_epoch


def image_folder(workdir: Path, n: int) -> Path:
    """A folder of ``n`` synthetic 64x64 PNG images under ``workdir``, reused when complete."""
    from ..data import write_image_folder

    folder = workdir / f"images-{n}"
    done = folder / ".complete"
    if not done.is_file():
        start = time.perf_counter()
        write_image_folder(folder, n, image_size=64)
        done.touch()
        log(f"scaling: wrote {n} PNG files in {time.perf_counter() - start:.0f} s")
    return folder


def scaling_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One scaling point, in its own process: train ``spec['model']`` for ``spec['epochs']``
    epochs on the images of ``spec['folder']``, read into memory or streamed from the disk."""
    import torch

    from ..data import ImageFolderDataset, load_image_folder
    from ..recipes import resolve
    from ..train import Trainer

    if spec["mode"] == "memory":
        x = torch.from_numpy(load_image_folder(spec["folder"]).images)
    else:
        x = ImageFolderDataset(spec["folder"])
    settings = {k: spec[k] for k in ("epochs", "device", "workers")}
    resolved = resolve(spec["model"], tuple(x[0].shape), train=settings)
    trainer = Trainer(resolved.recipe.family_class(resolved.model), resolved.train)
    history = trainer.fit(x, progress=False)
    seconds = [h["seconds"] for h in history]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds_per_epoch": typical_epoch(seconds),
        "epoch_seconds": seconds,
        "peak_rss_mib": own,
        "peak_worker_rss_mib": children,
        "final_loss": history[-1]["loss"],
    }


def scaling(
    sizes: Sequence[int], *, model: str, workers: int, device: str, workdir: Path, epochs: int = 2
) -> dict[str, Any]:
    rows = []
    for mode in ("memory", "stream"):
        for n in sizes:
            spec = {"n": n, "mode": mode, "model": model, "epochs": epochs, "device": device}
            spec["workers"] = workers if mode == "stream" else 0
            spec["folder"] = str(image_folder(workdir, n))
            cmd = [sys.executable, "-m", "aelab.bench", "--scaling-worker", json.dumps(spec)]
            log(f"scaling: {mode}, {n} images, {model}")
            proc = timed_process(cmd)
            if proc["exit_code"] != 0:
                raise RuntimeError(f"scaling worker failed: {proc['stderr_tail'][-500:]}")
            row = {"mode": mode, "n": n, **json.loads(proc["stdout"].strip().splitlines()[-1])}
            row["process_peak_rss_mib"] = proc["peak_rss_mib"]
            row["ms_per_1k_images"] = 1000 * row["seconds_per_epoch"] / n * 1000
            rows.append(row)
            log(f"  {row['seconds_per_epoch']:.2f} s/epoch, peak RSS {row['peak_rss_mib']:.0f} MiB")
    summary = {}
    for mode in ("memory", "stream"):
        mine = [r for r in rows if r["mode"] == mode]
        if len(mine) > 1:
            # 1.0: the cost per image is the same at the largest and the smallest size (linear)
            summary[mode] = {
                "cost_per_image_largest_over_smallest": mine[-1]["ms_per_1k_images"]
                / mine[0]["ms_per_1k_images"],
                "peak_rss_largest_over_smallest": mine[-1]["peak_rss_mib"]
                / mine[0]["peak_rss_mib"],
            }
    return {"model": model, "epochs": epochs, "workers": workers, "rows": rows, "summary": summary}
