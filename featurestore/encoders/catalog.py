"""What can be extracted with: open_clip architectures with their pretrained tags, and timm
image encoders (architectures, and pretrained tags timm knows for them). For `fs models`."""
from __future__ import annotations

import fnmatch
from typing import Any


def open_clip_models(pattern: str | None = None) -> list[dict[str, Any]]:
    """``[{"model": "ViT-B-32", "pretrained": ["openai", ...]}, ...]`` (names matching ``pattern``)."""
    import open_clip

    tags: dict[str, list[str]] = {}
    for model, tag in open_clip.list_pretrained():
        tags.setdefault(model, []).append(tag)
    return [{"model": name, "pretrained": tags.get(name, [])} for name in open_clip.list_models()
            if _matches(name, pattern)]


def timm_models(pattern: str | None = None, pretrained_only: bool = False) -> list[dict[str, Any]]:
    """``[{"model": "timm:resnet50", "pretrained": ["a1_in1k", ...]}, ...]``: every timm
    architecture (as ``timm:ARCH``) with the pretrained tags timm lists for it."""
    import timm

    tags: dict[str, list[str]] = {}
    for name in timm.list_pretrained():
        arch, _, tag = name.partition(".")
        tags.setdefault(arch, []).append(tag)
    out = []
    for arch in timm.list_models():
        if (pretrained_only and arch not in tags) or not _matches(arch, pattern):
            continue
        out.append({"model": f"timm:{arch}", "pretrained": tags.get(arch, [])})
    return out


def _matches(name: str, pattern: str | None) -> bool:
    """A shell pattern (``ViT-B-*``), or a plain substring; case-insensitive."""
    if not pattern:
        return True
    name, pattern = name.lower(), pattern.lower().removeprefix("timm:")
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name, pattern)
    return pattern in name
