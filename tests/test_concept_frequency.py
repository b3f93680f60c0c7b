"""Concept frequency (REAL, Parashar et al., CVPR 2024) against a brute-force regex count."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from featurestore.corpus.frequency import (
    CaptionIndex,
    class_matches,
    concept_frequency,
)
from featurestore.errors import SourceError
from featurestore.text.synonyms import read_synonyms

WORDS = ["sea", "lion", "Lion", "dog", "hot", "cat", "the", "a", "house", "kitty", "é", "x1"]
GLUE = [" ", "  ", "-", ", ", "! ", "'", "_", ""]


def brute_force_mentions(captions, phrase):
    """Captions mentioning ``phrase``: its words separated by non-word runs, case-insensitive."""
    tokens = re.findall(r"\w+", phrase.lower())
    pattern = re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, tokens)) + r"(?!\w)", re.IGNORECASE)
    return {i for i, c in enumerate(captions) if c and pattern.search(c)}


def random_captions(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 8))
        parts = [str(rng.choice(WORDS)) + str(rng.choice(GLUE)) for _ in range(k)]
        out.append("".join(parts))
    return out


SYNONYMS = {"sea lion": ["sea lion", "Sea-Lion", "lion"], "dog": ["dog", "hot dog"],
            "cat": ["cat", "house cat", "kitty", "the house cat"], "absent": ["walrus", "sea walrus"]}


def test_counts_equal_brute_force_regex():
    captions = random_captions(3000, 0) + ["SEA LION!", "sea_lion", "sealion", "a sea lion's pup", "", "hot-dog"]
    result = concept_frequency(captions, SYNONYMS)
    for c, (name, syns) in enumerate(SYNONYMS.items()):
        union = set()
        for j, s in enumerate(syns):
            expected = brute_force_mentions(captions, s)
            assert result.synonym_counts[c][j] == len(expected), s
            union |= expected
        assert result.class_counts[c] == len(union), name


def test_match_returns_exactly_the_mentioning_captions():
    captions = random_captions(500, 1)
    index = CaptionIndex.build(captions)
    phrases = ["sea lion", "house cat", "x1 é", "lion", "nothing here"]
    caps, ids = index.match(phrases)
    for k, p in enumerate(phrases):
        assert set(caps[ids == k].tolist()) == brute_force_mentions(captions, p)


def test_chunked_index_and_separator_in_caption(monkeypatch):
    import featurestore.corpus.frequency as cf

    monkeypatch.setattr(cf, "CHUNK_CAPTIONS", 7)
    captions = random_captions(50, 2) + ["sea\x1flion", "dog"]
    rows, classes, _ = class_matches(CaptionIndex.build(captions), {"d": ["dog"], "s": ["sea lion"]})
    assert set(rows[classes == 0].tolist()) == brute_force_mentions(captions, "dog")
    assert set(rows[classes == 1].tolist()) == brute_force_mentions(captions, "sea lion")


def test_most_frequent_head_and_tail():
    captions = ["a kitty"] * 5 + ["a cat"] * 2 + ["a dog"] * 9 + ["a walrus"]
    result = concept_frequency(captions, {"cat": ["cat", "kitty"], "dog": ["dog"], "walrus": ["walrus"]})
    assert result.most_frequent() == ["kitty", "dog", "walrus"]
    assert result.tail(1) == [2] and result.head(1) == [1]


def write(tmp_path, data, name="syn.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_read_synonyms_orders_and_adds_class_name(tmp_path):
    path = write(tmp_path, {"dog": ["puppy", "dog"]})
    assert read_synonyms(path, ["cat", "dog"]) == {"cat": ["cat"], "dog": ["dog", "puppy"]}


@pytest.mark.parametrize("data, message", [
    ({"cat": ["kitty"], "zebra": ["zebra"]}, "not in the class list: 'zebra'"),
    ({"cat": []}, "empty synonym list"),
    ({"cat": ["!!"]}, "no word characters"),
    (["cat"], "must be a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_read_synonyms_refuses_bad_files(tmp_path, data, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        read_synonyms(write(tmp_path, data), ["cat", "dog"])


def test_example_file_ships_with_the_package():
    from importlib.resources import files

    path = files("featurestore") / "data" / "synonyms-example.json"
    syns = read_synonyms(path, ["cat", "dog", "emu"])
    assert "kitty" in syns["cat"]
