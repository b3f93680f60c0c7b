"""`fs real ...`: REAL (Parashar et al., CVPR 2024) concept frequency of classes in a pool's
captions, and REAL-Prompt text banks (each class named by its most frequent synonym)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

import click

from cli.options import encoder_option, quiet_option, refuse_if_locked, store_option, stored_encoder_options

pool_option = click.option("--pool", default=None, help="Split whose captions stand for the pre-training data.")
captions_option = click.option("--captions", default=None,
                               help="Count over caption shards instead of a pool split: .tar or .parquet files "
                                    "(a file, a {00000..00099} pattern or a glob).")
cluster_option = click.option("--cluster", default=None, help="With --captions: one task per shard on a Dask "
                                                              "LocalCluster of N worker processes: local:N.")
scheduler_option = click.option("--scheduler", default=None,
                                help="With --captions: one task per shard on a Dask cluster: tcp://host:8786.")
synonyms_option = click.option("--synonyms", required=True, type=click.Path(dir_okay=False),
                               help="JSON file {class: [synonyms]} (see featurestore/data/synonyms-example.json).")
classes_option = click.option("--classes", default=None,
                              help="Class list in the store (default: every class the synonym file names).")


def _frequency(store: str | None, pool: str | None, synonyms: str, classes: str | None, quiet: bool,
               shards: tuple[str | None, str | None, str | None] = (None, None, None)):
    """(class names, ConceptFrequency, captions counted) of a pool split or of caption shards
    (``shards``: the --captions spec, --cluster, --scheduler)."""
    from featurestore.corpus.frequency import concept_frequency
    from featurestore.errors import SourceError
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.synonyms import read_synonyms

    spec, cluster, scheduler = shards
    if (pool is None) == (spec is None):
        raise click.UsageError("give the captions to count: --pool SPLIT (of --store) or --captions SHARDS")
    if (cluster or scheduler) and spec is None:
        raise click.UsageError("--cluster/--scheduler count over --captions shards; a pool split is counted here")
    if cluster and scheduler:
        raise click.UsageError("give --cluster or --scheduler, not both")
    if store is None and (pool is not None or classes is not None):
        raise click.UsageError(f"{'--pool' if pool is not None else '--classes'} names a part of a store: give --store")
    names, captions = None, None
    if store is not None and (classes or pool is not None):
        with FeatureStore(store) as reader:
            names = reader.class_names(classes) if classes else None
            captions = reader.captions(pool) if pool is not None else None
    lists = read_synonyms(synonyms, names)
    if spec is not None:
        from featurestore.cluster import dask_client
        from featurestore.corpus.distributed import sharded_frequency
        from featurestore.corpus.shards import caption_shards

        paths = caption_shards(spec)
        if not (cluster or scheduler):
            return (list(lists), *sharded_frequency(paths, lists, quiet=quiet))
        with dask_client(cluster, scheduler) as client:
            return (list(lists), *sharded_frequency(paths, lists, client=client, quiet=quiet))
    if captions is None:
        raise SourceError(f"pool split {pool!r} has no captions; extract it from tar shards or a manifest "
                          "with captions")
    return list(lists), concept_frequency(cast("Sequence[str]", captions), lists, quiet=quiet), len(captions)


@click.group("real")
def command() -> None:
    """REAL: concept frequency in captions and REAL-Prompt banks (Parashar et al., CVPR 2024)."""


@command.command("frequency")
@click.option("--store", default=None, type=click.Path(dir_okay=False), help="The store file (.h5) of --pool.")
@pool_option
@captions_option
@cluster_option
@scheduler_option
@synonyms_option
@classes_option
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the N most frequent classes.")
@click.option("--tail", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many tail classes to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@quiet_option
def frequency(store: str | None, pool: str | None, captions: str | None, cluster: str | None, scheduler: str | None,
              synonyms: str, classes: str | None, top: int | None, tail: int, as_json: bool, quiet: bool) -> None:
    """Count the captions of POOL (or of --captions shards, on Dask with --cluster/--scheduler) that
    mention each class's synonyms; list the tail classes."""
    names, result, n = _frequency(store, pool, synonyms, classes, quiet or as_json, (captions, cluster, scheduler))
    rows = [{"class": name, "count": int(result.class_counts[c]), "most_frequent": result.most_frequent()[c],
             "synonyms": {s: int(n) for s, n in zip(result.synonyms[c], result.synonym_counts[c])}}
            for c, name in enumerate(names)]
    shown = result.head(top) if top else list(range(len(names)))
    tail_ids = result.tail(tail)
    if as_json:
        shown_rows, tail_names = [rows[c] for c in shown], [names[c] for c in tail_ids]
        click.echo(json.dumps({"captions": n, "classes": shown_rows, "tail": tail_names}, indent=1))
        return
    click.echo(f"{n} captions counted")
    width = max(len(n) for n in names)
    for c in shown:
        syns = ", ".join(f"{s}={n}" for s, n in rows[c]["synonyms"].items())
        click.echo(f"{names[c]:<{width}}  {rows[c]['count']:>9}  [{syns}]")
    click.echo(f"tail ({len(tail_ids)} rarest): " + ", ".join(f"{names[c]} ({rows[c]['count']})" for c in tail_ids))


@command.command("prompts")
@store_option
@encoder_option
@pool_option
@captions_option
@cluster_option
@scheduler_option
@synonyms_option
@classes_option
@click.option("--templates", default="imagenet", show_default=True,
              help="Prompt templates: imagenet, simple, or a file with one template per line.")
@click.option("--ensemble-original", is_flag=True, help="Average in the prompts with the original class names too.")
@click.option("--name", default=None, help="Bank name (default: <classes>/real).")
@stored_encoder_options
def prompts(store: str, encoder: str, pool: str | None, captions: str | None, cluster: str | None,
            scheduler: str | None, synonyms: str, classes: str | None, templates: str, ensemble_original: bool,
            name: str | None, pretrained: str | None, device: str | None, precision: str | None, quiet: bool) -> None:
    """Encode REAL-Prompt prompts (most frequent synonym per class) into a text bank."""
    from featurestore.encoders import load_encoder_from_info
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.real_prompts import real_names, real_prompt_bank
    from featurestore.text.templates import get_templates
    from workflows.inputs.solver_inputs import resolve_encoder

    if classes is None:
        raise click.UsageError("fs real prompts needs --classes (the class list the prompts are for)")
    names, result, _ = _frequency(store, pool, synonyms, classes, quiet, (captions, cluster, scheduler))
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
    refuse_if_locked(store)
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    chosen = real_names(names, result.synonyms, result.synonym_counts)
    bank = real_prompt_bank(model, names, chosen, get_templates(templates), ensemble_original)
    bank_name = name or f"{classes}/real"
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank_name, bank.pop("weights"), bank.pop("strings"), **bank)
    renamed = [f"{a} -> {b}" for a, b in zip(names, chosen) if a != b]
    click.echo(f"text bank {bank_name!r}: {len(names)} classes, {len(renamed)} renamed"
               + (f" ({', '.join(renamed[:10])}{' ...' if len(renamed) > 10 else ''})" if renamed else ""))
