"""Which split names a store accepts.

A split name becomes an HDF5 group name under ``/splits`` (a "/" in a key is stored as "|")
and, with ``fs extract --cluster``, a folder name under ``<store>.shards/``. So a name must be
one plain path component that round-trips: not empty, not "." or "..", without "/", "\\" or
"|" (the stored form of "/", so "a|b" would read back as "a/b"), without control characters
or surrounding white space, and at most 200 UTF-8 bytes (file systems allow 255).
"""
from __future__ import annotations

import unicodedata

from featurestore.errors import FeatureStoreError

MAX_SPLIT_NAME_BYTES = 200
_FORBIDDEN = {"/": "'/'", "\\": "'\\'", "|": "'|'"}


class SplitNameError(FeatureStoreError, ValueError):
    """A split name that cannot be stored (or would name a folder outside the shards folder)."""


def split_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a split name, or None when it can."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative folder name"
    for char, shown in _FORBIDDEN.items():
        if char in name:
            return f"contains {shown}"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "contains a control character"
    if name != name.strip():
        return "starts or ends with white space"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_SPLIT_NAME_BYTES:
        return f"is longer than {MAX_SPLIT_NAME_BYTES} bytes"
    return None


def check_split_name(name: str) -> str:
    """``name`` itself if it can name a split; else `SplitNameError` with a one-line reason."""
    problem = split_name_problem(name)
    if problem is not None:
        raise SplitNameError(f"split name {name!r} {problem}; choose another one (fs extract --split NAME)")
    return name
