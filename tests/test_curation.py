"""MetaCLIP curation: the official matching against hand-derived pairs and a brute-force re-derivation
of MetaCLIP's substr_matching on its edge cases, whole-word matching against a brute-force
word-sequence loop, the official balancing rule (kept-probability against a seeded count within
binomial error, counts <= t keep all), metadata files, and fs curate writing a manifest that fs
extract's manifest reader accepts."""
import csv
import json
import re

import numpy as np
import pytest

from featurestore.corpus.curation import (
    CurationIndex,
    balanced_sample,
    curate,
    entry_probabilities,
    keep_probability,
    read_metadata,
)
from featurestore.errors import SourceError
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run


def mentions(caption, entry):
    """Brute force: the entry's words occur consecutively among the caption's words."""
    c, e = re.findall(r"\w+", caption.lower()), re.findall(r"\w+", entry.lower())
    return any(c[i:i + len(e)] == e for i in range(len(c) - len(e) + 1))


def official_mentions(caption, entry):
    """Brute force of the official rule, re-derived from its description: pad the caption with
    spaces, put a space on each side of every , . ; : ? ! ` and turn tab/newline/CR into spaces;
    the entry, padded with one space on each side, must be a substring."""
    text = " " + caption + " "
    for ch in ",.;:?!`":
        text = text.replace(ch, " " + ch + " ")
    for ch in "\t\n\r":
        text = text.replace(ch, " ")
    return (" " + entry + " ") in text


EDGE_CAPTIONS = [
    "a cat on a mat.",            # 0: cat (before a wrapped period)
    "Cat on a Mat",               # 1: case-sensitive: "Cat" only
    "the category of things",     # 2: substring inside a word: nothing
    "black-cat sticker",          # 3: after a hyphen: nothing
    "#cat #dog",                  # 4: hashtags: nothing
    "the cat's toy",              # 5: possessive: nothing
    "a toy (cat) here",           # 6: parentheses: nothing
    "'cat' in quotes",            # 7: quotes: nothing
    "cat/dog photo",              # 8: slash: nothing
    "cat, dog; sea lion!",        # 9: cat, dog, sea lion (wrapped , ; !)
    "made in the U.S. today",     # 10: "U.S." never matches; "U" and "S" do
    "sea  lion at rest",          # 11: two spaces: "lion", not "sea lion"
    "sea\tlion?",                 # 12: a tab is a space: sea lion
    "dogs and cats",              # 13: plurals: nothing
    "`dog`: ok",                  # 14: backtick and colon are wrapped: dog
    "Sea Lion",                   # 15: other case: nothing
    "sea-lion",                   # 16: hyphen: nothing
]
EDGE_ENTRIES = ["cat", "dog", "sea lion", "U.S.", "U", "S", "Cat", "mat", "lion"]
# Hand-derived official pairs (caption, entry index), read off the comments above.
EDGE_PAIRS = {(0, 0), (0, 7), (1, 6), (9, 0), (9, 1), (9, 2), (9, 8), (10, 4), (10, 5), (11, 8), (12, 2),
              (12, 8), (14, 1)}


def test_official_matching_is_metaclip_substr_matching():
    expected = EDGE_PAIRS
    brute = {(c, k) for c, caption in enumerate(EDGE_CAPTIONS) for k, e in enumerate(EDGE_ENTRIES)
             if official_mentions(caption, e)}
    assert brute == expected  # the hand derivation and the re-derived algorithm agree
    result = curate(EDGE_CAPTIONS, EDGE_ENTRIES, t=1e9)  # official matching is the default
    assert result.matching == "official"
    assert set(zip(*(a.tolist() for a in result.pairs))) == expected
    assert result.counts_before.tolist() == [sum(k == j for _, k in expected) for j in range(len(EDGE_ENTRIES))]
    assert result.counts_before[EDGE_ENTRIES.index("U.S.")] == 0
    # Whole-word matching (the option) finds every official pair and the edge cases' extra ones.
    words = curate(EDGE_CAPTIONS, EDGE_ENTRIES, t=1e9, matching="words")
    extra = set(zip(*(a.tolist() for a in words.pairs))) - expected
    assert expected <= set(zip(*(a.tolist() for a in words.pairs)))
    assert {(c, 0) for c in (1, 3, 4, 5, 6, 7, 8)} <= extra and (10, 3) in extra and (15, 2) in extra
    assert (2, 0) not in extra and (13, 0) not in extra  # still whole words


