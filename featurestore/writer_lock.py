"""The single-writer lock of a store: an OS file lock on ``<store>.lock`` beside it.

The lock dies with its process (SIGKILL included), so a crashed writer never blocks the next
one. The holder's pid is written into the lock file for the refusal message. A forked child
(a DataLoader decoding worker) closes its inherited copy of the lock's descriptor: an flock
belongs to the open file, so an orphaned child would otherwise keep a killed writer's lock.
"""
from __future__ import annotations

import os
from pathlib import Path

from featurestore.errors import StoreLockedError

_HELD_FDS: set[int] = set()


def _close_inherited_locks() -> None:
    """In a forked child: drop the parent's lock descriptors without unlocking them."""
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class WriterLock:
    """Non-blocking exclusive lock; ``acquire`` raises StoreLockedError when someone holds it."""

    def __init__(self, store_path: str | os.PathLike) -> None:
        self.path = Path(f"{os.fspath(store_path)}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreLockedError(
                f"{self.path.with_suffix('')} is being written by pid {holder}; "
                "only one writer at a time (readers are fine)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        _HELD_FDS.add(fd)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            _HELD_FDS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
