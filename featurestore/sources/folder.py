"""A directory of image files, optionally one subfolder per class (torchvision ImageFolder style)."""

from __future__ import annotations

import os
from pathlib import Path

from featurestore.errors import SourceError
from featurestore.sources.local_files import NOT_UTF8, LocalFileSource, is_utf8, storable
from featurestore.sources.record import NO_LABEL, Record

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    """True for a visible file name with an image extension (case-insensitive).

    Only the name is checked, never the content: a broken file with an image extension is
    still listed, so it becomes an error row of the store instead of silently vanishing.
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether the entry is a directory (symlinks followed); False for a dangling or looping link."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_listed_file(entry: os.DirEntry) -> bool:
    """A visible image name that is not a directory: a regular file, or a symlink whose target
    is missing or loops (listed, so it becomes an error row with its reason, not a silent gap)."""
    return is_image_name(entry.name) and not _is_dir(entry)


def _scandir_sorted(directory: str) -> list[os.DirEntry]:
    with os.scandir(directory) as entries:
        return sorted(entries, key=lambda e: e.name)


def _inside(path: str, folder: str) -> bool:
    """Whether real path `path` is `folder` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _images_under(directory: str, listed: frozenset[str], problems: dict[str, str]) -> list[str]:
    """Absolute paths of the image files under `directory`, recursively, skipping hidden entries.

    `listed` holds the real paths of the folders walked as a whole (the root and each class
    folder). A directory symlink is followed only to a folder outside all of them, each such
    real folder once: a link back to a folder on its own path (a loop), into a listed folder
    (whose files are listed at their own place, under their own class) or to a folder walked
    already is not followed. It is returned as a path with its reason in `problems`, as is a
    subfolder that cannot be listed, so each is one error row, never rows repeated through a
    loop or listed under the wrong class.
    """
    found: list[str] = []
    seen = {os.path.realpath(directory)}
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            entries = _scandir_sorted(current)
        except OSError as exc:
            found.append(current)
            problems[current] = f"cannot list folder: {exc.strerror or exc}"
            continue
        real_current = os.path.realpath(current)
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not _is_dir(entry):
                if is_image_name(entry.name):
                    found.append(entry.path)
                continue
            real = os.path.realpath(entry.path)
            link = entry.is_symlink()
            if _inside(real_current, real):
                problems[entry.path] = f"directory symlink loop: it leads back to {real}, not followed"
            elif link and any(_inside(real, folder) for folder in listed):
                problems[entry.path] = f"symlink to {real}, listed at its own place: not followed twice"
            elif real in seen:
                problems[entry.path] = f"symlink to a folder listed already ({real}): not followed twice"
            else:
                seen.add(real)
                subfolders.append(entry.path)
                continue
            found.append(entry.path)
        stack.extend(reversed(subfolders))
    return found


class ImageFolderSource(LocalFileSource):
    """Images in a directory: class subfolders give labels, a flat folder gives unlabelled rows.

    Layout rules (checked when the source is made, so mistakes fail early):
    - class subfolders: every top-level subfolder holding at least one image (at any depth)
      is a class; label = index of its name in the sorted class names (or in `classes`).
    - flat folder: images directly in the root (no subfolder holds images); label -1.
    - images at the top level *and* class subfolders: refused, since the top-level files
      would silently get no label.
    Hidden files and folders (leading ".") are ignored. Symlinks are followed, each real folder
    once: a directory symlink inside a class folder that loops back (to a folder on its own
    path), leads into the tree (whose files are listed at their own place) or to a folder
    walked already is not followed and becomes an error row saying so, as does a subfolder
    that cannot be listed; a dangling or looping file symlink with an image name is an error
    row too (its reason says which). Top-level symlinks name classes (an alias of another
    class folder is allowed); one leading back to the root is an error row. A file name that
    is not valid UTF-8 is an error row too, its id and path shown with ``\\xNN`` escapes; a root
    or class folder so named is refused.
    """

    def __init__(self, root: str | os.PathLike, *, classes: list[str] | None = None) -> None:
        root_path = Path(root)
        if not root_path.is_dir():
            raise SourceError(f"image folder not found: {root}")
        self.root = os.path.abspath(root_path)
        if not is_utf8(self.root):
            raise SourceError(f"image folder path {storable(self.root)} is not valid UTF-8 (shown with \\x escapes): "
                              "rename it")
        self.spec = self.root
        self.name = os.path.basename(self.root.rstrip(os.sep)) or self.root
        self._problems: dict[str, str] = {}
        self._records = self._scan(classes)

    def _scan(self, classes: list[str] | None) -> list[Record]:
        try:
            entries = [e for e in _scandir_sorted(self.root) if not e.name.startswith(".")]
        except OSError as exc:
            raise SourceError(f"cannot list image folder {self.root}: {exc.strerror or exc}") from None
        problems: dict[str, str] = {}
        top_files = [e.path for e in entries if _is_listed_file(e)]
        folders = [e for e in entries if _is_dir(e)]
        root_real = os.path.realpath(self.root)
        looping = [e for e in folders if _inside(root_real, os.path.realpath(e.path))]
        for entry in looping:
            problems[entry.path] = (f"directory symlink loop: it leads back to {os.path.realpath(entry.path)}, "
                                    "not followed")
        folders = [e for e in folders if e not in looping]
        listed = frozenset([root_real, *(os.path.realpath(e.path) for e in folders)])
        by_class = {}
        for entry in folders:
            images = _images_under(entry.path, listed, problems)
            if images:
                by_class[entry.name] = images
        not_utf8 = sorted(storable(name) for name in by_class if not is_utf8(name))
        if not_utf8:
            raise SourceError(f"class folder name(s) {not_utf8[:5]} of {self.root} are not valid UTF-8 (shown with "
                              "\\x escapes): rename them")
        if by_class and top_files:
            raise SourceError(
                f"{self.root} mixes {len(top_files)} image file(s) at its top level with class "
                f"subfolders; move them into a class folder or list them in a manifest"
            )
        if not by_class and not top_files:
            raise SourceError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {self.root}")
        if classes is not None:
            unknown = sorted(set(by_class) - set(classes))
            if unknown:
                raise SourceError(f"class folder(s) {unknown[:5]} of {self.root} are not in the given classes")
            self.classes: list[str] | None = list(classes)
        else:
            self.classes = sorted(by_class) if by_class else None
        index = {name: i for i, name in enumerate(self.classes or [])}
        pairs = [(p, NO_LABEL) for p in top_files] + [(e.path, NO_LABEL) for e in looping]
        pairs += [(p, index[name]) for name, paths in by_class.items() for p in paths]
        records = [
            Record(id=storable(Path(os.path.relpath(p, self.root)).as_posix()), path=storable(os.path.abspath(p)),
                   label=label)
            for p, label in pairs
        ]
        self._problems = {storable(os.path.abspath(p)): reason for p, reason in problems.items()}
        for p, _ in pairs:  # a name the store cannot hold: an error row under its escaped name
            if not is_utf8(p):
                self._problems[storable(os.path.abspath(p))] = NOT_UTF8
        return sorted(records, key=lambda r: r.id)

    def _list(self) -> list[Record]:
        return self._scan(self.classes)
