"""The command line's flags, each declared once: the training settings on
:class:`~aelab.TrainConfig`'s fields (:func:`config_flags`), a model family's on its config
(:data:`FAMILY_FLAGS`), and the map from the library's parameter names to the flags that set them,
which error messages use (:func:`with_flags`)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing

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


# The library's messages name its parameters (skip_bad=True); an error reported here also names
# the flag that sets each, at its first mention.
FLAGS = {
    **{f.name: flag_of(f) for f in dataclasses.fields(TrainConfig)},
    "skip_bad": "--skip-bad",
    "image_size": "--image-size",
    "stream": "--stream",
    "cache": "--cache",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "follow_links": "--follow-links",
    "max_image_pixels": "--max-image-pixels",
    "data_home": "--data-home",
    "normals": "--normals",
    "log": "--log",
    "legacy": "--legacy",
    **{flag[2:].replace("-", "_"): flag for flag, _, _ in FAMILY_FLAGS},
}


def with_flags(message: str) -> str:
    """``message`` with `` (--flag)`` after the first mention of each parameter in FLAGS."""
    for param, flag in FLAGS.items():
        if flag in message:
            continue
        # a plain word (stream, resume) is a parameter only as name=value; an underscored name
        # (skip_bad) is one wherever it stands
        value = r"""=(?:'[^']*'|"[^"]*"|[^\s,;:)]*)"""  # a quoted value may hold : and ,
        value = f"({value})?" if "_" in param else value
        pattern = rf"(?<![\w/.'\"-]){param}{value}(?=[\s,;:)]|$)"
        message = re.sub(pattern, lambda m, f=flag: f"{m.group(0)} ({f})", message, count=1)
    return message
