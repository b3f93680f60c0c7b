"""The row a source yields, and the protocol every source implements.

A source turns a folder, manifest or tar shards into a sorted list of `Record`s and can
hand back each record's raw encoded bytes; decoding is left to the dataset so a broken
file becomes an error row instead of a crash while listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol, runtime_checkable

from featurestore.errors import SourceError

NO_LABEL = -1
MAX_LABEL = 2**63 - 1
"""Largest class index a store can hold (its labels are int64)."""


@dataclass(frozen=True)
class Record:
    """One image of a source.

    `id` is the stable key the store uses to skip rows already extracted; `path` is what a
    user sees and what `read_bytes` opens (an absolute file path, or
    "<abs tar path>::<member name>" for a tar member).
    """

    id: str
    path: str
    label: int = NO_LABEL
    caption: str | None = None


@runtime_checkable
class Source(Protocol):
    """A listable, picklable collection of encoded images (folder, manifest, tar shards).

    `name` is the default split name; `spec` says where the data came from (for provenance).
    """

    name: str
    spec: str
    classes: list[str] | None

    def records(self) -> list[Record]:
        """Every record, sorted by id so the order is the same on every run."""
        ...

    def read_bytes(self, record: Record) -> bytes:
        """The record's raw encoded image bytes (may raise OSError for a vanished file)."""
        ...


def sorted_by_unique_id(records: list[Record], where: str) -> list[Record]:
    """Records sorted by id (the order every run sees); a repeated id is refused, since the
    store keys rows by id. ``where`` names the source in the message."""
    records = sorted(records, key=lambda r: r.id)
    for previous, current in pairwise(records):
        if previous.id == current.id:
            raise SourceError(f"{where} lists id {current.id!r} more than once")
    return records

