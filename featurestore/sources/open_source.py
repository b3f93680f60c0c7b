"""Pick the right source for what the user typed: a folder, a manifest or tar shards."""

from __future__ import annotations

import errno
import glob
import os

from featurestore.errors import SourceError
from featurestore.sources.folder import ImageFolderSource, is_image_name
from featurestore.sources.manifest import MANIFEST_EXTENSIONS, ManifestSource
from featurestore.sources.record import Source
from featurestore.sources.webdataset import WebDatasetSource, expand_shards

KINDS = ("folder", "manifest", "webdataset")


def _is_tar(path: str) -> bool:
    return path.lower().endswith(".tar")


def _entry_is(entry: os.DirEntry, kind: str) -> bool:
    """entry.is_file() / is_dir() that say False for a looping symlink instead of raising."""
    try:
        return entry.is_file() if kind == "file" else entry.is_dir()
    except OSError:
        return False


def _open_directory(path: str, kind: str | None, classes: list[str] | None) -> Source:
    """A directory of top-level .tar files is WebDataset shards; anything else an image folder.

    Side files next to the shards (img2dataset's .json/.parquet stats) are ignored; shards
    mixed with images or subfolders are refused rather than guessed.
    """
    try:
        with os.scandir(path) as listing:
            entries = [e for e in listing if not e.name.startswith(".")]
    except OSError as exc:
        raise SourceError(f"cannot list folder {path}: {exc.strerror or exc}") from None
    tars = [e.path for e in entries if _entry_is(e, "file") and _is_tar(e.name)]
    if kind == "webdataset" or (kind is None and tars):
        if not tars:
            raise SourceError(f"no .tar shards in {path}")
        if kind is None and any(_entry_is(e, "dir") or (_entry_is(e, "file") and is_image_name(e.name))
                                for e in entries):
            raise SourceError(
                f"{path} mixes .tar shards with images or subfolders; pass kind='webdataset' or 'folder'"
            )
        return WebDatasetSource(tars, classes=classes, spec=os.path.abspath(path))
    if kind == "manifest":
        raise SourceError(f"{path} is a directory, not a .csv/.tsv/.parquet manifest")
    return ImageFolderSource(path, classes=classes)


def _open_file(path: str, kind: str | None, classes: list[str] | None) -> Source:
    suffix = os.path.splitext(path)[1].lower()
    if kind == "webdataset" or (kind is None and suffix == ".tar"):
        return WebDatasetSource([path], classes=classes)
    if kind == "manifest" or (kind is None and suffix in MANIFEST_EXTENSIONS):
        return ManifestSource(path, classes=classes)
    if kind == "folder":
        raise SourceError(f"{path} is a file, not an image folder")
    raise SourceError(f"don't know how to read {path}: expected a folder, a .csv/.tsv/.parquet manifest or .tar shards")


def open_source(
    spec: str | os.PathLike, *, kind: str | None = None, classes: list[str] | None = None
) -> Source:
    """Open `spec` as a data source, guessing the kind unless `kind` is given.

    - directory: image folder (class subfolders -> labels), or WebDataset shards when it holds
      .tar files and no images/subfolders;
    - .csv/.tsv/.parquet file: manifest;
    - .tar file, or a brace/glob pattern such as "shards/{00000..00003}.tar" or "shards/*.tar":
      WebDataset shards.
    `classes` fixes the class names (and so the label indices) instead of deriving them.
    """
    if kind is not None and kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r}; choose one of {', '.join(KINDS)}")
    text = os.fspath(spec)
    if os.path.isdir(text):
        return _open_directory(text, kind, classes)
    if os.path.isfile(text):
        return _open_file(text, kind, classes)
    if glob.has_magic(text) or ("{" in text and "}" in text):
        if kind not in (None, "webdataset"):
            raise SourceError(f"a pattern like {text} can only name .tar shards, not a {kind}")
        shards = expand_shards(text)
        not_tar = [s for s in shards if not _is_tar(s)]
        if not_tar and kind is None:
            raise SourceError(f"pattern {text} matches a file that is not a .tar shard: {not_tar[0]}")
        return WebDatasetSource(shards, classes=classes, spec=text)
    raise SourceError(_not_found(text))


def _not_found(text: str) -> str:
    """Why `text` names no folder, file or pattern: missing, a dangling or looping symlink, or
    something that is neither a regular file nor a folder (a FIFO, a device)."""
    try:
        os.stat(text)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"source {text} is a symlink loop (too many levels of symbolic links)"
        if os.path.islink(text):
            return f"source {text} is a dangling symlink (its target {os.readlink(text)} does not exist)"
        return f"source not found: {text}"
    return f"source {text} is neither a folder nor a regular file"
