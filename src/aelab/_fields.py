"""Configs as dataclasses read back from JSON: one rule for every one of them."""

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
