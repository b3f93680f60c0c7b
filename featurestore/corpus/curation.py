"""MetaCLIP curation of a captioned pool (Xu et al., "Demystifying CLIP Data", ICLR 2024; official
code github.com/facebookresearch/MetaCLIP).

Two steps over a list of metadata entries (concepts):

1. **Matching**: a caption matches an entry when it mentions it. Entry counts are the number of
   captions matching each entry.
2. **Balancing** with threshold ``t``: each entry keeps a matching caption with probability
   p_e = min(1, t / count_e) (an entry with count <= t keeps all of its captions). A caption is
   kept when any of its entries keeps it, each entry drawing independently (the official
   ``balance_sampling``), so P(keep) = 1 - prod_e (1 - p_e) over its entries. Captions that match
   no entry are dropped.

Two matching rules (``matching=``):

- ``"official"`` (the default) is the official ``substr_matching``: the caption is padded with a
  space on each side, each of the characters , . ; : ? ! and the backtick is wrapped in spaces, tab,
  newline and carriage return become spaces, and an entry matches when `` entry `` (padded with one space on
  each side) is a substring of that text. So matching is case-sensitive and token-bounded: "cat"
  matches "a cat." and "cat, dog" but not "Cat", "cats", "category", "black-cat", "#cat", "cat's",
  "(cat)", "'cat'" or "cat/dog"; "red car" does not match "red  car" (two spaces); an entry holding
  one of the wrapped characters glued to a word ("U.S.", "Washington, D.C.") never matches, since
  the caption's copy of that character is always spaced. Implemented as an index: a caption's
  spaced text split at single spaces is a token sequence, and `` entry `` occurs in it exactly
  when the entry split at single spaces occurs as consecutive tokens (the interior ones: not the
  empty first and last token of the padding).
- ``"words"`` reuses the word-sequence index of ``featurestore.corpus.frequency``
  (case-insensitive, whole ``\\w+`` words, any run of non-word characters separates them): every
  official pair and more ("Cat", "black-cat", "#cat", "cat's", "(cat)", "cat/dog", "U.S.").

Other differences from the official code, stated: captions are pool rows (one per image) and are
not de-duplicated by text as the official demo script does; draws are not Python's ``random``
stream but one uniform number per (caption, entry) pair, a hash of (seed, the caption's row in the
pool, the entry's index) (:func:`pair_uniforms`). So a caption's draw does not depend on which
process or shard holds it, nor on the order pairs are visited: curating a sharded pool on Dask
workers (``featurestore.corpus.distributed``) keeps exactly the rows one process keeps.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from featurestore.corpus.frequency import CHUNK_CAPTIONS, CaptionIndex, words
from featurestore.errors import SourceError

MATCHING = ("official", "words")
Matching = Literal["official", "words"]
_WRAPPED = ",.;:?!`"
_SPACING = str.maketrans({**{c: f" {c} " for c in _WRAPPED}, "\t": " ", "\n": " ", "\r": " "})


def spaced_tokens(caption: str) -> list[str]:
    """The official matching's view of a caption: padded with spaces, the characters , . ; : ? ! `
    wrapped in spaces, tab/newline/carriage return as spaces, split at single spaces; the interior
    tokens (empty strings stand for doubled spaces)."""
    return f" {caption.translate(_SPACING)} ".split(" ")[1:-1]


@dataclass
class CurationIndex:
    """Captions indexed for one matching rule (``"official"`` or ``"words"``, see the module doc).

    Both rules reduce to "the entry's token sequence occurs consecutively in the caption's"; they
    differ in tokenization, so both use the vectorized matcher of
    :class:`featurestore.corpus.frequency.CaptionIndex`. For the official rule its vocabulary is
    keyed by the decimal token id (a ``\\w+`` word the matcher looks up unchanged), and ``tokens``
    maps an exact official token to that id.
    """

    matching: Matching
    index: CaptionIndex
    tokens: dict[str, int] | None = None

    @property
    def n_captions(self) -> int:
        return self.index.n_captions

    @classmethod
    def build(cls, captions: Sequence[str | None] | np.ndarray, matching: Matching = "official",
              quiet: bool = True) -> CurationIndex:
        """Tokenize ``captions`` once for ``matching`` (``None`` counts as an empty caption)."""
        if matching not in MATCHING:
            raise SourceError(f"unknown matching {matching!r} (choose from: {', '.join(MATCHING)})")
        if matching == "words":
            return cls("words", CaptionIndex.build(captions, quiet=quiet))
        from tqdm.auto import tqdm

        vocab: dict[str, int] = {}
        parts: list[np.ndarray] = []
        lengths = np.zeros(len(captions), np.int64)
        with tqdm(total=len(captions), desc="index captions", unit="caption", disable=quiet) as bar:
            for start in range(0, len(captions), CHUNK_CAPTIONS):
                found = [spaced_tokens("" if c is None else str(c)) for c in captions[start:start + CHUNK_CAPTIONS]]
                lengths[start:start + len(found)] = [len(f) for f in found]
                ids = (vocab.setdefault(t, len(vocab) + 1) for f in found for t in f)  # id 0: the separator
                parts.append(np.fromiter(ids, dtype=np.int64, count=int(lengths[start:start + len(found)].sum())))
                bar.update(len(found))
        words_vocab = {"\x1f": 0, **{str(v): v for v in vocab.values()}}
        tokens = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        index = CaptionIndex(words_vocab, tokens, np.repeat(np.arange(len(captions), dtype=np.int64), lengths),
                             len(captions))
        return cls("official", index, vocab)

    def match(self, entries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Unique (caption, entry) pairs where the caption matches the entry, sorted by entry;
        ``(captions, entry_ids)`` int64 arrays."""
        if self.tokens is None:
            return self.index.match(entries)
        keyed = []
        for entry in entries:
            ids = [self.tokens.get(t) for t in entry.split(" ")]
            keyed.append("" if None in ids else " ".join(map(str, ids)))  # "": a token no caption has
        return self.index.match(keyed)


