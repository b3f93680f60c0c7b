"""`fs predict`: predict a split with a saved model (no refit), to a CSV or the terminal."""
from __future__ import annotations

import csv
import sys

import click

from cli.options import store_option


@click.command("predict")
@store_option
@click.option("--model", "model_name", required=True, help="Saved model name (see `fs info`), or zeroshot.")
@click.option("--split", required=True, help="Split to predict.")
@click.option("--encoder", default=None, help="Encoder key (default: the one the model was fitted on).")
@click.option("--text", "bank", default=None, help="Text bank for zeroshot (default: matches the split).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="CSV file to write (default: print to stdout).")
@click.option("--explain", "explain_top", type=click.IntRange(min=1), default=None,
              help="Add an explanation column: the N descriptors (or contexts) behind each prediction.")
def command(store: str, model_name: str, split: str, encoder: str | None, bank: str | None,
            out: str | None, explain_top: int | None) -> None:
    """Write id, path, label, prediction, class name and confidence for every valid row."""
    import numpy as np

    from cli.solver_inputs import class_names, load_model
    from featurestore.store import FeatureStore

    with FeatureStore(store) as reader:
        solver, encoder, bank = load_model(reader, model_name, encoder, bank, split)
        X = reader.features(encoder, split)
        ids, paths, labels = reader.ids(split), reader.paths(split), reader.labels(split)
        names = class_names(reader, split, bank, encoder)
    probs = solver.predict_proba(X)
    pred = probs.argmax(axis=1)
    explanations = None
    if explain_top is not None:
        if not hasattr(solver, "explain"):
            raise click.UsageError(f"model {model_name!r} ({type(solver).__name__}) cannot explain its predictions")
        explanations = ["; ".join(f"{text} ({score:.3f})" for text, score in row)
                        for row in solver.explain(X, top=explain_top)]
    handle = open(out, "w", newline="") if out else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label", "prediction", "class", "confidence"]
                        + (["explanation"] if explanations is not None else []))
        for i in range(len(ids)):
            name = names[pred[i]] if names is not None and pred[i] < len(names) else ""
            writer.writerow([ids[i], paths[i], int(labels[i]), int(pred[i]), name, f"{probs[i, pred[i]]:.6f}"]
                            + ([explanations[i]] if explanations is not None else []))
    finally:
        if out:
            handle.close()
    has_labels = labels >= 0
    if out:
        msg = f"{len(ids)} predictions -> {out}"
        if has_labels.any():
            msg += f" (accuracy {100 * np.mean(pred[has_labels] == labels[has_labels]):.2f}% on {int(has_labels.sum())} labelled rows)"
        click.echo(msg)
