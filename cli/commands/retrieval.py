"""`fs retrieval`: image<->text recall@K, mean CLIPScore and the modality gap of a split and a
bank of its captions (one caption per row, or a JSON bank grouped by row id)."""
from __future__ import annotations

import json
from typing import Any

import click

from cli.options import bank_option, encoder_option, store_option


@click.command("retrieval")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split of images.")
@bank_option("List bank of captions: one per row in row order, or grouped by row id ({id: [captions]}).",
             required=True)
@click.option("-k", "ks", multiple=True, type=int, default=(1, 5, 10), show_default=True, help="Recall cut-offs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(store: str, encoder: str, split: str, bank: str, ks: tuple[int, ...], as_json: bool) -> None:
    """Print recall@K both ways, mean CLIPScore of each caption with its image, and the modality gap."""
    import numpy as np

    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore
    from solvers.metrics.retrieval import clip_score, image_to_text_recall, modality_gap, text_to_image_recall

    with FeatureStore(store) as reader:
        from workflows.inputs.solver_inputs import resolve_encoder

        encoder = resolve_encoder(reader, encoder)
        X, ids = reader.features(encoder, split), list(reader.ids(split))
        entry = reader.text_bank(encoder, bank)
    texts, groups = np.asarray(entry["weights"]), entry.get("groups")
    if groups is not None:
        position = {rid: i for i, rid in enumerate(ids)}
        unknown = [g for g in groups if g not in position]
        if unknown:
            raise NotFoundError(f"caption group {unknown[0]!r} is not a row id of split {split!r}")
        caption_image = np.array([position[g] for g in groups])
    elif len(texts) == len(X):
        caption_image = np.arange(len(X))
    else:
        raise NotFoundError(f"bank {bank!r} has {len(texts)} captions for {len(X)} rows and no row-id groups")
    out: dict[str, Any] = {"split": split, "images": len(X), "captions": len(texts),
           "image_to_text": image_to_text_recall(X, texts, caption_image, ks),
           "text_to_image": text_to_image_recall(X, texts, caption_image, ks),
           "clip_score": float(clip_score(X[caption_image], texts).mean()),
           "modality_gap": modality_gap(X, texts)}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    for direction in ("image_to_text", "text_to_image"):
        click.echo(f"{direction:<14}" + "  ".join(f"R@{k} {100 * v:.2f}" for k, v in out[direction].items()))
    click.echo(f"CLIPScore     {out['clip_score']:.4f}\nmodality gap  {out['modality_gap']:.4f}")
