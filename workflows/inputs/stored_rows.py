"""A split's labelled feature rows as an array read by row index, for a training pool far larger
than what a few-shot run takes from it (ImageNet's 16-shot draw is 16,000 of its 1.28M rows).

``StoredRows`` stands where the pool's (N, D) features would: indexing it with row numbers reads
those rows from the store (``FeatureStore.features_at``: only the HDF5 chunks that hold one);
``prefetch`` reads the union of the rows a sweep will draw in one pass and serves them from memory
after; ``np.asarray`` reads every row (what a fit on the whole pool takes). The labels are read
whole beforehand, so the draws are made on them before any feature is read.
"""
from __future__ import annotations

import itertools
import mmap
from typing import Any

import numpy as np

from featurestore.store.feature_store import FeatureStore

#: Fewer rows than this per process are read by one process (forking costs more than it saves).
PARALLEL_READ_MIN_ROWS = 20_000


class StoredRows:
    """The features of a split's labelled rows (row i = labelled row i of the split, in store order),
    read from the store file when indexed. ``rows_read`` counts the rows read outside ``prefetch``."""

    def __init__(self, path: str, encoder: str, split: str, positions: np.ndarray, n_features: int) -> None:
        self.path, self.encoder, self.split = path, encoder, split
        self.positions = np.asarray(positions, dtype=np.int64)  # among the split's valid rows
        self.shape = (int(self.positions.size), int(n_features))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self.rows_read = 0
        self._cached = np.zeros(0, dtype=np.int64)
        self._cache = np.zeros((0, self.shape[1]), dtype=np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"StoredRows({self.path!r}, {self.split!r}, {self.shape[0]} x {self.shape[1]}, "
                f"{self._cached.size} in memory)")

    def _read(self, rows: np.ndarray) -> np.ndarray:
        with FeatureStore(self.path) as store:
            return store.features_at(self.encoder, self.split, self.positions[rows])

    def _rows(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.dtype == bool or rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise TypeError("StoredRows is indexed by a 1-D array of row numbers")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row numbers must be in 0 .. {self.shape[0] - 1}")
        return rows

    def prefetch(self, rows: Any, processes: int = 1) -> None:
        """Read ``rows`` (any order, repeats allowed) in one pass and keep them in memory (replacing
        what an earlier call kept); indexing serves them from there. ``processes`` > 1: forked
        processes read consecutive parts of the rows at once, into memory shared with this
        process (and with processes forked from it later)."""
        wanted = np.unique(self._rows(rows))
        if processes > 1 and wanted.size >= processes * PARALLEL_READ_MIN_ROWS:
            self._cache = _read_in_processes(self, wanted, processes)
        else:
            self._cache = self._read(wanted) if wanted.size else self._cache[:0]
        self._cached = wanted

    def release(self) -> None:
        """Forget the prefetched rows."""
        self._cached, self._cache = self._cached[:0], self._cache[:0]

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = self._rows(rows)
        where = np.searchsorted(self._cached, rows)
        hit = where < self._cached.size
        hit[hit] = self._cached[where[hit]] == rows[hit]
        if hit.all():
            return self._cache[where]
        out = np.empty((rows.size, self.shape[1]), dtype=np.float32)
        out[hit] = self._cache[where[hit]]
        missing, back = np.unique(rows[~hit], return_inverse=True)
        out[~hit] = self._read(missing)[back]
        self.rows_read += int(missing.size)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row (a fit on the whole pool)."""
        with FeatureStore(self.path) as store:
            X = store.features(self.encoder, self.split)[self.positions]
        self.rows_read += self.shape[0]
        return X if dtype is None else X.astype(dtype, copy=False)


_FILLING: tuple[StoredRows, np.ndarray, np.ndarray] | None = None  # what forked readers fill (not pickled)


def _fill(start: int, stop: int) -> None:
    assert _FILLING is not None
    rows, wanted, out = _FILLING
    out[start:stop] = rows._read(wanted[start:stop])


def _read_in_processes(rows: StoredRows, wanted: np.ndarray, processes: int) -> np.ndarray:
    """``rows._read(wanted)`` with ``processes`` processes, each reading a consecutive part (its
    own HDF5 chunks) into one array of anonymous shared memory."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FILLING
    size = wanted.size * rows.shape[1]
    out = np.frombuffer(mmap.mmap(-1, size * 4), dtype=np.float32, count=size).reshape(wanted.size, rows.shape[1])
    bounds = np.linspace(0, wanted.size, processes + 1).astype(int)
    _FILLING = (rows, wanted, out)
    try:
        with ProcessPoolExecutor(processes - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = [pool.submit(_fill, int(a), int(b)) for a, b in itertools.pairwise(bounds[1:])]
            _fill(0, int(bounds[1]))
            for part in parts:
                part.result()
    finally:
        _FILLING = None
    return out
