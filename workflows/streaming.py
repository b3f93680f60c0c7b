"""Out-of-core fitting and prediction on a store larger than RAM.

GDA needs only sufficient statistics (class counts, sums, within-class scatter), so it is
fitted by streaming row chunks from the store and merging their ``ClassStatistics`` — in
this process, or as one task per row range on a Dask cluster with a tree reduction. Any
fitted solver predicts chunk by chunk, since logits are computed row by row. Memory stays at
one chunk plus the (C, D) and (D, D) statistics, whatever the number of rows. The math
(``ClassStatistics``, ``GDA.from_statistics``) is in solvers/; this module reads the store.
Dask workers run with one BLAS thread each (``workflows.blas_threads``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from solvers import l2_normalize
from solvers.few_shot.sufficient_statistics import ClassStatistics

DEFAULT_CHUNK_ROWS = 16384  # as fast as larger chunks (BLAS-bound), a quarter of the memory


def _prepare(X: np.ndarray, normalize: bool) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32) if X.dtype != np.float64 else X
    return l2_normalize(X) if normalize else X


def range_statistics(store_path: str, encoder: str, split: str, start: int, stop: int, n_classes: int,
                     normalize: bool = True) -> ClassStatistics:
    """Statistics of the valid, labelled rows ``[start, stop)`` of a split (one Dask task)."""
    from featurestore.store.feature_store import FeatureStore
    from workflows.blas_threads import limited_blas

    with limited_blas(), FeatureStore(store_path) as store:
        return _statistics_of_rows(store, encoder, split, start, stop, n_classes, normalize)


def _statistics_of_rows(store: Any, encoder: str, split: str, start: int, stop: int, n_classes: int,
                        normalize: bool) -> ClassStatistics:
    stats = ClassStatistics.empty(n_classes, int(store.encoder_info(encoder)["embed_dim"]))
    X, y = store.read_rows(encoder, split, start, stop)
    keep = y >= 0
    if keep.any():
        stats.merge(ClassStatistics.of_chunk(_prepare(X[keep], normalize), y[keep], n_classes))
    return stats



def streamed_statistics(store: Any, encoder: str, split: str, n_classes: int, *,
                        chunk_rows: int = DEFAULT_CHUNK_ROWS, normalize: bool = True,
                        client: Any = None, quiet: bool = True) -> ClassStatistics:
    """ClassStatistics of a split's valid labelled rows, read ``chunk_rows`` at a time.

    With a Dask ``client`` each row range is a task on a worker (reading the store file
    itself) and the partial statistics are merged in a tree.
    """
    n = store.n_rows(split)
    ranges = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]
    if client is None:
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        stats = ClassStatistics.empty(n_classes, int(store.encoder_info(encoder)["embed_dim"]))
        # Read chunk i+1 in a thread while BLAS (which releases the GIL) works on chunk i.
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(store.read_rows, encoder, split, *ranges[0]) if ranges else None
            for i in tqdm(range(len(ranges)), desc=f"statistics {split}", unit="chunk", disable=quiet):
                assert pending is not None  # submitted before the loop or in the previous round
                X, y = pending.result()
                if i + 1 < len(ranges):
                    pending = reader.submit(store.read_rows, encoder, split, *ranges[i + 1])
                keep = y >= 0
                if keep.any():
                    stats.merge(ClassStatistics.of_chunk(_prepare(X[keep], normalize), y[keep], n_classes))
        return stats
    futures = [client.submit(range_statistics, str(store.path), encoder, split, start, stop, n_classes, normalize,
                             pure=False) for start, stop in ranges]
    while len(futures) > 1:
        pairs = [futures[i:i + 2] for i in range(0, len(futures), 2)]
        futures = [client.submit(_merged, *pair, pure=False) if len(pair) == 2 else pair[0] for pair in pairs]
    return futures[0].result()


def _merged(a: ClassStatistics, b: ClassStatistics) -> ClassStatistics:
    return a.merge(b)


def fit_gda_streaming(store: Any, encoder: str, split: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                      client: Any = None, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                      quiet: bool = True, classes: list[str] | None = None, **params: Any) -> Any:
    """GDA fitted from streamed statistics; equals ``GDA(**params).fit`` on the same rows.

    ``classes`` is the model's class list (``solver_inputs.model_classes``: a text bank's, in the
    order of its rows) when it differs from the split's: the per-class statistics, gathered in
    the split's label order, are moved to it by class name (the pooled scatter does not depend
    on the order)."""
    from solvers.few_shot.gda import GDA
    from workflows.inputs.solver_inputs import class_mapping

    own = store.classes(split)
    mapping = None if classes is None else class_mapping(own, classes, split, used=np.unique(store.labels(split)))
    text_weights = params.get("text_weights")
    n_classes = params.get("n_classes") or (len(text_weights) if text_weights is not None else None)
    if n_classes is None or mapping is not None:
        labels = store.labels(split)
        n_classes = max(int(labels.max()) + 1, len(own or ())) if mapping is not None else int(labels.max()) + 1
    stats = streamed_statistics(store, encoder, split, n_classes, chunk_rows=chunk_rows,
                                normalize=params.get("normalize", True), client=client, quiet=quiet)
    if mapping is not None:
        assert classes is not None  # a mapping is built onto classes
        counts, sums = np.zeros(len(classes), np.int64), np.zeros((len(classes), stats.sums.shape[1]))
        kept = mapping[:stats.counts.size] >= 0
        counts[mapping[:stats.counts.size][kept]] = stats.counts[kept]
        sums[mapping[:stats.counts.size][kept]] = stats.sums[kept]
        stats = ClassStatistics(counts, sums, stats.scatter)
    return GDA.from_statistics(stats.counts, stats.sums, stats.scatter, X_val=X_val, y_val=y_val, **params)


def decision_in_chunks(solver: Any, store: Any, encoder: str, split: str, *,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS, method: str = "class_logits",
                       transform: Callable[[np.ndarray], np.ndarray] | None = None,
                       quiet: bool = True) -> np.ndarray:
    """``solver.<method>`` over a split's valid rows, computed chunk by chunk (row-aligned
    with ``store.ids(split)``). ``transform`` maps each chunk's output to per-row values, e.g.
    an OOD score of ``solvers.ood.scores`` on the logits: then, as for ``predict``, only (N,)
    values are kept in memory, never the (N, C) logits."""
    from tqdm.auto import tqdm

    parts = []
    for _, X in tqdm(store.iter_features(encoder, split, chunk_rows=chunk_rows), desc=f"{method} {split}",
                     unit="chunk", disable=quiet):
        out = getattr(solver, method)(X)
        parts.append(transform(out) if transform is not None else out)
    if not parts:
        return np.zeros((0,), dtype=np.int64)
    return np.concatenate(parts)
