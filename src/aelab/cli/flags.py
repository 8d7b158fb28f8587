"""The command line's flags, each declared once: the training settings on
:class:`~aelab.TrainConfig`'s fields (:func:`config_flags`), a model family's on its config
(:data:`FAMILY_FLAGS`); and the library's messages rewritten for the command line, each
parameter as the flag that sets it (:func:`command_flags`, :func:`with_flags`)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import shlex
import types
import typing
from collections.abc import Mapping

from aelab.training.config import TrainConfig
from aelab.utils.fields import flag_of

# fields of one family's config (aelab models lists them): the flag's name is the field's
FAMILY_FLAGS = (
    ("--penalty", str, "sparse: the code's penalty, l1, kl or topk"),
    ("--l1", float, "sparse, penalty l1: weight of the mean absolute code"),
    ("--rho", float, "sparse, penalty kl: target mean activation of each unit"),
    ("--k", int, "topk: code units kept per image"),
    ("--latent-activation", str, "dense families: the code's activation (relu, sigmoid, none)"),
    ("--lam", float, "contractive: weight of the encoder Jacobian's squared norm"),
    ("--warmup", int, "variational: epochs over which the KL weight rises to beta"),
    ("--capacity", float, "variational: target KL per image in nats (Burgess et al.)"),
    ("--capacity-epochs", int, "variational: epochs over which the capacity rises"),
    ("--codebook-size", int, "vqvae: codes each slot chooses from"),
    ("--code-dim", int, "vqvae: values per slot"),
)


def family_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The family fields given on the command line (:data:`FAMILY_FLAGS`)."""
    fields = (flag[2:].replace("-", "_") for flag, _, _ in FAMILY_FLAGS)
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}


def config_flags(
    group: argparse._ArgumentGroup, cls: type = TrainConfig, names: tuple[str, ...] | None = None
) -> None:
    """A flag for each field of the config ``cls`` (or those in ``names``), its name, help and
    type from the field (:func:`aelab.utils.fields.setting`). Every flag defaults to None (not
    given: the schedule's or the config's own value); the config checks the values."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # int | None, str | None
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        common = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if kind is bool:  # a flag that turns the default off (--no-shuffle) or on
            group.add_argument(flag_of(f), action="store_const", const=not f.default, **common)
        else:
            group.add_argument(flag_of(f), type=kind, metavar=f.metadata["metavar"], **common)


def config_values(args: argparse.Namespace, cls: type = TrainConfig) -> dict[str, object]:
    """The fields of ``cls`` given on the command line."""
    fields = (f.name for f in dataclasses.fields(cls))
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}


def command_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, bool]]:
    """``{parameter: (flag, takes_value)}`` for every option of one command's ``parser``: the
    parameter is the option's ``dest``, which is the library's name for it (a TrainConfig field,
    a DataSpec field, a function's argument); ``takes_value`` is False for a switch
    (``--overwrite``). Read from the parser itself, so a message names only flags the command
    has (``batch_size`` stays ``batch_size`` under ``aelab run``, which has no ``--batch-size``)."""
    flags: dict[str, tuple[str, bool]] = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        long = [o for o in action.option_strings if o.startswith("--")]
        if not long or action.help == argparse.SUPPRESS or action.dest in ("help", "version"):
            continue
        flags.setdefault(action.dest, (long[0], action.nargs != 0))
    return flags


_VALUE = r"""=('[^']*'|"[^"]*"|\([^()]*\)|\[[^\]]*\]|[^\s,;:)]*)"""  # quoted: may hold : and ,


def _shell(value: str) -> str:
    """A value as the library's message writes it (Python's repr), as it is typed in a shell."""
    if value and value[0] in "'\"":
        try:
            return shlex.quote(str(ast.literal_eval(value)))
        except (ValueError, SyntaxError):
            return value
    return value


def with_flags(message: str, flags: Mapping[str, tuple[str, bool]]) -> str:
    """``message`` as the command line's user reads it: each parameter of ``flags``
    (:func:`command_flags`) written as the flag that sets it, with its value as it is typed.

    ``overwrite=True`` becomes ``--overwrite``, ``optimizer='adm'`` ``--optimizer adm``,
    ``learning_rate`` ``--lr``; a plain word (``stream``, ``out``) is a parameter only as
    ``name=value`` or as the message's subject (``models: ...``), an underscored one
    (``skip_bad``) wherever it stands; ``name=False`` of a switch and ``name=None`` stay as they
    are (no flag says them).
    """

    def flag_for(flag: str, takes_value: bool):
        def render(m: re.Match) -> str:
            value = m.group(1)
            if value is None:
                return flag
            if value in ("", "None") or (not takes_value and value != "True"):
                return m.group(0)
            return flag if not takes_value else f"{flag} {_shell(value)}"

        return render

    for param, (flag, takes_value) in flags.items():
        value = f"(?:{_VALUE})?" if "_" in param else _VALUE
        pattern = rf"(?<![\w/.'\"-]){re.escape(param)}{value}(?=[\s,;:)]|$)"
        message = re.sub(pattern, flag_for(flag, takes_value), message)
        if "_" not in param:  # the subject: "models: 'vea' is not a known model"
            message = re.sub(rf"^{re.escape(param)}(?=: )", flag, message)
    return message
