"""What sources of local image files share: a cached, sorted listing, whole-file reads, and
pickling without the listing (DataLoader and Dask workers only need ``read_bytes``)."""
from __future__ import annotations

from typing import Any

from featurestore.sources.record import Record


class LocalFileSource:
    """Base of the folder and manifest sources; subclasses implement ``_list``."""

    _records: list[Record] | None = None

    def _list(self) -> list[Record]:
        """Every record, sorted by id."""
        raise NotImplementedError

    def records(self) -> list[Record]:
        """Every record, sorted by id (listed once, then cached)."""
        if self._records is None:
            self._records = self._list()
        return list(self._records)

    def read_bytes(self, record: Record) -> bytes:
        """The file's bytes, read whole."""
        with open(record.path, "rb") as f:
            return f.read()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the record list: workers only need `read_bytes`, and it may be huge."""
        state = self.__dict__.copy()
        state["_records"] = None
        return state
