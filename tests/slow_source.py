"""A source wrapper that sleeps before each read, so tests can kill an extraction mid-run.
It lives in an importable module because Dask workers unpickle it in other processes."""
from __future__ import annotations

import time
from typing import Any


class SlowSource:
    """Delegates to ``inner`` with ``delay`` seconds per image read."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.name, self.classes, self.spec = inner.name, inner.classes, getattr(inner, "spec", "")

    def records(self) -> list[Any]:
        return self.inner.records()

    def read_bytes(self, record: Any) -> bytes:
        time.sleep(self.delay)
        return self.inner.read_bytes(record)
