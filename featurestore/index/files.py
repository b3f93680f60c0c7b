"""The files of a store's FAISS indexes: names, JSON sidecars, atomic writes and leftovers.

An index is two files beside the store: ``<store>.<encoder>.<split>.<name>.faiss`` and its
``.json`` sidecar; an index built on a cluster keeps its inverted lists in a third,
``<...>.<name>.ivfdata``, memory-mapped when searched. The sidecar records the SHA-256 of the
index files, checked on every load and by ``fs verify``. Encoder keys and split names are
percent-encoded (``ViT-B-32/openai`` -> ``ViT-B-32%2Fopenai``), so the names hold no ``/`` or
``|`` and stay unique; ``<name>`` is the factory string with ``,`` ``(`` ``)`` replaced by
``_`` (``IVF4,Flat`` -> ``IVF4_Flat``), or ``auto``. Every file is written to a temporary file
first (``.<final name>.<pid>.tmp``) and renamed into place with the store file's permission
bits; temporary files left by a killed process are removed by the next build or load.
"""
from __future__ import annotations

import hashlib
import json
import math
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
from featurestore.store.disk_space import is_no_space, no_space_error
from featurestore.store.writer_lock import pid_alive

_TMP = re.compile(r"^\.(?P<final>.+\.(?:faiss|json|ivfdata))\.(?P<pid>\d+)\.[^.]+\.tmp$")
_LEGACY_TMP = re.compile(r"^\.(?P<final>.+\.(?:faiss|json))\.[^.]+\.tmp$")  # featurestore 0.1: no pid
LEGACY_TMP_AGE_S = 3600
SIDECAR_FORMAT = 2
MAX_SEARCH_PARAM = 2**31 - 1  # FAISS keeps nprobe / efSearch in a C int


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
    """The parsed sidecar; ``{}`` when it is unreadable or not a JSON object (the index is then
    stale and rebuilt). A sidecar of the current format whose fields break its schema raises
    FeatureStoreError naming the file and the field (:func:`check_sidecar`)."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict):
        return {}
    check_sidecar(json_path, meta)
    return meta


def check_sidecar(json_path: Path, meta: dict[str, Any]) -> None:
    """Check the type and range of every field the code reads from a sidecar of the current
    format; sidecars of other formats are left to the staleness check (rebuilt on load)."""
    if meta.get("format") != SIDECAR_FORMAT or isinstance(meta.get("format"), bool):
        return

    def fail(field: str, wanted: str) -> None:
        raise FeatureStoreError(f"index sidecar {json_path} is damaged: field {field!r} must be {wanted}, "
                                f"not {_shown(meta_value(field))}; delete it and rebuild the index")

    def meta_value(field: str) -> Any:
        node: Any = meta
        for part in field.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    for field in ("encoder", "split", "name", "factory", "ids_sha1"):
        if not isinstance(meta.get(field), str):
            fail(field, "a string")
    if meta.get("sha256") is not None and not _is_digest(meta.get("sha256")):
        fail("sha256", "a SHA-256 hex digest or null")
    if meta.get("ivfdata") is not None:
        if not (isinstance(meta["ivfdata"], str) and re.fullmatch(r"[^/\\]+\.ivfdata", meta["ivfdata"])
                and meta["ivfdata"] == json_path.with_suffix(".ivfdata").name):
            fail("ivfdata", f"null or {json_path.with_suffix('.ivfdata').name!r}")
        if not _is_digest(meta.get("ivfdata_sha256")):
            fail("ivfdata_sha256", "a SHA-256 hex digest")
    for field in ("model", "weights", "note"):
        if meta.get(field) is not None and not isinstance(meta.get(field), str):
            fail(field, "a string or null")
    for field, required in (("ntotal", True), ("n_ids", True), ("bytes", False), ("seed", False)):
        if (required or meta.get(field) is not None) and not _is_int(meta.get(field), 0, 2**63 - 1):
            fail(field, "a whole number >= 0")
    if meta.get("target_met") is not None and not isinstance(meta.get("target_met"), bool):
        fail("target_met", "true or false")
    for field in [k for k in meta if k.startswith("recall_at_") or k == "recall_target"]:
        if meta[field] is not None and not _is_number(meta[field], 0.0, 1.0):
            fail(field, "a number in [0, 1]")
    params = meta.get("search_params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        fail("search_params", "an object")
    for key, value in params.items():
        if key in ("nprobe", "efSearch"):
            if not _is_int(value, 1, MAX_SEARCH_PARAM):
                fail(f"search_params.{key}", f"a whole number in [1, {MAX_SEARCH_PARAM}]")
        elif key == "k_factor":
            if not _is_number(value, 1.0, float(MAX_SEARCH_PARAM)):
                fail(f"search_params.{key}", f"a number in [1, {MAX_SEARCH_PARAM}]")
        else:
            raise FeatureStoreError(f"index sidecar {json_path} is damaged: field 'search_params' names an "
                                    f"unknown search parameter {key!r}; delete it and rebuild the index")
    request = meta.get("request")
    if request is None:
        return
    if not isinstance(request, dict):
        fail("request", "an object")
    checks: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
        ("max_memory", "a whole number >= 1", lambda v: _is_int(v, 1, 2**63 - 1)),
        ("recall", "a number in (0, 1]", lambda v: _is_number(v, 0.0, 1.0) and v > 0),
        ("max_build_s", "a number > 0", lambda v: _is_number(v, 0.0, math.inf) and v > 0),
        ("train_size", "a whole number >= 1", lambda v: _is_int(v, 1, 2**63 - 1)),
        ("tune_queries", "a whole number >= 0", lambda v: _is_int(v, 0, 2**63 - 1)),
    )
    for key, wanted, ok in checks:
        if request.get(key) is not None and not ok(request[key]):
            fail(f"request.{key}", wanted + " or null")


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file, streamed (never read whole into memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def damage(faiss_path: Path, meta: dict[str, Any]) -> str | None:
    """Why the index files no longer match the digests their sidecar recorded, or None.

    A sidecar without a digest (an index built before files were checksummed) is not damage:
    :func:`featurestore.index.store_index.load_index` treats it as stale and rebuilds."""
    files = [(faiss_path, meta.get("sha256"))]
    if meta.get("ivfdata"):
        files.append((faiss_path.parent / meta["ivfdata"], meta.get("ivfdata_sha256")))
    for path, recorded in files:
        if recorded is None:
            continue
        try:
            actual = file_digest(path)
        except OSError as exc:
            return f"{path.name} cannot be read ({exc.strerror or exc})"
        if actual != recorded:
            return f"{path.name} differs from the SHA-256 recorded when it was built"
    return None


def damaged_error(store_path: str | os.PathLike, faiss_path: Path, meta: dict[str, Any],
                  why: str) -> FeatureStoreError:
    """The one-line error of a damaged index: what differs and the command that rebuilds it."""
    return FeatureStoreError(
        f"index {faiss_path.name} is damaged: {why}; rebuild it: fs index --store {store_path} --encoder "
        f"{meta.get('encoder')} --split {meta.get('split')} --factory {meta.get('name')}")


def index_file_problems(store_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``fs verify``'s check of the indexes beside a store: ``(problems, notes)``. A problem is a
    damaged sidecar or an index file whose SHA-256 differs from its sidecar's; a note, an index
    whose sidecar records no digest (rebuilt on its next use)."""
    store_path = Path(store_path)
    problems: list[str] = []
    notes: list[str] = []
    for json_path in sorted(store_path.parent.glob(f"{glob_escape(store_path.name)}.*.json")):
        faiss_path = json_path.with_suffix(".faiss")
        if not faiss_path.exists():
            continue
        try:
            meta = read_sidecar(json_path)
        except FeatureStoreError as exc:
            problems.append(str(exc))
            continue
        if meta.get("format") != SIDECAR_FORMAT or not meta.get("sha256"):
            notes.append(f"index {faiss_path.name} records no checksum (built by an older featurestore); "
                         "it is rebuilt on its next use")
            continue
        why = damage(faiss_path, meta)
        if why is not None:
            problems.append(str(damaged_error(store_path, faiss_path, meta, why)))
    return problems, notes


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    if is_no_space(exc) or is_no_space(OSError(reason or "")):
        return no_space_error(path)  # one wording for a full disk under every writer
    detail = reason or (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    return FeatureStoreError(f"cannot write index {path}: {detail}")
