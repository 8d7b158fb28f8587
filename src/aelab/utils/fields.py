"""Configs as dataclasses read back from JSON, one rule for every one of them; and the one
declaration of a setting: a field with its help text, from which the command line makes its flag
(:func:`setting`)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_fields(cls: type[T], d: dict[str, Any]) -> T:
    """``cls(**d)`` for the dataclass ``cls``; a field it does not have is an error naming it."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown fields {unknown}; allowed: {sorted(names)}")
    return cls(**d)


def setting(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None) -> Any:
    """A config field declared once: its default, and what the command line needs to make a
    flag of it (``--name-with-dashes`` unless ``flag`` names another; its help text and
    metavar). The value is checked by the config itself (``__post_init__``), never by the
    flag."""
    metadata = {"help": help, "flag": flag, "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")