def test_official_matching_random_corpus_against_brute_force(monkeypatch):
    """Random captions over a small alphabet of tokens, cases and separators, so every edge
    (doubled spaces, wrapped characters glued to words, line breaks) occurs many times; indexed
    in chunks of 7 captions, so chunk boundaries fall everywhere."""
    monkeypatch.setattr("featurestore.corpus.curation.CHUNK_CAPTIONS", 7)
    rng = np.random.default_rng(3)
    pieces = ["cat", "Cat", "dog", "U.S.", "U", "S", "sea", "lion", "-", "#", "'s", "(", ")", "/", ",", ".", ";",
              ":", "?", "!", "`", " ", " ", " ", "  ", "\t", "\n", "\r", "'"]
    captions = ["".join(rng.choice(pieces, rng.integers(0, 14))) for _ in range(600)]
    entries = ["cat", "Cat", "dog", "U.S.", "U", "S", "sea lion", "lion", "cat dog", ".", ",", "?", "U . S .",
               "sea  lion", "cat,", "#cat", "cat's"]
    result = curate(captions, entries, t=1e9)
    brute = {(c, k) for c, caption in enumerate(captions) for k, e in enumerate(entries)
             if official_mentions(caption, e)}
    assert set(zip(*(a.tolist() for a in result.pairs))) == brute
    assert len(brute) > 300 and result.counts_before[entries.index("U.S.")] == 0
    assert result.counts_before[entries.index("U . S .")] > 0  # the spaced form does match
    index = CurationIndex.build(captions)  # a prebuilt index gives the same pairs
    again = curate(index, entries, t=1e9)
    assert all(np.array_equal(a, b) for a, b in zip(again.pairs, result.pairs))
    with pytest.raises(SourceError, match="built for 'official'"):
        curate(index, entries, t=1e9, matching="words")
    with pytest.raises(SourceError, match="unknown matching"):
        CurationIndex.build(captions, "substring")  # type: ignore[arg-type]


def synthetic_pool(n=3000, seed=0):
    """Captions mentioning a head entry often, mid entries sometimes, tail entries rarely."""
    rng = np.random.default_rng(seed)
    entries = ["dog", "red car", "cat", "sea lion", "zebra", "tiny owl"]
    weights = np.array([0.6, 0.25, 0.1, 0.03, 0.015, 0.005])
    captions = []
    for _ in range(n):
        picked = rng.choice(len(entries), size=rng.integers(0, 3), replace=False, p=weights)
        filler = rng.choice(["a photo of", "the", "my", "look at this"])
        captions.append(" ".join([filler] + [entries[k] for k in picked] + ["outside"]))
    return captions, entries


def test_counts_match_brute_force():
    captions, entries = synthetic_pool(400)
    captions += ["Sea-Lion!", "sealion", "red  car", "category"]
    entries += ["cat"]  # a duplicate entry counts the same captions
    result = curate(captions, entries, t=1e9, matching="words")
    expected = [sum(mentions(c, e) for c in captions) for e in entries]
    assert result.counts_before.tolist() == expected
    assert result.matched.tolist() == [any(mentions(c, e) for e in entries) for c in captions]
    assert result.kept.tolist() == result.matched.tolist()  # t above every count keeps all matches


def test_kept_probability_by_seeded_count():
    captions, entries = synthetic_pool()
    t = 60
    result = curate(captions, entries, t=t, seed=0)
    counts = result.counts_before
    p = np.minimum(1, t / counts)
    expected = np.array([1 - np.prod([1 - p[k] for k, e in enumerate(entries) if mentions(c, e)])
                         if any(mentions(c, e) for e in entries) else 0.0 for c in captions])
    caps, ids = CurationIndex.build(captions).match(entries)
    np.testing.assert_allclose(keep_probability(caps, ids, entry_probabilities(counts, t), len(captions)), expected)
    # Repeated seeded draws: the kept frequency of each caption group is within binomial error.
    runs = 200
    probabilities = entry_probabilities(counts, t)
    assert np.array_equal(balanced_sample(caps, ids, probabilities, len(captions), 0), result.kept)
    kept = np.mean([balanced_sample(caps, ids, probabilities, len(captions), s) for s in range(runs)], axis=0)
    for value in np.unique(np.round(expected, 12)):
        group = np.isclose(expected, value)
        se = np.sqrt(max(value * (1 - value), 1e-12) / (runs * group.sum()))
        assert abs(kept[group].mean() - value) <= 4 * se + 1e-12
    # Entries at or below t keep every caption; caption rows matching only them are always kept.
    tail = [k for k in range(len(entries)) if counts[k] <= t]
    assert tail and all(result.counts_after[k] == counts[k] for k in tail)


