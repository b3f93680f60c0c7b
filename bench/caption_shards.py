"""Caption statistics over a sharded pool: one process against a Dask LocalCluster of N worker
processes, measured in one run (featurestore.corpus.distributed).

The pool: ``--captions`` synthetic captions (bench/curation.py's generator: 6-20 words from a
Zipf-distributed vocabulary of 1M words) in Parquet shards of ``--shard-rows`` rows, written once to
``--folder`` and reused. The work: REAL's concept frequency (``--classes`` classes of 3
synonyms: a word of rank 10 to 100k, or it followed by a Zipf-drawn word) and MetaCLIP curation
(``--entries`` entries, official matching, t = 20000). "One process" runs the same per-shard
tasks one after another in this process; the cluster runs them on ``--workers`` processes with one
thread and one BLAS thread each.

Reported per step: wall seconds, captions/s, CPU seconds (this process for one process; the
workers' and this process's for the cluster, from getrusage), the wall and CPU ratios, and the
1-minute load average before and after (the machine is shared). Results are checked equal.

Usage: python bench/caption_shards.py [--captions 10000000] [--workers 2] [--folder /tmp/fs-caption-shards]
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, this folder is sys.path[0], and bench/solvers.py would hide the solvers package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.curation import VOCAB, synthetic  # noqa: E402
from featurestore.corpus.distributed import sharded_curate, sharded_frequency  # noqa: E402
from featurestore.corpus.shards import caption_shards  # noqa: E402

_VOCAB: list[str] = []


def shard_captions(n: int, seed: int) -> list[str]:
    """bench/curation.py's ``synthetic(n, 0, seed)`` captions (the same draws), faster: the
    vocabulary is built once and words are joined from Python lists."""
    if not _VOCAB:
        _VOCAB.extend(f"w{i}" for i in range(VOCAB))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 21, n)
    ids = np.minimum(rng.zipf(1.3, lengths.sum()) - 1, VOCAB - 1)
    text = [_VOCAB[i] for i in ids.tolist()]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return [" ".join(text[a:b]) for a, b in itertools.pairwise(bounds)]


def write_pool(folder: Path, n: int, shard_rows: int) -> list[str]:
    """Parquet shards of the synthetic pool (kept when already there with the same size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    n_shards = -(-n // shard_rows)
    paths = [folder / f"part-{s:05d}.parquet" for s in range(n_shards)]
    for s, path in enumerate(paths):
        rows = min(shard_rows, n - s * shard_rows)
        if path.exists() and pq.read_metadata(path).num_rows == rows:
            continue
        captions = shard_captions(rows, seed=1000 + s)
        pq.write_table(pa.table({"key": [f"{s:05d}{i:07d}" for i in range(rows)], "caption": captions}), path)
        print(f"  wrote {path.name} ({rows} captions)", flush=True)
    return caption_shards(str(folder / "part-*.parquet"))


def concepts(n_classes: int, n_entries: int) -> tuple[dict[str, list[str]], list[str]]:
    """Synonym lists and metadata entries from the generator's vocabulary."""
    rng = np.random.default_rng(5)
    vocab = np.array([f"w{i}" for i in range(VOCAB)])
    _, entries = synthetic(1, n_entries, seed=0)

    def term() -> str:  # a mid-frequency word (rank 10..100k), or it and a Zipf-drawn word
        head = vocab[rng.integers(10, 100_000)]
        return str(head) if rng.random() < 0.6 else f"{head} {vocab[min(int(rng.zipf(1.3)) - 1, VOCAB - 1)]}"

    synonyms = {f"class{c}": [term() for _ in range(3)] for c in range(n_classes)}
    return synonyms, entries


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(step: Any, client: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process and, with a client, of its workers)."""
    workers_before = sum(client.run(_cpu).values()) if client is not None else 0.0
    cpu, wall = _cpu(), time.perf_counter()
    result = step(client)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    if client is not None:
        cpu += sum(client.run(_cpu).values()) - workers_before
    return result, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=10_000_000)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "fs-caption-shards"))
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"pool: {args.captions} synthetic captions in shards of {args.shard_rows} under {args.folder}", flush=True)
    shards = write_pool(Path(args.folder) / str(args.captions), args.captions, args.shard_rows)
    synonyms, entries = concepts(args.classes, args.entries)
    out = Path(args.folder) / "kept.csv"
    steps = {
        "frequency": lambda c: sharded_frequency(shards, synonyms, client=c),
        "curation": lambda c: sharded_curate(shards, entries, 20000, out, seed=1, client=c),
    }
    from distributed import Client, LocalCluster

    print(f"{len(shards)} shards, {args.classes} classes x 3 synonyms, {len(entries)} entries; "
          f"{os.cpu_count()} cores", flush=True)
    start = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as cluster, \
            Client(cluster) as client:
        print(f"LocalCluster of {args.workers} workers up in {time.perf_counter() - start:.1f} s", flush=True)
        for name, step in steps.items():
            rows = []
            for label, c in (("1 process", None), (f"{args.workers} workers", client)):
                load = os.getloadavg()[0]
                result, wall, cpu = measure(step, c)
                rows.append((label, result, wall, cpu, load, os.getloadavg()[0]))
                print(f"{name:>9} {label:>10}: {wall:7.1f} s wall, {args.captions / wall:9.0f} captions/s, "
                      f"{cpu:7.1f} CPU s ({args.captions / cpu:7.0f} captions per CPU s), "
                      f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
            (_, one, wall1, cpu1, *_), (_, many, wall2, cpu2, *_) = rows
            if name == "frequency":
                assert one[1] == many[1] and np.array_equal(one[0].class_counts, many[0].class_counts)
            else:
                assert np.array_equal(one.counts_after, many.counts_after) and one.n_kept == many.n_kept
            print(f"{name:>9}: wall ratio (1 process / {args.workers} workers) {wall1 / wall2:.2f}, "
                  f"CPU ratio {cpu2 / cpu1:.2f}; results equal", flush=True)


if __name__ == "__main__":
    main()
