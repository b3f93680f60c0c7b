"""A source wrapper whose image reads wait at a gate, so a test knows a worker is busy inside a
task before it kills it (no fixed sleep). It lives in an importable module because Dask workers
unpickle it in other processes."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

GATE_TIMEOUT_S = 120.0


class GatedSource:
    """Delegates to ``inner``. Until the file ``<gate>/go`` exists, each read first writes
    ``<gate>/busy-<pid>`` (holding the record id) and waits for ``go``; after that, reads pass."""

    def __init__(self, inner: Any, gate: str | os.PathLike) -> None:
        self.inner, self.gate = inner, str(gate)
        self.name, self.classes, self.spec = inner.name, inner.classes, getattr(inner, "spec", "")

    def records(self) -> list[Any]:
        return self.inner.records()

    def read_bytes(self, record: Any) -> bytes:
        go = Path(self.gate) / "go"
        if not go.exists():
            busy = Path(self.gate) / f"busy-{os.getpid()}"
            busy.with_suffix(".tmp").write_text(record.id)
            os.replace(busy.with_suffix(".tmp"), busy)
            deadline = time.monotonic() + GATE_TIMEOUT_S
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return self.inner.read_bytes(record)
