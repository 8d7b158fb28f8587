"""The ``aelab`` command's arguments: one parser, its sub-commands and their option groups."""

from __future__ import annotations

import argparse

from aelab.training.config import SCHEDULES

from . import commands, deploy
from .flags import FAMILY_FLAGS, config_flags

FIRST_DATA = "olivetti"  # aelab run's: the notebook's own faces, shipped inside aelab
MODEL_NAMES = "{models}"  # in a help text: the registered models, read when help is printed


class _Help(argparse.HelpFormatter):
    """Help texts that name the registered models (:data:`MODEL_NAMES`) look them up only when
    help is printed: the registry imports every model family, and with them torch, which building
    the parser must not (``aelab --version`` and ``aelab --help`` answer at once)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action) or ""
        if MODEL_NAMES in text:
            from ..models import MODELS

            text = text.replace(MODEL_NAMES, ", ".join(MODELS))
        return text


def _one_of(allowed: tuple[str, ...]):
    """An argument type: one of ``allowed``, else an error that suggests the nearest."""
    from aelab.utils.choices import did_you_mean

    def check(text: str) -> str:
        if text not in allowed:
            hint = did_you_mean(text, allowed)
            raise argparse.ArgumentTypeError(
                f"{text!r} is not valid; {hint}allowed: {', '.join(allowed)}"
            )
        return text

    return check


LOG_HELP = (
    "log to an experiment tracker: tensorboard[:DIR] (default DIR: RUN/tensorboard) or "
    "mlflow[:URI] (default: a file store in RUN/mlruns); repeat or comma-separate for both "
    '(pip install "aelab[tensorboard]", "aelab[mlflow]")'
)


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


def _pixels(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of pixels (or 'none')"
        ) from None


def _image_size(text: str):
    from ..data import parse_image_size

    try:
        return parse_image_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _data_args(
    p: argparse.ArgumentParser,
    default: str | None = "mnist",
    stream: bool = False,
    mirror_default: bool = False,
) -> None:
    from ..data import MAX_IMAGE_PIXELS

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
        help="resize every image to this size. Default: images keep their size, and a folder "
        "whose images differ in size is refused (give this to resize them all)",
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
        "--follow-links",
        action="store_true",
        help="read symbolic links in an image folder (skipped and counted by default)",
    )
    g.add_argument(
        "--max-image-pixels",
        type=_pixels,
        default=MAX_IMAGE_PIXELS,
        metavar="N",
        help="refuse images with more pixels, read from the header before decoding (default "
        f"{MAX_IMAGE_PIXELS:_}; 'none': no limit)",
    )
    if mirror_default:  # on where the data set's mirrors are images of it too (faces)
        g.add_argument(
            "--mirror",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="add left-right mirror images to the training and the held-out set (default: "
            "on for a set of faces such as olivetti, as the notebook did; off otherwise)",
        )
    else:
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
    g.add_argument(
        "--normals",
        type=float,
        metavar="FRACTION",
        help="with held-out people: also keep this share of each training person's images "
        "unseen, to ask whether the held-out people look unusual (the report's anomaly section)",
    )
    if stream:
        g.add_argument(
            "--stream",
            action="store_true",
            help="folders only: read images from disk batch by batch instead of loading them "
            "all into memory (for data sets larger than memory; see --workers)",
        )
        cache = g.add_mutually_exclusive_group()
        cache.add_argument(
            "--cache",
            metavar="DIR",
            help="with --stream: keep the decoded pixels in DIR, so that epochs after the first "
            "read them back instead of decoding (default: on, in $AELAB_CACHE_HOME/pixels or "
            "~/.cache/aelab/pixels; safe to delete)",
        )
        cache.add_argument(
            "--no-cache",
            action="store_true",
            help="with --stream: no pixel cache, every epoch decodes every image",
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
    for flag, kind, text in FAMILY_FLAGS:
        g.add_argument(flag, type=kind, help=text)
    g = p.add_argument_group("training")  # TrainConfig's fields, each flag declared there
    g.add_argument(
        "--schedule",
        default="seed",
        type=_one_of(SCHEDULES),
        metavar="seed|quick",
        help="how long the model trains. seed (default, unlike aelab run): the model's own "
        "schedule, for the notebook's five the notebook's (conv: 200 epochs, about 10 minutes on "
        "mnist on 2 CPU cores); quick: a bounded number of images seen, aelab run's default "
        "(conv: 13 epochs on mnist, under a minute)",
    )
    config_flags(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--log", action="append", metavar="KIND[:WHERE]", help=LOG_HELP)


def _config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="take the settings from FILE (one key per flag, e.g. latent-dim = 16; aelab config "
        "RUN writes one); flags given here override it",
    )


def _seeds(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--seeds",
        type=_int_list,
        metavar="S,S",
        help=f"train {what} once per training seed (e.g. 0,1,2), each a run folder under --out, "
        "and report every number as mean ± std with its 95%% interval; the data split stays "
        "--seed's (default 0)",
    )


def _legacy(p: argparse.ArgumentParser) -> None:
    """``--legacy`` of the commands that read a run."""
    p.add_argument(
        "--legacy",
        action="store_true",
        help="read a run or workshop of aelab 0.1, which has no aelab-run.json to check its "
        "files against, unchecked (its data split is not checked either)",
    )


def _run_data_home(p: argparse.ArgumentParser) -> None:
    """``--data-home`` of the commands that read a run's data again."""
    p.add_argument(
        "--data-home",
        metavar="DIR",
        help="where named data sets are (default: $AELAB_DATA_HOME or scikit-learn's data home); "
        "never taken from the run's files",
    )


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="aelab",
        description="Autoencoder workbench: train, inspect, compare with PCA.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"aelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the data sets and whether they work offline")
    p.add_argument("--data-home", metavar="DIR")
    p.set_defaults(func=commands.cmd_datasets)

    p = sub.add_parser("models", help="list the models (recipes) and what each can do")
    p.set_defaults(func=commands.cmd_models)

    p = sub.add_parser("train", help="train one model and write its run directory")
    p.add_argument(  # optional here: a --config file may name it (the command checks)
        "model",
        metavar="MODEL",
        nargs="?",
        default=argparse.SUPPRESS,
        help=f"one of {MODEL_NAMES} (aelab models)",
    )
    _config(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/MODEL-DATE-TIME); never overwritten unless --overwrite",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    _seeds(p, "the model")
    _data_args(p, stream=True)
    _train_args(p)
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser(
        "run", help="the whole workshop: train the five models, compare with PCA, write a report"
    )
    p.add_argument(
        "--schedule",
        default="quick",
        type=_one_of(SCHEDULES),
        metavar="seed|quick",
        help="how long each model trains. quick (default, unlike aelab train): a bounded number "
        "of images seen, the first command (six models on the faces) in about 6 minutes on 2 "
        "CPU cores; seed: each model's own "
        "schedule, the notebook's for its five (20 minutes or more)",
    )
    p.add_argument(  # the name of --schedule before 0.2; kept so that older commands work
        "--preset", dest="schedule", type=_one_of(SCHEDULES), help=argparse.SUPPRESS
    )
    p.add_argument(
        "--models",
        default=None,
        metavar="A,B",
        help=f"comma-separated models of {MODEL_NAMES} (default: the notebook's five: shallow, "
        "deep, conv, denoising, vae; on a set of faces such as olivetti also faces, the recipe "
        "that beats PCA on people it never saw)",
    )
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/workshop-DATE-TIME)")
    _config(p)
    _seeds(p, "every model")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the workshop in --out: trained models kept, an interrupted one continued",
    )
    config_flags(  # every model's, on top of its schedule
        p.add_argument_group("training"),
        names=("epochs", "seed", "device", "precision", "conv_kernels", "checkpoint_seconds"),
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--log", action="append", metavar="KIND[:WHERE]", help=LOG_HELP)
    _data_args(p, default=FIRST_DATA, mirror_default=True)
    p.add_argument(
        "--groups",
        metavar="FILE.csv",
        help="your groups of images for the report's attribute directions: a CSV with the header "
        "image,group, an image a line (its 0-based index in the data, or a folder's file path "
        "relative to it) and its group (any text); checked before training, kept as groups.csv",
    )
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser(
        "bench",
        help="measure training speed: images/s, MFU, the Keras port side by side, scaling",
        add_help=False,
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="see aelab bench --help")

    p = sub.add_parser("report", help="rebuild metrics, figures and report.html of a run")
    p.add_argument("run_dir", metavar="DIR")
    _run_data_home(p)
    _legacy(p)
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser(
        "evaluate", help="each model's held-out error against PCA's at the same code size"
    )
    p.add_argument("run_dir", metavar="RUN", help="a run (aelab train) or workshop (aelab run)")
    _run_data_home(p)
    p.add_argument(
        "--curve",
        action="store_true",
        help="also PCA's held-out error at code sizes 10, 20, 30, 50 and 100",
    )
    p.add_argument("--out", metavar="FILE", help="also write the table as JSON to FILE")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    _legacy(p)
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser(
        "config", help="print the configuration file that trains a run or workshop again"
    )
    p.add_argument("run_dir", metavar="RUN", help="a run, workshop or group of seeds")
    _legacy(p)
    p.set_defaults(func=commands.cmd_config)

    p = sub.add_parser(
        "compare",
        help="runs, workshops or groups of seeds side by side, every number with its interval",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN", help="runs, workshops or seed groups")
    p.add_argument(
        "--out", metavar="FILE", help="also write the comparison to FILE: .json or .html"
    )
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    _run_data_home(p)
    _legacy(p)
    p.set_defaults(func=commands.cmd_compare)

    for add in (deploy.add_score, deploy.add_export):
        p = add(sub)
        _run_data_home(p)
        _legacy(p)

    p = sub.add_parser(
        "explore", help="a local page with sliders through a trained model's latent space"
    )
    p.add_argument("run_dir", metavar="RUN", help="a run (aelab train) or workshop (aelab run)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default: 127.0.0.1, this machine only)",
    )
    p.add_argument("--port", type=int, default=8765, help="default: 8765; 0 picks a free one")
    p.add_argument("--open", action="store_true", help="open the page in the web browser")
    p.add_argument(
        "--device", default="cpu", help="where the models decode: cpu (default), cuda, mps, auto"
    )
    _run_data_home(p)
    _legacy(p)
    p.set_defaults(func=commands.cmd_explore)
    for p in sub.choices.values():
        p.formatter_class = _Help  # subparsers do not inherit it
        p.set_defaults(command_parser=p)  # its flags name the parameters in errors (with_flags)
    return parser
