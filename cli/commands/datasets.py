"""`fs datasets`: the named datasets featurestore reads, where each is expected under a data root,
whether it is there, and its rows per split."""
from __future__ import annotations

import json
from typing import Any

import click


@click.command("datasets")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Data root to look in (without it, only the catalogue is listed).")
@click.option("--no-file-check", is_flag=True, help="Do not check that every listed image file exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(root: str | None, no_file_check: bool, as_json: bool) -> None:
    """List every known dataset: expected layout under --root, found or missing, rows per split."""
    from featurestore.datasets import DATASETS, dataset_status

    if root is None:
        entries: list[dict[str, Any]] = [{"name": i.name, "title": i.title, "layout": i.folder + "/",
                                          "classes": i.n_classes, "published": i.sizes, "shift_of": i.shift_of}
                                         for i in DATASETS.values()]
        if as_json:
            click.echo(json.dumps(entries, indent=1))
            return
        for e in entries:
            sizes = " / ".join(f"{k} {v:,}" for k, v in e["published"].items())
            click.echo(f"{e['name']:<16} {e['title']:<16} {e['classes']:>5} classes  {sizes}  <root>/{e['layout']}")
        click.echo("wds:<folder>     any CLIP_benchmark webdataset export under the root")
        return
    entries = dataset_status(root, count_files=not no_file_check)
    if as_json:
        click.echo(json.dumps(entries, indent=1))
        return
    for e in entries:
        if e["found"]:
            rows = ", ".join(f"{k} {v:,}" for k, v in e["rows"].items())
            published = e["published"]
            differs = [k for k, v in e["rows"].items() if published.get(k) and published[k] != v]
            extra = f"  (published: {', '.join(f'{k} {published[k]:,}' for k in differs)})" if differs else ""
            missing = f"  {e['missing_files']:,} listed image file(s) missing" if e["missing_files"] else ""
            click.echo(f"found    {e['name']:<16} {e['classes']} classes, {rows}{extra}{missing}")
        elif e["problem"] == "not found":
            click.echo(f"missing  {e['name']:<16} expected {e['layout']} under {root}")
        else:
            click.echo(f"broken   {e['name']:<16} {e['problem']}")
