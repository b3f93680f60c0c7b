"""`fs extract`: embed an image folder, a manifest or WebDataset shards into a store."""
from __future__ import annotations

import click

from cli.options import device_option, precision_option, quiet_option


@click.command("extract")
@click.argument("source")
@click.option("--store", required=True, type=click.Path(dir_okay=False), help="Store file to create or extend.")
@click.option("--model", required=True, help="open_clip architecture, e.g. ViT-B-32.")
@click.option("--pretrained", default=None,
              help="open_clip pretrained tag (e.g. openai) or a local checkpoint (.pt/.bin/.safetensors).")
@click.option("--model-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON architecture config for a model open_clip does not ship (named after the file).")
@click.option("--split", default=None, help="Split name (default: the source's name).")
@click.option("--kind", type=click.Choice(["folder", "manifest", "webdataset"]), default=None,
              help="Source kind (default: guessed from the path).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=None, type=click.IntRange(min=0), help="Decoding workers (default: cores - 1).")
@device_option
@precision_option
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default=None,
              help="Stored feature type (default: float32 for fp32 models, else float16).")
@click.option("--views", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also store N seeded random augmented views per image.")
@click.option("--seed", default=0, show_default=True, help="Seed of the augmented views.")
@quiet_option
def command(source: str, store: str, model: str, pretrained: str | None, model_config: str | None,
            split: str | None, kind: str | None, batch_size: int, workers: int | None, device: str | None,
            precision: str | None, dtype: str | None, views: int, seed: int, quiet: bool) -> None:
    """Embed the images of SOURCE (folder, .csv/.tsv/.parquet manifest, .tar shards) into a store.

    Rows already extracted by the same encoder are skipped; a killed run resumes where it stopped.
    """
    from featurestore.encoders import load_encoder
    from featurestore.extract import extract
    from featurestore.sources import open_source

    src = open_source(source, kind=kind)
    encoder = load_encoder(model, pretrained, device=device, precision=precision, model_config=model_config)
    report = extract(src, store, encoder, split=split, batch_size=batch_size, workers=workers,
                     views=views, seed=seed, dtype=dtype, quiet=quiet)
    click.echo(report.summary())
