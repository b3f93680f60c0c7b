"""`fs index`: build (or refresh) a FAISS index over a stored feature array."""
from __future__ import annotations

import click

from cli.options import encoder_option, quiet_option, store_option


@click.command("index")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split whose features to index.")
@click.option("--factory", default="Flat", show_default=True,
              help="FAISS factory string: Flat (exact), IVF1024,PQ32, HNSW32, ..., or auto (by size).")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help="Rows sampled to train IVF/PQ indexes (default: max(39 x lists, 10000)).")
@click.option("--seed", default=0, show_default=True, help="Seed of the training sample.")
@quiet_option
def command(store: str, encoder: str, split: str, factory: str, train_size: int | None, seed: int,
            quiet: bool) -> None:
    """Index the (normalized) image features of a split for cosine search; saved beside the store."""
    from featurestore.index import build_index
    from workflows.solver_inputs import store_encoder

    encoder = store_encoder(store, encoder)
    index = build_index(store, encoder, split, factory, train_size=train_size, seed=seed, quiet=quiet)
    recall = index.meta.get("recall_at_10")
    quality = f", recall@10 vs exact {recall:.3f}" if recall is not None else ""
    click.echo(f"indexed {index.ntotal} rows of {split!r} ({index.meta['factory']}{quality}) -> {index.path}")
