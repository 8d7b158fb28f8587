"""A value chosen from a list of names, and the one-line error for one that is not there, with the
nearest name as a suggestion (``optimizer='adm' is not valid; did you mean 'adam'? ...``).

Suggestions come from :func:`difflib.get_close_matches` (a ratio of matching characters of at
least 0.6: ``cnov`` finds ``conv``, ``vea`` finds ``vae``, ``wandb`` finds nothing), compared
without case; ``aliases`` name what a word usually means where spelling alone would mislead
(``gpu`` is nearer ``cpu`` than ``cuda``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def suggestion(
    value: object, allowed: Iterable[str], aliases: Mapping[str, str | None] | None = None
) -> str | None:
    """The name of ``allowed`` that ``value`` most likely meant, or None (an alias mapped to None:
    nothing here is what that word means)."""
    if not isinstance(value, str) or not value:
        return None
    names = [str(a) for a in allowed]
    key = value.strip().lower()
    if aliases and key in aliases:
        return aliases[key]
    by_lower = {n.lower(): n for n in names}
    if key in by_lower and by_lower[key] != value:  # "Conv", " conv"
        return by_lower[key]
    close = difflib.get_close_matches(key, list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(
    value: object, allowed: Iterable[str], aliases: Mapping[str, str | None] | None = None
) -> str:
    """``"did you mean 'conv'? "`` for :func:`suggestion`, or ``""``; it goes before
    ``allowed: ...``."""
    near = suggestion(value, allowed, aliases)
    return "" if near is None else f"did you mean {near!r}? "


def not_one_of(
    param: str,
    value: object,
    allowed: Iterable[str],
    *,
    what: str = "is not valid",
    aliases: Mapping[str, str | None] | None = None,
) -> ValueError:
    """``ValueError("param='value' is not valid; did you mean 'x'? allowed: a, b, c")``."""
    names = [str(a) for a in allowed]
    hint = did_you_mean(value, names, aliases)
    return ValueError(f"{param}={value!r} {what}; {hint}allowed: {', '.join(names)}")


__all__ = ["did_you_mean", "not_one_of", "suggestion"]
