"""What sources of local image files share: a cached, sorted listing, bounded reads of regular
files only, and pickling without the listing (DataLoader and Dask workers only need ``read_bytes``).

A path that is not a regular file (a FIFO would block the reader forever, a device such as
/dev/zero would be read forever, a directory cannot be decoded) is refused when read, as is a
file over ``MAX_IMAGE_BYTES``: each becomes an error row with a one-line reason, never a hang.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any

from featurestore.errors import SourceError
from featurestore.sources.record import Record

MAX_IMAGE_BYTES = 256 * 2**20
"""Largest image file (or tar member) read, in bytes: 256 MiB. Larger ones are error rows."""

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str:
    """Why a file of this st_mode is refused (what it is)."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"not a regular file ({kind})"


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (a file name decoded from non-UTF-8 bytes holds
    lone surrogates, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name shown as ``\\xNN`` escapes (UTF-8 as is)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


NOT_UTF8 = "file name is not valid UTF-8 (shown with \\x escapes): it cannot be stored; rename the file"


def describe_size(limit: int) -> str:
    """A byte count for a message: "256 MiB", or "300 bytes" below a MiB."""
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


def _missing_reason(path: str, exc: OSError) -> str:
    """A one-line reason for a path that cannot be opened, naming dangling and looping symlinks."""
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"dangling symlink (its target {target} does not exist)"
    return f"cannot read file: {exc.strerror or exc}"


def read_regular_file(path: str, limit: int | None = None) -> bytes:
    """The whole content of the regular file at ``path`` (symlinks followed), at most ``limit``
    bytes (default `MAX_IMAGE_BYTES`).

    Raises SourceError with a one-line reason for anything else: a missing file, a dangling or
    looping symlink, a FIFO, device, socket or directory, or a file larger than ``limit``. The
    file is opened non-blocking (opening a FIFO never waits for a writer) and checked on the
    open descriptor, so a path swapped between the check and the read cannot slip through.
    """
    limit = MAX_IMAGE_BYTES if limit is None else limit
    try:
        before = os.stat(path)
    except OSError as exc:
        raise SourceError(_missing_reason(path, exc)) from None
    if not stat.S_ISREG(before.st_mode):
        raise SourceError(_not_regular(before.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SourceError(_missing_reason(path, exc)) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(_not_regular(info.st_mode))
        if info.st_size > limit:
            raise SourceError(f"file of {info.st_size} bytes is over the {describe_size(limit)} image size cap")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while read, or a file whose size stat does not tell (/proc)
        raise SourceError(f"file is over the {describe_size(limit)} image size cap")
    return data


class LocalFileSource:
    """Base of the folder and manifest sources; subclasses implement ``_list``.

    ``_problems`` maps a record's path to why it cannot be read although it is listed (a
    directory symlink loop, say): reading it raises SourceError with that reason, so it becomes
    an error row of the store instead of vanishing or being followed.
    """

    _records: list[Record] | None = None
    _problems: dict[str, str] | None = None

    def _list(self) -> list[Record]:
        """Every record, sorted by id."""
        raise NotImplementedError

    def records(self) -> list[Record]:
        """Every record, sorted by id (listed once, then cached)."""
        if self._records is None:
            self._records = self._list()
        return list(self._records)

    def read_bytes(self, record: Record) -> bytes:
        """The file's bytes, read whole (regular files up to ``MAX_IMAGE_BYTES`` only)."""
        problem = (self._problems or {}).get(record.path)
        if problem is not None:
            raise SourceError(problem)
        return read_regular_file(record.path)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the record list: workers only need `read_bytes`, and it may be huge."""
        state = self.__dict__.copy()
        state["_records"] = None
        return state
