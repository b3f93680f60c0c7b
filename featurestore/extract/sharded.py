"""Distributed extraction on Dask: one task per shard, one HDF5 shard store per task, linked.

The source's sorted records are cut into contiguous shards. Each task extracts its shard with
the ordinary single-process pipeline into ``<store>.shards/<split>/<index>.h5`` (so a shard is
resumable and crash-safe exactly like a store), and the main store links the shards with
virtual datasets in shard order, which is the single-process row order. A worker that dies
loses only its unfinished shard: Dask retries the task, which resumes the shard file. A rerun
skips finished shards without scheduling them.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurestore.errors import FeatureStoreError, StoreLockedError
from featurestore.extract.pipeline import ExtractReport
from featurestore.store.feature_store import FeatureStore, h5_name
from featurestore.store.split_names import check_split_name

DEFAULT_SHARD_ROWS = 5000
LOCK_WAIT_SECONDS = 300


@dataclass(frozen=True)
class EncoderSpec:
    """How a worker rebuilds the encoder (models are loaded in the worker, never pickled)."""

    model: str
    pretrained: str | None = None
    model_config: str | None = None
    precision: str | None = None
    device: str | None = None
    preprocess: tuple[tuple[str, Any], ...] = ()  # preprocessing overrides (fs extract --resize ...)


class RecordSubset:
    """A picklable view of some records of a source, with the source's name and classes."""

    def __init__(self, source: Any, records: list[Any]) -> None:
        self.inner = source
        self.name = source.name
        self.classes = source.classes
        self.spec = getattr(source, "spec", "")
        self._records = records

    def records(self) -> list[Any]:
        return list(self._records)

    def read_bytes(self, record: Any) -> bytes:
        return self.inner.read_bytes(record)


@dataclass
class ShardedReport:
    """Totals of a distributed run and each worker's throughput."""

    split: str
    encoder: str
    shards: int
    skipped_shards: int
    rows: int = 0
    extracted: int = 0
    failed: int = 0
    seconds: float = 0.0
    per_worker: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"split {self.split!r}, encoder {self.encoder}: {self.rows} rows in {self.shards} shards "
                 f"({self.skipped_shards} already done), {self.extracted} extracted "
                 f"({self.extracted / self.seconds if self.seconds else 0:.1f} img/s in total), "
                 f"{self.failed} unreadable"]
        for worker, stats in sorted(self.per_worker.items()):
            lines.append(f"  worker {worker}: {int(stats['rows'])} rows, {stats['rows'] / stats['seconds']:.1f} img/s"
                         if stats["seconds"] else f"  worker {worker}: {int(stats['rows'])} rows")
        return "\n".join(lines)


_ENCODERS: dict[EncoderSpec, Any] = {}


def _worker_encoder(spec: EncoderSpec) -> Any:
    """Load the encoder once per worker process; one GPU per worker when GPUs exist."""
    if spec not in _ENCODERS:
        import torch

        from featurestore.encoders import load_encoder

        device = spec.device
        if device is None and torch.cuda.is_available():
            from distributed import get_worker

            name = get_worker().name
            index = name if isinstance(name, int) else abs(hash(name))
            device = f"cuda:{index % torch.cuda.device_count()}"
        threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
        if threads:
            torch.set_num_threads(threads)
        _ENCODERS[spec] = load_encoder(spec.model, spec.pretrained, device=device, precision=spec.precision,
                                       model_config=spec.model_config, preprocess=dict(spec.preprocess))
    return _ENCODERS[spec]


def extract_shard(shard_path: str, subset: RecordSubset, spec: EncoderSpec, split: str, batch_size: int | None,
                  views: int, seed: int, dtype: str | None) -> tuple[str, ExtractReport]:
    """One Dask task: extract a shard into its own store file (resuming it if it exists)."""
    from distributed import get_worker

    from featurestore.extract.pipeline import extract

    encoder = _worker_encoder(spec)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            report = extract(subset, shard_path, encoder, split=split, batch_size=batch_size, workers=0,
                             views=views, seed=seed, dtype=dtype, quiet=True)
            return str(get_worker().name), report
        except StoreLockedError:
            # An orphaned worker of a killed run may still be finishing this shard; its lock
            # goes when it ends, and this task then resumes whatever it left.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def shard_dir(store_path: str | os.PathLike, split: str) -> Path:
    """Folder of a split's shard stores, beside the main store (a checked split name never
    leads outside ``<store>.shards/``)."""
    return Path(f"{os.fspath(store_path)}.shards") / h5_name(check_split_name(split))


