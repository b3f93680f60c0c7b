"""`fs curate`: MetaCLIP curation of a captioned pool split (featurestore.corpus.curation): match captions
to metadata entries, balance with threshold t, write the kept rows as a manifest."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

import click

from cli.options import NAME, one_seed, quiet_option, seeds_option, store_option


@click.command("curate")
@store_option
@click.option("--pool", required=True, type=NAME, help="Captioned split to curate.")
@click.option("--metadata", required=True, type=click.Path(dir_okay=False),
              help="Metadata entries: a text file with one entry per line, or a JSON list (MetaCLIP's metadata.json).")
@click.option("--t", "t", type=click.FloatRange(min=0, min_open=True), default=20000, show_default=True,
              help="Balancing threshold: an entry matched by at most t captions keeps them all; above, each with "
                   "probability t / count.")
@click.option("--matching", type=click.Choice(["official", "words"]), default="official", show_default=True,
              help="official: MetaCLIP's substr_matching: case-sensitive; the entry must stand between spaces once "
                   "the caption's , . ; : ? ! ` are spaced out, so 'cat' does not match 'Cat', 'black-cat', '#cat' or "
                   "\"cat's\", and 'U.S.' never matches. words: whole words in any case, any punctuation between.")
@seeds_option("Seed of the balancing draws (one value).")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="CSV manifest of the kept rows (id, path, caption), as fs extract --manifest reads.")
@click.option("--head", "n_head", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many head entries to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@quiet_option
def command(store: str, pool: str, metadata: str, t: float, matching: Literal["official", "words"], seeds: list[int],
            output: str, n_head: int, as_json: bool, quiet: bool) -> None:
    """Curate POOL's captions the MetaCLIP way (Xu et al., ICLR 2024) and write the kept rows."""
    import csv

    from featurestore.corpus.curation import curate, read_metadata
    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore

    seed, out = one_seed(seeds, "fs curate's balancing draws"), output
    entries = read_metadata(metadata)
    with FeatureStore(store) as reader:
        if pool not in reader.splits():
            raise NotFoundError(f"no split {pool!r} in {store} (it has: {', '.join(reader.splits())})")
        captions = reader.captions(pool)
        if captions is None:
            raise NotFoundError(f"split {pool!r} has no captions (extract it from shards or a manifest with captions)")
        ids, paths = reader.ids(pool), reader.paths(pool)
    result = curate(cast("Sequence[str]", captions), entries, t, seed=seed, quiet=quiet or as_json,  # str array
                    matching=matching)
    rows = result.kept.nonzero()[0]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "caption"])
        for i in rows:
            writer.writerow([str(ids[i]), str(paths[i]), str(captions[i])])
    summary: dict[str, Any] = {"pool": pool, "metadata": metadata, "entries": len(entries), "t": t, "seed": seed,
               "matching": matching, "captions": len(captions), "matched": result.n_matched, "kept": int(rows.size),
               "entries_matched": int((result.counts_before > 0).sum()), "output": out,
               "head": result.head(n_head), "distribution": result.distribution()}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    n = max(len(captions), 1)
    click.echo(f"{pool}: {len(captions)} captions, {result.n_matched} match at least one of {len(entries)} entries "
               f"({100 * result.n_matched / n:.1f}%, {matching} matching), {rows.size} kept with t={t:g} -> {out}")
    if summary["head"]:
        width = max(len(h["entry"]) for h in summary["head"])
        click.echo("head entries (matches before -> after):")
        for h in summary["head"]:
            click.echo(f"  {h['entry']:<{width}}  {h['before']:>9} -> {h['after']:>9}")
    click.echo("distribution by an entry's match count (entries; matches before -> after):")
    for row in summary["distribution"]:
        if row["entries"]:
            noun = "entry" if row["entries"] == 1 else "entries"
            click.echo(f"  {row['counts']:>13}: {row['entries']:>7} {noun:<7}; "
                       f"{row['matches_before']:>9} -> {row['matches_after']:>9}")
    unmatched = len(entries) - summary["entries_matched"]
    if unmatched:
        click.echo(f"  {unmatched} {'entry matches' if unmatched == 1 else 'entries match'} no caption")
