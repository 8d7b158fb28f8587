"""``aelab score`` and ``aelab export``: a trained run used on new images, in this process or in
a graph for another runtime. Their arguments (the parser adds the data home and ``--legacy``) and
what they do."""

from __future__ import annotations

import argparse
import sys
import time

from .commands import _warn_legacy


def add_score(sub) -> argparse.ArgumentParser:
    """The ``score`` sub-command's arguments."""
    p = sub.add_parser("score", help="how unusual each image is: scores, p-values, outliers")
    p.add_argument("run_dir", metavar="RUN", help="a run (aelab train, Autoencoder.save)")
    p.add_argument("data", metavar="DATA", help="a folder of images, a .npy/.npz or a data set")
    p.add_argument("--out", metavar="FILE", help="write the CSV to FILE (default: print it)")
    p.add_argument(
        "--maps",
        metavar="DIR",
        help="write a calibrated map PNG per image into DIR (new): each pixel's p-value against "
        "the same pixel on the calibration images, on one fixed scale, white at the threshold",
    )
    p.add_argument(
        "--map-correction",
        default="none",
        choices=("none", "bonferroni"),
        help="none (default): each pixel of a normal image flagged with probability <= fpr; "
        "bonferroni: any pixel of a normal image flagged with probability <= fpr (needs about "
        "pixels / fpr calibration images)",
    )
    p.add_argument(
        "--gallery",
        type=int,
        metavar="N",
        help="write an HTML page of the N most normal and N most unusual images with their maps "
        "and explanations (1-100)",
    )
    p.add_argument(
        "--gallery-out",
        metavar="FILE",
        default=None,
        help="where --gallery writes its page (default: gallery.html; new unless --overwrite)",
    )
    p.add_argument(
        "--fpr", type=float, help="false-positive rate of the threshold (default: the run's, 0.05)"
    )
    p.add_argument(
        "--calibrate",
        metavar="DATA",
        help="normal images the model did not train on, to set the threshold (default: the "
        "run's calibration share, else its held-out images)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the CSV or gallery FILE if it exists"
    )
    p.set_defaults(func=cmd_score)
    return p


def add_export(sub) -> argparse.ArgumentParser:
    """The ``export`` sub-command's arguments."""
    p = sub.add_parser(
        "export", help="write a trained model's encoder and decoder as ONNX or TorchScript graphs"
    )
    p.add_argument("run_dir", metavar="RUN", help="a run (aelab train) or workshop (aelab run)")
    p.add_argument(
        "--format",
        default="onnx",
        help="onnx (default; pip install 'aelab[onnx]') or torchscript",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="a new folder (default: RUN-FORMAT beside the run; a workshop's models in DIR/NAME/)",
    )
    p.add_argument(
        "--logvar",
        action="store_true",
        help="variational models: the encoder also gives the posterior's log-variance, logvar",
    )
    p.add_argument(
        "--scorer",
        action="store_true",
        help="onnx: also scorer.onnx and, in export.json, the preprocessing, the score, the "
        "threshold and the calibration scores (examples/score_onnx.py scores with them)",
    )
    p.add_argument(
        "--calibrate",
        metavar="DATA",
        help="--scorer: normal images the model did not train on, to set the threshold "
        "(default: as aelab score)",
    )
    p.add_argument(
        "--fpr", type=float, help="--scorer: the threshold's false-positive rate (default 0.05)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in DIR")
    p.set_defaults(func=cmd_export)
    return p


def _new_file(path: str | None, what: str, overwrite: bool):
    """``path`` as a Path if it can be written (new, or a file with ``overwrite``); else one line
    naming it."""
    from pathlib import Path

    if path is None:
        return None
    out = Path(path)
    if out.is_dir() or (out.exists() and not overwrite):
        kind = "a directory" if out.is_dir() else "a file that exists (pass --overwrite)"
        raise ValueError(f"{what}='{out}' is {kind}; expected a new file name")
    return out