def test_threshold_and_metadata_files(tmp_path):
    with pytest.raises(SourceError, match="t must be > 0"):
        entry_probabilities(np.array([3]), 0)
    txt = tmp_path / "m.txt"
    txt.write_text("dog\n\nred car\n")
    assert read_metadata(txt) == ["dog", "red car"]
    js = tmp_path / "m.json"
    js.write_text(json.dumps(["dog", "sea lion"]))
    assert read_metadata(js) == ["dog", "sea lion"]
    txt.write_text("dog\n!!\n")
    with pytest.raises(SourceError, match="entry 2"):
        read_metadata(txt)


def test_fs_curate_writes_a_manifest(tmp_path, capsys):
    captions, entries = synthetic_pool(500)
    path = tmp_path / "s.h5"
    with FeatureStore(path, mode="a") as w:
        w.add_rows("laion", [f"r{i}" for i in range(len(captions))], [f"img/{i}.jpg" for i in range(len(captions))],
                   [-1] * len(captions), captions=captions)
    meta = tmp_path / "entries.txt"
    meta.write_text("\n".join(entries + ["unicorn"]))
    out = tmp_path / "curated.csv"
    args = ["curate", "--store", path, "--pool", "laion", "--metadata", meta, "--t", "20", "--output", out]
    code, text, err = run(args + ["--json"], capsys)
    assert code == 0, err
    summary = json.loads(text)
    expected = curate(captions, entries + ["unicorn"], t=20, seed=1)  # --seeds defaults to 1
    assert summary["seed"] == 1 and summary["output"] == str(out) and summary["matching"] == "official"
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [f"r{i}" for i in np.flatnonzero(expected.kept)]
    assert all(r["caption"] == captions[int(r["id"][1:])] for r in rows)
    assert summary["kept"] == len(rows) and summary["head"][0]["entry"] == "dog"
    assert summary["head"][0]["after"] < summary["head"][0]["before"]
    from featurestore.sources.manifest import ManifestSource  # the manifest reads back as a source

    records = ManifestSource(out)._records
    assert {(r.id, r.caption) for r in records} == {(r["id"], r["caption"]) for r in rows}
    code, text, _ = run(args, capsys)
    assert code == 0 and "head entries" in text and "official matching" in text and "1 entry matches no caption" in text
    code, _, err = run(["curate", "--store", path, "--pool", "nope", "--metadata", meta, "--output", out], capsys)
    assert code == 2 and "no split 'nope'" in err
    code, _, err = run(args + ["--seeds", "1,2"], capsys)  # one manifest: one seed
    assert code == 2 and "--seeds" in err and "one seed" in err and err.count("\n") == 1
    # --matching words: whole words in any case; the edge-case pool shows the two rules apart.
    edge = tmp_path / "edge.h5"
    with FeatureStore(edge, mode="a") as w:
        n = len(EDGE_CAPTIONS)
        w.add_rows("pool", [f"e{i}" for i in range(n)], [f"e/{i}.jpg" for i in range(n)], [-1] * n,
                   captions=EDGE_CAPTIONS)
    meta.write_text("\n".join(EDGE_ENTRIES))
    base = ["curate", "--store", edge, "--pool", "pool", "--metadata", meta, "--t", "1e9", "--output", out, "--json"]
    matched = {}
    for rule in ("official", "words"):
        code, text, err = run(base + ["--matching", rule], capsys)
        assert code == 0, err
        summary = json.loads(text)
        assert summary["matching"] == rule
        matched[rule] = summary["matched"]
    assert matched["official"] == len({c for c, _ in EDGE_PAIRS}) == 7
    assert matched["words"] == 15  # all but "category" and "dogs and cats"
