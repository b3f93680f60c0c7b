"""The server's thumbnails: a recorded file replaced by a FIFO is refused at once (it hung the
request for 30 s), and a thumbnail that takes too long is answered with the reason."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from featurestore.errors import SourceError
from featurestore.server.thumbnails import StoredImageReader, ThumbnailCache
from featurestore.store.feature_store import FeatureStore
from tests.serve_server import make_served_store, running_server


def _in_thread(call, seconds: float = 5.0) -> BaseException | bytes | None:
    """What ``call()`` returned or raised, or None when it was still running after ``seconds``."""
    out: list[BaseException | bytes] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # handed back to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return out[0] if out else None


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "cat.jpg"
    os.mkfifo(fifo)
    cache = ThumbnailCache()
    outcome = _in_thread(lambda: cache.get(str(fifo)))
    if outcome is None:  # unblock the reader stuck in open() so the test process can end
        fd = os.open(fifo, os.O_RDWR)
        os.close(fd)
    assert isinstance(outcome, SourceError), f"the FIFO was opened and blocked (got {outcome!r})"
    assert str(outcome) == f"cannot read {fifo}: not a regular file (a FIFO)"
    cache.close()


def test_a_tar_shard_replaced_by_a_fifo_is_refused(tmp_path: Path) -> None:
    shard = tmp_path / "shard.tar"
    os.mkfifo(shard)
    outcome = _in_thread(lambda: StoredImageReader().read(f"{shard}::a.jpg"))
    assert isinstance(outcome, SourceError) and "not a regular file (a FIFO)" in str(outcome)


class _SlowReader(StoredImageReader):
    def read(self, path: str) -> bytes:
        time.sleep(3.0)
        return b""


def test_a_slow_thumbnail_is_bounded_in_time() -> None:
    cache = ThumbnailCache(reader=_SlowReader(), timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"the thumbnail of x.jpg took longer than 0.3 s"):
        cache.get("x.jpg")
    assert time.monotonic() - started < 2.0
    cache.close()


def test_the_thumbnail_route_answers_a_fifo_at_once(tmp_path: Path, tiny_checkpoint: Path) -> None:
    data = make_served_store(tmp_path, tiny_checkpoint)
    recorded = data["train_root"] / "emu/2.jpg"
    with FeatureStore(data["store"]) as reader:
        row = reader.row_index("train")["emu/2.jpg"]
    recorded.unlink()
    os.mkfifo(recorded)
    with running_server(data["store"], data["encoder"]) as url, httpx.Client(base_url=url, timeout=20) as client:
        started = time.monotonic()
        response = client.get(f"/thumb/train/{row}")
        assert time.monotonic() - started < 5.0
        assert response.status_code == 404
        assert response.json()["error"] == f"cannot read {recorded}: not a regular file (a FIFO)"
        assert client.get("/api/info").status_code == 200  # the server still answers


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR chunk (8-bit RGB) with one empty IDAT: the header of a
    ``width`` x ``height`` image, without its pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_an_upload_of_too_many_pixels_is_refused_from_its_header() -> None:
    """A 13000 x 13000 PNG is under Pillow's bomb limit (it cost ~1 GB of server memory per
    upload); the server refuses it from the header, before decoding, with the limit (413)."""
    from featurestore.server.searcher import MAX_UPLOAD_PIXELS, QueryError, decode_upload

    with pytest.raises(QueryError) as refused:
        decode_upload(_png_header(13000, 13000))
    assert refused.value.status == 413
    assert str(refused.value) == (f"the uploaded image is 13000 x 13000 pixels; a query image has at most "
                                  f"{MAX_UPLOAD_PIXELS // 10**6} million pixels")
    # an image at the limit is decoded as before (one of exactly MAX_UPLOAD_PIXELS is not refused for its size)
    import io

    from PIL import Image

    small = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(small, format="PNG")
    assert decode_upload(small.getvalue()).size == (40, 30)
    with pytest.raises(QueryError) as truncated:
        decode_upload(_png_header(MAX_UPLOAD_PIXELS // 1000, 1000))
    assert truncated.value.status == 400 and "not a readable image" in str(truncated.value)
