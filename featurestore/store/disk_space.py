"""A full disk (or an exhausted quota) while writing: recognise it, name the device, and close a
store file whose write failed without letting HDF5 write to it again.

HDF5 reports ENOSPC as text inside its own error stack (h5py's exceptions carry HDF5's error
class, not the system's errno), so :func:`is_no_space` reads both. A write that fails while h5py
closes an object in its destructor is only printed by Python; this module's unraisable hook
records it instead (:func:`lost_write`) and the next write point fails with ENOSPC. Once a write of an HDF5 file
failed, HDF5 retries its dirty metadata on every flush and on close; on a full disk those fail
again, and h5py's clean-up after a failed close crashed the process (a segmentation fault at
exit). :func:`abandon` points the file's descriptor at ``/dev/null`` first, so the close
completes without touching the store: the file keeps what its last successful write left, as
after a kill, which the store's write order makes resumable.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Any

from featurestore.errors import NoSpaceError

_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_WORDS = ("No space left on device", "Disk quota exceeded", f"errno = {errno.ENOSPC},",
          f"errno = {errno.EDQUOT},")


def is_no_space(exc: BaseException | None) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a full disk or quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NoSpaceError):
            return True
        if isinstance(exc, OSError) and exc.errno in _ERRNOS:
            return True
        if any(word in str(exc) for word in _WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# Set when a write failed for lack of space where no caller could see it: h5py reports errors of
# closing an object from its destructor as "Exception ignored" and goes on. Every write point
# raises ENOSPC from then on, so nothing is committed after data that never reached the disk.
_lost_write = False


def lost_write() -> bool:
    """True once an HDF5 write of this process failed for lack of space in a destructor."""
    return _lost_write


def forget_lost_write() -> None:
    """Clear :func:`lost_write` (the writer whose write was lost has closed its store)."""
    global _lost_write
    _lost_write = False


def _unraisable(hook: Any) -> Any:
    def catch(unraisable: Any) -> None:
        global _lost_write
        if is_no_space(unraisable.exc_value):
            _lost_write = True  # said once, in one line, by the write point that raises next
            return
        hook(unraisable)
    return catch


sys.unraisablehook = _unraisable(sys.unraisablehook)


def _unescape(field: str) -> str:
    """A /proc/mounts field with its octal escapes (``\\040`` for a space) decoded."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def device_of(path: str | os.PathLike) -> str:
    """The device (as ``/proc/mounts`` names it) and mount point holding ``path``."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    mount = folder
    while not os.path.ismount(mount) and os.path.dirname(mount) != mount:
        mount = os.path.dirname(mount)
    source = ""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 2 and _unescape(fields[1]) == mount:
                    source = _unescape(fields[0])  # the last mount on a point is the one in use
    except OSError:
        pass
    return f"{source} (mounted at {mount})" if source and source != mount else mount


def no_space_error(path: str | os.PathLike, before_writing: bool = False) -> NoSpaceError:
    """The one-line error for a write of ``path`` that found no space (``before_writing``: refused
    by :func:`check_room`, nothing was written)."""
    error = NoSpaceError(f"no space left on {device_of(path)} writing {path}: free space and re-run to resume")
    error.before_writing = before_writing
    return error


MIN_FREE_ENV = "FEATURESTORE_MIN_FREE_BYTES"
# Free space a writer keeps on the store's filesystem beyond what one write needs: HDF5 allocates
# whole chunks (up to 1 MiB each) and metadata blocks that a write's payload does not show.
MIN_FREE_BYTES = 4 * 2**20


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes this process may still write on ``path``'s filesystem (root may use the reserve)."""
    stats = os.statvfs(path)
    blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail
    return blocks * stats.f_frsize


def min_free_bytes() -> int:
    """The free space kept beyond a write's payload (``FEATURESTORE_MIN_FREE_BYTES``, bytes)."""
    text = os.environ.get(MIN_FREE_ENV, "").strip()
    return int(text) if text.isdigit() else MIN_FREE_BYTES


def check_room(path: str | os.PathLike, payload: int) -> None:
    """Refuse (NoSpaceError, before anything is written) a write of about ``payload`` bytes to the
    store at ``path`` when its filesystem has less than twice that plus :func:`min_free_bytes`
    free, so HDF5 itself rarely meets a full disk (its failed flushes cannot be undone)."""
    try:
        free = free_bytes(path)
    except OSError:
        return  # no statistics (some network filesystems): HDF5's own failure is still caught
    if free < 2 * payload + min_free_bytes():
        raise no_space_error(path, before_writing=True)


def payload_bytes(value: Any, depth: int = 0) -> int:
    """About how many bytes writing ``value`` (arrays, strings and containers of them) stores."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (str, bytes)):
        return len(value) + 16
    if depth > 3:
        return 8
    if isinstance(value, dict):
        return sum(payload_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(v, depth + 1) for v in value)
    return 8


def abandon(file: Any, fileobj: Any = None) -> None:
    """Close the h5py ``file`` after a failed write without writing anything more to its store.

    Its descriptor is pointed at ``/dev/null`` (HDF5's close flushes there), or, for a file that
    h5py opened through the Python file object ``fileobj``, that object's writes and truncation
    are dropped; then it is closed. An error of that close is ignored: the store on disk is
    already what it will be.
    """
    if fileobj is not None:
        fileobj.write = lambda data: len(data)
        fileobj.truncate = lambda size=None: size
    if file is None or not file.id.valid:
        return
    handle = None
    if fileobj is None:
        try:
            handle = file.id.get_vfd_handle()
        except (RuntimeError, OSError, ValueError, TypeError):
            handle = None
    if isinstance(handle, int) and handle >= 0:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, handle)
        finally:
            os.close(null)
    with contextlib.suppress(RuntimeError, OSError, ValueError):
        file.close()


def first_path(exc: BaseException) -> str | None:
    """The file name an OSError carries (the first, for a rename), else None."""
    name = getattr(exc, "filename", None)
    return os.fsdecode(name) if isinstance(name, (str, bytes, Path)) else None
