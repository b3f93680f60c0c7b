"""A split's labelled feature rows as an array read by row index, for a training pool far larger
than what a few-shot run takes from it (ImageNet's 16-shot draw is 16,000 of its 1.28M rows).

``StoredRows`` stands where the pool's (N, D) features would: indexing it with row numbers reads
those rows from the store (``FeatureStore.features_at``: only the HDF5 chunks that hold one);
``prefetch`` reads the union of the rows a sweep will draw in one pass and serves them from memory
after; ``np.asarray`` reads every row (what a fit on the whole pool takes). The labels are read
whole beforehand, so the draws are made on them before any feature is read.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from featurestore.store.feature_store import FeatureStore


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

    def prefetch(self, rows: Any) -> None:
        """Read ``rows`` (any order, repeats allowed) in one pass and keep them in memory (replacing
        what an earlier call kept); indexing serves them from there."""
        wanted = np.unique(self._rows(rows))
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
