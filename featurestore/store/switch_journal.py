"""An undo journal for the store's whole-object switches (saved models, text banks, imported logits).

HDF5 does not journal its own metadata: saving a model rewrites the blocks that list ``/models``
(object header, link heap, B-tree) in place, over several ``pwrite`` calls of one flush. A writer
killed between two of them leaves the group torn, and every model in it unreadable. So a switch
runs with the store opened through :class:`JournaledFile` (h5py opens a Python file object): before
each write to the store, the bytes it is about to overwrite are appended to the journal
``<resolved store path>.switch-journal``; the switch is committed by removing the journal, after
HDF5's flush. Whoever next opens the store while no writer holds its lock and finds a journal
calls :func:`roll_back`: the logged bytes are written back, last first, and the file is cut to the
size it had when the switch began. The store is then, byte for byte, what it was before the switch.

Writes at or past the store's original size log nothing (the rollback cuts them off), so a
switch that adds large arrays journals only the few metadata blocks it rewrites. Each entry
carries a CRC-32: an entry a kill cut short is ignored, which is right because the store write it
announces had not started. The journal, like the store, is not fsynced: it guards against a
killed process, not a power cut of the machine.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

from featurestore.errors import FeatureStoreError, StoreFormatError
from featurestore.store.superblock import SIGNATURE, lookup3
from featurestore.store.write_points import write_point

SUFFIX = ".switch-journal"
MAGIC = b"featurestore switch journal 1\n"
_HEADER = struct.Struct("<QQQI")  # the store's size when the switch began, its device and inode, CRC-32
_ENTRY = struct.Struct("<QQI")  # offset, length, CRC-32 of (offset, length, old bytes)
# The superblock's "open for write" consistency flag (HDF5's own mark of a writer's non-SWMR phase).
_WRITE_ACCESS = 0x01


def journal_path(store: str | os.PathLike) -> Path:
    """Where the journal of ``store``'s switches lives (beside the file the store path resolves to)."""
    return Path(f"{os.path.realpath(store)}{SUFFIX}")


def _crc(offset: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(struct.pack("<QQ", offset, len(data))))


