"""`fs real ...`: REAL (Parashar et al., CVPR 2024) concept frequency of classes in a pool's
captions, and REAL-Prompt text banks (each class named by its most frequent synonym)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

import click

from cli.options import encoder_option, quiet_option, refuse_if_locked, store_option, stored_encoder_options

pool_option = click.option("--pool", required=True, help="Split whose captions stand for the pre-training data.")
synonyms_option = click.option("--synonyms", required=True, type=click.Path(dir_okay=False),
                               help="JSON file {class: [synonyms]} (see featurestore/data/synonyms-example.json).")
classes_option = click.option("--classes", default=None,
                              help="Class list in the store (default: every class the synonym file names).")


def _frequency(store: str, pool: str, synonyms: str, classes: str | None, quiet: bool):
    """(class names, ConceptFrequency) of a pool's captions."""
    from featurestore.corpus.frequency import concept_frequency
    from featurestore.errors import SourceError
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.synonyms import read_synonyms

    with FeatureStore(store) as reader:
        names = reader.class_names(classes) if classes else None
        captions = reader.captions(pool)
    if captions is None:
        raise SourceError(f"pool split {pool!r} has no captions; extract it from tar shards or a manifest "
                          "with captions")
    lists = read_synonyms(synonyms, names)
    return list(lists), concept_frequency(cast("Sequence[str]", captions), lists, quiet=quiet)  # str array


@click.group("real")
def command() -> None:
    """REAL: concept frequency in captions and REAL-Prompt banks (Parashar et al., CVPR 2024)."""


@command.command("frequency")
@store_option
@pool_option
@synonyms_option
@classes_option
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the N most frequent classes.")
@click.option("--tail", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many tail classes to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@quiet_option
def frequency(store: str, pool: str, synonyms: str, classes: str | None, top: int | None, tail: int,
              as_json: bool, quiet: bool) -> None:
    """Count the captions of POOL that mention each class's synonyms; list the tail classes."""
    names, result = _frequency(store, pool, synonyms, classes, quiet)
    rows = [{"class": name, "count": int(result.class_counts[c]), "most_frequent": result.most_frequent()[c],
             "synonyms": {s: int(n) for s, n in zip(result.synonyms[c], result.synonym_counts[c])}}
            for c, name in enumerate(names)]
    shown = result.head(top) if top else list(range(len(names)))
    tail_ids = result.tail(tail)
    if as_json:
        click.echo(json.dumps({"classes": [rows[c] for c in shown], "tail": [names[c] for c in tail_ids]}, indent=1))
        return
    width = max(len(n) for n in names)
    for c in shown:
        syns = ", ".join(f"{s}={n}" for s, n in rows[c]["synonyms"].items())
        click.echo(f"{names[c]:<{width}}  {rows[c]['count']:>9}  [{syns}]")
    click.echo(f"tail ({len(tail_ids)} rarest): " + ", ".join(f"{names[c]} ({rows[c]['count']})" for c in tail_ids))


@command.command("prompts")
@store_option
@encoder_option
@pool_option
@synonyms_option
@classes_option
@click.option("--templates", default="imagenet", show_default=True,
              help="Prompt templates: imagenet, simple, or a file with one template per line.")
@click.option("--ensemble-original", is_flag=True, help="Average in the prompts with the original class names too.")
@click.option("--name", default=None, help="Bank name (default: <classes>/real).")
@stored_encoder_options
def prompts(store: str, encoder: str, pool: str, synonyms: str, classes: str | None, templates: str,
            ensemble_original: bool, name: str | None, pretrained: str | None, device: str | None,
            precision: str | None, quiet: bool) -> None:
    """Encode REAL-Prompt prompts (most frequent synonym per class) into a text bank."""
    from featurestore.encoders import load_encoder_from_info
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.real_prompts import real_names, real_prompt_bank
    from featurestore.text.templates import get_templates
    from workflows.inputs.solver_inputs import resolve_encoder

    if classes is None:
        raise click.UsageError("fs real prompts needs --classes (the class list the prompts are for)")
    names, result = _frequency(store, pool, synonyms, classes, quiet)
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
