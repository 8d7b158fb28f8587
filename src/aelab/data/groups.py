"""A user's groups of images, for attribute directions: ``aelab run --groups FILE``.

The file is a UTF-8 CSV with a header and two columns::

    image,group
    0,smiling
    1,smiling
    14,glasses
    s3/7.pgm,glasses

``image`` is an image's 0-based index in the data set as aelab loads it (before the split and the
mirrors), or, for a folder of images, the image's path relative to the folder as aelab lists it
(``/`` between folders); ``group`` any non-empty text (surrounding spaces dropped). Not every
image needs a group, but at least two groups need two images or more. The file is only read as
text (the :mod:`csv` module, nothing evaluated), and every mistake is one line naming the file,
the line, the value and what is allowed (:func:`read_groups`). :class:`ImageGroups` then gives the
group of each image of any part of a split, mirrors included (:meth:`ImageGroups.labels`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HEADER = ("image", "group")
MAX_BYTES = 16 * 2**20  # a groups file larger than this is refused before it is read
MAX_NAME = 200  # characters of a group's name: it is drawn beside the report's figures
MIN_IMAGES = 2  # a group counts when it has this many images: one image is no mean


@dataclasses.dataclass(frozen=True)
class ImageGroups:
    """Groups of a data set's images, as a groups file gives them.

    Attributes
    ----------
    names : list of str
        The groups, in the order the file first names them.
    of_image : ndarray of int64, shape (n_loaded,)
        Each image's group (an index into ``names``), -1 for an image without one; indexed as
        the data set was loaded (:meth:`aelab.data.ImageSet.origins`).
    source : str
        Where the groups come from, as a caption says it (the file's name).
    data : bytes
        The file's bytes exactly as they were read and checked: what a workshop keeps as its
        copy, so that the copy is the file that was checked even if the file changes after.
    """

    names: list[str]
    of_image: np.ndarray
    source: str
    data: bytes = dataclasses.field(default=b"", repr=False)

    def labels(self, part) -> np.ndarray:
        """The group of each image of ``part`` (an :class:`~aelab.data.ImageSet` or a streamed
        folder, any part of a split), -1 where it has none."""
        return self.of_image[np.asarray(part.origins(), dtype=np.int64)]

    def sizes(self) -> dict[str, int]:
        """How many images each group holds."""
        counts = np.bincount(self.of_image[self.of_image >= 0], minlength=len(self.names))
        return dict(zip(self.names, counts.tolist()))


def _read(path: Path) -> bytes:
    """The file's bytes: a regular file of at most :data:`MAX_BYTES`. Opened without waiting
    (a FIFO would block a plain open) and checked on the open file, so that a file swapped
    after a check is not read unchecked."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ValueError(f"groups='{path}': {e.strerror or 'cannot be read'}") from None
    with open(fd, "rb", closefd=True) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"groups='{path}' is not a regular file; allowed: a CSV file")
        if info.st_size > MAX_BYTES:
            raise ValueError(
                f"groups='{path}' holds {info.st_size:,} bytes; allowed: at most {MAX_BYTES:,}"
            )
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:  # it grew since: still refused
        raise ValueError(f"groups='{path}' holds more than {MAX_BYTES:,} bytes; allowed: fewer")
    return data


