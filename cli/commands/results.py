"""`fs results`: many result files (fs eval/solve --output, or CLIP_benchmark's own) as one table."""
from __future__ import annotations

import click


@click.command("results")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write the table to this CSV file (default: print it as CSV to stdout).")
def command(files: tuple[str, ...], csv_path: str | None) -> None:
    """Collect result FILES into a CSV: one row per result, CLIP_benchmark's columns first
    (dataset, model, pretrained, task, method, language), then the metrics under featurestore's
    names (top1, top5, balanced_accuracy, ece, nll and their _std over seeds; CLIP_benchmark's
    acc1, acc5, mean_per_class_recall are read as those), then the rest."""
    import csv
    import os
    import sys

    from workflows.reports.result_files import read_results, results_table

    columns, rows = results_table(read_results(files))
    if csv_path is None:
        writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    temporary = f"{csv_path}.partial-{os.getpid()}"
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, csv_path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    click.echo(f"{len(rows)} results from {len(files)} files -> {csv_path}")
