"""The ``aelab`` command: parse arguments, call the library, turn user errors into exit code 2.

:mod:`.parser` builds the arguments, :mod:`.commands` runs each sub-command; here, errors become
one line naming the parameter, and the flag that sets it (:func:`with_flags`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from .parser import FAMILY_FLAGS, build_parser

FLAGS = {
    "skip_bad": "--skip-bad",
    "image_size": "--image-size",
    "stream": "--stream",
    "cache": "--cache",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "follow_links": "--follow-links",
    "max_image_pixels": "--max-image-pixels",
    "data_home": "--data-home",
    "learning_rate": "--lr",
    "normals": "--normals",
    "log": "--log",
    **{flag[2:].replace("-", "_"): flag for flag, _, _ in FAMILY_FLAGS},
}
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError)


def with_flags(message: str) -> str:
    """``message`` with `` (--flag)`` after the first mention of each parameter in FLAGS."""
    for param, flag in FLAGS.items():
        if flag in message:
            continue
        # a plain word (stream, resume) is a parameter only as name=value; an underscored name
        # (skip_bad) is one wherever it stands
        value = r"(=[^\s,;:)]*)?" if "_" in param else r"=[^\s,;:)]*"
        pattern = rf"(?<![\w/.'\"-]){param}{value}(?=[\s,;:)]|$)"
        message = re.sub(pattern, lambda m, f=flag: f"{m.group(0)} ({f})", message, count=1)
    return message


def _one_line(e: OSError) -> str:
    if e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser, options and help
        from ..bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in ("run", "report"):
            from ..distributed import env_world_size

            if env_world_size() > 1:
                raise ValueError(
                    f"aelab {args.command} runs in one process; start it without torchrun "
                    "(only `aelab train` trains in several)"
                )
        return args.func(args)
    except USER_ERRORS as e:
        print(f"aelab {args.command}: error: {with_flags(str(e))}", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(
            f"aelab {args.command}: error: {e.filename or ''}: permission denied", file=sys.stderr
        )
        return 2
    except FloatingPointError as e:  # training diverged: what to change is in the message
        print(f"aelab {args.command}: error: {with_flags(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:  # the disk, not the input: a full disk, a failed checkpoint
        print(f"aelab {args.command}: error: {with_flags(_one_line(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aelab {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main", "with_flags"]
