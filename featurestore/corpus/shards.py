"""A caption pool kept as shard files: img2dataset's WebDataset tar shards or Parquet tables.

A shard is read whole by one process (one Dask task); the pool is the shards' rows in the
sorted order of their paths, each shard's rows in its own order:

- ``.tar``: the samples of :class:`featurestore.sources.webdataset.WebDatasetSource` (id
  "<shard file name>/<key>", path "<shard>::<member>", caption the ``.txt`` member), so a pool of
  tar shards in one folder has the rows, in the same order, of a store split extracted from them.
- ``.parquet``: a ``caption`` column (required; img2dataset's metadata files have one), ids from
  an ``id`` column, else ``key`` (img2dataset), else "<file stem>/<row number>"; paths from a
  ``path`` column, else ``url``, else empty. Row order as stored.

A missing caption is an empty one (it matches nothing), as in a store's pool.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from featurestore.errors import SourceError
from featurestore.sources.webdataset import expand_shards

SHARD_KINDS = (".tar", ".parquet")


@dataclass
class CaptionShard:
    """The rows of one shard: ids, paths and captions (``""`` for none), aligned."""

    ids: list[str]
    paths: list[str]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def caption_shards(spec: str) -> list[str]:
    """Absolute, sorted shard paths of a file, a brace pattern (``{00000..00009}``) or a glob;
    all ``.tar`` or all ``.parquet``. Every file a brace pattern names must exist."""
    shards = expand_shards(spec, what="caption shard")
    kinds = {os.path.splitext(p)[1].lower() for p in shards}
    if not kinds <= set(SHARD_KINDS):
        other = ", ".join(sorted(k or "(no suffix)" for k in kinds - set(SHARD_KINDS)))
        raise SourceError(f"caption shards are .tar or .parquet files, not {other} ({spec})")
    if len(kinds) > 1:
        raise SourceError(f"{spec} mixes .tar and .parquet shards; give one kind")
    return shards


def read_caption_shard(path: str) -> CaptionShard:
    """The rows of one ``.tar`` or ``.parquet`` caption shard (see the module doc)."""
    if path.lower().endswith(".tar"):
        from featurestore.sources.webdataset import WebDatasetSource

        source = WebDatasetSource([path])
        records = source.records()
        source.close()
        return CaptionShard([r.id for r in records], [r.path for r in records],
                            ["" if r.caption is None else r.caption for r in records])
    return _read_parquet(path)


def _read_parquet(path: str) -> CaptionShard:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SourceError("reading Parquet caption shards needs pyarrow: pip install pyarrow") from exc
    try:
        columns = pq.read_schema(path).names
        wanted = ["caption"] + [c for c in ("id", "key", "path", "url") if c in columns]
        if "caption" not in columns:
            raise SourceError(f"caption shard {path} has no 'caption' column (columns: {', '.join(columns)})")
        table = pq.read_table(path, columns=wanted)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot read Parquet caption shard {path}: {exc}") from exc
    n = table.num_rows

    def strings(name: str) -> list[str]:
        return ["" if v is None else str(v) for v in table.column(name).to_pylist()]

    captions = strings("caption")
    stem = os.path.splitext(os.path.basename(path))[0]
    id_column = next((c for c in ("id", "key") if c in columns), None)
    ids = strings(id_column) if id_column else [f"{stem}/{i}" for i in range(n)]
    path_column = next((c for c in ("path", "url") if c in columns), None)
    paths = strings(path_column) if path_column else [""] * n
    return CaptionShard(ids, paths, captions)
