"""`fs consolidate`: copy a cluster-built split's shard files into the store file."""
from __future__ import annotations

import json
from typing import Any

import click

from cli.options import quiet_option, refuse_if_locked, store_option


@click.command("consolidate")
@store_option
@click.option("--split", "splits", multiple=True,
              help="Split extracted with --cluster (repeatable; default: every such split).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@quiet_option
def command(store: str, splits: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Copy the shards that `fs extract --cluster` linked into a split (HDF5 virtual datasets
    over STORE.shards/SPLIT/*.h5) into the store file itself, so it can be copied or moved
    without its .shards/ folder. The shard files are left in place (delete them afterwards)."""
    from pathlib import Path

    from featurestore.store.feature_store import FeatureStore
    from featurestore.store.shard_consolidation import consolidate, linked_datasets

    if not Path(store).is_file():
        raise click.UsageError(f"store {store} does not exist")
    refuse_if_locked(store)
    reports: list[dict[str, Any]] = []
    with FeatureStore(store, mode="a") as writer:
        names = list(splits) or [s for s in writer.splits() if linked_datasets(writer.file, s)]
        for split in names:
            reports.append(consolidate(writer, split, progress=not quiet))
    if as_json:
        click.echo(json.dumps(reports, indent=1))
        return
    if not reports:
        click.echo(f"{store}: no split reads shard files; nothing to consolidate")
    for report in reports:
        if report["arrays"] == 0:
            click.echo(f"split {report['split']!r}: already in the store file")
            continue
        click.echo(f"split {report['split']!r}: {report['arrays']} arrays, {report['rows']} rows copied into {store}; "
                   f"no longer needs {', '.join(report['shard_folders'])} (delete it when you like)")
