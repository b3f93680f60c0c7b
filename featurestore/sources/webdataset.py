"""WebDataset tar shards as img2dataset writes them: `<key>.jpg`, `<key>.txt`, `<key>.json`, ...

Members are grouped into samples by key (the member name up to the first dot of its base
name). A sample is a record when it has an image member; its `.txt` member is the caption and
its `.cls` member (an integer >= 0) the label. Reading uses the member offsets found while
indexing, so a record's bytes cost one positioned read, in any process.

A truncated shard (cut download or copy) keeps the samples before the cut; its last sample
(whose members may be cut off) and one row standing for the missing rest (id "<shard name>",
path "<shard>::") are error rows saying so.

A sample with a member that is not a regular file (a symlink, a hard link, a device or a
FIFO) is an error row naming that member: links are never followed, nor dropped unsaid.
"""

from __future__ import annotations

import glob
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurestore.errors import SourceError
from featurestore.sources import local_files
from featurestore.sources.record import MAX_LABEL, NO_LABEL, Record, sorted_by_unique_id

if TYPE_CHECKING:  # imported where shards are read: listing or naming shards does not import tarfile
    import tarfile

TAR_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
MEMBER_SEPARATOR = "::"
MAX_TEXT_BYTES = 2**20
"""Largest `.txt` caption or `.cls` label member read (1 MiB); a larger one makes its sample an error row."""
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


def expand_shards(spec: str, what: str = "tar shard") -> list[str]:
    """Absolute, sorted shard paths of a file, a brace pattern or a glob pattern.

    Every shard a brace pattern names must exist; a glob must match at least one file. ``what``
    names the shards in the errors.
    """
    shards: list[str] = []
    for candidate in expand_braces(os.path.expanduser(spec)):
        if glob.has_magic(candidate):
            matched = [p for p in glob.glob(candidate) if os.path.isfile(p)]
            if not matched:
                raise SourceError(f"no {what} matches {candidate}")
            shards.extend(matched)
        elif os.path.isfile(candidate):
            shards.append(candidate)
        else:
            raise SourceError(f"{what} not found: {candidate}")
    return sorted({os.path.abspath(p) for p in shards})


def split_member_path(path: str) -> tuple[str, str]:
    """(shard path, member name) of a tar member's row path "<abs tar path>::<member>".

    Shard paths never hold "::" (`WebDatasetSource` refuses them), so the first "::" is the
    separator, whatever the member name holds.
    """
    shard, sep, member = path.partition(MEMBER_SEPARATOR)
    if not sep or not member:
        raise SourceError(f"{path} is not a '<tar>::<member>' path")
    return shard, member


def _split_member(name: str) -> tuple[str, str]:
    """(key, lower-case extension) of a member name, the WebDataset way."""
    directory, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def _sample_member_name(name: str) -> bool:
    """Whether a member name belongs to a sample (has a key and an extension)."""
    key, ext = _split_member(name)
    return bool(key) and bool(ext)


def _member_kind(info: tarfile.TarInfo) -> str:
    """What a member that is not a regular file is, for an error row's reason."""
    if info.issym():
        return f"a symlink (to {info.linkname})"
    if info.islnk():
        return f"a hard link (to {info.linkname})"
    if info.ischr():
        return "a character device"
    if info.isblk():
        return "a block device"
    if info.isfifo():
        return "a FIFO"
    return f"of tar type {info.type!r}"


@dataclass
class _Sample:
    """The members of one key while a shard is indexed."""

    images: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # ext -> (member, offset, size)
    texts: dict[str, str] = field(default_factory=dict)  # "txt"/"cls" -> decoded content
    problem: str | None = None  # why the sample is an error row, if it is one


@dataclass
class _ShardIndex:
    """One indexed shard: its samples by key, where it was cut if truncated, its last key."""

    samples: dict[str, _Sample]
    truncated: str | None
    last_key: str | None


def _ends_with_end_block(tar: tarfile.TarFile, size: int) -> bool:
    """Whether the block where tarfile stopped reading headers is a tar end-of-archive block
    (512 zero bytes). A shard cut short ends without one (or with a partial header there)."""
    import tarfile

    if tar.offset + tarfile.BLOCKSIZE > size:
        return False
    tar.fileobj.seek(tar.offset)
    return tar.fileobj.read(tarfile.BLOCKSIZE) == tarfile.NUL * tarfile.BLOCKSIZE


