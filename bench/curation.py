"""MetaCLIP curation throughput: featurestore.corpus.curation (caption index + vectorized matching +
balancing) against a plain Python loop over captions x entries, measured in one run.

The synthetic pool: captions of 6-20 words drawn from a Zipf-distributed vocabulary of 1M words
(a long tail, as in web alt-text); the metadata: distinct single words (70%, uniform over the
vocabulary) and two-word phrases (30%, a Zipf head word then a uniform word), so a few head entries
match many captions and most tail entries few or none (the MetaCLIP situation: WordNet synsets,
Wikipedia uni/bi-grams and titles).

The loop is what the official code does per caption (``substr_matching``, the default rule):
space the caption out and test `` entry `` as a substring for every entry; ``--matching words``
times the whole-word rule instead, whose loop builds the set of the caption's word n-grams and
tests each entry's word tuple against it. The loop's rate is measured on a sample of captions
(``--loop-captions``) against all entries and reported as captions/s, as is the index's on the
whole pool. Both are checked to give the same matches on the sample.

The two rules are then compared on an edge-case pool (``--edge-captions``, default 2,000):
captions that mention entries as web alt-text does, in other letter case, after a hyphen, as
hashtags, possessives, in parentheses, quotes, around slashes, before punctuation, and "U.S.".
It prints the (caption, entry) pairs each rule finds, the official ones checked against the
plain loop.

Usage: python bench/curation.py [--captions 100000] [--entries 50000] [--loop-captions 200] [--t 20000]
       python bench/curation.py --full      # the issue's size: 1M captions x 500k entries
Defaults are scaled down for 2 shared cores (about a minute); --full needs a few GB of RAM.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder is sys.path[0], and bench/solvers.py would hide the solvers package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from featurestore.corpus.curation import CurationIndex, Matching, curate, spaced_tokens  # noqa: E402
from featurestore.corpus.frequency import words  # noqa: E402

VOCAB = 1_000_000


def synthetic(n_captions: int, n_entries: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(VOCAB)])
    lengths = rng.integers(6, 21, n_captions)
    ids = np.minimum(rng.zipf(1.3, lengths.sum()) - 1, VOCAB - 1)
    text = vocab[ids]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    captions = [" ".join(text[a:b]) for a, b in itertools.pairwise(bounds)]
    # Entries: distinct single words (70%, uniform over the vocabulary, so most are tail words)
    # and two-word phrases (a Zipf head word + a uniform word): rarely repeated.
    singles = vocab[rng.choice(VOCAB, min(int(0.7 * n_entries), VOCAB), replace=False)]
    n_pairs = n_entries - len(singles)
    heads = vocab[np.minimum(rng.zipf(1.3, n_pairs) - 1, VOCAB - 1)]
    tails = vocab[rng.integers(0, VOCAB, n_pairs)]
    entries = list(dict.fromkeys([*singles.tolist(), *(f"{a} {b}" for a, b in zip(heads, tails))]))
    return captions, entries


def loop_match(captions: list[str], entries: list[str], matching: Matching = "official") -> list[tuple[int, int]]:
    """The plain loop. Official: per caption, its spaced text; per entry, a substring test of the
    entry between spaces. Words: per caption, its word n-grams as a set; per entry, a membership
    test."""
    if matching == "official":
        padded = [f" {e} " for e in entries]
        found = []
        for c, caption in enumerate(captions):
            text = " " + " ".join(spaced_tokens(caption)) + " "
            found.extend((c, k) for k, e in enumerate(padded) if e in text)
        return found
    tuples = [tuple(words(e)) for e in entries]
    longest = max(len(t) for t in tuples)
    pairs = []
    for c, caption in enumerate(captions):
        ws = words(caption)
        grams = {tuple(ws[i:i + n]) for n in range(1, longest + 1) for i in range(len(ws) - n + 1)}
        for k, t in enumerate(tuples):
            if t in grams:
                pairs.append((c, k))
    return pairs


def edge_pool(n_captions: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Captions that mention entries in the forms web alt-text has (see the module doc)."""
    rng = np.random.default_rng(seed)
    nouns = ["cat", "dog", "car", "tree", "house", "beach", "sea lion", "red car", "coffee", "river"]
    forms = ["{}", "{}", "{}", "{}.", "{},", "{}!", "{}?", "{}:", "{};", "`{}`", "{}\n",  # official matches
             "{C}", "{U}", "black-{}", "{}-shaped", "#{}", "{}'s", "({})", "'{}'", '"{}"', "{}/{o}",  # words only
             "{}s", "{}ish"]  # neither
    fillers = ["a photo of", "my", "the", "look at this", "new", "best", "view of", "with"]
    captions = []
    for _ in range(n_captions):
        parts = [str(rng.choice(fillers))]
        for _ in range(rng.integers(1, 4)):
            noun, other = rng.choice(nouns, 2, replace=False)
            form = str(rng.choice(forms))
            parts.append(form.format(noun, C=noun.capitalize(), U=noun.upper(), o=other))
            parts.append(str(rng.choice(fillers)))
        if rng.random() < 0.05:
            parts.append("in the U.S.")
        captions.append(" ".join(parts))
    return captions, nouns + ["U.S."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--loop-captions", type=int, default=200)
    parser.add_argument("--t", type=float, default=20_000)
    parser.add_argument("--full", action="store_true", help="1M captions x 500k entries")
    parser.add_argument("--matching", choices=["official", "words"], default="official")
    parser.add_argument("--edge-captions", type=int, default=2000)
    args = parser.parse_args()
    if args.full:
        args.captions, args.entries = 1_000_000, 500_000
    start = time.perf_counter()
    captions, entries = synthetic(args.captions, args.entries)
    made = time.perf_counter() - start
    print(f"pool: {len(captions)} captions, {len(entries)} unique entries (made in {made:.1f} s)")

    start = time.perf_counter()
    index = CurationIndex.build(captions, args.matching)
    built = time.perf_counter() - start
    result = curate(index, entries, t=args.t, matching=args.matching)
    total = time.perf_counter() - start
    index_rate = len(captions) / total
    print(f"index ({args.matching} matching): build {built:.1f} s, match + balance {total - built:.1f} s; "
          f"{result.n_matched} captions matched, "
          f"{int(result.kept.sum())} kept at t={args.t:g}; {index_rate:,.0f} captions/s")

    sample = captions[:args.loop_captions]
    start = time.perf_counter()
    pairs = loop_match(sample, entries, args.matching)
    loop_time = time.perf_counter() - start
    loop_rate = len(sample) / loop_time
    print(f"plain Python loop: {len(sample)} captions x {len(entries)} entries in {loop_time:.1f} s; "
          f"{loop_rate:,.0f} captions/s")
    caps, ids = CurationIndex.build(sample, args.matching).match(entries)
    same = sorted(pairs) == sorted(zip(caps.tolist(), ids.tolist()))
    print(f"same matches on the sample: {same}")
    print(f"ratio (index captions/s / loop captions/s): {index_rate / loop_rate:,.0f}x")

    edge, nouns = edge_pool(args.edge_captions)
    found = {}
    for rule in ("official", "words"):
        caps, ids = CurationIndex.build(edge, rule).match(nouns)
        found[rule] = set(zip(caps.tolist(), ids.tolist()))
    official_loop = set(loop_match(edge, nouns, "official"))
    extra = found["words"] - found["official"]
    print(f"edge-case pool: {len(edge)} captions x {len(nouns)} entries; official matching {len(found['official'])} "
          f"pairs (the plain official loop: {len(official_loop)}, same: {official_loop == found['official']}); "
          f"whole-word matching {len(found['words'])} pairs, {len(extra)} more, "
          f"missing {len(found['official'] - found['words'])}; 'U.S.': "
          f"{sum(k == len(nouns) - 1 for _, k in found['official'])} official vs "
          f"{sum(k == len(nouns) - 1 for _, k in found['words'])} whole-word")
    if not same or official_loop != found["official"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
