"""`fs search`: text->image, image->image or row->image search over a FAISS index."""
from __future__ import annotations

import json

import click

from cli.options import device_option, encoder_option, pretrained_override_option, quiet_option, store_option


@click.command("search")
@store_option
@encoder_option
@click.option("--split", default=None, help="Indexed split (default: the store's only split).")
@click.option("--query", "texts", multiple=True, help="Query text (repeatable).")
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Query image file (repeatable).")
@click.option("--id", "row_ids", multiple=True, help="Query by a stored row's id (no model needed).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--factory", default=None,
              help="Which index to use: Flat, a factory string or auto (default: the split's auto index, else its "
                   "only index, else Flat; built if missing). It searches with its tuned parameters.")
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="IVF lists to visit (default: the value tuned when the index was built).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pretrained_override_option
@device_option
@quiet_option
def command(store: str, encoder: str, split: str | None, texts: tuple[str, ...], images: tuple[str, ...],
            row_ids: tuple[str, ...], k: int, factory: str | None, nprobe: int | None, as_json: bool,
            pretrained: str | None, device: str | None, quiet: bool) -> None:
    """Find the K stored images closest (cosine) to each query."""
    import numpy as np

    from featurestore.errors import NotFoundError
    from featurestore.index.store_index import load_index
    from featurestore.store.feature_store import FeatureStore

    if not (texts or images or row_ids):
        raise click.UsageError("give at least one query: --query, --image or --id")
    with FeatureStore(store) as reader:
        from workflows.inputs.solver_inputs import resolve_encoder

        encoder = resolve_encoder(reader, encoder)
        if split is None:
            splits = [s for s in reader.splits() if reader.has_features(encoder, s)]
            if len(splits) != 1:
                raise click.UsageError(f"give --split (encoder has features for: {', '.join(splits) or 'none'})")
            split = splits[0]
        labels, queries = [], []
        if row_ids:
            index_of = {rid: i for i, rid in enumerate(reader.ids(split))}
            missing = [r for r in row_ids if r not in index_of]
            if missing:
                raise NotFoundError(f"no valid row with id {missing[0]!r} in split {split!r}")
            feats = reader.features(encoder, split)
            queries.append(feats[[index_of[r] for r in row_ids]])
            labels += [f"id {r}" for r in row_ids]
        if texts or images:
            from featurestore.encoders import load_encoder_from_info

            model = load_encoder_from_info(reader.encoder_info(encoder), pretrained=pretrained, device=device)
            if texts:
                queries.append(model.encode_texts(list(texts)))
                labels += [f"text {t!r}" for t in texts]
            if images:
                import torch
                from PIL import Image

                from featurestore.errors import SourceError

                def load(p: str) -> Image.Image:
                    try:
                        with Image.open(p) as image:
                            return image.convert("RGB")
                    except OSError as exc:
                        raise SourceError(f"cannot read query image {p}: {exc}") from None

                batch = torch.stack([model.preprocess(load(p)) for p in images])
                queries.append(model.encode_images(batch))
                labels += [f"image {p}" for p in images]
        index = load_index(reader, encoder, split, factory, quiet=quiet)
        for note in index.notes:
            click.echo(f"warning: {note}", err=True)
        results = index.hits(reader, split, np.concatenate(queries), k, nprobe=nprobe)
        classes = reader.classes(split) or []
    for hits in results:  # the class name beside each label (None: unlabelled, or a split without names)
        for hit in hits:
            hit["class"] = classes[hit["label"]] if 0 <= hit["label"] < len(classes) else None
    if as_json:
        click.echo(json.dumps([{"query": q, "hits": h} for q, h in zip(labels, results)], indent=1))
        return
    for query, hits in zip(labels, results):
        click.echo(query)
        for rank, hit in enumerate(hits, 1):
            shown = f"  [{hit['class']}]" if hit["class"] is not None else ""
            click.echo(f"  {rank:3d}  {hit['score']:.4f}  {hit['id']}  {hit['path']}{shown}")
