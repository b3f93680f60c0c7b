"""`fs import-logits`: store another classifier's logits (or probabilities), aligned by id."""
from __future__ import annotations

import click

from cli.options import store_option


@click.command("import-logits")
@store_option
@click.option("--split", required=True, help="Split whose rows the logits belong to.")
@click.option("--name", required=True, help="Name of the classifier (e.g. resnet); `logits:NAME` in fs ood.")
@click.option("--ids", "ids_path", type=click.Path(dir_okay=False), help="Ids file (one per line) for a .npy matrix.")
@click.option("--probabilities", is_flag=True, help="The file holds probabilities, not logits.")
@click.argument("file", type=click.Path(dir_okay=False))
def command(store: str, split: str, name: str, ids_path: str | None, probabilities: bool, file: str) -> None:
    """Import FILE (.npy + --ids, or .csv with an id column) as logits of SPLIT's rows: every
    readable row (the rows fs could not decode may be left out)."""
    import numpy as np

    from featurestore.io.external_logits import align_logits, read_logits_file
    from featurestore.store.feature_store import FeatureStore

    try:
        file_ids, matrix = read_logits_file(file, ids_path)
    except UnicodeDecodeError:
        raise click.UsageError(f"{ids_path or file} is not UTF-8 text (ids one per line, or a CSV)") from None
    with FeatureStore(store, mode="a") as writer:
        classes = writer.classes(split)
        all_ids = writer.ids(split, valid_only=False)
        unreadable = all_ids[~writer.valid(split)]
        aligned = align_logits(all_ids, file_ids, matrix, None if classes is None else len(classes), split,
                               unreadable=set(unreadable.tolist()))
        writer.put_logits(name, split, aligned, "probabilities" if probabilities else "logits")
    kind = "probabilities" if probabilities else "logits"
    given = int(np.isfinite(aligned).all(axis=1).sum())
    skipped = f" ({aligned.shape[0] - given} unreadable rows without logits)" if given < aligned.shape[0] else ""
    click.echo(f"imported {kind} {name!r} for split {split!r}: {given} rows x {aligned.shape[1]} classes{skipped}")
