"""Write points: every place the store is about to change its file calls :func:`write_point`.

In normal runs this is a no-op. Two environment variables turn it into a fault injector for
crash tests (``tests/fault_injection.py`` drives them):

- ``FEATURESTORE_KILL_AT_WRITE=K``: the process SIGKILLs itself just before its K-th write
  point (1-based), the way a power cut, the OOM killer or ``kill -9`` would stop it.
- ``FEATURESTORE_COUNT_WRITES=FILE``: append one line per write point (its label) to FILE, so a
  test learns how many kill points a command has.
- ``FEATURESTORE_NO_SPACE_AT_WRITE=K``: the K-th write point raises ``OSError(ENOSPC)``, as a
  write that finds the disk full does.

After a write that failed for lack of space where no caller saw it (in an h5py destructor,
:func:`featurestore.store.disk_space.lost_write`), every write point raises ENOSPC, so nothing
is committed after data that never reached the disk.

Write points sit before each HDF5 dataset write, resize, object creation, move or deletion,
attribute write and flush made by featurestore, and before the superblock repair.
"""
from __future__ import annotations

import errno
import os
import signal

from featurestore.store import disk_space

KILL_ENV = "FEATURESTORE_KILL_AT_WRITE"
COUNT_ENV = "FEATURESTORE_COUNT_WRITES"
NO_SPACE_ENV = "FEATURESTORE_NO_SPACE_AT_WRITE"

_seen = 0


def write_point(label: str) -> None:
    """Mark that the process is about to write ``label``; may SIGKILL it or fail as a full disk
    (see module doc)."""
    global _seen
    if disk_space.lost_write():
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (an earlier write failed; before: {label})")
    kill_at = os.environ.get(KILL_ENV)
    count_file = os.environ.get(COUNT_ENV)
    no_space_at = os.environ.get(NO_SPACE_ENV)
    if not kill_at and not count_file and not no_space_at:
        return
    _seen += 1
    if count_file:
        with open(count_file, "a", encoding="utf-8") as f:
            f.write(f"{_seen}\t{os.getpid()}\t{label}\n")
    if kill_at and _seen == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    if no_space_at and _seen == int(no_space_at):
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected before: {label})")


def reset() -> None:
    """Start counting from zero (a forked test child calls this before running a command)."""
    global _seen
    _seen = 0
