"""Listing a folder of images without decoding a pixel: the image files (by extension, else by
content), labels from class subfolders, and what was skipped (other files, symbolic links)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aelab.utils.choices import not_one_of

from .images import IMAGE_EXTENSIONS
from .reading import _is_image_content

CLASS_ORDERS = ("natural", "name")


def natural_key(name: str) -> tuple:
    """Sorts names as people read them: ``s1, s2, ..., s10`` (digits compared as numbers), not
    ``s1, s10, s11, ..., s2``; the name itself breaks ties (``s01`` before ``s1``)."""
    parts = re.split(r"(\d+)", name)  # text, number, text, number, ...: each in its place
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _listing(names: list[str], at_most: int = 5) -> str:
    return ", ".join(names[:at_most]) + (", ..." if len(names) > at_most else "")


@dataclass(frozen=True)
class _FolderListing:
    """What a folder of images holds, found without reading a pixel."""

    files: list[str]  # image paths relative to the folder, in reading order
    labels: np.ndarray  # (N,) int64 index into class_names; -1 when unlabelled
    class_names: list[str] | None
    notes: list[str]
    skipped: _Skipped  # what the notes tell of, every name (aelab score names each)


@dataclass
class _Skipped:
    """What a listing passed over, relative to the folder, in listing order."""

    files: list[str] = field(default_factory=list)  # not images (or not regular files)
    links: list[str] = field(default_factory=list)  # symbolic links, not followed
    dead_links: list[str] = field(default_factory=list)  # followed: loop, lead nowhere, repeat
    folders: list[str] = field(default_factory=list)  # cannot be listed ("name: why")

    def notes(self) -> list[str]:
        notes = []
        if self.files:
            notes.append(f"skipped {len(self.files)} non-image files ({_listing(self.files)})")
        if self.links:
            notes.append(
                f"skipped {len(self.links)} symbolic links ({_listing(self.links)}); pass "
                "follow_links=True to read them"
            )
        if self.dead_links:
            notes.append(
                f"skipped {len(self.dead_links)} symbolic links that loop, lead nowhere or "
                f"repeat a folder already read ({_listing(self.dead_links)})"
            )
        if self.folders:
            notes.append(
                f"skipped {len(self.folders)} folders that cannot be listed "
                f"({_listing(self.folders)})"
            )
        return notes


def _kind(entry: os.DirEntry, follow_links: bool) -> str:
    """``"link"`` (not followed), ``"dir"``, ``"file"``, ``"dead"`` (a followed link to nothing
    or to itself) or ``"other"`` (a pipe, a socket, a device: never opened).

    Without following links this needs no ``stat``: ``DirEntry`` knows the entry's type.
    """
    try:
        if entry.is_symlink() and not follow_links:
            return "link"
        # DirEntry.is_dir()/is_file() follow links unless told not to
        if entry.is_dir(follow_symlinks=follow_links):
            return "dir"
        if entry.is_file(follow_symlinks=follow_links):
            return "file"
        return "dead" if entry.is_symlink() else "other"
    except OSError:  # a link to itself (ELOOP), or an entry gone since it was listed
        return "dead"


def _identity(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)  # follows links: the folder itself
    return st.st_dev, st.st_ino


class _Walk:
    """One listing: its options, what it skipped, and (following links) the folders read."""

    def __init__(self, root: Path, follow_links: bool) -> None:
        self.root, self.follow_links, self.skipped = root, follow_links, _Skipped()
        self.linked: set[tuple[int, int]] = set()  # folders read through a link

    def scan(self, rel: str) -> tuple[list[str], list[tuple[str, bool]]]:
        """One folder: its image files and its visible subfolders ``(name, is_link)``."""
        try:
            with os.scandir(self.root / rel) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.skipped.folders.append(f"{rel or '.'}: {e.strerror or e}")
            return [], []
        files, dirs = [], []
        for entry in entries:
            name = os.path.join(rel, entry.name) if rel else entry.name
            kind, hidden = _kind(entry, self.follow_links), entry.name.startswith(".")
            if kind == "link":
                self.skipped.links.append(name)
            elif kind == "dead":
                self.skipped.dead_links.append(name)
            elif kind == "dir":
                if not hidden:  # hidden folders (.git, .ipynb_checkpoints) are not data
                    dirs.append((name, entry.is_symlink()))
            elif kind == "file" and not hidden and _is_image(self.root, name):
                files.append(name)
            else:
                self.skipped.files.append(name)
        return files, dirs

    def descend(self, rel: str, is_link: bool, ancestors: frozenset) -> list[str]:
        """Image files under subfolder ``rel``: each folder's files, then its subfolders'.

        An explicit stack, not recursion: a folder nested thousands deep is listed as well.
        """
        files, stack = [], [(rel, is_link, ancestors)]
        while stack:
            name, is_link, ancestors = stack.pop()
            key = None
            if self.follow_links:
                # Following links, a folder can be reached again: a link to a folder above it
                # would recurse forever, and many links to one folder would read it as many
                # times (exponentially many, nested). It is read once, through the first link.
                try:
                    key = _identity(self.root / name)
                except OSError:
                    self.skipped.dead_links.append(name)
                    continue
                if key in ancestors or (is_link and key in self.linked):
                    self.skipped.dead_links.append(name)
                    continue
                if is_link:
                    self.linked.add(key)
            found, dirs = self.scan(name)
            files += found
            below = ancestors if key is None else ancestors | {key}
            stack += [(d, link, below) for d, link in reversed(dirs)]
        return files


def _is_image(root: Path, name: str) -> bool:
    """By extension; without an image extension, by content (Pillow reads the header)."""
    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        return True  # decided by the name alone: no file is opened
    return _is_image_content(root / name)


def _list_image_folder(
    folder: Path, follow_links: bool = False, class_order: str = "natural"
) -> _FolderListing:
    """The images of a folder: one subfolder per class, or images only (unlabelled).

    Classes are in ``class_order``: ``natural`` (``s1, s2, ..., s10``; :func:`natural_key`) or
    ``name`` (``s1, s10, s2``: aelab 0.2.1 and earlier, which runs recorded then still read).
    Listing 100,000 files takes well under a second: names and entry types come from one
    ``os.scandir`` per folder, and only files without an image extension are opened (their
    first bytes). Symbolic links are not followed unless ``follow_links``.
    """
    if class_order not in CLASS_ORDERS:
        raise not_one_of("class_order", class_order, CLASS_ORDERS)
    if not folder.is_dir():
        raise FileNotFoundError(f"path='{folder}' is not a folder")
    walk = _Walk(folder, follow_links)
    top_images, subdirs = walk.scan("")
    root = frozenset({_identity(folder)}) if follow_links else frozenset()
    class_files = {}
    for d, is_link in subdirs:
        images = walk.descend(d, is_link, root)
        if images:
            class_files[d] = images
    if top_images and class_files:
        raise ValueError(
            f"{folder} mixes images ({top_images[0]}) with class subfolders "
            f"({next(iter(class_files))}/); use one subfolder per class or images only"
        )
    class_names = list(class_files) or None
    if class_names and class_order == "natural":
        class_names.sort(key=natural_key)
    if class_names:
        files = [f for name in class_names for f in class_files[name]]
        labels = np.repeat(
            np.arange(len(class_names), dtype=np.int64), [len(class_files[c]) for c in class_names]
        )
    else:
        files, labels = top_images, np.full(len(top_images), -1, dtype=np.int64)
    notes = walk.skipped.notes()
    if not files:
        raise ValueError(
            f"{folder} holds no images (files named {_listing(list(IMAGE_EXTENSIONS), 8)}, or "
            "that Pillow identifies by their content)" + "".join(f"; {n}" for n in notes)
        )
    return _FolderListing(files, labels, class_names, notes, walk.skipped)
