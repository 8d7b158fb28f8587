"""The ``aelab`` command: parse arguments, call the library, turn user errors into exit code 2."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runs import DataSpec, Split
    from .train import TrainConfig

PRECISION_HELP = (
    "fp32, bf16 (bfloat16 autocast, float32 weights) or auto (default: fp32; see "
    "benchmarks/README.md for where bf16 pays)"
)
CONV_KERNELS_HELP = (
    "auto (default): on a CPU, time each convolution's passes in oneDNN and PyTorch's own "
    "kernels and run each in the faster; default: PyTorch's choice, bit-reproducible runs"
)
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError)


def _int_list(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 256,64)"
        ) from None


def _image_size(text: str):
    from .data import parse_image_size

    try:
        return parse_image_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _data_args(
    p: argparse.ArgumentParser, default: str | None = "mnist", stream: bool = False
) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default=default,
        metavar="NAME|PATH",
        help="a data set name (see `aelab datasets`), a folder of images, or a .npy/.npz file "
        f"(default: {default})",
    )
    g.add_argument(
        "--data-home",
        metavar="DIR",
        help="where data sets are cached (default: $AELAB_DATA_HOME or scikit-learn's data home)",
    )
    g.add_argument(
        "--image-size",
        type=_image_size,
        metavar="H[xW]",
        help="resize images to this size (default: the first image's size)",
    )
    g.add_argument(
        "--channels", type=int, choices=(1, 3), help="1: grayscale (default for folders), 3: colour"
    )
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images (reported) instead of stopping",
    )
    g.add_argument(
        "--mirror",
        action="store_true",
        help="add left-right mirror images (to the training and the held-out set)",
    )
    g.add_argument(
        "--holdout-people",
        type=int,
        metavar="K",
        help="hold out the last K people/classes (default for face sets: 4)",
    )
    g.add_argument(
        "--holdout",
        type=float,
        metavar="FRACTION",
        help="hold out a stratified random fraction (default for other sets: 0.1)",
    )
    if stream:
        g.add_argument(
            "--stream",
            action="store_true",
            help="folders only: read images from disk batch by batch instead of loading them "
            "all into memory (for data sets larger than memory; see --workers)",
        )


def _train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--latent-dim", type=int, metavar="N", help="size of the code")
    g.add_argument(
        "--hidden",
        type=_int_list,
        metavar="N,N",
        help="dense hidden layer sizes, encoder side (e.g. 512,256; 'none': no hidden)",
    )
    g.add_argument(
        "--filters",
        type=_int_list,
        metavar="N,N",
        help="convolution filters per stage (conv models; default 32,64,128)",
    )
    g.add_argument("--beta", type=float, help="KL weight of variational models")
    g = p.add_argument_group("training")
    g.add_argument(
        "--noise",
        metavar="KIND:LEVEL",
        help="train on corrupted inputs: gaussian:0.05, saltpepper:0.1, mask:0.25",
    )
    g.add_argument("--epochs", type=int, help="default: the preset's (the notebook's schedule)")
    g.add_argument("--batch-size", type=int, help="default: the preset's")
    g.add_argument("--optimizer", help="adam, adamw, rmsprop or sgd (default: the preset's)")
    g.add_argument("--lr", type=float, dest="learning_rate", help="learning rate")
    g.add_argument("--no-shuffle", action="store_true", help="keep the sample order")
    g.add_argument("--seed", type=int, default=0, help="fixes every random choice (default 0)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    g.add_argument("--precision", default="auto", help=PRECISION_HELP)
    g.add_argument("--conv-kernels", default="auto", help=CONV_KERNELS_HELP)
    g.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="with --stream: N processes read and decode images (default 0: in the training "
        "process)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="also checkpoint every N epochs (always at the end)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="aelab", description="Autoencoder workbench: train, inspect, compare with PCA."
    )
    parser.add_argument("--version", action="version", version=f"aelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the data sets and whether they work offline")
    p.add_argument("--data-home", metavar="DIR")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train one model and write its run directory")
    p.add_argument("model", metavar="MODEL", help="shallow, deep, conv, denoising, vae, conv-vae")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/MODEL-DATE-TIME); never overwritten unless --overwrite",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    _data_args(p, stream=True)
    _train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "run", help="the whole workshop: train the five models, compare with PCA, write a report"
    )
    p.add_argument(
        "--preset",
        default="quick",
        choices=("quick", "seed"),
        help="quick: minutes on a laptop CPU (default); seed: the notebook's schedule",
    )
    p.add_argument(
        "--models",
        default="shallow,deep,conv,denoising,vae",
        metavar="A,B",
        help="comma-separated model names (default: the notebook's five)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train every model N epochs instead of the preset's (a quick look)",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/workshop-DATE-TIME)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--seed", type=int, default=0, help="fixes every random choice (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--precision", default="auto", help=PRECISION_HELP)
    p.add_argument("--conv-kernels", default="auto", help=CONV_KERNELS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _data_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "bench",
        help="measure training speed: images/s, MFU, the Keras port side by side, scaling",
        add_help=False,
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="see aelab bench --help")

    p = sub.add_parser("report", help="rebuild metrics, figures and report.html of a run")
    p.add_argument("run_dir", metavar="DIR")
    p.set_defaults(func=cmd_report)
    return parser


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import DATASETS, get_data_home

    rows = [("name", "images", "shape (CxHxW)", "labels", "offline", "description")]
    for info in DATASETS.values():
        rows.append(
            (
                info.name,
                f"{info.n_images:,}",
                "x".join(map(str, info.image_shape)),
                info.labels,
                "yes" if info.available(args.data_home) else "no (downloads once)",
                info.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print(f"\ndata home: {get_data_home(args.data_home)}")
    print("also: a folder of images (one subfolder per class) or a .npy/.npz array file")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import distributed
    from .device import resolve_device
    from .models import MODELS
    from .train import TrainConfig

    if args.model not in MODELS:
        raise ValueError(f"model={args.model!r} is not a known model; allowed: {', '.join(MODELS)}")
    schedule = MODELS[args.model].train
    data = _data_spec(args)
    train = TrainConfig(
        epochs=args.epochs if args.epochs is not None else schedule["epochs"],
        batch_size=args.batch_size if args.batch_size is not None else schedule["batch_size"],
        optimizer=args.optimizer or schedule["optimizer"],
        learning_rate=args.learning_rate,
        shuffle=not args.no_shuffle,
        seed=args.seed,
        device=args.device,
        noise=args.noise if args.noise is not None else schedule.get("noise"),
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        conv_kernels=args.conv_kernels,
        workers=args.workers,
    )
    distributed.init_from_env(resolve_device(train.device))  # under torchrun: join the others
    try:
        return _train(args, data, train)
    finally:
        distributed.cleanup()


def _train(args: argparse.Namespace, data: DataSpec, train: TrainConfig) -> int:
    from . import distributed
    from .runs import prepare_data, train_run

    overrides = {
        "latent_dim": args.latent_dim,
        "hidden": args.hidden,
        "channels": args.filters,
        "beta": args.beta,
    }
    # one name for all processes, even when their clocks tick over between them
    out = args.out or distributed.broadcast(f"runs/{args.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    main = distributed.is_main()
    split = None
    if not args.resume:
        from .models import model_config
        from .runs import check_out_dir, check_workers

        def validate() -> Split:
            if main:  # only rank 0 writes
                check_out_dir(out, resume=False, overwrite=args.overwrite)
            check_workers(data, train)
            data_split = prepare_data(data)
            model_config(args.model, data_split.train.image_shape, **overrides)  # before writing
            return data_split

        split = distributed.agree(validate)  # a bad argument stops every process alike
        if main:
            for note in split.train.notes:
                print(note, file=sys.stderr)
            print(
                f"{args.model}: {len(split.train)} training, {len(split.heldout)} held-out "
                f"images of {'x'.join(map(str, split.train.image_shape))} from {data.source}"
                + (" (streamed from disk)" if data.stream else "")
                + (f", {distributed.world()} processes" if distributed.world() > 1 else ""),
                file=sys.stderr,
            )
    start = time.perf_counter()
    run = train_run(
        args.model,
        data,
        train,
        out,
        model_overrides=overrides,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        split_data=split,
    )
    if main:
        last = run.history[-1] if run.history else {}
        held = last.get("heldout_loss")
        print(
            f"wrote {out}: {last.get('epoch', 0)} epochs in {time.perf_counter() - start:.1f} s, "
            f"loss {last.get('loss', float('nan')):.5f}"
            + (f", held-out loss {held:.5f}" if held is not None else "")
        )
    return 0


def _data_spec(args: argparse.Namespace):
    from .runs import DataSpec

    return DataSpec(
        source=args.data,
        data_home=args.data_home,
        image_size=args.image_size,
        channels=args.channels,
        skip_bad=args.skip_bad,
        mirror=args.mirror,
        holdout_people=args.holdout_people,
        holdout=args.holdout,
        seed=args.seed,
        stream=getattr(args, "stream", False),
    )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .workshop import run_workshop

    out = args.out or f"runs/workshop-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    run_workshop(
        _data_spec(args),
        out,
        preset=args.preset,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        conv_kernels=args.conv_kernels,
        epochs=args.epochs,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        log=_log,
    )
    print(f"wrote {out}/report.html in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    start = time.perf_counter()
    build_report(args.run_dir)
    print(f"wrote {args.run_dir}/report.html in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser, options and help
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("run", "report"):
            from .distributed import env_world_size

            if env_world_size() > 1:
                raise ValueError(
                    f"aelab {args.command} runs in one process; start it without torchrun "
                    "(only `aelab train` trains in several)"
                )
        return args.func(args)
    except USER_ERRORS as e:
        print(f"aelab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(
            f"aelab {args.command}: error: {e.filename or ''}: permission denied", file=sys.stderr
        )
        return 2
    except FloatingPointError as e:
        print(f"aelab {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aelab {args.command}: interrupted", file=sys.stderr)
        return 130
