"""A memory-mapped cache of decoded pixels (:class:`PixelCache`): a streamed folder's first epoch
decodes and stores every image, later epochs read them back at memory speed.

One file per data set, ``<cache_dir>/<key[:16]>/pixels.bin``, beside a ``meta.json`` that says
what it holds. The key is a SHA-256 of the folder (its resolved path, every file's name, size and
modification time), the reading options and the decoders' versions, so a changed, added or
removed file gives a new key and stale pixels are never read. ``pixels.bin`` is a 4 KiB header
(:data:`_HEADER`: magic, format, dtype, item count, shape, key), one state word per slot
(``1 << 32 | CRC32`` of its pixels once filled, 0 before) and the pixels ``(N, C, H, W)``.

A slot is written pixels first, state last; a slot whose pixels do not match its CRC (a torn
write, flipped bytes) is decoded again and rewritten, never served. A file whose header does not
match is replaced by a new one, built under a temporary name and linked into place, so that two
processes creating it at once end up sharing one. Deleting any of it, at any time, is safe.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from .images import _bytes_text

FORMAT_VERSION = 1
_MAGIC = b"AELABPX\x00"
# magic, format, dtype (numpy's dtype.str), N, C, H, W, the full key (32 bytes)
_HEADER = struct.Struct("<8sI8sQIII32s")
_PAGE = 4096  # the header's size, and the alignment of the pixels
_FILLED = 1 << 32
_MARGIN = 256 * 2**20  # left free on the disk beyond the file: checkpoints need room too
_STALE = 3600  # seconds after which a temporary file of ours is a dead process's leftover
_OURS = re.compile(r"(pixels\.bin|meta\.json)\.(tmp|old)-\d+-[0-9a-f]{8}")
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _CacheOff(Exception):
    """Why the cache cannot be used (the message ends up in the dataset's notes)."""


def default_cache_dir() -> Path:
    """``$AELAB_CACHE_HOME/pixels``, else ``$XDG_CACHE_HOME/aelab/pixels``, else
    ``~/.cache/aelab/pixels`` (not created here)."""
    home = os.environ.get("AELAB_CACHE_HOME") or None
    if home is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or None
        home = os.path.join(xdg, "aelab") if xdg else os.path.join("~", ".cache", "aelab")
    return Path(home).expanduser() / "pixels"


def cache_dir(cache: object) -> Path | None:
    """The folder ``cache`` names: None or False (off), True (:func:`default_cache_dir`) or a
    folder path; anything else is a ValueError naming the value."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return default_cache_dir()
    if isinstance(cache, (str, os.PathLike)) and isinstance(os.fspath(cache), str):
        if os.fspath(cache).strip():
            return Path(cache).expanduser()
    raise ValueError(
        f"cache={cache!r} is not valid; allowed: None (off), True (the default folder, "
        "$AELAB_CACHE_HOME/pixels or ~/.cache/aelab/pixels) or a folder path"
    )


def cache_key(root: Path, files: list[str], options: dict) -> str:
    """SHA-256 of the folder's identity: its resolved path, ``options`` (how it is read), the
    decoders' versions (a new one may change pixels), and every file's relative name, size and
    modification time."""
    import PIL
    import scipy
    import skimage

    from .._version import __version__

    versions = [__version__, PIL.__version__, skimage.__version__, scipy.__version__]
    digest = hashlib.sha256()
    head = [FORMAT_VERSION, str(root.resolve()), options, versions, np.__version__]
    digest.update(json.dumps(head, sort_keys=True).encode("utf-8", "surrogateescape") + b"\n")
    for rel in files:
        try:
            st = os.stat(root / rel)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # gone since it was listed: reading it will say so
            size = mtime = -1
        digest.update(os.fsencode(rel) + f"\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _u8_values() -> np.ndarray:
    """The float32 that decoding gives an 8-bit value ``k``, for every ``k``: the decoder's own
    functions applied to the 256 values (``k / 255`` the way skimage computes it)."""
    from .images import _fit_image
    from .reading import _to_float

    return _fit_image(_to_float(np.arange(256, dtype=np.uint8).reshape(16, 16)), None, 1).ravel()


def _as_u8(x: np.ndarray) -> np.ndarray | None:
    """``x`` as uint8 when that gives it back bit for bit (an 8-bit image), else None."""
    x = np.ascontiguousarray(x, np.float32)
    u = np.rint(x * np.float32(255)).astype(np.uint8)
    return u if np.array_equal(_u8_values()[u].view(np.uint32), x.view(np.uint32)) else None


def folder_cache(
    where: Path, root: Path, files: list[str], options: dict, shape: tuple, first
) -> tuple[PixelCache | None, str | None]:
    """The cache under ``where`` of the folder ``root`` listing ``files`` (slot ``i``: file
    ``i``), read with ``options``, and a note (:meth:`PixelCache.open`).

    ``first`` is the first file's item when it was read already (images kept at their size):
    when it is 8-bit, the cache holds uint8 (4x smaller, exact); else float32 (resized or
    16-bit pixels, stored as decoded, exact as well). It goes into slot 0."""
    key = cache_key(root, files, options)
    meta = {"source": str(root.resolve()), "count": len(files), **options}
    u8 = options.get("image_size") is None and first is not None and _as_u8(first) is not None
    dtype = np.dtype(np.uint8 if u8 else "<f4")
    cache, note = PixelCache.open(where, key, len(files), shape, dtype, meta)
    if cache is not None and first is not None and not cache.filled(np.zeros(1, np.int64)):
        cache.put(0, first)
    return cache, note


class PixelCache:
    """The decoded pixels of one folder, in a file mapped into memory by each process.

    Mapped lazily in each process (a ``DataLoader`` worker, forked or spawned, maps it again),
    and never pickled. Items that do not round-trip through the file's dtype (a 16-bit image in
    a uint8 cache) are not stored: they are decoded each time.
    """

    def __init__(self, folder: Path, key: str, count: int, shape: tuple, dtype, meta: dict):
        self.folder, self.path = folder, folder / "pixels.bin"
        self.key, self.count, self.shape = key, int(count), tuple(int(s) for s in shape)
        self.dtype, self.meta = np.dtype(dtype), meta
        self.item_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.pixel_offset = -(-(_PAGE + 8 * self.count) // _PAGE) * _PAGE
        self.nbytes = self.pixel_offset + self.count * self.item_bytes
        self.writable, self.replaced = False, None  # replaced: why a bad file was replaced
        self._pid, self._state, self._pixels = None, None, None

    @classmethod
    def open(
        cls, root: Path, key: str, count: int, shape: tuple, dtype, meta: dict
    ) -> tuple[PixelCache | None, str | None]:
        """The cache of ``key`` under ``root``, created or repaired as needed, and a note for
        the user (None, or why the cache is off, or what was replaced). ``meta`` goes into
        ``meta.json``."""
        cache = cls(root / key[:16], key, count, shape, dtype, meta)
        try:
            cache._mapped(strict=True)
        except (_CacheOff, OSError, ValueError) as e:  # ValueError: np.memmap's
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            where = f"{e.filename}: " if isinstance(e, OSError) and e.filename else ""
            return None, f"pixel cache off ({where}{why}); images are decoded every epoch"
        if not cache.writable:
            return cache, f"pixel cache {cache.path} is read-only: new images are not stored"
        if cache.replaced:
            return cache, f"pixel cache {cache.path} replaced ({cache.replaced})"
        return cache, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None, "_state": None, "_pixels": None}

    # -- mapping: per process ----------------------------------------------------------------

    def _mapped(self, strict: bool = False) -> bool:
        """Whether the file is mapped in this process (mapping it on first use)."""
        if self._pid != os.getpid():
            self._pid, self._state, self._pixels = os.getpid(), None, None
            try:
                self._connect()
            except (_CacheOff, OSError, ValueError):
                if strict:
                    raise
        return self._pixels is not None

    def _connect(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            bad = self._open_existing()
            if bad is True:
                return
            self._install(bad)  # then open what is there now, ours or another process's
        raise _CacheOff(f"{self.path} keeps changing under this process")

    def _open_existing(self) -> bool | tuple | None:
        """True: mapped; None: no file; else the bad file's (st_dev, st_ino)."""
        flags = _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)  # the file itself, never a link's target
        try:
            fd, self.writable = os.open(self.path, os.O_RDWR | flags), True
        except PermissionError:
            fd, self.writable = os.open(self.path, os.O_RDONLY | flags), False
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EISDIR):
                raise _CacheOff(f"{self.path} is not a file aelab wrote") from None
            raise
        with open(fd, "r+b" if self.writable else "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _CacheOff(f"{self.path} is not a file aelab wrote")
            why = self._check(f.read(_HEADER.size), st.st_size)
            if why is not None:
                self.replaced = why
                return (st.st_dev, st.st_ino)
            mode = "r+" if self.writable else "r"
            raw = np.memmap(f, dtype=np.uint8, mode=mode, shape=(self.nbytes,)).view(np.ndarray)
        self._state = raw[_PAGE : _PAGE + 8 * self.count].view("<u8")
        pixels = raw[self.pixel_offset :].view(self.dtype)
        self._pixels = pixels.reshape(self.count, *self.shape)
        return True

    def _header(self) -> bytes:
        c, h, w = self.shape
        fields = (_MAGIC, FORMAT_VERSION, self.dtype.str.encode(), self.count, c, h, w)
        return _HEADER.pack(*fields, bytes.fromhex(self.key))

    def _check(self, head: bytes, size: int) -> str | None:
        """Why a file's header or size does not fit this cache; None when it does."""
        if len(head) < _HEADER.size:
            return f"it is truncated: {size} bytes"
        if head[:8] != _MAGIC:
            return "it is not an aelab pixel cache"
        if head != self._header():
            return "its header describes other images or another format"
        if size != self.nbytes:
            return f"it holds {size:,} bytes, not {self.nbytes:,}"
        return None

    def _install(self, bad: tuple | None) -> None:
        """A new file in place of none (``bad`` None) or of the bad file ``bad``, unless another
        process got there first: built under a temporary name, then linked, never clobbering."""
        self._remove_leftovers()
        free = shutil.disk_usage(self.folder).free
        if free < self.nbytes + max(_MARGIN, self.nbytes // 10):
            raise _CacheOff(
                f"it needs {_bytes_text(self.nbytes)} on {self.folder} and "
                f"{_bytes_text(free)} is free"
            )
        tmp = self._new_file()
        try:
            if bad is not None:
                self._move_aside(bad)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return  # another process's file: the caller opens it
            except OSError as e:
                if e.errno in _NO_LINKS:
                    raise _CacheOff(f"{self.folder} does not support hard links") from None
                raise
            self._write_meta()
        finally:
            os.unlink(tmp)

    def _temp_name(self, base: str, kind: str) -> Path:
        return self.folder / f"{base}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"

    def _new_file(self) -> Path:
        tmp = self._temp_name("pixels.bin", "tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o666)
        try:
            os.write(fd, self._header().ljust(_PAGE, b"\0"))
            os.ftruncate(fd, self.nbytes)
            # reserved now: a sparse file mapped into memory turns a full disk into SIGBUS
            with contextlib.suppress(AttributeError):  # no posix_fallocate (macOS): sparse
                try:
                    os.posix_fallocate(fd, 0, self.nbytes)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        raise _CacheOff(f"no room for {_bytes_text(self.nbytes)}") from None
                    if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                        raise
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _move_aside(self, bad: tuple) -> None:
        """Take the bad file away; put back a good one another process made meanwhile."""
        aside = self._temp_name("pixels.bin", "old")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process took it
        st = os.lstat(aside)
        if (st.st_dev, st.st_ino) != bad:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        os.unlink(aside)

    def _write_meta(self) -> None:
        """``meta.json``: what the folder holds, for people (aelab itself reads the header)."""
        what = "aelab's pixel cache: the decoded images of source; safe to delete at any time"
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        meta = {"what": what, "format": FORMAT_VERSION, **self.meta, "shape": list(self.shape)}
        meta |= {"dtype": self.dtype.name, "bytes": self.nbytes, "created": now, "key": self.key}
        tmp = self._temp_name("meta.json", "tmp")
        try:  # for people only: never a reason to stop
            tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.folder / "meta.json")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _remove_leftovers(self) -> None:
        """Temporary files of ours that a killed process left, an hour old or more."""
        with contextlib.suppress(OSError), os.scandir(self.folder) as it:
            for entry in it:
                if _OURS.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    if time.time() - entry.stat(follow_symlinks=False).st_mtime > _STALE:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)

    # -- slots -------------------------------------------------------------------------------

    def filled(self, slots: np.ndarray) -> int:
        """How many of ``slots`` hold pixels (their CRCs are checked when they are read)."""
        if not self._mapped():
            return 0
        return int(np.count_nonzero(self._state[slots] >> 32 == 1))

    def get_many(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The items of ``slots`` as float32 ``(B, C, H, W)`` with a mask of those read (the
        others are empty or damaged: decode them); None when none is filled.

        One fancy index on the mapped file, in slot order (the pages in file order)."""
        if not self._mapped():
            return None
        order = np.argsort(slots, kind="stable")
        states = self._state[slots[order]]
        ok = states >> 32 == 1
        if not ok.any():
            return None
        stored = self._pixels[slots[order]]
        rows = stored.reshape(len(slots), -1)
        for j in np.flatnonzero(ok):
            ok[j] = zlib.crc32(rows[j]) == int(states[j]) & 0xFFFFFFFF
        back = np.empty_like(stored)
        back[order] = stored
        good = np.empty_like(ok)
        good[order] = ok
        return self._as_float(back), good

    def fetch(self, slots: np.ndarray, decode) -> np.ndarray:
        """The items of ``slots`` as float32 ``(B, C, H, W)``: those cached read in one go
        (:meth:`get_many`), the others ``decode(j)`` (the ``j``-th's decoded item) and stored."""
        got = self.get_many(slots)
        if got is None:
            got = np.empty((len(slots), *self.shape), np.float32), np.zeros(len(slots), bool)
        for j in np.flatnonzero(~got[1]).tolist():
            got[0][j] = x = decode(j)
            self.put(int(slots[j]), x)
        return got[0]

    def put(self, slot: int, x: np.ndarray) -> bool:
        """Store item ``x`` (float32 ``(C, H, W)``) in slot ``slot``, when it round-trips."""
        if not self._mapped() or not self.writable:
            return False
        stored = _as_u8(x) if self.dtype == np.uint8 else np.ascontiguousarray(x, "<f4")
        if stored is None:
            return False
        self._state[slot] = 0  # a write torn from here on leaves the slot empty
        self._pixels[slot] = stored
        self._state[slot] = _FILLED | zlib.crc32(stored)
        return True

    def _as_float(self, stored: np.ndarray) -> np.ndarray:
        if self.dtype == np.uint8:
            return _u8_values()[stored]
        return stored.astype(np.float32, copy=False)