def cmd_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aelab.apps.gallery import check_gallery, gallery_html
    from aelab.apps.scoring import (
        calibrated_map_pngs,
        map_names,
        map_scale_line,
        open_scorer,
        read_images,
        rows,
        rows_csv,
    )
    from aelab.utils.files import write_bytes

    out = _new_file(args.out, "out", args.overwrite)
    maps = None if args.maps is None else Path(args.maps)
    if maps is not None and (maps.is_symlink() or (maps.exists() and not maps.is_dir()) or
                             (maps.is_dir() and any(maps.iterdir()))):  # fmt: skip
        what = "is a symbolic link" if maps.is_symlink() else "exists and is not an empty folder"
        raise ValueError(f"maps='{maps}' {what}; expected a new folder")
    gallery = None
    if args.gallery is not None:
        check_gallery(args.gallery)
        gallery = _new_file(args.gallery_out or "gallery.html", "gallery_out", args.overwrite)
    elif args.gallery_out is not None:
        raise ValueError(f"gallery_out='{args.gallery_out}' needs --gallery N")
    _warn_legacy(args)
    pixels = maps is not None or gallery is not None
    scorer = open_scorer(args.run_dir, args.calibrate, args.data_home, args.fpr, args.legacy,
                         pixels=pixels, map_correction=args.map_correction)  # fmt: skip
    shape = tuple(scorer.detector.run.model.input_shape)
    images = read_images(args.data, shape, args.data_home)
    scored = scorer.evaluate(images.x, maps=pixels)
    found = rows(scored, images.names)
    text = rows_csv(found)
    if out is None:
        _write_stdout(text)
    else:
        write_bytes(out, text)
    if maps is not None:
        maps.mkdir(parents=True, exist_ok=True)
        for name, png in zip(map_names(images), calibrated_map_pngs(scorer, scored)):
            write_bytes(maps / name, png)
    if gallery is not None:
        write_bytes(gallery, gallery_html(images, scored, scorer, args.gallery))
    flagged = sum(r["outlier"] for r in found)
    line = [
        f"{len(found)} images, {flagged} outliers at fpr={scorer.fpr:g} (threshold "
        f"{scorer.threshold:.6g} from {scorer.source})"
    ]
    line += [f"skipped {images.skipped_line()}"] if images.skipped else []
    line += [f"skipped in calibrate: {scorer.skipped}"] if scorer.skipped else []
    line += [map_scale_line(scorer)] if pixels else []
    line += [f"wrote {', '.join(str(p) for p in (out, maps, gallery) if p is not None)}"] if (
        out or maps or gallery) else []  # fmt: skip
    print("; ".join(line), file=sys.stderr)
    return 0


def _write_stdout(data: bytes) -> None:
    """``data`` (UTF-8) on stdout as it is, whatever encoding the terminal's locale names."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a stream without bytes (a notebook's)
        sys.stdout.write(data.decode("utf-8"))
        return
    sys.stdout.flush()
    buffer.write(data)
    buffer.flush()


def cmd_export(args: argparse.Namespace) -> int:
    from aelab.apps.export import export_run
    from aelab.apps.export_scorer import check_scorer
    from aelab.apps.scoring import open_scorer

    start = time.perf_counter()
    if not args.scorer and (args.calibrate is not None or args.fpr is not None):
        flag = "--calibrate" if args.calibrate is not None else "--fpr"
        raise ValueError(f"{flag} sets the threshold of a scorer; it needs --scorer")
    try:
        _warn_legacy(args)
        scorer = None
        if args.scorer:
            if args.format != "onnx":  # before the calibration images are read
                raise ValueError(f"--scorer needs --format onnx, not {args.format!r}")
            scorer = open_scorer(args.run_dir, args.calibrate, args.data_home, args.fpr,
                                 args.legacy)  # fmt: skip
            check_scorer(scorer, args.format)
        record = export_run(
            args.run_dir,
            args.out,
            args.format,
            args.logvar,
            overwrite=args.overwrite,
            legacy=args.legacy,
            scorer=scorer,
        )
    except ImportError as e:  # onnx is an optional extra: its message names the install
        raise ValueError(str(e)) from None
    for name, reason in record.get("skipped", {}).items():
        print(f"left out {name}: {reason}", file=sys.stderr)
    models = record["models"] if "models" in record else {record["recipe"]: record}
    done = ", ".join(f"{n} ({r['family']}, code {r['code_size']})" for n, r in models.items())
    if "scorer" in record:
        s = record["scorer"]
        done += (f"; scorer.onnx, threshold {s['threshold']:.6g} at fpr={s['fpr']:g} from "
                 f"{s['calibration']}")  # fmt: skip
    print(f"wrote {record['out']}: {done} in {time.perf_counter() - start:.1f} s")
    return 0
