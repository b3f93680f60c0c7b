"""Reading another classifier's logits (or probabilities) from a file and aligning them by id
with a split's rows, so a closed-world model (e.g. a ResNet) can join CLIP solvers in an
ensemble (COOkeD, Liberatori et al., 2025).

Accepted files: ``.npy`` (N, C) with an ids file (one id per line), or ``.csv`` with an ``id``
column and one column per class.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from featurestore.errors import ProvenanceError, SourceError


def read_logits_file(path: str | os.PathLike,
                     ids_path: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """Return (ids, (N, C) float32 matrix) from a ``.npy`` + ids file or an ``id``-column ``.csv``."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"logits file {path} does not exist")
    if path.suffix.lower() == ".npy":
        if ids_path is None:
            raise SourceError(f"{path} holds no ids: give --ids with one id per line, in row order")
        ids_file = Path(ids_path)
        if not ids_file.is_file():
            raise SourceError(f"ids file {ids_file} does not exist")
        ids = [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        try:
            matrix = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise SourceError(f"{path} is not a numeric .npy array ({exc})") from None
    elif path.suffix.lower() == ".csv":
        ids, matrix = _read_csv(path)
    else:
        raise SourceError(f"{path}: logits must be a .npy array (with --ids) or a .csv with an id column")
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise SourceError(f"{path}: logits must be a numeric (N, C) matrix, got shape {matrix.shape}")
    if len(ids) != matrix.shape[0]:
        raise SourceError(f"{path} has {matrix.shape[0]} rows but {len(ids)} ids")
    if not np.isfinite(matrix).all():
        raise SourceError(f"{path} contains NaN or infinite values")
    return ids, matrix.astype(np.float32)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or "id" not in header:
            raise SourceError(f"{path} needs a header with an 'id' column and one column per class")
        id_col = header.index("id")
        ids, rows = [], []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append([float(v) for i, v in enumerate(row) if i != id_col])
            except ValueError:
                raise SourceError(f"{path} line {line_no}: a class column is not a number") from None
            ids.append(row[id_col])
    if len({len(r) for r in rows}) > 1:
        raise SourceError(f"{path}: rows have different numbers of class columns")
    return ids, np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def align_logits(split_ids: list[str] | np.ndarray, file_ids: list[str], matrix: np.ndarray,
                 n_classes: int | None, split: str = "split", unreadable: Collection[str] = ()) -> np.ndarray:
    """Reorder ``matrix`` to the split's row order. Every split id must appear exactly once, but
    the ``unreadable`` ones (rows whose image did not decode: no classifier has their logits),
    which may be left out and are then NaN (never read: readers skip invalid rows); no unknown
    id is accepted, and C must equal the split's class count (when known)."""
    if len(set(file_ids)) != len(file_ids):
        seen: set[str] = set()
        dup = next(i for i in file_ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise ProvenanceError(f"id {dup!r} appears twice in the logits file")
    position = {rid: i for i, rid in enumerate(file_ids)}
    split_ids = [str(i) for i in split_ids]
    known = set(split_ids)
    unknown = [i for i in file_ids if i not in known]
    if unknown:
        raise ProvenanceError(
            f"{len(unknown)} id(s) of the logits file are not in split {split!r}, e.g. {unknown[0]!r}")
    skipped = set(unreadable)
    missing = [i for i in split_ids if i not in position and i not in skipped]
    if missing:
        raise ProvenanceError(f"{len(missing)} row(s) of split {split!r} have no logits, e.g. {missing[0]!r}")
    if n_classes is not None and matrix.shape[1] != n_classes:
        raise ProvenanceError(f"the logits have {matrix.shape[1]} classes but split {split!r} has {n_classes}")
    aligned = np.full((len(split_ids), matrix.shape[1]), np.nan, dtype=matrix.dtype)
    present = [r for r, i in enumerate(split_ids) if i in position]
    aligned[present] = matrix[[position[split_ids[r]] for r in present]]
    return aligned
