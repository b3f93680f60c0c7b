"""A split's labelled feature rows read from the store block by block while they are scored.

``StreamedRows`` stands where a test split's (N, D) features would when only blocks of them are
needed at once (``workflows.solve.score``): ``blocks(rows)`` yields consecutive blocks read into
two reused buffers, the next block read by a thread while the caller scores the current one. A
whole split is never in memory (ImageNet's test split: 200 MB of fresh pages to fault in), and
its reads overlap the products. ``np.asarray`` reads every row (what code needing the array takes).
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from featurestore.store.feature_store import FeatureStore


class _Reader:
    """One background read: ``start(fn)`` runs ``fn`` on a thread, ``result()`` waits and returns
    its value or raises its exception (a store damaged mid-split is the caller's error)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._value: Any = None
        self._error: BaseException | None = None

    def start(self, fn: Callable[[], Any]) -> None:
        def target() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # re-raised in the caller's thread by result()
                self._error = exc

        self._value, self._error = None, None
        self._thread = threading.Thread(target=target, name="fs-split-reader", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        assert self._thread is not None
        self._thread.join()
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._value

    def wait(self) -> None:
        """Wait for a read still running (its result is dropped)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class StreamedRows:
    """The features of a split's labelled rows (row i = labelled row i of the split, in store
    order), read from the store file block by block by ``blocks``."""

    def __init__(self, path: str, encoder: str, split: str, valid_index: np.ndarray, stored: np.ndarray,
                 n_features: int) -> None:
        #: row i's index among the split's valid rows (what ``features_at`` takes) and its stored row
        self.valid_index = np.asarray(valid_index, dtype=np.int64)
        self.stored = np.asarray(stored, dtype=np.int64)
        self.path, self.encoder, self.split = path, encoder, split
        self.shape = (int(self.valid_index.size), int(n_features))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StreamedRows({self.path!r}, {self.split!r}, {self.shape[0]} x {self.shape[1]})"

    def _read(self, store: FeatureStore, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows ``start .. stop`` into ``out[:stop - start]``: one direct read when they are
        consecutive stored rows, else the chunks holding them (``features_at``) copied in."""
        block = out[:stop - start]
        first, last = int(self.stored[start]), int(self.stored[stop - 1])
        if last - first == stop - start - 1:
            return store.read_features_into(self.encoder, self.split, first, block)
        block[...] = store.features_at(self.encoder, self.split, self.valid_index[start:stop])
        return block

    def blocks(self, rows: int, prefetch: bool = True) -> Iterator[np.ndarray]:
        """Consecutive blocks of ``rows`` rows (the last one shorter), each valid until the next is
        asked for (two buffers are reused). ``prefetch``: the next block is read on a thread
        while the caller works on the current one."""
        n = self.shape[0]
        if n == 0:
            return
        rows = max(1, min(int(rows), n))
        buffers = [np.empty((rows, self.shape[1]), dtype=np.float32) for _ in range(2 if prefetch and n > rows else 1)]
        reader = _Reader()
        with FeatureStore(self.path) as store:
            try:
                if prefetch:
                    reader.start(functools.partial(self._read, store, 0, min(rows, n), buffers[0]))
                for k, start in enumerate(range(0, n, rows)):
                    stop = min(start + rows, n)
                    if prefetch:
                        block = reader.result()
                        if stop < n:
                            after, buffer = min(stop + rows, n), buffers[(k + 1) % 2]
                            reader.start(functools.partial(self._read, store, stop, after, buffer))
                    else:
                        block = self._read(store, start, stop, buffers[0])
                    yield block
            finally:
                reader.wait()  # never close the store under a read still running

    def __getitem__(self, rows: Any) -> np.ndarray:
        """Rows by a slice or row numbers (read now)."""
        picked = np.arange(self.shape[0])[rows]
        with FeatureStore(self.path) as store:
            return store.features_at(self.encoder, self.split, self.valid_index[picked])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row."""
        with FeatureStore(self.path) as store:
            X = store.features(self.encoder, self.split)
        X = X if X.shape[0] == self.shape[0] else X[self.valid_index]
        return X if dtype is None else X.astype(dtype, copy=False)


def streamed_labelled(store: FeatureStore, encoder: str, split: str,
                      classes: list[str] | None = None) -> tuple[StreamedRows, np.ndarray]:
    """``solver_inputs.labelled`` with the features left in the store, read block by block when
    scored (``StreamedRows``); the labels are read now."""
    import os

    from featurestore.errors import NotFoundError
    from workflows.inputs.solver_inputs import split_labels

    y = split_labels(store, split, classes)
    keep = y >= 0
    if not keep.any():
        raise NotFoundError(f"split {split!r} has no labelled rows")
    width = store.features_at(encoder, split, np.zeros(0, dtype=np.int64)).shape[1]  # refuses unfinished rows
    valid_index = np.flatnonzero(keep)
    stored = np.flatnonzero(store.valid(split))[valid_index]
    return StreamedRows(os.path.abspath(store.path), encoder, split, valid_index, stored, width), y[keep]
