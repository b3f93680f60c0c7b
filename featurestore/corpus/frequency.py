"""Concept frequency in a caption corpus: how many captions mention each synonym of each class.

Parashar et al., "The Neglected Tails of Vision-Language Models", CVPR 2024 (official code
github.com/shubhamprshr27/NeglectedTailsVLM) estimate a concept's frequency in the pre-training
data by counting the captions that mention any of its synonyms.

Matching rule: captions and synonyms are lower-cased and split into words (``\\w+`` runs); a
caption mentions a synonym when the synonym's words occur in it consecutively. This equals a
case-insensitive regex with word boundaries where any run of non-word characters separates the
words (``sea lion`` matches "Sea-Lion!" and "sea  lion", not "sealion" or "sea lions").

It is an index, not a loop over captions x synonyms: captions are tokenized once (in chunks,
joined into one string per chunk) into integer word ids; a phrase is matched by walking a
prefix table level by level over all token positions at once with ``np.searchsorted``, keeping
only positions whose prefix is still alive. Matching K phrases costs a few vectorized passes
over the token array, whatever K is.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featurestore.errors import SourceError

WORD = re.compile(r"\w+")
_SEPARATOR = "\x1f"
_TOKEN_OR_SEPARATOR = re.compile(r"\w+|\x1f")
CHUNK_CAPTIONS = 100_000


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (``\\w+`` runs), the unit of matching."""
    return WORD.findall(text.lower())


@dataclass
class CaptionIndex:
    """Captions as one array of word ids (``tokens``) with the caption of each token (``caption_of``).

    ``vocab`` maps a lower-cased word to its id. Build with :meth:`build`; query with
    :meth:`match` / :meth:`document_frequency`.
    """

    vocab: dict[str, int]
    tokens: np.ndarray
    caption_of: np.ndarray
    n_captions: int

    @classmethod
    def build(cls, captions: Sequence[str | None] | np.ndarray, quiet: bool = True) -> CaptionIndex:
        """Tokenize ``captions`` once (``None`` counts as an empty caption)."""
        from tqdm.auto import tqdm

        vocab: dict[str, int] = {_SEPARATOR: 0}
        token_parts: list[np.ndarray] = []
        caption_parts: list[np.ndarray] = []
        n = len(captions)
        with tqdm(total=n, desc="index captions", unit="caption", disable=quiet) as bar:
            for start in range(0, n, CHUNK_CAPTIONS):
                chunk = ["" if c is None else str(c) for c in captions[start:start + CHUNK_CAPTIONS]]
                text = _SEPARATOR.join(chunk)
                if text.count(_SEPARATOR) != len(chunk) - 1:
                    text = _SEPARATOR.join(c.replace(_SEPARATOR, " ") for c in chunk)
                found = _TOKEN_OR_SEPARATOR.findall(text.lower())
                ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in found), dtype=np.int64,
                                  count=len(found))
                separators = ids == 0
                caption = start + np.cumsum(separators)
                token_parts.append(ids[~separators])
                caption_parts.append(caption[~separators])
                bar.update(len(chunk))
        tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, np.int64)
        caption_of = np.concatenate(caption_parts) if caption_parts else np.zeros(0, np.int64)
        return cls(vocab, tokens, caption_of.astype(np.int64), n)

    def match(self, phrases: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Unique (caption, phrase) pairs where the caption mentions the phrase, sorted by phrase.

        Returns ``(captions, phrase_ids)`` int64 arrays; phrase ids index ``phrases``. A phrase
        with no word (e.g. "!!") matches nothing.
        """
        unique: dict[tuple[int, ...], list[int]] = {}
        for k, phrase in enumerate(phrases):
            ws = words(phrase)
            if ws and all(w in self.vocab for w in ws):
                unique.setdefault(tuple(self.vocab[w] for w in ws), []).append(k)
        if not unique or len(self.tokens) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        hit_caps: list[np.ndarray] = []
        hit_keys: list[np.ndarray] = []
        n_tokens = len(self.tokens)
        base = np.int64(len(self.vocab))
        positions = np.arange(n_tokens, dtype=np.int64)
        state = self.tokens
        for level, (keys, ids, (done_prefix, done_key)) in enumerate(_prefix_levels(list(unique), int(base))):
            if level == 0:
                state = _lookup(keys, ids, state)
            else:
                nxt = positions + level
                inside = nxt < n_tokens
                positions, state, nxt = positions[inside], state[inside], nxt[inside]
                same = self.caption_of[nxt] == self.caption_of[positions]
                positions, state, nxt = positions[same], state[same], nxt[same]
                state = _lookup(keys, ids, state * base + self.tokens[nxt])
            alive = state >= 0
            positions, state = positions[alive], state[alive]
            key = _lookup(done_prefix, done_key, state)
            hit = key >= 0
            hit_caps.append(self.caption_of[positions[hit]])
            hit_keys.append(key[hit])
        caps, keys = np.concatenate(hit_caps), np.concatenate(hit_keys)
        pair = np.unique(keys * np.int64(self.n_captions + 1) + caps)
        keys, caps = pair // (self.n_captions + 1), pair % (self.n_captions + 1)
        groups = list(unique.values())
        sizes = np.array([len(g) for g in groups], np.int64)
        flat = np.array([k for g in groups for k in g], np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        repeat = sizes[keys]
        offsets = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        ids = flat[np.repeat(starts[keys], repeat) + offsets]
        caps = np.repeat(caps, repeat)
        order = np.lexsort((caps, ids))
        return caps[order], ids[order]

    def document_frequency(self, phrases: Sequence[str]) -> np.ndarray:
        """For each phrase, how many captions mention it (int64, len(phrases))."""
        _, ids = self.match(phrases)
        return np.bincount(ids, minlength=len(phrases)).astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == q] for each q, or -1 (``keys`` sorted, unique)."""
    if len(keys) == 0 or len(query) == 0:
        return np.full(len(query), -1, np.int64)
    where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[where] == query, values[where], -1)


