"""A directory of image files, optionally one subfolder per class (torchvision ImageFolder style)."""

from __future__ import annotations

import os
from pathlib import Path

from featurestore.errors import SourceError
from featurestore.sources.local_files import LocalFileSource
from featurestore.sources.record import NO_LABEL, Record

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    """True for a visible file name with an image extension (case-insensitive).

    Only the name is checked, never the content: a broken file with an image extension is
    still listed, so it becomes an error row of the store instead of silently vanishing.
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_under(directory: str) -> list[str]:
    """Absolute paths of the image files under `directory`, recursively, skipping hidden entries."""
    found = []
    for current, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(os.path.join(current, f) for f in files if is_image_name(f))
    return found


class ImageFolderSource(LocalFileSource):
    """Images in a directory: class subfolders give labels, a flat folder gives unlabelled rows.

    Layout rules (checked when the source is made, so mistakes fail early):
    - class subfolders: every top-level subfolder holding at least one image (at any depth)
      is a class; label = index of its name in the sorted class names (or in `classes`).
    - flat folder: images directly in the root (no subfolder holds images); label -1.
    - images at the top level *and* class subfolders: refused, since the top-level files
      would silently get no label.
    Hidden files and folders (leading ".") are ignored; symlinks are followed.
    """

    def __init__(self, root: str | os.PathLike, *, classes: list[str] | None = None) -> None:
        root_path = Path(root)
        if not root_path.is_dir():
            raise SourceError(f"image folder not found: {root}")
        self.root = os.path.abspath(root_path)
        self.spec = self.root
        self.name = os.path.basename(self.root.rstrip(os.sep)) or self.root
        self._records = self._scan(classes)

    def _scan(self, classes: list[str] | None) -> list[Record]:
        entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        top_files = [e.path for e in entries if e.is_file() and is_image_name(e.name)]
        by_class = {}
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                images = _images_under(entry.path)
                if images:
                    by_class[entry.name] = images
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
        pairs = [(p, NO_LABEL) for p in top_files]
        pairs += [(p, index[name]) for name, paths in by_class.items() for p in paths]
        records = [
            Record(id=Path(os.path.relpath(p, self.root)).as_posix(), path=os.path.abspath(p), label=label)
            for p, label in pairs
        ]
        return sorted(records, key=lambda r: r.id)

    def _list(self) -> list[Record]:
        return self._scan(self.classes)
