"""Prompt templates: CLIP's 80 ImageNet templates (oracle: open_clip's copy) and template files."""

from __future__ import annotations

from pathlib import Path

import pytest
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from featurestore.errors import SourceError
from featurestore.text.templates import TEMPLATE_SETS, get_templates


def test_imagenet_set_has_the_80_clip_templates_in_order() -> None:
    templates = get_templates("imagenet")
    assert len(templates) == 80 == len(set(templates))
    assert all(t.count("{}") == 1 for t in templates)
    for name in ("goldfish", "tiger shark"):
        assert [t.format(name) for t in templates] == [f(name) for f in OPENAI_IMAGENET_TEMPLATES]


def test_simple_set_and_copies() -> None:
    assert get_templates("simple") == ["a photo of a {}."]
    get_templates("simple").append("mutated {}")
    assert TEMPLATE_SETS["simple"] == ["a photo of a {}."]


def test_template_file_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("a photo of a {}.\n\n  itap of my {}.  \n", encoding="utf-8")
    assert get_templates(path) == ["a photo of a {}.", "itap of my {}."]
    assert get_templates(str(path)) == ["a photo of a {}.", "itap of my {}."]


@pytest.mark.parametrize(
    ("text", "message"),
    [("a photo\n", "no '{}' placeholder"), ("a {} of {0}\n", "not a valid format string"), ("\n\n", "no templates")],
)
def test_bad_template_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        get_templates(path)


def test_unknown_set_name_is_refused() -> None:
    with pytest.raises(SourceError, match="unknown template set 'imagenet80'"):
        get_templates("imagenet80")
