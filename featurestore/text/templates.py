"""Prompt templates for zero-shot classifiers: CLIP's 80 ImageNet templates and a single one.

Templates are plain `str.format` strings with one `{}` for the class name, so a user can
ship their own as a text file (one template per line).
"""

from __future__ import annotations

import os
from pathlib import Path

from featurestore.errors import SourceError

# The 80 templates of OpenAI CLIP's notebook "Prompt_Engineering_for_ImageNet.ipynb", in its order.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)

TEMPLATE_SETS: dict[str, list[str]] = {
    "imagenet": list(IMAGENET_TEMPLATES),
    "simple": list(SIMPLE_TEMPLATES),
}


def _check(template: str, where: str) -> str:
    """Return `template` if it formats with one class name, else raise a clear error."""
    if "{}" not in template:
        raise SourceError(f"template {template!r} in {where} has no '{{}}' placeholder for the class name")
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError) as exc:
        raise SourceError(f"template {template!r} in {where} is not a valid format string: {exc}") from None
    return template


def get_templates(name_or_path: str | os.PathLike) -> list[str]:
    """Templates of a named set ("imagenet", "simple") or of a text file, one per line.

    Blank lines of a file are skipped; every other line must contain "{}".
    """
    name = os.fspath(name_or_path)
    if name in TEMPLATE_SETS:
        return list(TEMPLATE_SETS[name])
    path = Path(name)
    if not path.is_file():
        raise SourceError(
            f"unknown template set {name!r}: use one of {', '.join(sorted(TEMPLATE_SETS))} or a text file"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read template file {path}: {exc}") from exc
    templates = [_check(line.strip(), str(path)) for line in lines if line.strip()]
    if not templates:
        raise SourceError(f"template file {path} holds no templates")
    return templates
