"""`fs info`: what a store holds (splits, encoders, text banks, models, indexes)."""
from __future__ import annotations

import json

import click

from cli.options import store_option

ERRORS_SHOWN = 5  # reasons for unreadable rows listed per split (--json lists more)


@click.command("info")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--errors", "list_errors", is_flag=True,
              help="List every unreadable row instead: split, id, path and the reason it was not decoded.")
@click.option("--split", default=None, help="With --errors: only this split.")
def command(store: str, as_json: bool, list_errors: bool, split: str | None) -> None:
    """Show what the store holds."""
    if split is not None and not list_errors:
        raise click.UsageError("--split goes with --errors")
    if list_errors:
        _print_errors(store, split, as_json)
        return
    from featurestore.store.summary import summarize

    summary = summarize(store)
    from featurestore.index.store_index import describe_indexes

    summary["index_details"] = describe_indexes(store)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['path']}  (format {summary['format_version']}, {summary['created_by']})")
    click.echo("splits:")
    for s in summary["splits"]:
        if s.get("missing_shards"):
            shown = ", ".join(s["missing_shards"][:3]) + (" ..." if len(s["missing_shards"]) > 3 else "")
            click.echo(f"  {s['name']}: unreadable: {len(s['missing_shards'])} shard file(s) of fs extract --cluster "
                       f"are missing ({shown}); copy the .shards/ folder with the store, or fs consolidate first")
            continue
        extra = f", {s['classes']} classes" if s["classes"] else ""
        extra += ", captions" if s["captions"] else ""
        click.echo(f"  {s['name']}: {s['rows']} rows, {s['invalid']} unreadable{extra}")
        for error in s.get("error_reasons", [])[:ERRORS_SHOWN]:
            click.echo(f"    {error['rows']} unreadable: {error['reason']} (e.g. {error['example']})")
        if len(s.get("error_reasons", [])) > ERRORS_SHOWN:
            click.echo("    ... more reasons in fs info --json (every row: fs info --errors)")
    click.echo("encoders:")
    for e in summary["encoders"]:
        image_only = "" if "text" in e.get("modalities", ["text"]) else ", image-only"
        click.echo(f"  {e['key']}: dim {e['embed_dim']}, {e['model']} weights {e['weights']}, "
                   f"{e['precision']}{image_only}")
        if e.get("preprocess"):
            click.echo(f"    preprocess: {_describe_preprocess(e['preprocess'])}")
        for split, done in e["features"].items():
            click.echo(f"    images/{split}: {done['done']}/{done['rows']} rows{' + views' if done['views'] else ''}")
        for bank in e["text_banks"]:
            click.echo(f"    texts/{bank}")
    if summary["models"]:
        click.echo("models: " + ", ".join(summary["models"]))
    if summary["index_details"]:
        click.echo("indexes:")
        for entry in summary["index_details"]:
            click.echo(f"  {entry['file']}: {_index_line(entry)}")


def _print_errors(store: str, split: str | None, as_json: bool) -> None:
    """Every unreadable row of every split (or of ``split``), in row order."""
    from featurestore.store.feature_store import FeatureStore

    with FeatureStore(store) as reader:
        splits = [split] if split is not None else reader.splits()
        rows = [{"split": name, **row} for name in splits for row in reader.errors(name)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        click.echo(f"{row['split']}\t{row['id']}\t{row['path']}\t{row['reason']}")
    click.echo(f"{len(rows)} unreadable row{'s' if len(rows) != 1 else ''} in "
               f"{'split ' + repr(split) if split is not None else str(len(splits)) + ' splits'}", err=True)


def _index_line(entry: dict) -> str:
    """``IVF1024,PQ64x4fs,RFlat, 100000 rows, 57.9 MiB, nprobe=9, k_factor=4, recall@10 0.957 (target 0.95)``."""
    from featurestore.index.plan import memory_text

    if not entry["readable"]:
        return "sidecar unreadable or from another featurestore version (rebuilt on next use)"
    parts = [entry["factory"], f"{entry['ntotal']} rows"]
    if entry["bytes"] is not None:
        parts.append(memory_text(entry["resident_bytes"], entry["on_disk_bytes"]))
    parts += [f"{k}={v}" for k, v in (entry["search_params"] or {}).items()]
    if entry["factory"] == "Flat":
        parts.append("exact")
    elif entry["recall_at_10"] is not None:
        met = "" if entry["target_met"] else ", NOT met"
        parts.append(f"recall@10 {entry['recall_at_10']:.3f} (target {entry['recall_target']}{met})")
    return ", ".join(parts)


def _describe_preprocess(recorded) -> str:
    """The recorded preprocessing object in one line (stores from before it was one object: as is)."""
    from featurestore.encoders.preprocessing import Preprocessing
    from featurestore.errors import EncoderError

    try:
        return Preprocessing.from_dict(recorded).describe()
    except EncoderError:
        return json.dumps(recorded)
