"""Export a split's image embeddings in clip-retrieval's layout, for its index and back end.

clip-retrieval's ``clip_inference`` writes, per output partition ``P`` (numbered with zero padding
to the digits of the partition count: ``0``..``9``, ``00``..``99``, ...), a float16 matrix of
L2-normalised image embeddings ``img_emb/img_emb_P.npy`` and a row-aligned
``metadata/metadata_P.parquet`` with an ``image_path`` column (plus ``caption`` when it embeds
texts, and one column per metadata key). ``clip-retrieval index`` then reads ``img_emb/`` and
``metadata/`` in partition order.

Here each partition holds ``rows_per_file`` valid rows of the split, in row order; the parquet
holds ``image_path`` (the path the store recorded: a file, or ``shard.tar::member``), ``caption``
when the split has captions, and featurestore's ``id``, ``label`` and ``class`` columns. Stored
features are already unit-normalised; float16 is clip-retrieval's dtype (``dtype="float32"`` keeps
the store's precision). The folder is written aside and renamed into place, so a killed export
leaves nothing half-written.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from featurestore.errors import SourceError
from featurestore.store.disk_space import is_no_space, no_space_error
from featurestore.store.feature_store import FeatureStore

EXPORT_DTYPES = ("float16", "float32")


def partition_names(count: int) -> list[str]:
    """clip-retrieval's partition numbers: zero-padded to ``int(log10(count)) + 1`` digits."""
    width = int(math.log10(max(count, 1))) + 1
    return [str(i).zfill(width) for i in range(count)]


def export_clip_retrieval(store: FeatureStore, encoder: str, split: str, out: str | os.PathLike, *,
                          rows_per_file: int = 1_000_000, dtype: str = "float16",
                          progress: bool = False) -> dict[str, object]:
    """Write ``out/img_emb/img_emb_P.npy`` and ``out/metadata/metadata_P.parquet`` for the valid
    rows of ``split``. ``out`` must not exist or be an empty folder. Returns a summary (rows,
    partitions, files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if dtype not in EXPORT_DTYPES:
        raise SourceError(f"export dtype must be one of {', '.join(EXPORT_DTYPES)}, not {dtype!r}")
    if rows_per_file < 1:
        raise SourceError("rows per file must be at least 1")
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SourceError(f"{out} exists and is not an empty folder: export into a new folder")
    ids, paths, labels = store.ids(split), store.paths(split), store.labels(split)
    captions = store.captions(split)
    classes = store.classes(split) or []
    n = len(ids)
    if n == 0:
        raise SourceError(f"split {split!r} has no readable rows to export")
    dim = int(store.encoder_info(encoder)["embed_dim"])
    names = partition_names(math.ceil(n / rows_per_file))
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        (temporary / "img_emb").mkdir(parents=True)
        (temporary / "metadata").mkdir()
        chunks = _rows(store, encoder, split)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"export {split}", unit="row", leave=False)
        pending = np.empty((0, dim), dtype=np.float32)
        for number, name in enumerate(names):
            start, stop = number * rows_per_file, min(n, (number + 1) * rows_per_file)
            matrix = np.lib.format.open_memmap(temporary / "img_emb" / f"img_emb_{name}.npy", mode="w+",
                                               dtype=dtype, shape=(stop - start, dim))
            _allocate(temporary / "img_emb" / f"img_emb_{name}.npy")
            filled = 0
            while filled < stop - start:
                if not len(pending):
                    pending = next(chunks)
                take = min(len(pending), stop - start - filled)
                matrix[filled:filled + take] = pending[:take]
                pending, filled = pending[take:], filled + take
                if bar is not None:
                    bar.update(take)
            matrix.flush()
            del matrix
            columns = {"image_path": pa.array([str(p) for p in paths[start:stop]], pa.string())}
            if captions is not None:
                columns["caption"] = pa.array([str(c) for c in captions[start:stop]], pa.string())
            part_labels = np.asarray(labels[start:stop], dtype=np.int64)
            columns["id"] = pa.array([str(i) for i in ids[start:stop]], pa.string())
            columns["label"] = pa.array(part_labels, pa.int64())
            columns["class"] = pa.array([classes[y] if 0 <= y < len(classes) else None for y in part_labels],
                                        pa.string())
            pq.write_table(pa.table(columns), temporary / "metadata" / f"metadata_{name}.parquet")
        if bar is not None:
            bar.close()
        if out.exists():
            out.rmdir()
        os.replace(temporary, out)
    except (OSError, RuntimeError) as exc:
        if is_no_space(exc):
            raise no_space_error(out) from None
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return {"rows": n, "partitions": len(names), "dim": dim, "dtype": dtype, "folder": str(out),
            "files": [f"img_emb/img_emb_{p}.npy" for p in names] + [f"metadata/metadata_{p}.parquet" for p in names]}


def _allocate(path: Path) -> None:
    """Give a memory-mapped file its disk blocks now: a full disk is then an OSError here, not a
    SIGBUS when a page of the map is first written."""
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size:
            os.posix_fallocate(handle.fileno(), 0, size)


def _rows(store: FeatureStore, encoder: str, split: str) -> Iterator[np.ndarray]:
    for _, block in store.iter_features(encoder, split):
        yield block
