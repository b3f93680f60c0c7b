"""Caption statistics over a sharded pool on a Dask cluster of 4 worker processes: concept
frequency and MetaCLIP curation equal to one process over the concatenated pool (the in-memory
``concept_frequency`` / ``curate``, themselves checked against brute force in
test_concept_frequency.py and test_curation.py), on 200k synthetic captions in Parquet shards;
tar shards read as the extraction source reads them; fs real frequency / prompts and fs curate
with --captions; the shard errors a user can cause."""
from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest

from featurestore.corpus.curation import curate
from featurestore.corpus.distributed import sharded_curate, sharded_frequency
from featurestore.corpus.frequency import concept_frequency
from featurestore.corpus.shards import caption_shards, read_caption_shard
from featurestore.errors import SourceError
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.test_cli_real import POOL_CAPTIONS, real_store  # noqa: F401 (a fixture)

pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SYNONYMS = {"dog": ["dog", "puppy", "hound dog"], "car": ["red car", "car"], "lion": ["sea lion", "lion"],
            "owl": ["tiny owl", "owlet"], "cat": ["cat", "Cat"], "unicorn": ["unicorn"]}
ENTRIES = ["dog", "red car", "car", "sea lion", "lion", "tiny owl", "cat", "Cat", "hound dog", "owlet", "unicorn"]
WORDS = ["a", "photo", "of", "the", "my", "dog", "puppy", "hound", "red", "car", "sea", "lion", "tiny", "owl",
         "owlet", "cat", "Cat", "cats", "at", "night", "outside", "blue", "sky"]
PUNCT = ["", "", "", ".", ",", "!", "-", "'s"]


