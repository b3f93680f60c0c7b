"""`fs curate`: MetaCLIP curation of a captioned pool split (featurestore.corpus.curation): match captions
to metadata entries, balance with threshold t, write the kept rows as a manifest."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

import click

from cli.options import NAME, one_seed, quiet_option, seeds_option


@click.command("curate")
@click.option("--store", default=None, type=click.Path(dir_okay=False), help="The store file (.h5) of --pool.")
@click.option("--pool", default=None, type=NAME, help="Captioned split to curate.")
@click.option("--captions", "shards", default=None,
              help="Curate caption shards instead of a pool split: .tar or .parquet files (a file, a {00000..00099} "
                   "pattern or a glob); the kept rows are those one process keeps over the shards in path order.")
@click.option("--cluster", default=None, help="With --captions: one task per shard on a Dask LocalCluster: local:N.")
@click.option("--scheduler", default=None, help="With --captions: one task per shard on a Dask cluster: tcp://host:8786.")
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
def command(store: str | None, pool: str | None, shards: str | None, cluster: str | None, scheduler: str | None,
            metadata: str, t: float, matching: Literal["official", "words"], seeds: list[int], output: str, n_head: int,
            as_json: bool, quiet: bool) -> None:
    """Curate POOL's captions (or --captions shards) the MetaCLIP way (Xu et al., ICLR 2024) and write the kept rows."""
    seed, out = one_seed(seeds, "fs curate's balancing draws"), output
    if (pool is None) == (shards is None) or (pool is None) != (store is None):
        raise click.UsageError("give the captions to curate: --store STORE --pool SPLIT, or --captions SHARDS")
    if (cluster or scheduler) and shards is None:
        raise click.UsageError("--cluster/--scheduler curate --captions shards; a pool split is curated here")
    if cluster and scheduler:
        raise click.UsageError("give --cluster or --scheduler, not both")
    from featurestore.corpus.curation import read_metadata

    entries = read_metadata(metadata)
    if shards is not None:
        from featurestore.cluster import dask_client
        from featurestore.corpus.distributed import sharded_curate
        from featurestore.corpus.shards import caption_shards

        paths, hush = caption_shards(shards), quiet or as_json
        if cluster or scheduler:
            with dask_client(cluster, scheduler) as client:
                result = sharded_curate(paths, entries, t, out, seed, matching, client=client, quiet=hush)
        else:
            result = sharded_curate(paths, entries, t, out, seed, matching, quiet=hush)
        source, n_captions, n_matched, n_kept = shards, result.n_captions, result.n_matched, result.n_kept
    else:
        assert store is not None and pool is not None
        source = pool
        n_captions, n_matched, n_kept, result = _curate_pool(store, pool, entries, t, seed, matching, out,
                                                             quiet or as_json)
    summary: dict[str, Any] = {"pool": source, "metadata": metadata, "entries": len(entries), "t": t, "seed": seed,
               "matching": matching, "captions": n_captions, "matched": n_matched, "kept": n_kept,
               "entries_matched": int((result.counts_before > 0).sum()), "output": out,
               "head": result.head(n_head), "distribution": result.distribution()}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    click.echo(f"{source}: {n_captions} captions, {n_matched} match at least one of {len(entries)} entries "
               f"({100 * n_matched / max(n_captions, 1):.1f}%, {matching} matching), {n_kept} kept with t={t:g} "
               f"-> {out}")
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


def _curate_pool(store: str, pool: str, entries: list[str], t: float, seed: int, matching: Literal["official", "words"],
                 out: str, quiet: bool) -> tuple[int, int, int, Any]:
    """Curate a store's pool split in this process; write the kept rows; (captions, matched, kept, Curation)."""
    import csv

    from featurestore.corpus.curation import curate
    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore

    with FeatureStore(store) as reader:
        if pool not in reader.splits():
            raise NotFoundError(f"no split {pool!r} in {store} (it has: {', '.join(reader.splits())})")
        captions = reader.captions(pool)
        if captions is None:
            raise NotFoundError(f"split {pool!r} has no captions (extract it from shards or a manifest with captions)")
        ids, paths = reader.ids(pool), reader.paths(pool)
    result = curate(cast("Sequence[str]", captions), entries, t, seed=seed, quiet=quiet, matching=matching)  # str array
    rows = result.kept.nonzero()[0]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "caption"])
        for i in rows:
            writer.writerow([str(ids[i]), str(paths[i]), str(captions[i])])
    return len(captions), result.n_matched, int(rows.size), result
