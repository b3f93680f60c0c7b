"""A source over an explicit list of image files (a split file's entries, a folder walk), in the
dataset's own order.

Named datasets list their images in an order that matters: CoOp/Dassl's few-shot sampler walks
each split in its file order. Sources hand the store records sorted by id, so when the order is
not already the sorted path order, ids start with the zero-padded position (``0000042:path``):
the store's row order is then the dataset's order and ``fewshot_split(..., sampler="coop")`` on
the stored labels draws the images CoOp draws.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from featurestore.sources.local_files import LocalFileSource
from featurestore.sources.record import Record, sorted_by_unique_id

POSITION_WIDTH = 7


class ListedFilesSource(LocalFileSource):
    """Images given as (path relative to ``base``, label) pairs, with the dataset's class names.

    ``keep_order``: prefix each id with its position so the stored row order is the list's order.
    ``spec`` records where the rows came from (``dataset:<name>:<folder>``). Files are not
    opened here: a missing or broken file becomes an error row when extracted.
    """

    def __init__(self, name: str, spec: str, base: str | os.PathLike, items: Sequence[tuple[str, int]],
                 classes: list[str], *, keep_order: bool) -> None:
        self.name = name
        self.spec = spec
        self.base = os.path.abspath(base)
        self.classes: list[str] | None = list(classes)
        self._items = [(Path(rel).as_posix(), int(label)) for rel, label in items]
        self._keep_order = keep_order
        self._records = self._list()

    def _list(self) -> list[Record]:
        records = []
        for position, (rel, label) in enumerate(self._items):
            ident = f"{position:0{POSITION_WIDTH}d}:{rel}" if self._keep_order else rel
            records.append(Record(id=ident, path=os.path.join(self.base, rel), label=label))
        return sorted_by_unique_id(records, f"dataset {self.spec}")

    def __len__(self) -> int:
        return len(self._items)

    def relative_paths(self) -> list[str]:
        """The listed paths, in the dataset's order."""
        return [rel for rel, _ in self._items]

    def labels(self) -> list[int]:
        """The labels, in the dataset's order."""
        return [label for _, label in self._items]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_items"] = []
        return state
