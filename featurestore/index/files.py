"""The files of a store's FAISS indexes: names, JSON sidecars, atomic writes and leftovers.

An index is two files beside the store: ``<store>.<encoder>.<split>.<name>.faiss`` and its
``.json`` sidecar. Encoder keys and split names are percent-encoded (``ViT-B-32/openai`` ->
``ViT-B-32%2Fopenai``), so the names hold no ``/`` or ``|`` and stay unique; ``<name>`` is the
factory string with ``,`` ``(`` ``)`` replaced by ``_`` (``IVF4,Flat`` -> ``IVF4_Flat``), or
``auto``. Both files are written to a temporary file first (``.<final name>.<pid>.tmp``) and
renamed into place with the store file's permission bits; temporary files left by a killed
process are removed by the next build or load.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from featurestore.errors import FeatureStoreError
from featurestore.store.writer_lock import pid_alive

_TMP = re.compile(r"^\.(?P<final>.+\.(?:faiss|json))\.(?P<pid>\d+)\.[^.]+\.tmp$")
_LEGACY_TMP = re.compile(r"^\.(?P<final>.+\.(?:faiss|json))\.[^.]+\.tmp$")  # featurestore 0.1: no pid
LEGACY_TMP_AGE_S = 3600


def name_part(text: str) -> str:
    """A key or split name as a file-name part: percent-encoded outside ``[A-Za-z0-9_-]``."""
    return quote(text, safe="-_").replace(".", "%2E")


def factory_slug(factory: str) -> str:
    """A file-name-safe form of a FAISS factory string (``IVF4,Flat`` -> ``IVF4_Flat``)."""
    return re.sub(r"[^A-Za-z0-9.=_-]", "_", factory.strip())


def index_paths(store_path: str | os.PathLike, encoder: str, split: str, factory: str = "Flat") -> tuple[Path, Path]:
    """The ``.faiss`` file and ``.json`` sidecar of an index, beside the store file."""
    base = f"{Path(store_path).name}.{name_part(encoder)}.{name_part(split)}.{factory_slug(factory)}"
    parent = Path(store_path).parent
    return parent / f"{base}.faiss", parent / f"{base}.json"


def sidecars(store_path: str | os.PathLike) -> list[tuple[Path, dict[str, Any]]]:
    """Every index sidecar beside the store, with its parsed content (unreadable ones as ``{}``)."""
    store_path = Path(store_path)
    return [(p, read_sidecar(p)) for p in sorted(store_path.parent.glob(f"{glob_escape(store_path.name)}.*.json"))
            if p.with_suffix(".faiss").exists()]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def read_sidecar(json_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def save_pair(write_index: Callable[[Path], None], meta: dict[str, Any], faiss_path: Path, json_path: Path,
              mode: int | None) -> None:
    """Write the index then its sidecar, each atomically; the old sidecar goes first, so a crash
    in between leaves an index without sidecar (rebuilt on load), never a mismatched pair."""
    json_path.unlink(missing_ok=True)
    atomic_write(faiss_path, write_index, mode)
    def write_sidecar(tmp: Path) -> None:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    atomic_write(json_path, write_sidecar, mode)


def store_mode(store_path: str | os.PathLike) -> int | None:
    """The store file's permission bits (index files get the same), or None if it cannot be read."""
    try:
        return stat.S_IMODE(os.stat(store_path).st_mode)
    except OSError:
        return None


def atomic_write(path: Path, write: Callable[[Path], None], mode: int | None = None) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``; ``tmp`` is removed if anything fails."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_leftovers(store_path: str | os.PathLike) -> list[Path]:
    """Remove the temporary index files beside the store whose writing process is gone (killed
    mid-write); returns them. Files of a live process (a build in progress) are left alone; those
    of featurestore 0.1, which named no process, are removed once an hour old."""
    store_path = Path(store_path)
    removed = []
    for tmp in store_path.parent.glob(f".{glob_escape(store_path.name)}.*.tmp"):
        match = _TMP.match(tmp.name)
        if match is not None:
            if _alive(int(match.group("pid"))):
                continue
        elif _LEGACY_TMP.match(tmp.name) is None or not _older_than(tmp, LEGACY_TMP_AGE_S):
            continue
        try:
            tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
    return removed


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)


def write_error(path: Path, exc: BaseException, reason: str | None = None) -> FeatureStoreError:
    detail = reason or (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    return FeatureStoreError(f"cannot write index {path}: {detail}")
