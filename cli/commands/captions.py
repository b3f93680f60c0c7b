"""`fs captions`: encode a split's captions into a text bank row-aligned with its valid rows
(the caption features that CapS-Adapter's support set and cache use)."""
from __future__ import annotations

import click

from cli.options import encoder_option, refuse_if_locked, store_option, stored_encoder_options


@click.command("captions")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split whose captions to encode.")
@click.option("--name", default=None, help="Bank name (default: <split>/captions).")
@stored_encoder_options
def command(store: str, encoder: str, split: str, name: str | None, pretrained: str | None,
            device: str | None, precision: str | None, quiet: bool) -> None:
    """Encode SPLIT's captions (one embedding per valid row, in row order) into a text bank."""
    from featurestore.encoders import load_encoder_from_info
    from featurestore.errors import SourceError
    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.solver_inputs import resolve_encoder

    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
        captions = reader.captions(split)
        ids = reader.ids(split)
    if captions is None:
        raise SourceError(f"split {split!r} has no captions to encode")
    refuse_if_locked(store)
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    weights = model.encode_texts([str(c) for c in captions], quiet=quiet)
    bank = name or f"{split}/captions"
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank, weights, [str(c) for c in captions], kind="list", ids=[str(i) for i in ids])
    click.echo(f"text bank {bank!r}: {len(captions)} captions of split {split!r}")
