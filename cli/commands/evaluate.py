"""`fs eval`: compare saved models on a labelled split (top-1, top-5, balanced acc., ECE, NLL)."""
from __future__ import annotations

import json

import click

from cli.options import NAME, store_option


@click.command("eval")
@store_option
@click.option("--models", required=True, help="Comma-separated saved model names (zeroshot is built on the fly).")
@click.option("--split", required=True, help="Labelled split to evaluate on.")
@click.option("--encoder", default=None, help="Encoder key (default: each model's own).")
@click.option("--text", "bank", type=NAME, default=None, help="Text bank for zeroshot (default: matches the split).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write a bar chart of the models' top-1 accuracies to this PNG file.")
def command(store: str, models: str, split: str, encoder: str | None, bank: str | None, as_json: bool,
            plot: str | None) -> None:
    """Print a table of metrics, one row per model."""
    from featurestore.store import FeatureStore
    from solvers.metrics import balanced_accuracy, ece, nll, topk_accuracy
    from workflows.solver_inputs import labelled, load_model

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise click.UsageError("--models is empty: give comma-separated saved model names (or zeroshot)")
    rows = []
    with FeatureStore(store) as reader:
        loaded = {n: load_model(reader, n, encoder, bank, split)[:2] for n in names if n != "zeroshot"}
        saved_encoders = {key for _, key in loaded.values()}
        # zeroshot uses --encoder, else the saved models' encoder, else the store's only one
        zeroshot_key = encoder or (next(iter(saved_encoders)) if len(saved_encoders) == 1 else None)
        for name in names:
            solver, key = loaded[name] if name in loaded else load_model(reader, name, zeroshot_key, bank, split)[:2]
            X, y = labelled(reader, key, split, classes=getattr(solver, "class_names_", None))
            probs = solver.predict_proba(X)
            k5 = min(5, probs.shape[1])
            rows.append({"model": name, "encoder": key, "n": int(len(y)),
                         "top1": topk_accuracy(y, probs, 1), f"top{k5}": topk_accuracy(y, probs, k5),
                         "balanced": balanced_accuracy(y, probs.argmax(axis=1)),
                         "ece": ece(y, probs), "nll": nll(y, probs)})
            n_classes = probs.shape[1]
    if plot:
        from featurestore.plots import bar_chart, save_png

        save_png(bar_chart([r["model"] for r in rows], [100 * r["top1"] for r in rows], reference=100 / n_classes,
                           ylabel="top-1 accuracy (%)", title=f"top-1 accuracy on split {split!r}"), plot)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    metrics = [k for k in rows[0] if k not in ("model", "encoder", "n")]
    width = max(len(r["model"]) for r in rows) + 2
    click.echo(f"{'model':<{width}}" + "".join(f"{m:>10}" for m in metrics) + f"{'rows':>8}")
    for r in rows:
        cells = "".join(f"{100 * r[m]:>9.2f}%" if m not in ("ece", "nll") else f"{r[m]:>10.4f}" for m in metrics)
        click.echo(f"{r['model']:<{width}}" + cells + f"{r['n']:>8}")
