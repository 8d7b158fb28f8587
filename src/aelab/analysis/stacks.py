"""Work done on many copies at once: a model decodes one large batch faster than many small ones
(an encoder that searches for each code most of all), within a budget of memory."""

from __future__ import annotations

from collections.abc import Iterator


def stacks(n: int, item_bytes: int, limit: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)``, each of as many items of ``item_bytes`` as fit in
    ``limit`` bytes, and at least one."""
    per = max(1, limit // max(item_bytes, 1))
    for start in range(0, n, per):
        yield slice(start, min(start + per, n))


__all__ = ["stacks"]
