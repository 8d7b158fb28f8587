"""``aelab bench`` / ``python -m benchmarks``: parse, measure the chosen sections, write JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aelab.analysis.spread import summary as spread_summary
from aelab.analysis.spread import welch, within_spread

from .contention import BUSY_LOOPS, contention
from .end_to_end import END_TO_END, end_to_end, portable
from .keras import compare, keras_seed_total, merge_keras, run_keras
from .layers import conv_layers
from .machine import log, machine_info, matmul_peak
from .models import BENCH_MODELS, bench_model, olivetti_split, scaled_epochs
from .scaling import scaling, scaling_worker

SECTIONS = ("models", "keras", "layers", "end-to-end", "scaling", "contention")
PRECISIONS = ("fp32", "bf16")


def _choices(flag: str, text: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated ``--flag`` value: one or more of ``allowed``, else a one-line error."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    if not chosen or any(s not in allowed for s in chosen):
        raise ValueError(f"--{flag}={text!r} is not valid; allowed: {', '.join(allowed)}")
    return chosen


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ValueError(f"--seeds={text!r} is not valid; expected distinct integers >= 0: 0,1,2")
    return seeds


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--scaling-sizes={text!r} is not valid; expected e.g. 1000,10000,100000")
    return sizes


def build_parser(prog: str = "aelab bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Measure aelab's training speed against this machine's matmul peak and the "
        "notebook's Keras port; write the results as JSON.",
    )
    p.add_argument("--out", metavar="FILE", help="the JSON file (default bench-DATE-TIME.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier --out file")
    p.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)} (all)"
    )
    p.add_argument("--models", default=",".join(BENCH_MODELS), help="which of the five (all)")
    p.add_argument(
        "--epochs-scale",
        type=float,
        default=0.05,
        help="the notebook's epochs times this, at least 2, for aelab and Keras alike (0.05)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        help="auto, fp32 or bf16, or several (fp32,bf16): each model trained in each, the first "
        "compared with Keras, the final losses compared with fp32's (default auto: per model)",
    )
    p.add_argument(
        "--seeds",
        default="0",
        help="seeds of the models section (0): with several, each model trained with each in "
        "each precision, and the precision check on the held-out MSEs over the seeds (bf16's "
        "mean within fp32's standard deviation: the rule --precision auto follows)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--data-home", metavar="DIR", help="where olivetti is (see aelab datasets)")
    p.add_argument(
        "--olivetti-mat",
        metavar="FILE",
        help="the original olivettifaces.mat for the Keras port (default: aelab's own copy)",
    )
    p.add_argument("--keras-python", metavar="PYTHON", help="a Python with TensorFlow and Keras")
    p.add_argument("--keras-script", metavar="FILE", help="the notebook's Keras port")
    p.add_argument("--scaling-sizes", default="1000,10000,100000", help="synthetic data set sizes")
    p.add_argument("--scaling-model", default="deep", help="the model scaled (default deep)")
    p.add_argument("--workers", type=int, default=2, help="data loader workers when streaming")
    p.add_argument("--workdir", metavar="DIR", help="keep generated images and runs here")
    p.add_argument(
        "--schedules", default="quick,seed", help="end-to-end runs: quick, seed or both (both)"
    )
    p.add_argument("--presets", dest="schedules", help=argparse.SUPPRESS)  # the name before 0.2
    p.add_argument(
        "--busy",
        default=",".join(map(str, BUSY_LOOPS)),
        help="contention: how many busy-loop processes share the CPU in each condition (0,1,2)",
    )
    p.add_argument("--scaling-worker", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "aelab bench") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    args.command = portable([prog, *argv], args.workdir)
    if args.scaling_worker:
        print(json.dumps(scaling_worker(json.loads(args.scaling_worker))))
        return 0
    try:
        return run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import torch

    from aelab.utils.device import resolve_device, resolve_precision

    sections = _choices("sections", args.sections, SECTIONS)
    models = _choices("models", args.models, BENCH_MODELS)
    sizes = _sizes(args.scaling_sizes)
    args.seed_list = _seeds(args.seeds)
    args.busy_list = _busy(args.busy)
    schedules = _choices("schedules", args.schedules, tuple(END_TO_END))
    if not args.epochs_scale > 0:
        raise ValueError(f"--epochs-scale={args.epochs_scale} is not valid; expected > 0")
    if args.workers < 0:
        raise ValueError(f"--workers={args.workers} is not valid; expected an integer >= 0")
    device = str(resolve_device(args.device))
    precisions = _choices("precision", args.precision, ("auto", *PRECISIONS))
    if "keras" in sections and not (args.keras_python and args.keras_script):
        raise ValueError(
            "--sections includes keras: pass --keras-python and --keras-script "
            "(see benchmarks/README.md), or leave keras out of --sections"
        )
    for flag in ("keras_python", "keras_script", "olivetti_mat"):
        value = getattr(args, flag)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{flag.replace('_', '-')}='{value}': no such file")
    out = Path(args.out or f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out='{out}' exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out='{out}': folder '{out.parent}' does not exist")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data_home = args.data_home
        if args.olivetti_mat is not None and data_home is None:
            data_home = str(workdir / "data_home")
            Path(data_home).mkdir(exist_ok=True)
            target = Path(data_home) / "olivettifaces.mat"
            if not target.exists():
                target.symlink_to(Path(args.olivetti_mat).resolve())
        result: dict[str, Any] = {
            "aelab_bench": 1,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": args.command,
            "machine": machine_info(device),
            "sections": sections,
        }
        result["peak"] = {p: matmul_peak(p, device) for p in PRECISIONS}
        for p, v in result["peak"].items():
            log(f"peak {p} matmul: {v['flops_per_s'] / 1e9:.1f} GFLOP/s (n={v['n']})")
        if "models" in sections or "keras" in sections:
            x_train, x_held = olivetti_split(data_home)
            x = torch.from_numpy(x_train.images)
            held = torch.from_numpy(x_held.images)
            result.update(models_section(args, x, models, precisions, result["peak"], device, held))
        if "layers" in sections:
            from ..models import get_recipe

            log("layers: each convolution of the conv model alone, in every backend")
            batch = get_recipe("conv").train["batch_size"]  # the notebook's
            layers = conv_layers("conv", batch=batch, device=device)
            result["layers"] = layers
            for backend, ms in layers["step_ms_per_backend"].items():
                log(f"  {backend}: {ms:.0f} ms per step in convolutions")
            log(f"  best backend per layer: {layers['step_ms_best_per_layer']:.0f} ms")
        if "end-to-end" in sections:
            result["end_to_end"] = end_to_end(data_home, device, workdir, schedules)
            if "keras" in result:
                result["end_to_end"]["keras_seed_total_seconds_estimate"] = keras_seed_total(
                    result["keras"]
                )
        if "contention" in sections:
            result["contention"] = _contention(args, models, workdir, data_home)
        if "scaling" in sections:
            result["scaling"] = scaling(
                sizes,
                model=args.scaling_model,
                workers=args.workers,
                device=device,
                workdir=workdir,
            )
        # measured again at the end: how far the machine's speed drifted during the run
        precision = resolve_precision(precisions[0], torch.device(device))
        result["peak_end"] = {precision: matmul_peak(precision, device)}
        log(
            f"peak {precision} matmul at the end: "
            f"{result['peak_end'][precision]['flops_per_s'] / 1e9:.1f} GFLOP/s"
        )
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")
    return 0


def _contention(args, models, workdir: Path, data_home: str | None) -> dict[str, Any]:
    """The ``contention`` section, with the Keras port when it is given (on the Olivetti file
    it names, or aelab's own)."""
    from importlib import resources

    from aelab.data.olivetti import packaged_mat

    busy = args.busy_list
    keras = None
    if args.keras_python and args.keras_script:
        keras = {"python": args.keras_python, "script": args.keras_script}
    log(f"contention: {', '.join(models)} with {busy} busy loops")
    with resources.as_file(packaged_mat()) as packaged:
        mat = args.olivetti_mat or str(packaged)
        return contention(
            models, scale=args.epochs_scale, workdir=workdir, mat=mat, data_home=data_home,
            keras=keras, busy=busy,
        )  # fmt: skip


def _busy(text: str) -> list[int]:
    try:
        busy = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        busy = []
    if not busy or min(busy) < 0 or max(busy) > 16:
        raise ValueError(f"--busy={text!r} is not valid; expected counts 0 to 16, e.g. 0,1,2")
    return busy


def models_section(args, x, models, precisions, peaks, device, held=None) -> dict[str, Any]:
    """The ``models`` (and ``keras``) sections: each model in each of ``precisions`` with each
    seed, then the Keras port's right after it; with several precisions, each final loss against
    fp32's. ``models`` keeps the first precision's row of the first seed."""
    out: dict[str, Any] = {"models": {}}
    keras_runs, check = [], {}
    for name in models:
        epochs = scaled_epochs(name, args.epochs_scale)
        runs: dict[str, list[dict[str, Any]]] = {}
        for seed in args.seed_list:
            for precision in precisions:
                row = bench_model(
                    name, x, epochs=epochs, precision=precision, device=device, peaks=peaks,
                    seed=seed, x_heldout=held,
                )  # fmt: skip
                runs.setdefault(precision, []).append(row)
                log(
                    f"{name} ({row['precision']}, seed {seed}): "
                    f"{row['seconds_per_epoch']:.3f} s/epoch, "
                    f"{row['images_per_s']:,.0f} images/s, MFU {row['mfu']:.1%}, "
                    f"final loss {row['final_loss']:.5f} after {epochs} epochs"
                    + ("" if row["heldout_mse"] is None else
                       f", held-out MSE {row['heldout_mse']:.5f}")
                )  # fmt: skip
        out["models"][name] = runs[precisions[0]][0]
        if len(runs) > 1:
            check[name] = precision_check(runs, args.seed_list)
        if "keras" in args.sections:  # right after aelab's: a shared VM drifts within minutes
            keras_runs.append(
                run_keras(
                    args.keras_python,
                    args.keras_script,
                    scale=args.epochs_scale,
                    mat=args.olivetti_mat,
                    models=[name],
                )
            )
            versus = compare({name: out["models"][name]}, keras_runs[-1])[name]
            log(
                f"  Keras: {versus['keras_seconds_per_epoch']:.3f} s/epoch; aelab "
                f"{versus['speedup']:.2f}x faster, final loss "
                f"{versus['loss_ratio']:.3f}x Keras's"
            )
    if check:
        out["precision_check"] = check
    if keras_runs:
        out["keras"] = merge_keras(keras_runs)
        out["versus_keras"] = compare(out["models"], out["keras"])
    return out


def precision_check(runs: dict[str, list[dict[str, Any]]], seeds: Sequence[int]) -> dict:
    """Each precision's s/epoch, final loss and MFU (the first seed's, as with one seed) and its
    final loss per seed, their mean and spread (:func:`aelab.analysis.spread.summary`: standard
    deviation, 95% interval); bf16's against fp32's where both ran: the ratio of mean final
    losses, per seed, Welch's test of the two precisions' final losses (with two seeds or more
    each), and the speed-up of the first seed's runs."""
    by = {rows[0]["precision"]: rows for rows in runs.values()}
    summary: dict[str, Any] = {"seeds": list(seeds)}
    for p, rows in by.items():
        summary[p] = {k: rows[0][k] for k in ("seconds_per_epoch", "final_loss", "mfu")}
        losses = [row["final_loss"] for row in rows]
        spread = spread_summary(losses)
        summary[p].update(final_losses=losses, mean_final_loss=spread["mean"], spread=spread)
        held = [row.get("heldout_mse") for row in rows]
        if all(h is not None for h in held):
            summary[p].update(heldout_mses=held, heldout=spread_summary(held))
    if "fp32" in by and "bf16" in by:
        fp32, bf16 = summary["fp32"], summary["bf16"]
        summary["bf16_loss_ratio"] = bf16["mean_final_loss"] / fp32["mean_final_loss"]
        summary["bf16_loss_ratios"] = [
            b / f for b, f in zip(bf16["final_losses"], fp32["final_losses"], strict=True)
        ]
        summary["bf16_speedup"] = fp32["seconds_per_epoch"] / bf16["seconds_per_epoch"]
        if len(seeds) > 1:  # is bf16's final loss distinguishable from fp32's over the seeds?
            summary["bf16_vs_fp32"] = welch(bf16["final_losses"], fp32["final_losses"])
            if "heldout_mses" in bf16 and "heldout_mses" in fp32:
                # the rule `auto` follows: bf16's mean held-out MSE no worse than fp32's by more
                # than fp32's own seed-to-seed standard deviation
                summary["bf16_heldout"] = within_spread(bf16["heldout_mses"], fp32["heldout_mses"])
                summary["bf16_heldout_welch"] = welch(bf16["heldout_mses"], fp32["heldout_mses"])
                rule = summary["bf16_heldout"]
                log(
                    f"  bf16: mean held-out MSE {rule['excess']:+.2e} against fp32's, whose "
                    f"spread over seeds is {rule['std']:.2e}: "
                    + ("within it" if rule["within"] else "beyond it")
                )
        per_seed = ", ".join(f"{r:.3f}" for r in summary["bf16_loss_ratios"])
        log(
            f"  bf16: mean final loss {summary['bf16_loss_ratio']:.4f}x fp32's (per seed "
            f"{per_seed}), {summary['bf16_speedup']:.2f}x as fast"
        )
    return summary
