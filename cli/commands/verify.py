"""`fs verify`: read a whole store and report every damaged part (exit 2 if any)."""
from __future__ import annotations

import json

import click

from cli.options import store_option


@click.command("verify")
@store_option
@click.option("--repair", is_flag=True, help="Clear the open-for-write mark a killed writer left on the store "
                                             "(readers also clear it by themselves) or on its --cluster shard "
                                             "files (under each one's writer lock).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(store: str, repair: bool, as_json: bool) -> None:
    """Read every dataset of the store (checksums included) and check its structure."""
    from featurestore.store.verify import raise_if_damaged, verify_store

    report = verify_store(store, repair=repair)
    if as_json:
        click.echo(json.dumps({"path": report.path, "ok": report.ok, "datasets": report.datasets,
                               "bytes_read": report.bytes_read, "problems": report.problems,
                               "notes": report.notes}, indent=2))
    else:
        for problem in report.problems:
            click.echo(f"damaged: {problem}")
        for note in report.notes:
            click.echo(f"note: {note}")
        if report.ok:
            click.echo(f"{report.path}: ok ({report.datasets} datasets, {report.bytes_read} bytes read)")
    raise_if_damaged(report)
