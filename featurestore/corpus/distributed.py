"""Caption statistics over a sharded pool (:mod:`featurestore.corpus.shards`), one task per shard,
on a Dask client or in this process (``client=None``: the same functions, one shard after another).

Concept frequency: each shard's task tokenizes its captions and counts, per synonym and per class,
the captions that mention it (the rule of :mod:`featurestore.corpus.frequency`). Captions belong
to one shard each, so the pool's counts are the sums of the shards' integer counts: exact.

Curation (:mod:`featurestore.corpus.curation`) in two rounds. Round 1: each shard's task matches
its captions against the entries and returns its row count and per-entry counts; its matched
(caption, entry) pairs stay with the task's result on the worker. The counts are summed (exact)
and give p_e = min(1, t / count_e). Round 2: each shard's task draws its pairs with
``first_row`` = the rows of the shards before it, so every pair's draw is the one a single process
over the concatenated pool makes (the draw is a hash of (seed, pool row, entry), not a stream),
and writes its kept rows to a part file (written aside and renamed: a retried task leaves one
copy). The parts are joined in shard order into the output manifest.

A worker that dies mid-task loses only that task: the scheduler runs it again on another worker
(and recomputes a lost round-1 result that round 2 still needs). A task that raises (an unreadable
shard) is not retried: the error is the shard's, and it reaches the caller as raised.
"""
from __future__ import annotations

import csv
import itertools
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.corpus.curation import (
    CurationIndex,
    Matching,
    balanced_sample,
    count_distribution,
    entry_probabilities,
    head_entries,
)
from featurestore.corpus.frequency import CaptionIndex, ConceptFrequency, class_matches
from featurestore.corpus.shards import read_caption_shard
from featurestore.errors import SourceError


def frequency_partial(path: str, synonyms: dict[str, list[str]]) -> tuple[int, np.ndarray, np.ndarray]:
    """One shard's (rows, per-synonym caption counts flattened in class order, per-class counts)."""
    shard = read_caption_shard(path)
    _, cls, synonym_counts = class_matches(CaptionIndex.build(shard.captions), synonyms)
    flat = np.concatenate(synonym_counts) if synonym_counts else np.zeros(0, np.int64)
    return len(shard), flat.astype(np.int64), np.bincount(cls, minlength=len(synonyms)).astype(np.int64)


def sharded_frequency(shards: Sequence[str], synonyms: dict[str, list[str]], client: Any = None,
                      quiet: bool = True) -> tuple[ConceptFrequency, int]:
    """Concept frequency of the pool in ``shards`` (and its caption count): per-shard counts on
    ``client``'s workers (or here), summed."""
    if not synonyms:
        raise SourceError("no classes with synonyms to count")
    shared = _share(client, synonyms)
    parts = _run(client, frequency_partial, [(path, shared) for path in shards], "count captions", quiet)
    rows = sum(p[0] for p in parts)
    flat = _summed([p[1] for p in parts], sum(len(v) for v in synonyms.values()))
    class_counts = _summed([p[2] for p in parts], len(synonyms))
    bounds = np.cumsum([0] + [len(s) for s in synonyms.values()])
    synonym_counts = [flat[a:b] for a, b in itertools.pairwise(bounds)]
    return ConceptFrequency(list(synonyms), [list(s) for s in synonyms.values()], synonym_counts,
                            class_counts), rows


@dataclass
class ShardMatches:
    """Round 1 of one shard: its row count, matched (caption, entry) pairs and per-entry counts."""

    rows: int
    captions: np.ndarray
    entries: np.ndarray
    counts: np.ndarray


def match_shard(path: str, entries: list[str], matching: Matching) -> ShardMatches:
    """Round 1 task: match one shard's captions against ``entries``."""
    shard = read_caption_shard(path)
    caps, ids = CurationIndex.build(shard.captions, matching).match(entries)
    return ShardMatches(len(shard), caps, ids, np.bincount(ids, minlength=len(entries)).astype(np.int64))


def shard_totals(matches: ShardMatches) -> tuple[int, np.ndarray]:
    """What round 1 sends back: rows and per-entry counts (the pairs stay on the worker)."""
    return matches.rows, matches.counts


def select_shard(matches: ShardMatches, path: str, first_row: int, probabilities: np.ndarray, seed: int,
                 part: str) -> tuple[np.ndarray, int, int]:
    """Round 2 task: draw the shard's pairs as rows ``first_row...`` of the pool, write its kept
    rows (id, path, caption; no header) to ``part``; returns (per-entry kept counts, captions
    matched, rows kept)."""
    kept = balanced_sample(matches.captions, matches.entries, probabilities, matches.rows, seed, first_row)
    rows = np.flatnonzero(kept)
    shard = read_caption_shard(path) if rows.size else None
    tmp = f"{part}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for i in rows.tolist():
            assert shard is not None
            writer.writerow([shard.ids[i], shard.paths[i], shard.captions[i]])
    os.replace(tmp, part)
    after = np.bincount(matches.entries[kept[matches.captions]], minlength=len(probabilities)).astype(np.int64)
    return after, int(np.unique(matches.captions).size), int(rows.size)


