"""Committing extracted chunks to the store in a background thread, overlapped with encoding.

`ChunkWriter` takes each encoded batch and calls ``FeatureStore.write_features`` on it in one
writer thread, in order, through a bounded queue: the encoder goes on with the next batch
while HDF5 writes and flushes the previous one, and at most ``depth`` batches wait in memory.
Nothing about the crash-safety protocol changes: every chunk is still written, flushed, and
only then marked done by ``write_features`` itself, one chunk after the other, so a run
killed at any moment leaves committed chunks and a re-run finds exactly the missing rows. An
error in the writer is raised in the encoding thread at its next `put` (or at `close`).
"""
from __future__ import annotations

import contextlib
import queue
import threading
from types import TracebackType
from typing import Any

import numpy as np

DEFAULT_DEPTH = 2
_STOP = object()


class ChunkWriter:
    """``with ChunkWriter(store, encoder_key, split, dtype, views) as writer: writer.put(...)``.

    ``overlap=False`` writes in the calling thread (the serial reference)."""

    def __init__(self, store: Any, encoder: str, split: str, dtype: str, views: int, *,
                 overlap: bool = True, depth: int = DEFAULT_DEPTH) -> None:
        self.store, self.encoder, self.split, self.dtype, self.views = store, encoder, split, dtype, views
        self.overlap = overlap
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if overlap:
            self._thread = threading.Thread(target=self._run, name="featurestore-writer", daemon=True)
            self._thread.start()

    def _write(self, rows: np.ndarray, flat: np.ndarray, norms: np.ndarray, ok: np.ndarray,
               errors: list[str]) -> None:
        self.store.write_features(self.encoder, self.split, rows, flat[:, 0].astype(self.dtype), ok, errors,
                                  norms=norms[:, 0],
                                  views=flat[:, 1:].astype(self.dtype) if self.views else None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as exc:  # handed to the encoding thread
                    self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, rows: np.ndarray, flat: np.ndarray, norms: np.ndarray, ok: np.ndarray,
            errors: list[str]) -> None:
        """Queue one batch: sorted store ``rows``, unit rows (B, 1+views, D), their norms
        (B, 1+views), validity and reasons. Blocks while ``depth`` batches are waiting."""
        if not self.overlap:
            self._write(rows, flat, norms, ok, errors)
            return
        self._raise_pending()
        while True:
            try:
                self._queue.put((rows, flat, norms, ok, errors), timeout=0.5)
                return
            except queue.Full:
                self._raise_pending()

    def close(self, drain: bool = True) -> None:
        """Wait for every queued batch to be committed (``drain=False``: drop the waiting ones,
        finish the one being written) and raise the writer's error, if any."""
        if self._thread is None:
            return
        if not drain:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        self._raise_pending()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            # the exception already on its way is the one to report
            with contextlib.suppress(BaseException):
                self.close(drain=False)