def _text(path: Path, data: bytes) -> str:
    """The file's text, in UTF-8 (a BOM allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"groups='{path}', line {line}: byte {data[e.start]:#04x} is not UTF-8 text; allowed: "
            "a CSV file in UTF-8"
        ) from None


def _image(value: str, n: int, files: dict[str, int] | None, where: str) -> int:
    """The index of the image ``value`` names: a file of the folder, else a 0-based index."""
    if files is not None and value in files:
        return files[value]
    allowed = f"a 0-based index 0 to {n - 1}"
    if files is not None:
        example = next(iter(files), "a/1.png")
        allowed += f" or an image's path relative to the folder (e.g. {example!r})"
    if not (value.isascii() and value.isdigit()):
        what = "is not an image of the folder" if files is not None else "is not an index"
        raise ValueError(f"{where}: image={value!r} {what}; allowed: {allowed}")
    index = int(value)
    if index >= n:
        raise ValueError(
            f"{where}: image={value!r} is out of range for {n} images; allowed: {allowed}"
        )
    return index


def read_groups(
    path: str | os.PathLike, n_images: int, files: Sequence[str] | None = None
) -> ImageGroups:
    """Read and check a groups file (see the module's docstring) for a data set of
    ``n_images`` images as loaded, named ``files`` when it is a folder.

    Raises
    ------
    ValueError
        One line naming the file, the line, the value and what is allowed: a file that is not
        a regular file, too large, not UTF-8 or not CSV; a header other than ``image,group``; a
        row without two values; an unknown image, an index out of range, an image named twice,
        an empty, too long or unprintable group; fewer than two groups of :data:`MIN_IMAGES`
        images or more.
    """
    path = Path(path)
    if files is not None and len(files) != n_images:
        raise ValueError(f"files names {len(files)} images; expected n_images={n_images}")
    by_name = None if files is None else {name: i for i, name in enumerate(files)}
    data = _read(path)
    reader = csv.reader(io.StringIO(_text(path, data), newline=""), strict=True)
    of_image = np.full(n_images, -1, dtype=np.int64)
    first_line: dict[int, int] = {}
    names: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != HEADER:
            raise ValueError(
                f"groups='{path}', line 1: header={','.join(header or [])!r}; allowed: the "
                "header 'image,group', then one image and its group a line"
            )
        for row in reader:
            where = f"groups='{path}', line {reader.line_num}"
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != 2:
                raise ValueError(
                    f"{where}: {len(row)} value(s) ({','.join(row)[:80]!r}); allowed: two, an "
                    "image and its group"
                )
            index = _image(row[0].strip(), n_images, by_name, where)
            group = row[1].strip()
            if not group:
                raise ValueError(f"{where}: group={row[1]!r} is empty; allowed: any non-empty text")
            if not group.isprintable():
                raise ValueError(
                    f"{where}: group={group[:40]!r} holds a control character; allowed: "
                    "printable text"
                )
            if len(group) > MAX_NAME:
                raise ValueError(
                    f"{where}: group={group[:40]!r}... has {len(group)} characters; allowed: at "
                    f"most {MAX_NAME}"
                )
            if index in first_line:
                raise ValueError(
                    f"{where}: image={row[0].strip()!r} was given a group on line "
                    f"{first_line[index]} already; allowed: one group an image"
                )
            first_line[index] = reader.line_num
            of_image[index] = names.setdefault(group, len(names))
    except csv.Error as e:
        raise ValueError(
            f"groups='{path}', line {reader.line_num}: not valid CSV ({e}); allowed: a CSV file "
            "with the header 'image,group'"
        ) from None
    groups = ImageGroups(list(names), of_image, path.name, data)
    counts = groups.sizes()
    enough = [g for g, c in counts.items() if c >= MIN_IMAGES]
    if len(enough) < 2:
        found = ", ".join(f"{g!r}: {c}" for g, c in list(counts.items())[:5]) or "none"
        raise ValueError(
            f"groups='{path}': {len(enough)} group(s) of {MIN_IMAGES} images or more (images a "
            f"group: {found}); allowed: at least 2 such groups"
        )
    return groups


def read_split_groups(path: str | os.PathLike, split) -> ImageGroups:
    """:func:`read_groups` for the data set ``split`` (:class:`~aelab.data.prepare.Split`) was
    made of: its images as loaded, named by their files when it is a folder."""
    files = getattr(split.train, "files", None)
    n = split.n_loaded if split.n_loaded is not None else len(files or ())
    return read_groups(path, n, files)


__all__ = ["HEADER", "MAX_BYTES", "MIN_IMAGES", "ImageGroups", "read_groups", "read_split_groups"]
