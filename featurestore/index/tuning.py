"""Search parameters of a FAISS index, and tuning them to a recall target against exact search.

The knobs: ``nprobe`` (IVF lists visited; an HNSW coarse quantiser searches with
``quantizer_efSearch = max(2 nprobe, 32)``, as autofaiss does), ``efSearch`` (HNSW graphs) and
``k_factor`` (candidates re-ranked per neighbour by a ``Refine``/``RFlat`` index). Tuning finds
the smallest primary value (nprobe or efSearch) whose recall@k on held-out queries meets the
target, with ``k_factor`` at its largest; then the smallest ``k_factor`` that still meets it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

K_FACTORS = (1, 2, 4, 8, 16)
MAX_EF_SEARCH = 4096
MAX_NPROBE = 4096


def knobs(index: Any) -> dict[str, int]:
    """The tunable search parameters of ``index`` and their upper bounds (empty for exact ones)."""
    import faiss

    found: dict[str, int] = {}
    node = faiss.downcast_index(index)
    if isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        node = faiss.downcast_index(node.index)
    if isinstance(node, (faiss.IndexRefine, faiss.IndexRefineFlat)):
        found["k_factor"] = K_FACTORS[-1]
        node = faiss.downcast_index(node.base_index)
    if isinstance(node, faiss.IndexPreTransform):
        node = faiss.downcast_index(node.index)
    ivf = faiss.try_extract_index_ivf(node)
    if ivf is not None:
        found["nprobe"] = min(int(ivf.nlist), MAX_NPROBE)
    elif hasattr(node, "hnsw"):
        found["efSearch"] = MAX_EF_SEARCH
    return found


def set_params(index: Any, params: dict[str, int]) -> None:
    """Set ``nprobe`` / ``efSearch`` / ``k_factor`` on a CPU index (unknown names are refused)."""
    import faiss

    node = faiss.downcast_index(index)
    params = dict(params)
    if isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        node = faiss.downcast_index(node.index)
    if isinstance(node, (faiss.IndexRefine, faiss.IndexRefineFlat)):
        if "k_factor" in params:
            node.k_factor = float(params.pop("k_factor"))
        node = faiss.downcast_index(node.base_index)
    if isinstance(node, faiss.IndexPreTransform):
        node = faiss.downcast_index(node.index)
    ivf = faiss.try_extract_index_ivf(node)
    if ivf is not None and "nprobe" in params:
        nprobe = int(params.pop("nprobe"))
        ivf.nprobe = nprobe
        quantizer = faiss.downcast_index(ivf.quantizer)
        if hasattr(quantizer, "hnsw"):
            quantizer.hnsw.efSearch = quantizer_ef_search(nprobe)
    if hasattr(node, "hnsw") and "efSearch" in params:
        node.hnsw.efSearch = int(params.pop("efSearch"))
    if params:
        raise KeyError(", ".join(params))


def quantizer_ef_search(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantiser asked for ``nprobe`` lists."""
    return max(2 * int(nprobe), 32)


def ladder(top: int, start: int = 1) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... (steps of 1.33x to 1.5x) from ``start`` up to ``top``, ``top`` included."""
    values, power = {top}, 1
    while power < top:
        values.update({power, power * 3 // 2})
        power *= 2
    return sorted(v for v in values if start <= v <= top)


Z_95 = 1.645  # one-sided 95% normal quantile


def query_recalls(approx: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """Per query, the fraction of its exact top-``k`` (-1 padding ignored) found in ``approx``'s top-``k``."""
    out = np.ones(len(exact))
    for i, (a, e) in enumerate(zip(np.asarray(approx)[:, :k], np.asarray(exact)[:, :k])):
        truth = set(e[e >= 0].tolist())
        if truth:
            out[i] = len(truth & set(a[a >= 0].tolist())) / len(truth)
    return out


def tune(space: dict[str, int], apply: Callable[[dict[str, int]], None],
         search: Callable[[np.ndarray, int], np.ndarray], queries: np.ndarray,
         truth: np.ndarray, target: float, deadline: float | None = None,
         progress: Callable[[dict[str, Any]], None] | None = None
         ) -> tuple[dict[str, int], list[dict[str, Any]], bool]:
    """Smallest search parameters meeting ``target`` recall@k: ``(params, settings tried, met)``.

    ``space`` is :func:`knobs` of the index, ``apply(params)`` sets parameters on it and
    ``search(queries, k)`` returns neighbour positions; ``truth`` holds each query's exact top-``k``
    (``k = truth.shape[1]``). A setting meets the target when the one-sided 95% lower confidence
    bound of its mean recall over the queries (mean - 1.645 standard errors) does, so the first
    setting that is lucky on this sample of queries is not taken for one that meets it. Every
    setting tried is returned as ``{params, recall, recall_lower, qps}``. When no setting meets the
    target (or ``deadline``, a ``time.monotonic()`` value, passes first), the best setting tried
    is applied and returned with ``met=False``.
    """
    k = truth.shape[1]
    tried: list[dict[str, Any]] = []

    def run(params: dict[str, int]) -> float:
        apply(params)
        t0 = time.perf_counter()
        positions = search(queries, k)
        seconds = max(time.perf_counter() - t0, 1e-9)
        per_query = query_recalls(positions, truth, k)
        spread = per_query.std(ddof=1) / np.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
        result: dict[str, Any] = {"params": dict(params), "recall": float(per_query.mean()),
                  "recall_lower": float(per_query.mean() - Z_95 * spread), "qps": len(queries) / seconds}
        tried.append(result)
        if progress is not None:
            progress(result)
        return result["recall_lower"]

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    def give_up() -> tuple[dict[str, int], list[dict[str, Any]], bool]:
        best = max(tried, key=lambda r: (r["recall_lower"], r["qps"]))["params"]
        apply(best)
        return best, tried, False

    primary = next((name for name in ("nprobe", "efSearch") if name in space), None)
    fixed = {"k_factor": space["k_factor"]} if "k_factor" in space else {}
    chosen: dict[str, int] = {}
    if primary is not None:
        start = k if primary == "efSearch" else 1
        below, best = None, None
        for value in ladder(space[primary], start=start):
            if run({primary: value, **fixed}) >= target:
                best = value
                break
            below = value
            if out_of_time():
                break
        if best is None:
            return give_up()
        low = below if below is not None else start - 1
        while best - low > 1 and not out_of_time():  # bisect between the last miss and the first hit
            mid = (low + best) // 2
            if run({primary: mid, **fixed}) >= target:
                best = mid
            else:
                low = mid
        chosen[primary] = best
    elif run(fixed) < target:  # no primary knob: score the one setting (with re-ranking at its widest)
        return give_up()
    if fixed:
        chosen["k_factor"] = fixed["k_factor"]
        for factor in K_FACTORS[:-1]:
            if out_of_time():
                break
            if run({**chosen, "k_factor": factor}) >= target:
                chosen["k_factor"] = factor
                break
    apply(chosen)
    return chosen, tried, True