def synthetic_captions(n: int, seed: int = 0) -> list[str]:
    """Captions of 3-9 words from a small vocabulary (Zipf-like weights, so some entries are far
    above t and others below), with punctuation glued on some words (the rules differ there)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    lengths = rng.integers(3, 10, n)
    picks = rng.choice(len(WORDS), size=lengths.sum(), p=weights / weights.sum())
    glue = rng.choice(len(PUNCT), size=lengths.sum())
    tokens = [WORDS[w] + PUNCT[g] for w, g in zip(picks.tolist(), glue.tolist())]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [" ".join(tokens[a:b]) for a, b in itertools.pairwise(bounds.tolist())]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """200k captions in 8 Parquet shards of unequal sizes (img2dataset's key/url/caption columns),
    with a few missing captions; returns (shard paths, ids, urls, captions with None as "")."""
    folder = tmp_path_factory.mktemp("pool")
    captions = synthetic_captions(200_000)
    cuts = [0, 10_000, 40_000, 41_000, 90_000, 120_000, 150_000, 185_000, 200_000]
    ids, urls, texts = [], [], []
    for s, (a, b) in enumerate(itertools.pairwise(cuts)):
        key = [f"{s:05d}{i:06d}" for i in range(b - a)]
        url = [f"http://example.com/{k}.jpg" for k in key]
        cap: list[str | None] = list(captions[a:b])
        cap[::997] = [None] * len(cap[::997])
        pq.write_table(pa.table({"key": key, "url": url, "caption": cap}), folder / f"part-{s:05d}.parquet")
        ids += key
        urls += url
        texts += ["" if c is None else c for c in cap]
    return caption_shards(str(folder / "part-{00000..00007}.parquet")), ids, urls, texts


@pytest.fixture(scope="module")
def client():
    from featurestore.cluster import dask_client

    with dask_client("local:4") as c:
        yield c


def test_sharded_frequency_equals_one_process(pool, client):
    shards, _, _, captions = pool
    expected = concept_frequency(captions, SYNONYMS)
    result, rows = sharded_frequency(shards, SYNONYMS, client=client)
    assert rows == len(captions) == 200_000
    assert result.class_counts.tolist() == expected.class_counts.tolist()
    assert [c.tolist() for c in result.synonym_counts] == [c.tolist() for c in expected.synonym_counts]
    assert expected.class_counts[list(SYNONYMS).index("unicorn")] == 0
    assert min(expected.class_counts[:5]) > 1000  # every other class is well represented
    # In this process (no client), the same tasks one after another: on the first 41k rows.
    first = concept_frequency(captions[:41_000], SYNONYMS)
    here, rows = sharded_frequency(shards[:3], SYNONYMS)
    assert rows == 41_000 and here.class_counts.tolist() == first.class_counts.tolist()


@pytest.mark.parametrize(("matching", "n_shards", "t"), [("official", 8, 3000.0), ("words", 3, 600.0)])
def test_sharded_curation_keeps_the_rows_one_process_keeps(pool, client, tmp_path, matching, n_shards, t):
    """The official rule on the whole pool; the whole-word rule on its first 3 shards (41k rows)."""
    shards, ids, urls, captions = pool
    n = {8: 200_000, 3: 41_000}[n_shards]
    shards, ids, urls, captions = shards[:n_shards], ids[:n], urls[:n], captions[:n]
    seed = 7
    expected = curate(captions, ENTRIES, t, seed=seed, matching=matching)
    assert expected.counts_before.max() > 10 * t and 0 < expected.kept.sum() < expected.matched.sum()
    out = tmp_path / "kept.csv"
    result = sharded_curate(shards, ENTRIES, t, out, seed=seed, matching=matching, client=client)
    assert result.counts_before.tolist() == expected.counts_before.tolist()
    assert result.counts_after.tolist() == expected.counts_after.tolist()
    assert (result.n_captions, result.n_matched, result.n_kept) == (n, expected.n_matched,
                                                                    int(expected.kept.sum()))
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = np.flatnonzero(expected.kept)
    assert rows[0] == ["id", "path", "caption"]
    assert rows[1:] == [[ids[i], urls[i], captions[i]] for i in kept]
    assert not (tmp_path / "kept.csv.parts").exists()
    other = curate(captions, ENTRIES, t, seed=seed + 1, matching=matching)  # the seed matters
    assert not np.array_equal(other.kept, expected.kept)


def test_tar_shards_read_as_the_source_reads_them(tmp_path):
    from featurestore.sources.webdataset import WebDatasetSource
    from tests.images import write_webdataset_tar

    for s in range(3):
        write_webdataset_tar(tmp_path / f"shard-{s}.tar", 4, first_key=10 * s, seed=s)
    shards = caption_shards(str(tmp_path / "shard-*.tar"))
    records = WebDatasetSource(shards).records()
    rows = [read_caption_shard(p) for p in shards]
    assert [i for r in rows for i in r.ids] == [r.id for r in records]
    assert [c for r in rows for c in r.captions] == [r.caption for r in records]
    assert [p for r in rows for p in r.paths] == [r.path for r in records]


def test_shard_errors(tmp_path):
    with pytest.raises(SourceError, match="caption shard not found"):
        caption_shards(str(tmp_path / "x-{0..1}.parquet"))
    with pytest.raises(SourceError, match="no caption shard matches"):
        caption_shards(str(tmp_path / "*.parquet"))
    pq.write_table(pa.table({"text": ["a dog"]}), tmp_path / "a.parquet")
    (tmp_path / "b.tar").write_bytes(b"")
    with pytest.raises(SourceError, match="mixes .tar and .parquet"):
        caption_shards(str(tmp_path / "*"))
    with pytest.raises(SourceError, match="no 'caption' column"):
        read_caption_shard(str(tmp_path / "a.parquet"))
    (tmp_path / "c.txt").write_text("a dog")
    with pytest.raises(SourceError, match="not .txt"):
        caption_shards(str(tmp_path / "c.txt"))


def test_cli_counts_and_curates_shards(tmp_path, capsys):
    """fs real frequency / fs curate --captions in this process, against the in-memory functions."""
    captions = synthetic_captions(3000, seed=1)
    for s in range(3):
        rows = captions[1000 * s:1000 * (s + 1)]
        pq.write_table(pa.table({"id": [f"s{s}-{i}" for i in range(1000)], "caption": rows}),
                       tmp_path / f"p{s}.parquet")
    syn = tmp_path / "syn.json"
    syn.write_text(json.dumps(SYNONYMS))
    spec = str(tmp_path / "p*.parquet")
    code, out, err = run(["real", "frequency", "--captions", spec, "--synonyms", syn, "--json"], capsys)
    assert code == 0, err
    from featurestore.text.synonyms import read_synonyms

    expected = concept_frequency(captions, read_synonyms(syn))  # the class name counts as a synonym
    got = json.loads(out)
    assert got["captions"] == 3000
    assert {c["class"]: c["count"] for c in got["classes"]} == dict(zip(SYNONYMS, expected.class_counts.tolist()))
    meta = tmp_path / "entries.txt"
    meta.write_text("\n".join(ENTRIES))
    kept_csv = tmp_path / "kept.csv"
    code, out, err = run(["curate", "--captions", spec, "--metadata", meta, "--t", "50", "--output", kept_csv,
                          "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    expected_kept = curate(captions, ENTRIES, 50, seed=1).kept  # --seeds defaults to 1
    with open(kept_csv, newline="", encoding="utf-8") as handle:
        ids = [r["id"] for r in csv.DictReader(handle)]
    assert ids == [f"s{i // 1000}-{i % 1000}" for i in np.flatnonzero(expected_kept)]
    assert summary["kept"] == len(ids) and summary["captions"] == 3000 and summary["pool"] == spec


@pytest.mark.parametrize(("args", "message"), [
    (["real", "frequency", "--synonyms", "SYN"], "--pool SPLIT (of --store) or --captions SHARDS"),
    (["real", "frequency", "--captions", "SPEC", "--pool", "p", "--synonyms", "SYN"], "or --captions SHARDS"),
    (["real", "frequency", "--pool", "p", "--synonyms", "SYN"], "--pool names a part of a store: give --store"),
    (["real", "frequency", "--store", "S.h5", "--pool", "p", "--synonyms", "SYN", "--cluster", "local:2"],
     "count over --captions shards"),
    (["real", "frequency", "--captions", "SPEC", "--synonyms", "SYN", "--cluster", "local:2", "--scheduler",
      "tcp://127.0.0.1:1"], "not both"),
    (["real", "frequency", "--captions", "SPEC", "--synonyms", "SYN", "--cluster", "remote:2"], "local:N"),
    (["curate", "--captions", "SPEC", "--pool", "p", "--metadata", "META", "--output", "O"], "or --captions SHARDS"),
    (["curate", "--store", "S.h5", "--pool", "p", "--metadata", "META", "--output", "O", "--scheduler", "tcp://x:1"],
     "curate --captions shards"),
    (["curate", "--captions", "NONE", "--metadata", "META", "--output", "O"], "caption shard not found"),
])
def test_cli_usage_errors_are_one_line(tmp_path, capsys, args, message):
    pq.write_table(pa.table({"caption": ["a dog"]}), tmp_path / "a.parquet")
    (tmp_path / "syn.json").write_text(json.dumps(SYNONYMS))
    (tmp_path / "meta.txt").write_text("dog\n")
    names = {"SYN": tmp_path / "syn.json", "SPEC": tmp_path / "a.parquet", "META": tmp_path / "meta.txt",
             "NONE": tmp_path / "none.parquet", "O": tmp_path / "o.csv", "S.h5": tmp_path / "s.h5"}
    code, _, err = run([str(names.get(a, a)) for a in args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_real_prompts_from_caption_shards(real_store, tmp_path, capsys):  # noqa: F811
    """fs real prompts --captions: the bank from the pool's captions as a Parquet shard equals
    the bank from the pool split (the same synonym counts pick the same names)."""
    store, key, synonyms, _ = real_store
    shard = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"caption": POOL_CAPTIONS}), shard)
    banks = []
    for name, source in (("train/real-split", ["--pool", "pool"]), ("train/real-shards", ["--captions", shard])):
        code, out, err = run(["real", "prompts", "--store", store, "--encoder", key, *source, "--synonyms", synonyms,
                              "--classes", "train", "--templates", "simple", "--name", name, "-q"], capsys)
        assert code == 0, err
        with FeatureStore(store) as reader:
            banks.append(reader.text_bank(key, name))
    assert banks[0]["names"] == banks[1]["names"] == ["cat", "dog", "Dromaius"]
    np.testing.assert_array_equal(banks[0]["weights"], banks[1]["weights"])
