"""A CSV, TSV or Parquet table listing image paths, with optional labels, captions and ids."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from featurestore.errors import SourceError
from featurestore.sources.local_files import LocalFileSource
from featurestore.sources.record import MAX_LABEL, NO_LABEL, Record, sorted_by_unique_id

MANIFEST_EXTENSIONS = frozenset({".csv", ".tsv", ".parquet"})


def _read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows of a manifest; CSV/TSV cells are strings, Parquet keeps its types."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise SourceError("reading a Parquet manifest needs pyarrow: pip install pyarrow") from exc
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise SourceError(f"cannot read Parquet manifest {path}: {exc}") from exc
        return list(table.column_names), table.to_pylist()
    delimiter = "\t" if suffix == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            return list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"cannot read manifest {path}: {exc}") from exc


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _as_int(value: Any) -> int | None:
    """The integer a label cell holds (7, 7.0, "7", "7.0"), or None if it is not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None
    return None


def _labels(values: list[Any], classes: list[str] | None, where: Path) -> tuple[list[int], list[str] | None]:
    """Integer labels and class names from a label column.

    All-integer columns are taken as class indices (classes stay None unless given): each must
    be >= 0 (and < len(classes) when classes are given), or -1 for "no label". Otherwise
    labels are names: their index in `classes` if given, else in the sorted unique names.
    Empty cells mean no label (-1).
    """
    present = [v for v in values if not _is_missing(v)]
    as_names = [str(v).strip() if isinstance(v, str) else str(v) for v in present]
    if classes is not None and all(name in classes for name in as_names):
        index = {name: i for i, name in enumerate(classes)}
        return [NO_LABEL if _is_missing(v) else index[str(v).strip()] for v in values], list(classes)
    maybe_ints = [_as_int(v) for v in present]
    ints = [i for i in maybe_ints if i is not None]
    if len(ints) == len(maybe_ints):
        negative = [i for i in ints if i < NO_LABEL]
        if negative:
            raise SourceError(f"label {negative[0]} in {where} is not a class index (0, 1, ...; -1 or an "
                              "empty cell means no label)")
        huge = [i for i in ints if i > MAX_LABEL]
        if huge:
            raise SourceError(f"label {huge[0]} in {where} is too large for a class index (at most 2**63 - 1)")
        if classes is not None:
            bad = [i for i in ints if not NO_LABEL <= i < len(classes)]
            if bad:
                raise SourceError(f"label {bad[0]} in {where} is outside the {len(classes)} given classes")
        cells = [None if _is_missing(v) else _as_int(v) for v in values]
        labels = [NO_LABEL if cell is None else cell for cell in cells]
        return labels, (list(classes) if classes is not None else None)
    if classes is not None:
        unknown = sorted({n for n in as_names if n not in classes})
        raise SourceError(f"label(s) {unknown[:5]} in {where} are not in the given classes")
    names = sorted(set(as_names))
    index = {name: i for i, name in enumerate(names)}
    return [NO_LABEL if _is_missing(v) else index[str(v).strip()] for v in values], names


class ManifestSource(LocalFileSource):
    """Images listed in a .csv/.tsv/.parquet manifest.

    Columns: `path` (required; relative paths resolve against the manifest's folder),
    optional `label` (integer indices >= 0, -1 or empty for none, or class names -> `classes`),
    optional `caption`, optional `id` (default: the path exactly as written). Ids must be
    unique. Files are not checked here: a missing, broken or non-regular file (a FIFO, a
    device, a directory) or one over the size cap becomes an error row when read.
    """

    def __init__(self, manifest: str | os.PathLike, *, classes: list[str] | None = None) -> None:
        path = Path(manifest)
        if not path.is_file():
            raise SourceError(f"manifest not found: {manifest}")
        if path.suffix.lower() not in MANIFEST_EXTENSIONS:
            raise SourceError(f"manifest {manifest} must end in .csv, .tsv or .parquet")
        self.manifest = os.path.abspath(path)
        self.spec = self.manifest
        self.name = path.stem
        self._given_classes = list(classes) if classes is not None else None
        self.classes: list[str] | None = None
        self._records: list[Record] | None = self._load()

    def _load(self) -> list[Record]:
        where = Path(self.manifest)
        columns, rows = _read_table(where)
        if "path" not in columns:
            raise SourceError(f"manifest {where} has no 'path' column (columns: {', '.join(map(str, columns))})")
        base = os.path.dirname(self.manifest)
        if "label" in columns:
            labels, self.classes = _labels([row["label"] for row in rows], self._given_classes, where)
        else:
            labels, self.classes = [NO_LABEL] * len(rows), self._given_classes
        records = []
        for number, (row, label) in enumerate(zip(rows, labels, strict=True), start=1):
            written = row["path"]
            if _is_missing(written):
                raise SourceError(f"row {number} of {where} has an empty path")
            written = str(written)
            ident = row.get("id")
            caption = row.get("caption")
            records.append(
                Record(
                    id=written if _is_missing(ident) else str(ident),
                    path=os.path.normpath(os.path.join(base, os.path.expanduser(written))),
                    label=label,
                    caption=None if _is_missing(caption) else str(caption),
                )
            )
        return sorted_by_unique_id(records, f"manifest {where}")

    def _list(self) -> list[Record]:
        return self._load()
