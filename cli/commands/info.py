"""`fs info`: what a store holds (splits, encoders, text banks, models, indexes)."""
from __future__ import annotations

import json

import click


@click.command("info")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(store: str, as_json: bool) -> None:
    """Show what STORE holds."""
    from featurestore.store_summary import summarize

    summary = summarize(store)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['path']}  (format {summary['format_version']}, {summary['created_by']})")
    click.echo("splits:")
    for s in summary["splits"]:
        extra = f", {s['classes']} classes" if s["classes"] else ""
        extra += ", captions" if s["captions"] else ""
        click.echo(f"  {s['name']}: {s['rows']} rows, {s['invalid']} unreadable{extra}")
    click.echo("encoders:")
    for e in summary["encoders"]:
        click.echo(f"  {e['key']}: dim {e['embed_dim']}, {e['model']} weights {e['weights']}, {e['precision']}")
        for split, done in e["features"].items():
            click.echo(f"    images/{split}: {done['done']}/{done['rows']} rows{' + views' if done['views'] else ''}")
        for bank in e["text_banks"]:
            click.echo(f"    texts/{bank}")
    if summary["models"]:
        click.echo("models: " + ", ".join(summary["models"]))
    if summary["indexes"]:
        click.echo("indexes: " + ", ".join(summary["indexes"]))
