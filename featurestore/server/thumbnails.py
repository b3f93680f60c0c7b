"""Small JPEG thumbnails of stored images, read from the paths the store recorded.

A path is either a file or ``<abs tar path>::<member>`` (a WebDataset tar member, read with
the tar source's offset index, one positioned read per image). Only paths taken from the
store reach this module: the server maps ``/thumb/<split>/<row>`` to the row's recorded path
and never opens a path taken from a request.
"""
from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from functools import lru_cache

from featurestore.errors import SourceError
from featurestore.sources.record import Record
from featurestore.sources.webdataset import MEMBER_SEPARATOR, WebDatasetSource

THUMB_SIZE = 192
THUMB_QUALITY = 85
_MAX_OPEN_TARS = 16


class StoredImageReader:
    """Reads the encoded bytes of recorded paths; keeps up to 16 tar shards' indexes open."""

    def __init__(self) -> None:
        self._tars: OrderedDict[str, WebDatasetSource] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes:
        """The bytes of a recorded file or tar member (OSError / SourceError when unreadable)."""
        if os.path.isfile(path) or MEMBER_SEPARATOR not in path:
            with open(path, "rb") as f:
                return f.read()
        shard = path.partition(MEMBER_SEPARATOR)[0]
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
    """Thumbnails of recorded paths, the last 4096 kept in memory."""

    def __init__(self, reader: StoredImageReader | None = None, size: int = THUMB_SIZE,
                 max_entries: int = 4096) -> None:
        self.reader = reader or StoredImageReader()
        self.size = size
        self._cached = lru_cache(maxsize=max_entries)(self._build)

    def _build(self, path: str) -> bytes:
        return make_thumbnail(self.reader.read(path), self.size)

    def get(self, path: str) -> bytes:
        """The thumbnail of a recorded path; raises SourceError with the reason when unreadable."""
        from PIL import Image

        try:
            return self._cached(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise SourceError(f"cannot decode {path}: {exc}") from None

    def close(self) -> None:
        self.reader.close()