def _prefix_levels(phrases: list[tuple[int, ...]],
                   base: int) -> list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Per phrase length level L: sorted transition keys, the prefix id each leads to, and the
    (sorted prefix ids, phrase key index) of prefixes that are whole phrases.

    Level 0 keys are token ids; level L > 0 keys are ``prev_prefix * base + token`` where
    ``base`` is larger than any token id. Prefix ids stay small, so keys never overflow int64.
    """
    levels = []
    prefix_of: dict[tuple[int, ...], int] = {}
    longest = max(len(p) for p in phrases)
    for level in range(longest):
        transitions: dict[int, int] = {}
        for p in phrases:
            if len(p) <= level:
                continue
            prefix = p[:level + 1]
            if prefix not in prefix_of:
                prefix_of[prefix] = len(prefix_of)
            key = p[0] if level == 0 else prefix_of[p[:level]] * base + p[level]
            transitions[key] = prefix_of[prefix]
        done = sorted((prefix_of[p], k) for k, p in enumerate(phrases) if len(p) == level + 1)
        keys = np.array(sorted(transitions), dtype=np.int64)
        ids = np.array([transitions[k] for k in keys.tolist()], dtype=np.int64)
        done_arr = (np.array([d[0] for d in done], np.int64), np.array([d[1] for d in done], np.int64))
        levels.append((keys, ids, done_arr))
    return levels


@dataclass
class ConceptFrequency:
    """Counts for classes with synonym lists: ``synonym_counts[c][j]`` captions mention synonym
    j of class c; ``class_counts[c]`` captions mention any synonym of class c."""

    classes: list[str]
    synonyms: list[list[str]]
    synonym_counts: list[np.ndarray]
    class_counts: np.ndarray

    def most_frequent(self) -> list[str]:
        """Each class's most mentioned synonym (the first listed on ties)."""
        return [syns[int(np.argmax(counts))] for syns, counts in zip(self.synonyms, self.synonym_counts)]

    def tail(self, n: int) -> list[int]:
        """The ``n`` least mentioned classes, rarest first (class order on ties)."""
        return np.argsort(self.class_counts, kind="stable")[:n].tolist()

    def head(self, n: int) -> list[int]:
        """The ``n`` most mentioned classes, most frequent first (class order on ties)."""
        return np.argsort(-self.class_counts, kind="stable")[:n].tolist()


def class_matches(index: CaptionIndex,
                  synonyms: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Match every synonym once. Returns unique (caption, class) pairs sorted by class, and per
    class the per-synonym caption counts. Classes keep the dict's order."""
    phrases = [s for syns in synonyms.values() for s in syns]
    owner = np.repeat(np.arange(len(synonyms)), [len(s) for s in synonyms.values()])
    caps, ids = index.match(phrases)
    per_phrase = np.bincount(ids, minlength=len(phrases))
    bounds = np.cumsum([0] + [len(s) for s in synonyms.values()])
    synonym_counts = [per_phrase[a:b].astype(np.int64) for a, b in itertools.pairwise(bounds)]
    stride = np.int64(index.n_captions + 1)
    pairs = np.unique(owner[ids].astype(np.int64) * stride + caps)  # one int64 key per pair: a 1-D sort
    return pairs % stride, pairs // stride, synonym_counts


def concept_frequency(captions: Sequence[str] | CaptionIndex, synonyms: dict[str, list[str]],
                      quiet: bool = True) -> ConceptFrequency:
    """Count, for each class and each of its synonyms, the captions that mention it."""
    if not synonyms:
        raise SourceError("no classes with synonyms to count")
    index = captions if isinstance(captions, CaptionIndex) else CaptionIndex.build(captions, quiet=quiet)
    _, cls, synonym_counts = class_matches(index, synonyms)
    class_counts = np.bincount(cls, minlength=len(synonyms)).astype(np.int64)
    return ConceptFrequency(list(synonyms), [list(s) for s in synonyms.values()], synonym_counts, class_counts)
