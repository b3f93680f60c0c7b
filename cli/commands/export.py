"""`fs export`: a split's embeddings in clip-retrieval's layout (img_emb/*.npy + metadata/*.parquet)."""
from __future__ import annotations

import json

import click

from cli.options import encoder_option, quiet_option, store_option


@click.command("export")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split whose readable rows are exported.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="New (or empty) folder: img_emb/img_emb_N.npy and metadata/metadata_N.parquet are written there.")
@click.option("--rows-per-file", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Rows per partition (clip-retrieval's output partition).")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True,
              help="Embedding dtype (clip-retrieval writes float16).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@quiet_option
def command(store: str, encoder: str | None, split: str, output: str, rows_per_file: int, dtype: str,
            as_json: bool, quiet: bool) -> None:
    """Write the image embeddings of a split as clip-retrieval's clip_inference does, so
    `clip-retrieval index --embeddings_folder OUTPUT` builds its index and back end from them."""
    out = output
    if not out.strip():
        raise click.UsageError("--output is empty: give a new folder")
    from featurestore.io.export import export_clip_retrieval
    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.solver_inputs import resolve_encoder

    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        summary = export_clip_retrieval(reader, encoder, split, out, rows_per_file=rows_per_file, dtype=dtype,
                                        progress=not quiet)
    if as_json:
        click.echo(json.dumps({"encoder": encoder, "split": split, **summary}, indent=1))
        return
    click.echo(f"exported {summary['rows']} rows x {summary['dim']} ({dtype}) of split {split!r}, encoder {encoder!r} "
               f"-> {out}/img_emb, {out}/metadata ({summary['partitions']} partition"
               f"{'s' if summary['partitions'] != 1 else ''})")
