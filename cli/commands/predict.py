"""`fs predict`: predict a split with a saved model (no refit), to a CSV or the terminal."""
from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any

import click

from cli.options import bank_option, model_names, quiet_option, store_option

COLUMNS = ["id", "path", "label", "prediction", "class", "confidence"]


class _JsonRows:
    """Writes rows as one JSON array (an object per row), streamed: the same columns as the CSV."""

    def __init__(self, handle, columns: list[str]) -> None:
        self.handle, self.columns, self.first = handle, columns, True
        handle.write("[")

    def writerow(self, values: list) -> None:
        self.handle.write(("\n " if self.first else ",\n ") + json.dumps(dict(zip(self.columns, values))))
        self.first = False

    def close(self) -> None:
        self.handle.write("\n]\n" if not self.first else "]\n")


@click.command("predict")
@store_option
@click.option("--models", "model_name", required=True,
              help="The saved model (see `fs info`), or zero-shot: exactly one name.")
@click.option("--split", required=True, help="Split to predict.")
@click.option("--encoder", default=None, help="Encoder key (default: the one the model was fitted on).")
@bank_option("Text bank for zero-shot (default: matches the split).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="CSV (or with --json, JSON) file to write (default: print to stdout). Written only when every "
                   "row is predicted.")
@click.option("--explain", "explain_top", type=click.IntRange(min=1), default=None,
              help="Add an explanation column: the N descriptors (or contexts) behind each prediction.")
@click.option("--json", "as_json", is_flag=True,
              help="Rows as a JSON array of objects (same keys as the CSV columns); with --output, the summary "
                   "as JSON.")
@quiet_option
def command(store: str, model_name: str, split: str, encoder: str | None, bank: str | None,
            output: str | None, explain_top: int | None, as_json: bool, quiet: bool) -> None:
    """Write id, path, label, prediction, class name and confidence for every valid row.

    ``label`` and ``prediction`` index the model's classes (the split's labels are mapped onto
    them by class name); ``class`` is the predicted class's name."""
    import numpy as np
    from tqdm.auto import tqdm

    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.aux_features import model_feature_chunks
    from workflows.inputs.solver_inputs import class_names, load_model, split_labels
    from workflows.streaming import DEFAULT_CHUNK_ROWS

    (model_name,) = model_names(model_name, one=True)
    out = output
    correct = labelled = rows = 0
    with FeatureStore(store) as reader:
        solver, encoder, bank = load_model(reader, model_name, encoder, bank, split)
        if explain_top is not None and not hasattr(solver, "explain"):
            raise click.UsageError(f"model {model_name!r} ({type(solver).__name__}) cannot explain its predictions")
        names = class_names(reader, split, bank, encoder, solver)
        ids, paths = reader.ids(split), reader.paths(split)
        labels = split_labels(reader, split, getattr(solver, "class_names_", None))
        temporary = f"{out}.partial-{os.getpid()}" if out else ""
        # closed below, then renamed onto --output (or removed when a row fails)
        handle = open(temporary, "w", newline="") if out else sys.stdout  # noqa: SIM115
        columns = COLUMNS + (["explanation"] if explain_top is not None else [])
        writer: Any
        try:
            if as_json:
                writer = _JsonRows(handle, columns)
            else:
                writer = csv.writer(handle)
                writer.writerow(columns)
            # Rows stream chunk by chunk: a split larger than RAM predicts in bounded memory.
            bar = tqdm(total=len(ids), desc=f"predict {split}", unit="row", disable=True if quiet else None,
                       leave=False, file=sys.stderr)
            for positions, X in model_feature_chunks(reader, solver, encoder, split, DEFAULT_CHUNK_ROWS):
                probs = solver.predict_proba(X)
                pred = probs.argmax(axis=1)
                explanations = None
                if explain_top is not None:
                    explanations = ["; ".join(f"{text} ({score:.3f})" for text, score in row)
                                    for row in solver.explain(X, top=explain_top)]
                for j, i in enumerate(positions):
                    name = names[pred[j]] if names is not None and pred[j] < len(names) else ""
                    confidence = float(probs[j, pred[j]]) if as_json else f"{probs[j, pred[j]]:.6f}"
                    writer.writerow([str(ids[i]), str(paths[i]), int(labels[i]), int(pred[j]), name, confidence]
                                    + ([explanations[j]] if explanations is not None else []))
                known = labels[positions] >= 0
                correct += int(np.sum(pred[known] == labels[positions][known]))
                labelled += int(known.sum())
                rows += len(positions)
                bar.update(len(positions))
            bar.close()
            if as_json:
                writer.close()
        except BaseException:
            if out:
                handle.close()
                os.unlink(temporary)
            raise
        if out:
            handle.close()
            os.replace(temporary, out)
    if out and as_json:
        click.echo(json.dumps({"rows": rows, "output": out, "labelled": labelled,
                               "accuracy": correct / labelled if labelled else None}))
    elif out:
        msg = f"{rows} predictions -> {out}"
        if labelled:
            msg += f" (accuracy {100 * correct / labelled:.2f}% on {labelled} labelled rows)"
        click.echo(msg)
