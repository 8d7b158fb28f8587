"""What each sub-command of ``aelab`` does: call the library, print what a user needs."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aelab.data.spec import DataSpec


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import MODELS

    rows = [("name", "family", "code", "input", "can", "description")]
    for recipe in MODELS.values():
        cls = recipe.family_class
        can = [c for c, has in (("sample", cls.has_prior), ("weights", cls.draws_weights)) if has]
        rows.append(
            (
                recipe.name,
                recipe.family,
                str(recipe.model.get("latent_dim", cls.config_class.latent_dim)),
                "images" if cls.input_layout == "image" else "any",
                ",".join(can) or "-",
                recipe.description,
            )
        )
    _table(rows)
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one as it comes."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def cmd_datasets(args: argparse.Namespace) -> int:
    from ..data import DATASETS, get_data_home

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
    _table(rows)
    print(f"\ndata home: {get_data_home(args.data_home)}")
    print("also: a folder of images (one subfolder per class) or a .npy/.npz array file")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from aelab.utils import distributed
    from aelab.utils.device import resolve_device

    if getattr(args, "model", None) is None:
        raise ValueError(
            "model is missing: aelab train MODEL (aelab models lists them), or model = NAME in "
            "the --config file"
        )
    data = _data_spec(args)
    distributed.init_from_env(resolve_device(args.device or "auto"))  # under torchrun: join
    try:
        return _train(args, data)
    finally:
        distributed.cleanup()


def _train(args: argparse.Namespace, data: DataSpec) -> int:
    from aelab.runs.training import resume_run, train_run
    from aelab.runs.workshop import is_workshop
    from aelab.training.recipes import given
    from aelab.utils import distributed

    from .flags import command_flags, config_values, family_overrides, with_flags

    progress = False if args.quiet else None
    start = time.perf_counter()
    if args.seeds is not None or (args.resume and args.out and is_workshop(args.out)):
        return _train_seeds(args, data, progress)
    if args.resume:
        if args.overwrite or args.out is None:
            raise ValueError("resume=True needs the run's out folder, and no overwrite")
        run = resume_run(
            args.out,
            model=args.model,
            epochs=args.epochs,
            device=args.device,
            data_home=args.data_home,
            progress=progress,
            log=args.log,
            cache=_cache(args),
        )
    else:
        overrides = given(
            latent_dim=args.latent_dim, hidden=args.hidden, channels=args.filters, beta=args.beta
        ) | family_overrides(args)
        # without --out, a new folder runs/MODEL-DATE-TIME (-2, -3... for runs started in the
        # same second)
        run = train_run(
            args.model,
            data,
            config_values(args),
            args.out,
            schedule=args.schedule,
            model_overrides=overrides,
            overwrite=args.overwrite,
            progress=progress,
            log=args.log,
            notify=lambda line: _log(with_flags(line, command_flags(args.command_parser))),
        )
    if distributed.is_main():
        last = run.history[-1] if run.history else {}
        held = last.get("heldout_loss")
        seconds = time.perf_counter() - start
        print(
            f"wrote {run.path}: {last.get('epoch', 0)} epochs in {seconds:.1f} s, "
            f"loss {last.get('loss', float('nan')):.5f}"
            + (f", held-out loss {held:.5f}" if held is not None else "")
        )
    return 0


def _train_seeds(args: argparse.Namespace, data: DataSpec, progress: bool | None) -> int:
    """``aelab train MODEL --seeds S,S``: a group of runs, one per seed, under ``--out``, with
    the table of their means and spreads (a workshop of one model, without the insides' figures);
    ``--resume`` finishes such a group."""
    from aelab.apps.workshop import resume_workshop, run_workshop
    from aelab.training.recipes import given
    from aelab.utils import distributed

    from .flags import config_values, family_overrides

    if distributed.world() > 1:
        raise ValueError("seeds= trains in one process; start it without torchrun")
    start = time.perf_counter()
    if args.resume:
        if args.overwrite:
            raise ValueError("resume=True and overwrite=True exclude each other; pass one")
        record = resume_workshop(
            args.out, data_home=args.data_home, progress=progress, log=_log, tracking=args.log,
            insides=False,
        )  # fmt: skip
    else:
        overrides = given(
            latent_dim=args.latent_dim, hidden=args.hidden, channels=args.filters, beta=args.beta
        ) | family_overrides(args)
        record = run_workshop(
            data, args.out, schedule=args.schedule, models=[args.model],
            train=config_values(args), seeds=args.seeds, model=overrides,
            overwrite=args.overwrite, progress=progress, log=_log, tracking=args.log,
            insides=False,
        )  # fmt: skip
    print(f"wrote {record['out']}/report.html in {time.perf_counter() - start:.0f} s")
    return 0


def _cache(args: argparse.Namespace) -> str | None:
    """``--cache DIR`` / ``--no-cache`` as ``DataSpec.cache`` (None: neither given)."""
    if getattr(args, "no_cache", False):
        return "off"
    return getattr(args, "cache", None)


def _data_spec(args: argparse.Namespace):
    from aelab.data.spec import DataSpec

    cache, resume = _cache(args), getattr(args, "resume", False)
    if cache is not None and not resume and not getattr(args, "stream", False):
        flag = "--no-cache" if cache == "off" else "--cache"
        raise ValueError(
            f"{flag} is only meaningful with --stream: the pixel cache keeps the decoded images "
            "of a streamed folder (in memory, images are decoded once)"
        )
    return DataSpec(
        source=args.data,
        data_home=args.data_home,
        image_size=args.image_size,
        channels=args.channels,
        skip_bad=args.skip_bad,
        mirror=_mirror(args),
        holdout_people=args.holdout_people,
        holdout=args.holdout,
        normals=args.normals,
        seed=0 if args.seed is None else args.seed,
        stream=getattr(args, "stream", False),
        follow_links=args.follow_links,
        max_image_pixels=args.max_image_pixels,
        cache="auto" if cache is None or resume else cache,  # resuming: see resume_run
    )


def _models(args: argparse.Namespace) -> list[str]:
    """``--models`` as a list; not given: the notebook's five, and on a named set of faces (the
    mirrored ones) also ``faces``, so the first report shows how to beat PCA on new people."""
    if args.models is not None:
        return [m.strip() for m in args.models.split(",") if m.strip()]
    from aelab.apps.workshop import FACE_MODELS, WORKSHOP_MODELS
    from aelab.data.datasets import DATASETS

    info = DATASETS.get(str(args.data))
    return [*WORKSHOP_MODELS, *(FACE_MODELS if info is not None and info.mirrored else ())]


def _mirror(args: argparse.Namespace) -> bool:
    """``--mirror``/``--no-mirror`` as given; neither (aelab run): on for a named data set whose
    mirror images are images of it too (faces)."""
    if args.mirror is not None:
        return args.mirror
    from aelab.data.datasets import DATASETS

    info = DATASETS.get(str(args.data))
    return bool(info is not None and info.mirrored)


def _warn_legacy(args: argparse.Namespace) -> None:
    if args.legacy:
        _log(
            f"aelab {args.command}: --legacy: a run without aelab-run.json is read unchecked (a "
            "changed or damaged file would go unnoticed), and its data split is not checked"
        )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from aelab.apps.workshop import resume_workshop, run_workshop
    from aelab.training.tracking import parse_log

    from .flags import command_flags, config_values, with_flags

    trackers = parse_log(args.log)  # a bad --log fails before any data is read
    flags = command_flags(args.command_parser)

    def log(line: str) -> None:  # the data's notes name parameters too: as flags here
        _log(with_flags(line, flags))

    start = time.perf_counter()
    progress = False if args.quiet else None
    if args.resume:
        if args.out is None or args.overwrite:
            raise ValueError("resume=True needs the workshop's out folder, and no overwrite")
        if args.groups is not None:
            raise ValueError(
                f"groups={args.groups!r} is not valid with resume=True: the workshop keeps the "
                "groups it was started with; drop one of the two"
            )
        record = resume_workshop(
            args.out, data_home=args.data_home, progress=progress, log=log, tracking=trackers
        )
    else:
        record = run_workshop(
            _data_spec(args),
            args.out,  # None: a new folder runs/workshop-DATE-TIME
            schedule=args.schedule,
            models=_models(args),
            train=config_values(args),
            seeds=args.seeds,
            overwrite=args.overwrite,
            progress=progress,
            log=log,
            tracking=trackers,
            groups=args.groups,
        )
    print(f"wrote {record['out']}/report.html in {time.perf_counter() - start:.0f} s")
    _headline(record["out"])
    return 0


def _headline(out: str) -> None:
    """What a workshop found, in one line (each model's held-out MSE over PCA's at its code
    size, from metrics.json), and the report's address to open."""
    import json
    from pathlib import Path

    folder = Path(out).resolve()
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    ratios = [
        f"{name} {m['pca_ratio']:.2f}"
        for name, m in metrics.get("models", {}).items()
        if isinstance(m.get("pca_ratio"), (int, float))
    ]
    if ratios:
        print(f"held-out MSE / PCA's at each code size (below 1 beats PCA): {', '.join(ratios)}")
    print(f"open {(folder / 'report.html').as_uri()}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from aelab.apps.evaluation import CURVE_SIZES, evaluate, format_table
    from aelab.utils.files import write_bytes

    out = None if args.out is None else Path(args.out)
    if out is not None and (out.is_dir() or (out.exists() and not args.overwrite)):
        what = "a directory" if out.is_dir() else "a file that exists (pass --overwrite)"
        raise ValueError(f"out='{out}' is {what}; expected a new JSON file name")
    _warn_legacy(args)
    result = evaluate(
        args.run_dir,
        data_home=args.data_home,
        sizes=CURVE_SIZES if args.curve else (),
        legacy=args.legacy,
    )
    print(format_table(result))
    if out is not None:
        write_bytes(out, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        print(f"wrote {out}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from .config import dumps, settings_of

    command, settings = settings_of(args.run_dir, legacy=args.legacy)
    sys.stdout.write(dumps(command, settings, args.run_dir))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from aelab.apps.compare import compare, format_table, render_html
    from aelab.utils.files import write_bytes

    out = None if args.out is None else Path(args.out)
    if out is not None:
        if out.suffix not in (".json", ".html"):
            raise ValueError(
                f"out='{out}' is not valid; expected a file name ending .json or .html"
            )
        if out.is_dir() or (out.exists() and not args.overwrite):
            what = "a directory" if out.is_dir() else "a file that exists (pass --overwrite)"
            raise ValueError(f"out='{out}' is {what}; expected a new file name")
    _warn_legacy(args)
    result = compare(args.run_dirs, data_home=args.data_home, legacy=args.legacy)
    print(format_table(result))
    if out is not None:
        text = json.dumps(result, indent=2) + "\n" if out.suffix == ".json" else render_html(result)
        write_bytes(out, text.encode("utf-8"))
        print(f"wrote {out}")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from aelab.utils.device import check_device

    check_device(args.device)
    try:
        import starlette  # noqa: F401 - the page's server, an optional extra
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ValueError(f"aelab explore needs {e.name}: pip install 'aelab[explore]'") from None
    from aelab.apps.explorer import open_spaces
    from aelab.apps.explorer.serve import bind, serve

    sock = bind(args.host, args.port)  # a port in use fails now, not after loading the models
    start = time.perf_counter()
    print(f"reading {args.run_dir} and encoding its images...", flush=True)
    try:
        _warn_legacy(args)
        spaces = open_spaces(
            args.run_dir, data_home=args.data_home, device=args.device, legacy=args.legacy
        )
    except BaseException:
        sock.close()
        raise
    print(f"ready in {time.perf_counter() - start:.1f} s", flush=True)
    serve(spaces, host=args.host, sock=sock, open_browser=args.open)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aelab.apps.report import build_report, missing_note

    start = time.perf_counter()
    _warn_legacy(args)
    result = build_report(args.run_dir, data_home=args.data_home, legacy=args.legacy)
    print(f"wrote {args.run_dir}/report.html in {time.perf_counter() - start:.0f} s")
    note = missing_note(result["missing"], args.run_dir)
    if note:
        _log(note)
    return 0