class WebDatasetSource:
    """Samples of one or more uncompressed WebDataset tar shards.

    Record ids are "<shard file name>/<key>" and paths "<abs tar path>::<member name>".
    The source pickles with its member offsets but without open files; each process opens
    the shards it reads lazily (at most 32 at a time).
    """

    def __init__(
        self, shards: Sequence[str | os.PathLike], *, classes: list[str] | None = None, spec: str | None = None
    ) -> None:
        if not shards:
            raise SourceError("no tar shards given")
        self.shards = sorted(os.path.abspath(s) for s in shards)
        for shard in self.shards:
            if MEMBER_SEPARATOR in shard:
                raise SourceError(f"tar shard path {shard} contains {MEMBER_SEPARATOR!r}, which separates a shard "
                                  "from its member in row paths; rename or move it")
        self.spec = spec if spec is not None else (self.shards[0] if len(self.shards) == 1 else " ".join(self.shards))
        self.name = os.path.splitext(os.path.basename(self.shards[0]))[0]
        self.classes = list(classes) if classes is not None else None
        self._offsets: dict[str, dict[str, tuple[int, int]]] = {}
        self._files: OrderedDict[str, int] = OrderedDict()
        self._pid = os.getpid()
        self._problems: dict[str, str] = {}  # record path -> why it is an error row
        self._records: list[Record] | None = self._index_all()

    def _index_shard(self, shard: str) -> _ShardIndex:
        """Samples of one shard by key; also caches the shard's image member offsets.

        A shard that does not end with a tar end-of-archive block, or whose last member runs
        past the end of the file, is truncated (a cut download or copy): the samples read
        before the cut are kept, and `truncated` says where it was cut.
        """
        import tarfile

        samples: dict[str, _Sample] = {}
        last_key = None
        truncated = None
        try:
            size = os.stat(shard).st_size
            with tarfile.open(shard, "r:") as tar:
                try:
                    for info in tar:
                        cut = info.offset_data + info.size > size
                        if cut:
                            truncated = f"the file ends at byte {size}, inside member {info.name}"
                        hidden = os.path.basename(info.name).startswith(".")
                        if hidden or info.isdir() or (not info.isfile() and not _sample_member_name(info.name)):
                            if cut:
                                break
                            continue
                        key, ext = _split_member(info.name)
                        last_key = key
                        sample = samples.setdefault(key, _Sample())
                        if not info.isfile():  # never followed; its sample is an error row saying why
                            sample.problem = f"its member {info.name} is {_member_kind(info)}, not a regular file"
                        if ext in TAR_IMAGE_EXTENSIONS:
                            sample.images.setdefault(ext, (info.name, info.offset_data, info.size))
                        if not info.isfile():
                            if cut:
                                break
                            continue
                        if cut:
                            break
                        if ext in ("txt", "cls"):
                            if info.size > MAX_TEXT_BYTES:
                                sample.problem = (f"its .{ext} member is {info.size} bytes, over the "
                                                  f"{local_files.describe_size(MAX_TEXT_BYTES)} cap")
                                continue
                            handle = tar.extractfile(info)
                            sample.texts[ext] = (handle.read() if handle else b"").decode("utf-8", "replace").strip()
                    if truncated is None and not _ends_with_end_block(tar, size):
                        truncated = (f"the file ends at byte {size} without an end-of-archive block"
                                     if tar.offset >= size else
                                     f"no header or end-of-archive block at byte {tar.offset} of {size}")
                except tarfile.ReadError as exc:  # a member's data cut short after the first header
                    truncated = str(exc)
        except (tarfile.TarError, OSError) as exc:
            raise SourceError(f"cannot read tar shard {shard}: {exc}") from exc
        self._offsets[shard] = {
            name: (offset, size) for s in samples.values() for name, offset, size in s.images.values()
        }
        return _ShardIndex(samples, truncated, last_key)

    def _index_all(self) -> list[Record]:
        records = []
        for shard in self.shards:
            shard_name = os.path.basename(shard)
            index = self._index_shard(shard)
            if index.truncated is not None:
                cut = f"{shard}{MEMBER_SEPARATOR}"
                self._problems[cut] = (f"truncated tar shard ({index.truncated}): the samples after the cut "
                                       "are missing")
                records.append(Record(id=shard_name, path=cut))
            for key, sample in index.samples.items():
                ext = next((e for e in TAR_IMAGE_EXTENSIONS if e in sample.images), None)
                if ext is None:
                    continue
                path = f"{shard}{MEMBER_SEPARATOR}{sample.images[ext][0]}"
                if index.truncated is not None and key == index.last_key:
                    sample.problem = "the last sample of a truncated tar shard: its members may be cut off"
                if sample.problem is not None:
                    self._problems[path] = sample.problem
                records.append(
                    Record(
                        id=f"{shard_name}/{key}",
                        path=path,
                        label=NO_LABEL if sample.problem is not None else self._label(shard, key, sample),
                        caption=sample.texts.get("txt"),
                    )
                )
        return sorted_by_unique_id(records, "the shards (two with the same file name?)")

    def _label(self, shard: str, key: str, sample: _Sample) -> int:
        """The sample's `.cls` label: an integer >= 0 (< the number of classes when they are
        given); a sample without a `.cls` member has no label (-1)."""
        if "cls" not in sample.texts:
            return NO_LABEL
        text = sample.texts["cls"]
        try:
            label = int(text)
        except ValueError:
            raise SourceError(f"{shard}::{key}.cls holds {text[:40]!r}, not an integer label") from None
        if label < 0:
            raise SourceError(f"{shard}::{key}.cls holds {label}, not a class index (0, 1, ...); "
                              "a sample without a label has no .cls member")
        if label > MAX_LABEL:
            raise SourceError(f"{shard}::{key}.cls holds {label}, too large for a class index (at most 2**63 - 1)")
        if self.classes is not None and label >= len(self.classes):
            raise SourceError(f"{shard}::{key}.cls holds {label}, outside the {len(self.classes)} given classes")
        return label

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
        problem = self._problems.get(record.path)
        if problem is not None:
            raise SourceError(problem)
        shard, member = split_member_path(record.path)
        if shard not in self._offsets:
            self._index_shard(shard)
        location = self._offsets[shard].get(member)
        if location is None:
            raise SourceError(f"{member} is not an image member of {shard}")
        offset, size = location
        if size > local_files.MAX_IMAGE_BYTES:
            cap = local_files.describe_size(local_files.MAX_IMAGE_BYTES)
            raise SourceError(f"member of {size} bytes is over the {cap} image size cap")
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
