"""WebDataset tar shards as img2dataset writes them: `<key>.jpg`, `<key>.txt`, `<key>.json`, ...

Members are grouped into samples by key (the member name up to the first dot of its base
name). A sample is a record when it has an image member; its `.txt` member is the caption and
its `.cls` member (an integer) the label. Reading uses the member offsets found while
indexing, so a record's bytes cost one positioned read, in any process.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from featurestore.errors import SourceError
from featurestore.sources.record import NO_LABEL, Record, sorted_by_unique_id

TAR_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
MEMBER_SEPARATOR = "::"
_MAX_OPEN_SHARDS = 32
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """Expand `{00000..00003}` ranges (zero padding kept) and `{a,b}` lists, left to right."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numeric = _RANGE.match(body)
    if numeric:
        first, last = numeric.groups()
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        options = [str(n).zfill(width) for n in range(int(first), int(last) + step, step)]
    elif "," in body:
        options = body.split(",")
    else:
        options = ["{" + body + "}"]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [head + option + rest for option in options for rest in expand_braces(tail)]


def expand_shards(spec: str) -> list[str]:
    """Absolute, sorted shard paths of a tar file, a brace pattern or a glob pattern.

    Every shard a brace pattern names must exist; a glob must match at least one file.
    """
    shards: list[str] = []
    for candidate in expand_braces(os.path.expanduser(spec)):
        if glob.has_magic(candidate):
            matched = [p for p in glob.glob(candidate) if os.path.isfile(p)]
            if not matched:
                raise SourceError(f"no tar shard matches {candidate}")
            shards.extend(matched)
        elif os.path.isfile(candidate):
            shards.append(candidate)
        else:
            raise SourceError(f"tar shard not found: {candidate}")
    unique = sorted({os.path.abspath(p) for p in shards})
    return unique


def _split_member(name: str) -> tuple[str, str]:
    """(key, lower-case extension) of a member name, the WebDataset way."""
    directory, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


@dataclass
class _Sample:
    """The members of one key while a shard is indexed."""

    images: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # ext -> (member, offset, size)
    texts: dict[str, str] = field(default_factory=dict)  # "txt"/"cls" -> decoded content


class WebDatasetSource:
    """Samples of one or more uncompressed WebDataset tar shards.

    Record ids are "<shard file name>/<key>" and paths "<abs tar path>::<member name>".
    The source pickles with its member offsets but without open files; each process opens
    the shards it reads lazily (at most 32 at a time).
    """

    def __init__(
        self, shards: list[str | os.PathLike], *, classes: list[str] | None = None, spec: str | None = None
    ) -> None:
        if not shards:
            raise SourceError("no tar shards given")
        self.shards = sorted(os.path.abspath(s) for s in shards)
        self.spec = spec if spec is not None else (self.shards[0] if len(self.shards) == 1 else " ".join(self.shards))
        self.name = os.path.splitext(os.path.basename(self.shards[0]))[0]
        self.classes = list(classes) if classes is not None else None
        self._offsets: dict[str, dict[str, tuple[int, int]]] = {}
        self._files: OrderedDict[str, int] = OrderedDict()
        self._pid = os.getpid()
        self._records: list[Record] | None = self._index_all()

    def _index_shard(self, shard: str) -> dict[str, _Sample]:
        """Samples of one shard by key; also caches the shard's image member offsets."""
        samples: dict[str, _Sample] = {}
        try:
            with tarfile.open(shard, "r:") as tar:
                for info in tar:
                    if not info.isfile() or os.path.basename(info.name).startswith("."):
                        continue
                    key, ext = _split_member(info.name)
                    sample = samples.setdefault(key, _Sample())
                    if ext in TAR_IMAGE_EXTENSIONS:
                        sample.images.setdefault(ext, (info.name, info.offset_data, info.size))
                    elif ext in ("txt", "cls"):
                        handle = tar.extractfile(info)
                        sample.texts[ext] = (handle.read() if handle else b"").decode("utf-8", "replace").strip()
        except (tarfile.TarError, OSError) as exc:
            raise SourceError(f"cannot read tar shard {shard}: {exc}") from exc
        self._offsets[shard] = {
            name: (offset, size) for s in samples.values() for name, offset, size in s.images.values()
        }
        return samples

    def _index_all(self) -> list[Record]:
        records = []
        for shard in self.shards:
            shard_name = os.path.basename(shard)
            for key, sample in self._index_shard(shard).items():
                ext = next((e for e in TAR_IMAGE_EXTENSIONS if e in sample.images), None)
                if ext is None:
                    continue
                label = NO_LABEL
                if "cls" in sample.texts:
                    try:
                        label = int(sample.texts["cls"])
                    except ValueError:
                        raise SourceError(
                            f"{shard}::{key}.cls holds {sample.texts['cls'][:40]!r}, not an integer label"
                        ) from None
                records.append(
                    Record(
                        id=f"{shard_name}/{key}",
                        path=f"{shard}{MEMBER_SEPARATOR}{sample.images[ext][0]}",
                        label=label,
                        caption=sample.texts.get("txt"),
                    )
                )
        return sorted_by_unique_id(records, "the shards (two with the same file name?)")

    def records(self) -> list[Record]:
        """Every sample with an image member, sorted by id."""
        if self._records is None:
            self._records = self._index_all()
        return list(self._records)

    def _descriptor(self, shard: str) -> int:
        """An open file descriptor of `shard` owned by this process."""
        if self._pid != os.getpid():
            self._files = OrderedDict()
            self._pid = os.getpid()
        fd = self._files.get(shard)
        if fd is None:
            fd = os.open(shard, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self._files[shard] = fd
            while len(self._files) > _MAX_OPEN_SHARDS:
                os.close(self._files.popitem(last=False)[1])
        else:
            self._files.move_to_end(shard)
        return fd

    def read_bytes(self, record: Record) -> bytes:
        """The exact bytes of the record's tar member."""
        shard, sep, member = record.path.partition(MEMBER_SEPARATOR)
        if not sep:
            raise SourceError(f"{record.path} is not a '<tar>::<member>' path")
        if shard not in self._offsets:
            self._index_shard(shard)
        location = self._offsets[shard].get(member)
        if location is None:
            raise SourceError(f"{member} is not an image member of {shard}")
        offset, size = location
        fd = self._descriptor(shard)
        chunks, done = [], 0
        while done < size:
            if hasattr(os, "pread"):
                chunk = os.pread(fd, size - done, offset + done)
            else:
                os.lseek(fd, offset + done, os.SEEK_SET)
                chunk = os.read(fd, size - done)
            if not chunk:
                raise OSError(f"{shard} ends inside member {member}")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the shard files this process opened."""
        if self._pid == os.getpid():
            for fd in self._files.values():
                os.close(fd)
        self._files = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the offsets but neither open files nor the record list."""
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        state["_records"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()
