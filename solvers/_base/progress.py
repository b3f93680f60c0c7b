"""Progress bars for long solver loops (validation grid searches).

A bar is shown only on an interactive terminal (tqdm's ``disable=None``), and never inside
``quiet()`` — what ``fs solve --quiet`` uses — so scripts and logs stay clean.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_quiet = False


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """``items``, wrapped in a tqdm bar unless silenced."""
    if _quiet:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=False, disable=None, dynamic_ncols=True)


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence solver progress bars inside the block."""
    global _quiet
    previous, _quiet = _quiet, enabled or _quiet
    try:
        yield
    finally:
        _quiet = previous