class JournaledFile(io.RawIOBase):
    """The store file as a Python file object that logs the old bytes of every write first.

    Creating one starts the journal (refused in one line when one is already there or it cannot
    be written); :meth:`commit` removes it (the switch holds), :meth:`close` closes both files.
    """

    def __init__(self, store: str | os.PathLike) -> None:
        super().__init__()
        self.store = Path(store)
        self.journal = journal_path(store)
        self._pos = 0
        self._jfd: int | None = None
        self._fd = os.open(self.store, os.O_RDWR)
        info = os.fstat(self._fd)
        self._size = info.st_size
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        write_point("start the switch journal")
        try:
            self._jfd = os.open(self.journal, flags, stat.S_IMODE(info.st_mode) & 0o666)
        except OSError as exc:
            os.close(self._fd)
            raise FeatureStoreError(f"cannot start the switch journal {self.journal}: {exc.strerror or exc} "
                                    "(it guards saved models and text banks against a killed writer)") from None
        ident = struct.pack("<QQQ", self._size, info.st_dev, info.st_ino)
        self._append(MAGIC + _HEADER.pack(self._size, info.st_dev, info.st_ino, zlib.crc32(ident)))
        # HDF5 marks no file opened through a file object "open for write": mark it here, so
        # readers wait while the switch runs instead of reading half-written metadata.
        self.write_at(0, os.pread(self._fd, 64, 0))

    def _append(self, data: bytes) -> None:
        assert self._jfd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._jfd, view):]

    def _log(self, offset: int, length: int) -> None:
        """Journal the bytes ``[offset, offset + length)`` that lie inside the original file."""
        if self._jfd is None or offset >= self._size or length <= 0:
            return
        old = os.pread(self._fd, min(length, self._size - offset), offset)
        if old:
            self._append(_ENTRY.pack(offset, len(old), _crc(offset, old)) + old)

    def commit(self) -> None:
        """Make everything written so far the store's state: remove the journal."""
        if self._jfd is not None:
            os.close(self._jfd)
            self._jfd = None
            write_point("commit the switch (remove its journal)")
            os.unlink(self.journal)

    # io.RawIOBase, as h5py's file-object driver uses it
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: os.fstat(self._fd).st_size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = os.preadv(self._fd, [buffer], self._pos)
        self._pos += n
        return n

    def write_at(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` after journaling what it overwrites. Until the commit, a
        v2/v3 superblock written at offset 0 keeps the "open for write" flag set."""
        if offset == 0 and self._jfd is not None:
            data = _marked_open(data)
        self._log(offset, len(data))
        done = 0
        while done < len(data):
            done += os.pwrite(self._fd, data[done:], offset + done)
        return done

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        done = self.write_at(self._pos, bytes(data))
        self._pos += done
        return done

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        self._log(size, self._size - size)
        os.ftruncate(self._fd, size)
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            if self._jfd is not None:
                os.close(self._jfd)
                self._jfd = None
            os.close(self._fd)
        super().close()


def _marked_open(block: bytes) -> bytes:
    """``block`` (the bytes at offset 0) with a v2/v3 superblock's write-access flag set and its
    checksum redone; anything else unchanged."""
    if len(block) < 12 or not block.startswith(SIGNATURE) or block[8] < 2 or block[11] & _WRITE_ACCESS:
        return block
    body = 12 + 4 * block[9]
    if len(block) < body + 4:
        return block
    out = bytearray(block)
    out[11] |= _WRITE_ACCESS
    out[body:body + 4] = lookup3(bytes(out[:body])).to_bytes(4, "little")
    return bytes(out)


def _entries(data: bytes) -> tuple[tuple[int, int, int] | None, list[tuple[int, bytes]]]:
    """The original (size, device, inode) (None when the header is incomplete) and the complete entries."""
    if not data.startswith(MAGIC[: len(data)]) or (len(data) >= len(MAGIC) and not data.startswith(MAGIC)):
        raise ValueError("not a featurestore switch journal")
    at = len(MAGIC) + _HEADER.size
    if len(data) < at:
        return None, []
    *ident, check = _HEADER.unpack_from(data, len(MAGIC))
    if check != zlib.crc32(struct.pack("<QQQ", *ident)):
        raise ValueError("its header fails its checksum")
    entries = []
    while at + _ENTRY.size <= len(data):
        offset, length, check = _ENTRY.unpack_from(data, at)
        old = data[at + _ENTRY.size: at + _ENTRY.size + length]
        if len(old) != length or _crc(offset, old) != check:
            break  # cut short by the kill: its store write never started
        entries.append((offset, old))
        at += _ENTRY.size + length
    return (ident[0], ident[1], ident[2]), entries


def roll_back(store: str | os.PathLike) -> bool:
    """Undo a killed writer's unfinished switch of ``store`` if its journal is there (True then).

    Call only while holding (or having checked) the store's writer lock: no writer may be running.
    Safe to repeat: a rollback killed half-way is redone whole by the next call. Raises
    PermissionError when the store cannot be written, StoreFormatError for a file at the
    journal's path that is no journal.
    """
    journal = journal_path(store)
    try:
        fd = os.open(journal, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreFormatError(f"{journal} is not a switch journal ({exc.strerror or exc}); move it away") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreFormatError(f"{journal} is not a switch journal (not a regular file); move it away")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        ident, entries = _entries(b"".join(chunks))
    except ValueError as exc:
        raise StoreFormatError(f"{journal} is not a switch journal ({exc}); move it away") from None
    if ident is not None:
        size, device, inode = ident
        out = os.open(store, os.O_RDWR)
        try:
            info = os.fstat(out)
            if (info.st_dev, info.st_ino) != (device, inode):
                raise StoreFormatError(f"{journal} was left by a killed writer of another file than {store} (the "
                                       "store was replaced or moved since); move the journal away")
            for offset, old in reversed(entries):
                write_point("roll back a killed switch")
                os.pwrite(out, old, offset)
            write_point("cut a killed switch's growth")
            os.ftruncate(out, size)
        finally:
            os.close(out)
    write_point("remove a rolled-back switch journal")
    os.unlink(journal)
    return True
