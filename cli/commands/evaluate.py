"""`fs eval`: compare saved models on a labelled split (top-1, top-5, balanced acc., ECE, NLL).

A name that is no saved model but the prefix of ``NAME-seedS`` models (what ``fs solve --seeds
1,2 --save NAME`` saves) evaluates the group: mean +- std over its seeds (``workflows.evaluate``)."""
from __future__ import annotations

import json
from typing import Any

import click

from cli.options import bank_option, model_names, store_option


@click.command("eval")
@store_option
@click.option("--models", required=True,
              help="Comma-separated saved model names (zero-shot is built on the fly; NAME evaluates the "
                   "NAME-seedS models of a multi-seed fs solve as one row: mean +- std).")
@click.option("--split", required=True, help="Labelled split to evaluate on.")
@click.option("--encoder", default=None, help="Encoder key (default: each model's own).")
@bank_option("Text bank for zero-shot (default: matches the split).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write a bar chart of the models' top-1 accuracies (error bars: std over seeds) to this PNG.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write each model's result in CLIP_benchmark's shape (dataset, model, pretrained, task, "
                   "metrics); several models need a {method} placeholder, e.g. 'res_{dataset}_{method}.json'.")
def command(store: str, models: str, split: str, encoder: str | None, bank: str | None, as_json: bool,
            plot: str | None, output: str | None) -> None:
    """Print a table of metrics, one row per model (or seed group)."""
    from solvers.metrics.classification import CLASSIFICATION_METRICS
    from workflows.evaluate import evaluate

    names = model_names(models)
    if output and len(names) > 1:
        from workflows.reports.result_files import has_placeholder

        if not has_placeholder(output):
            raise click.UsageError("--output with several models needs a {method} placeholder in the file name")
    evaluations = evaluate(store, names, split, encoder=encoder, bank=bank)
    rows: list[dict[str, Any]] = []
    for e in evaluations:
        row: dict[str, Any] = {"model": e.model, "encoder": e.encoder, "n": e.rows, **e.metrics}
        if e.members:
            row.update(members=e.members, std=e.std)
        rows.append(row)
    results = [e.result for e in evaluations]
    n_classes = evaluations[-1].n_classes
    if output:
        from workflows.reports.result_files import output_path, write_result

        for result in results:
            write_result(output_path(output, result), result)
    if plot:
        from workflows.reports.plots import bar_chart, save_png

        errors = [100 * (r["std"]["top1"] if "std" in r else 0.0) for r in rows]
        save_png(bar_chart([r["model"] for r in rows], [100 * r["top1"] for r in rows], reference=100 / n_classes,
                           errors=errors if any(errors) or any("std" in r for r in rows) else None,
                           ylabel="top-1 accuracy (%)",
                           title=f"top-1 accuracy on split {split!r}" + (" (mean +- std over seeds)"
                                                                         if any("std" in r for r in rows) else "")),
                 plot)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    width = max(len(r["model"]) for r in rows) + 2
    cells = {m: max(len(m) + 2, 16 if any("std" in r for r in rows) else 10) for m in CLASSIFICATION_METRICS}
    click.echo(f"{'model':<{width}}" + "".join(f"{m:>{cells[m]}}" for m in CLASSIFICATION_METRICS) + f"{'rows':>8}")
    for r in rows:
        click.echo(f"{r['model']:<{width}}" + "".join(f"{_cell(r, m):>{cells[m]}}" for m in CLASSIFICATION_METRICS)
                   + f"{r['n']:>8}")
    for r in rows:
        if "members" in r:
            click.echo(f"{r['model']}: mean +- std over {len(r['members'])} seeds ({', '.join(r['members'])})")


def _cell(row: dict, metric: str) -> str:
    value = row[metric]
    if value is None:
        return "-"
    std = row.get("std", {}).get(metric)
    if metric in ("ece", "nll"):
        return f"{value:.4f}" + (f"+-{std:.4f}" if std is not None else "")
    return f"{100 * value:.2f}" + (f"+-{100 * std:.2f}" if std is not None else "") + "%"