def read_metadata(path: str | Path) -> list[str]:
    """Entries of a metadata file: a JSON list of strings (MetaCLIP's metadata.json) or a text file
    with one entry per line (blank lines skipped). An entry with no word is refused by line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise SourceError(f"{path}: expected a JSON list of strings")
        lines = list(enumerate(entries, 1))
    else:
        lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    for number, entry in lines:
        if not words(entry):
            raise SourceError(f"{path}: entry {number} ({entry!r}) has no word to match")
    if not lines:
        raise SourceError(f"{path}: no metadata entries")
    return [entry for _, entry in lines]


def entry_probabilities(counts: np.ndarray, t: float) -> np.ndarray:
    """p_e = min(1, t / count_e); entries with no match get 1 (they keep nothing anyway)."""
    if not t > 0:
        raise SourceError(f"the balancing threshold t must be > 0, got {t}")
    counts = np.asarray(counts, np.float64)
    return np.minimum(1.0, t / np.maximum(counts, 1.0))


def keep_probability(captions: np.ndarray, entries: np.ndarray, probabilities: np.ndarray,
                     n_captions: int) -> np.ndarray:
    """P(keep) per caption: 1 - prod over its matched entries of (1 - p_e); 0 for no match."""
    p = probabilities[entries]
    certain_pair = p >= 1.0  # log(1 - 1) is -inf: such captions are kept for sure
    total = np.bincount(captions, weights=np.log1p(-np.where(certain_pair, 0.0, p)), minlength=n_captions)
    matched = np.bincount(captions, minlength=n_captions) > 0
    certain = np.bincount(captions, weights=certain_pair, minlength=n_captions) > 0
    return np.where(certain, 1.0, np.where(matched, -np.expm1(total), 0.0))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijection of uint64 with full avalanche), elementwise."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def pair_uniforms(rows: np.ndarray, entries: np.ndarray, seed: int) -> np.ndarray:
    """u in [0, 1) for each (pool row, entry index) pair, a function of (seed, row, entry) only:
    SplitMix64 of the seed-keyed row, mixed again with the entry; the top 53 bits make u."""
    key = np.array([(seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK], np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(rows).astype(np.uint64) * _GOLDEN + _mix(key))
        h = _mix(h ^ (np.asarray(entries).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F) + key))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def balanced_sample(captions: np.ndarray, entries: np.ndarray, probabilities: np.ndarray,
                    n_captions: int, seed: int = 0, first_row: int = 0) -> np.ndarray:
    """Boolean keep mask (n_captions,): every (caption, entry) pair draws u (:func:`pair_uniforms`
    of the caption's pool row ``first_row + caption``) and keeps its caption when u < p_e."""
    hit = pair_uniforms(captions + first_row, entries, seed) < probabilities[entries]
    return np.bincount(captions[hit], minlength=n_captions) > 0


@dataclass
class Curation:
    """Result of ``curate``: the keep mask over captions, entry counts before and after, which
    captions match any entry, the matched (caption, entry) pairs (``pairs``: two int64 arrays,
    sorted by entry), the threshold and the matching rule."""

    entries: list[str]
    kept: np.ndarray
    counts_before: np.ndarray
    counts_after: np.ndarray
    matched: np.ndarray
    t: float
    pairs: tuple[np.ndarray, np.ndarray]
    matching: Matching = "official"

    @property
    def n_matched(self) -> int:
        """Captions matching at least one entry."""
        return int(self.matched.sum())

    def distribution(self, edges: Sequence[int] = (1, 10, 100, 1_000, 10_000, 100_000)) -> list[dict]:
        """Entries bucketed by their count before balancing (see :func:`count_distribution`)."""
        return count_distribution(self.counts_before, self.counts_after, edges)

    def head(self, n: int = 10) -> list[dict]:
        """The ``n`` entries with the most matches before balancing, with their counts after."""
        return head_entries(self.entries, self.counts_before, self.counts_after, n)


def count_distribution(before: np.ndarray, after: np.ndarray,
                       edges: Sequence[int] = (1, 10, 100, 1_000, 10_000, 100_000)) -> list[dict]:
    """Entries bucketed by their count before balancing: per bucket, how many entries, and
    their summed counts before and after (the head/tail picture)."""
    bounds = list(edges) + [np.inf]
    rows = []
    for lo, hi in itertools.pairwise(bounds):
        inside = (before >= lo) & (before < hi)
        label = f"{lo}-{int(hi) - 1}" if np.isfinite(hi) else f">={lo}"
        rows.append({"counts": label, "entries": int(inside.sum()),
                     "matches_before": int(before[inside].sum()), "matches_after": int(after[inside].sum())})
    return rows


def head_entries(entries: Sequence[str], before: np.ndarray, after: np.ndarray, n: int = 10) -> list[dict]:
    """The ``n`` entries with the most matches before balancing (entry order on ties), with their
    counts after; entries with no match are left out."""
    order = np.argsort(-before, kind="stable")[:n]
    return [{"entry": entries[i], "before": int(before[i]), "after": int(after[i])} for i in order if before[i] > 0]


def curate(captions: Sequence[str] | CurationIndex, entries: Sequence[str], t: float, seed: int = 0,
           quiet: bool = True, matching: Matching = "official") -> Curation:
    """Match ``captions`` against ``entries`` by ``matching`` (``"official"``: MetaCLIP's
    ``substr_matching``; ``"words"``: whole words, any case; see the module doc) and balance with
    threshold ``t``. A prebuilt :class:`CurationIndex` must have been built for ``matching``."""
    from tqdm.auto import tqdm

    probabilities = entry_probabilities(np.ones(1), t)  # checks t before the long steps
    if isinstance(captions, CurationIndex):
        if captions.matching != matching:
            raise SourceError(f"the caption index was built for {captions.matching!r} matching, not {matching!r}")
        index = captions
    else:
        index = CurationIndex.build(captions, matching, quiet=quiet)
    K, N = len(entries), index.n_captions
    with tqdm(total=2, desc=f"match {K} entries, balance", unit="step", disable=quiet) as bar:
        caps, ids = index.match(list(entries))
        bar.update(1)
        before = np.bincount(ids, minlength=K).astype(np.int64)
        probabilities = entry_probabilities(before, t)
        kept = balanced_sample(caps, ids, probabilities, N, seed)
        after = np.bincount(ids[kept[caps]], minlength=K).astype(np.int64)
        matched = np.bincount(caps, minlength=N) > 0
        bar.update(1)
    return Curation(list(entries), kept, before, after, matched, float(t), (caps, ids), matching)