def _plan(records: list[Any], shard_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_rows, len(records))) for start in range(0, len(records), shard_rows)]


def _check_plan(folder: Path, records: list[Any], plan: list[tuple[int, int]]) -> None:
    """Refuse to mix shard boundaries of another source listing (rows would move)."""
    described = [{"rows": stop - start, "first": records[start].id, "last": records[stop - 1].id}
                 for start, stop in plan]
    path = folder / "plan.json"
    if path.exists():
        if json.loads(path.read_text()) != described:
            raise FeatureStoreError(
                f"the source changed since the sharded extraction in {folder} started (other files or "
                "shard size); use another split name"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(described))
    os.replace(tmp, path)


def _shard_done(path: Path, encoder_key: str, split: str, rows: int, views: int) -> bool:
    if not path.exists():
        return False
    try:
        with FeatureStore(path) as shard:
            if not shard.has_features(encoder_key, split) or shard.n_rows(split) != rows:
                return False
            if not shard.done(encoder_key, split).all():
                return False
            if views:
                shard.views(encoder_key, split, valid_only=False)
            return True
    except FeatureStoreError:
        return False


def extract_distributed(source: Any, store_path: str | os.PathLike, spec: EncoderSpec, client: Any, *,
                        encoder_key: str, split: str | None = None, shard_rows: int = DEFAULT_SHARD_ROWS,
                        batch_size: int | None = 64, views: int = 0, seed: int = 0, dtype: str | None = None,
                        quiet: bool = False) -> ShardedReport:
    """Extract ``source`` on a Dask cluster into shard stores, then link them into ``split``.

    ``encoder_key`` is the key the workers' encoder will have (from loading it once locally).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    split = split or source.name
    records = source.records()
    if not records:
        raise FeatureStoreError(f"source {getattr(source, 'spec', source)} has no images")
    plan = _plan(records, shard_rows)
    folder = shard_dir(store_path, split)
    # The main store stays open as the writer (holding its lock, in SWMR mode so readers can
    # read) from the check to the links: no reader-side recovery is needed to resume a killed run.
    main = FeatureStore(store_path, mode="a")
    try:
        if split in main.splits() and not main.file[f"splits/{h5_name(split)}/ids"].is_virtual:
            raise FeatureStoreError(
                f"split {split!r} of {store_path} was extracted without --cluster; use another split name"
            )
        _check_plan(folder, records, plan)
        paths = [folder / f"{i:05d}.h5" for i in range(len(plan))]
        report = ShardedReport(split, encoder_key, len(plan), 0)
        todo = [i for i, (start, stop) in enumerate(plan)
                if not _shard_done(paths[i], encoder_key, split, stop - start, views)]
        report.skipped_shards = len(plan) - len(todo)
        report.rows = len(records)
        start_time = time.perf_counter()
        futures = [client.submit(extract_shard, str(paths[i]), RecordSubset(source, records[slice(*plan[i])]),
                                 spec, split, batch_size, views, seed, dtype,
                                 key=f"extract-{split}-{i}-{time.time_ns()}", retries=3, pure=False)
                   for i in todo]
        per_worker: dict[str, dict[str, float]] = defaultdict(lambda: {"rows": 0.0, "seconds": 0.0})
        todo_rows = sum(plan[i][1] - plan[i][0] for i in todo)
        n_workers = len(client.scheduler_info()["workers"])
        with tqdm(total=todo_rows, unit="img", desc=f"extract {split} on {n_workers} workers",
                  disable=quiet, dynamic_ncols=True) as bar:
            for future in as_completed(futures):
                worker, shard_report = future.result()
                report.extracted += shard_report.extracted
                report.failed += shard_report.failed
                per_worker[worker]["rows"] += shard_report.extracted + shard_report.failed
                per_worker[worker]["seconds"] += shard_report.seconds
                bar.update(shard_report.rows)
                bar.set_postfix(workers=len(per_worker))
        report.seconds = time.perf_counter() - start_time
        report.per_worker = dict(per_worker)
        from featurestore.store.virtual_split import link_shards

        link_shards(main, split, paths)
    finally:
        main.close()
    return report
