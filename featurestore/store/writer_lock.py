"""The single-writer lock of a store: an OS file lock (``flock``) on the store file itself.

The lock belongs to the file (device + inode), not to the name it was opened by, so a symlink
or a hard link to a store shares the store's lock and two writers can never run at once. It
dies with its process (SIGKILL included), so a crashed writer never blocks the next one. The
holder's pid is written into a note ``<resolved store path>.lock`` for the refusal message;
while the writer creates a new store (before its first rows and arrays are committed) the note
says ``<pid> creating``, so readers wait for it and then say so (:func:`creating_writer`).

A forked child (a DataLoader decoding worker) closes its inherited copy of the lock's
descriptor: an flock belongs to the open file, so an orphaned child would otherwise keep a
killed writer's lock.

Readers never take the lock to read. A reader that finds the "open for write" mark of a writer
that died briefly holds it (:func:`hold_if_free`) to tell a dead writer from a live one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from featurestore.errors import FeatureStoreError, StoreLockedError

# Lock descriptors this process holds, by the locked file's (device, inode).
_HELD: dict[tuple[int, int], int] = {}
# How long a writer waits when the lock is held only briefly by a reader's dead-writer check.
TRANSIENT_WAIT_SECONDS = 3.0


def _close_inherited_locks() -> None:
    """In a forked child: drop the parent's lock descriptors without unlocking them."""
    for fd in list(_HELD.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _file_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def pid_alive(pid: int) -> bool:
    """True while a process ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_note(path: Path, text: str) -> None:
    """Replace the content of the pid note at ``path`` with ``text``, never through a link.

    The note is opened without following a symlink (O_NOFOLLOW) and without blocking (a FIFO),
    and only a regular file with a single link is truncated: a note planted as a symlink or a
    hard link to another file leaves that file untouched (raises OSError instead).
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags, 0o644)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{path} is not a plain file of its own")
        os.ftruncate(fd, 0)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read_note(path: Path) -> str:
    """The pid note's text ("" when it is missing, a link or not a regular file)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 64).decode("ascii", "replace")
    finally:
        os.close(fd)


class WriterLock:
    """Non-blocking exclusive lock; ``acquire`` raises StoreLockedError when someone holds it.

    Acquiring creates an empty store file when none exists (the lock needs an inode).
    """

    def __init__(self, store_path: str | os.PathLike) -> None:
        self.store_path = Path(store_path)
        self.path = Path(f"{os.path.realpath(store_path)}.lock")
        self._fd: int | None = None

    def _holder(self) -> int | None:
        return _note_pid(_read_note(self.path))

    def acquire(self) -> None:
        try:
            fd = os.open(self.store_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a symlink loop, a missing folder, no permission: one line, not a traceback
            raise FeatureStoreError(f"cannot open store {self.store_path} for writing: {exc.strerror or exc}") from None
        if _file_id(fd) in _HELD:
            os.close(fd)
            raise StoreLockedError(f"{self.store_path} is already open for writing in this process")
        deadline = time.monotonic() + TRANSIENT_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                # A live writer's note names it; a dead pid in the note means a reader is
                # checking for a dead writer right now (it holds the lock for milliseconds).
                if (holder is not None and pid_alive(holder) and holder != os.getpid()) \
                        or time.monotonic() > deadline:
                    os.close(fd)
                    raise StoreLockedError(
                        f"{self.store_path} is being written by {f'pid {holder}' if holder else 'another process'}; "
                        "only one writer at a time (readers are fine)"
                    ) from None
                time.sleep(0.05)
        # the note is informative only (e.g. a read-only folder beside a writable store, or a
        # planted link, which is never followed)
        with contextlib.suppress(OSError):
            _write_note(self.path, str(os.getpid()))
        self._fd = fd
        _HELD[_file_id(fd)] = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _HELD.pop(_file_id(fd), None)
            try:  # an empty note: whoever holds the lock next without a note is a brief reader
                if _note_pid(_read_note(self.path)) == os.getpid():
                    _write_note(self.path, "")
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def mark_creating(self, creating: bool) -> None:
        """Say in the note whether this writer is creating the store (readers wait while it is)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                _write_note(self.path, f"{os.getpid()} creating" if creating else str(os.getpid()))


def _note_pid(text: str) -> int | None:
    words = text.split()
    return int(words[0]) if words and words[0].isdigit() else None


def writer_active(store_path: str | os.PathLike) -> bool:
    """True while some process holds the writer lock of ``store_path``."""
    with hold_if_free(store_path) as free:
        return not free and os.path.exists(store_path)


def creating_writer(store_path: str | os.PathLike) -> int | None:
    """The pid of a live writer that is creating ``store_path`` right now (its note says
    ``<pid> creating`` and it holds the lock), else None."""
    words = _read_note(Path(f"{os.path.realpath(store_path)}.lock")).split()
    if len(words) < 2 or words[1] != "creating" or not words[0].isdigit():
        return None
    pid = int(words[0])
    if pid == os.getpid() or not pid_alive(pid):
        return None
    with hold_if_free(store_path) as free:
        return None if free else pid


@contextlib.contextmanager
def hold_if_free(store_path: str | os.PathLike) -> Iterator[bool]:
    """Briefly hold the writer lock if no writer has it; yields whether it was free.

    While it yields True no writer can start, so the store's state on disk is final. The
    lock is held without touching the pid note (so a writer waiting on us knows it is brief).
    A store whose lock this process itself holds is reported as held (False).
    """
    try:
        fd = os.open(store_path, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        if _file_id(fd) in _HELD:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