@dataclass
class ShardedCuration:
    """Result of :func:`sharded_curate`: entry counts before and after balancing, and totals."""

    entries: list[str]
    counts_before: np.ndarray
    counts_after: np.ndarray
    n_captions: int
    n_matched: int
    n_kept: int
    t: float
    matching: Matching
    shards: int

    def distribution(self, edges: Sequence[int] = (1, 10, 100, 1_000, 10_000, 100_000)) -> list[dict]:
        """Entries bucketed by their count before balancing."""
        return count_distribution(self.counts_before, self.counts_after, edges)

    def head(self, n: int = 10) -> list[dict]:
        """The ``n`` entries with the most matches before balancing, with their counts after."""
        return head_entries(self.entries, self.counts_before, self.counts_after, n)


def sharded_curate(shards: Sequence[str], entries: Sequence[str], t: float, output: str | os.PathLike,
                   seed: int = 0, matching: Matching = "official", client: Any = None,
                   quiet: bool = True) -> ShardedCuration:
    """MetaCLIP curation of the pool in ``shards`` (rows kept: those ``curate`` keeps on the
    concatenated pool with the same seed), writing the kept rows as a CSV manifest (id, path,
    caption) to ``output``. Part files go to ``<output>.parts/`` and are removed after joining."""
    entry_probabilities(np.ones(1), t)  # checks t before the long steps
    entries = list(entries)
    output = Path(output)
    parts_dir = Path(f"{output}.parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    shared = _share(client, entries)
    matches = _submit(client, match_shard, [(path, shared, matching) for path in shards])
    totals = _gather(client, _submit(client, shard_totals, [(m,) for m in matches]),
                     f"match {len(entries)} entries", quiet)
    before = _summed([c for _, c in totals], len(entries))
    first_rows = np.concatenate([[0], np.cumsum([r for r, _ in totals])[:-1]]).astype(np.int64).tolist()
    probabilities = entry_probabilities(before, t)
    shared_p = _share(client, probabilities)
    parts = [str(parts_dir / f"{i:05d}.csv") for i in range(len(shards))]
    selected = _gather(client, _submit(client, select_shard, [
        (m, path, first, shared_p, seed, part) for m, path, first, part in zip(matches, shards, first_rows, parts)]),
        "balance, write kept rows", quiet)
    with open(output, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow(["id", "path", "caption"])
        for part in parts:
            with open(part, newline="", encoding="utf-8") as piece:
                shutil.copyfileobj(piece, handle)
    shutil.rmtree(parts_dir)
    after = _summed([s[0] for s in selected], len(entries))
    return ShardedCuration(entries, before, after, sum(r for r, _ in totals), sum(s[1] for s in selected),
                           sum(s[2] for s in selected), float(t), matching, len(shards))


def _summed(counts: list[np.ndarray], size: int) -> np.ndarray:
    """The elementwise sum of integer count arrays of length ``size`` (exact, int64)."""
    total = np.zeros(size, np.int64)
    for part in counts:
        total += part
    return total


def _share(client: Any, value: Any) -> Any:
    """``value`` sent once to every worker (a future the tasks take), or itself with no client."""
    return value if client is None else client.scatter([value], broadcast=True)[0]


def _submit(client: Any, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
    """Futures of ``fn(*call)`` on the client (no retries: a raised error is the shard's; a dead
    worker's task is rerun by the scheduler), or the results computed here."""
    if client is None:
        return [fn(*call) for call in calls]
    return [client.submit(fn, *call, pure=False) for call in calls]


def _gather(client: Any, futures: list[Any], desc: str, quiet: bool) -> list[Any]:
    """Results in submission order, with a progress bar over shards."""
    if client is None:
        return futures
    from distributed import as_completed
    from tqdm.auto import tqdm

    workers = len(client.scheduler_info()["workers"])
    with tqdm(total=len(futures), desc=f"{desc} on {workers} workers", unit="shard", disable=quiet) as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return client.gather(futures)


def _run(client: Any, fn: Callable[..., Any], calls: list[tuple], desc: str, quiet: bool) -> list[Any]:
    if client is None:
        from tqdm.auto import tqdm

        return [fn(*call) for call in tqdm(calls, desc=desc, unit="shard", disable=quiet)]
    return _gather(client, _submit(client, fn, calls), desc, quiet)
