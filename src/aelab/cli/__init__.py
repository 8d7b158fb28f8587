"""The ``aelab`` command: parse arguments, call the library, turn user errors into exit code 2.

:mod:`.parser` builds the arguments, :mod:`.commands` runs each sub-command; here, errors become
one line, each parameter the library names written as the flag the user typed
(:func:`with_flags`: ``pass overwrite=True`` reads ``pass --overwrite``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .config import parse as parse_config
from .flags import command_flags, with_flags
from .parser import build_parser

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError)


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
    try:  # a --config file's settings, then the flags on top
        args = parse_config(parser, argv) or parser.parse_args(argv)
    except USER_ERRORS as e:
        print(f"aelab {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    flags = command_flags(args.command_parser)
    try:
        if args.command in ("run", "report"):
            from aelab.utils.distributed import env_world_size

            if env_world_size() > 1:
                raise ValueError(
                    f"aelab {args.command} runs in one process; start it without torchrun "
                    "(only `aelab train` trains in several)"
                )
        return args.func(args)
    except USER_ERRORS as e:
        print(f"aelab {args.command}: error: {with_flags(str(e), flags)}", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(
            f"aelab {args.command}: error: {e.filename or ''}: permission denied", file=sys.stderr
        )
        return 2
    except FloatingPointError as e:  # training diverged: what to change is in the message
        print(f"aelab {args.command}: error: {with_flags(str(e), flags)}", file=sys.stderr)
        return 1
    except OSError as e:  # the disk, not the input: a full disk, a failed checkpoint
        print(f"aelab {args.command}: error: {with_flags(_one_line(e), flags)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aelab {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "command_flags", "main", "with_flags"]
