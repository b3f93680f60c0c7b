"""Small JPEG thumbnails of stored images, read from the paths the store recorded.

A path is either a file or ``<abs tar path>::<member>`` (a WebDataset tar member, read with
the tar source's offset index, one positioned read per image). Only paths taken from the
store reach this module: the server maps ``/thumb/<split>/<row>`` to the row's recorded path
and never opens a path taken from a request. Only regular files are opened (non-blocking, checked
on the open descriptor, as extraction reads them): a recorded file replaced by a FIFO or a
device is refused at once, and each thumbnail has a time bound (``timeout_s``), past which the
request is answered with the reason while the late work is left to finish in the background.
"""
from __future__ import annotations

import io
import os
import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache

from featurestore.errors import SourceError
from featurestore.sources.local_files import read_regular_file
from featurestore.sources.record import Record
from featurestore.sources.webdataset import MEMBER_SEPARATOR, WebDatasetSource

THUMB_SIZE = 192
THUMB_QUALITY = 85
_MAX_OPEN_TARS = 16
THUMB_TIMEOUT_S = 10.0
THUMB_WORKERS = 8


class StoredImageReader:
    """Reads the encoded bytes of recorded paths; keeps up to 16 tar shards' indexes open."""

    def __init__(self) -> None:
        self._tars: OrderedDict[str, WebDatasetSource] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes:
        """The bytes of a recorded file or tar member (OSError / SourceError when unreadable)."""
        if MEMBER_SEPARATOR not in path or os.path.lexists(path):
            _check_regular(path)
            try:
                return read_regular_file(path)
            except SourceError as exc:  # swapped for a non-file since the check, or over the size cap
                raise SourceError(f"cannot read {path}: {exc}") from None
        shard = path.partition(MEMBER_SEPARATOR)[0]
        _check_regular(shard)
        with self._lock:
            source = self._tars.get(shard)
            if source is None:
                source = WebDatasetSource([shard])
                self._tars[shard] = source
                while len(self._tars) > _MAX_OPEN_TARS:
                    self._tars.popitem(last=False)[1].close()
            self._tars.move_to_end(shard)
            return source.read_bytes(Record(id=path, path=path))

    def close(self) -> None:
        with self._lock:
            for source in self._tars.values():
                source.close()
            self._tars.clear()


def _check_regular(path: str) -> None:
    """OSError when ``path`` is missing; SourceError when it is not a regular file (a FIFO would
    block the open until a writer came, a device would be read forever)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                                             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                                             (stat.S_ISSOCK, "a socket")) if test(mode)), "not a plain file")
        raise SourceError(f"cannot read {path}: not a regular file ({kind})")


def make_thumbnail(data: bytes, size: int = THUMB_SIZE) -> bytes:
    """A JPEG no larger than ``size`` x ``size`` pixels, aspect ratio kept (ValueError/OSError
    when the bytes are not a readable image)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=THUMB_QUALITY)
    return out.getvalue()


class ThumbnailCache:
    """Thumbnails of recorded paths, the last 4096 kept in memory; each made within ``timeout_s``
    seconds (on a pool of ``workers`` threads) or refused with SourceError."""

    def __init__(self, reader: StoredImageReader | None = None, size: int = THUMB_SIZE,
                 max_entries: int = 4096, timeout_s: float = THUMB_TIMEOUT_S, workers: int = THUMB_WORKERS) -> None:
        self.reader = reader or StoredImageReader()
        self.size = size
        self.timeout_s = timeout_s
        self._cached = lru_cache(maxsize=max_entries)(self._build)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail")

    def _build(self, path: str) -> bytes:
        return make_thumbnail(self.reader.read(path), self.size)

    def get(self, path: str) -> bytes:
        """The thumbnail of a recorded path; raises SourceError with the reason when unreadable."""
        from PIL import Image

        future = self._pool.submit(self._cached, path)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise SourceError(f"the thumbnail of {path} took longer than {self.timeout_s:g} s; not served") from None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise SourceError(f"cannot decode {path}: {exc}") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()
