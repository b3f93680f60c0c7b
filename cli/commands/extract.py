"""`fs extract`: embed an image folder, a manifest or WebDataset shards into a store."""
from __future__ import annotations

import click

from cli.options import device_option, one_seed, precision_option, quiet_option, refuse_if_locked, seeds_option

INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos")
RESIZE_MODES = ("shortest", "longest", "squash")
DECODE_CHOICES = ("auto", "gpu", "cpu")


def preprocessing_options(command):
    """--image-mean --image-std --resize --crop --interpolation --resize-mode: override the
    model's default preprocessing (recorded with the encoder)."""
    options = (
        click.option("--image-mean", default=None, help="Normalisation mean: R,G,B (or one value for all)."),
        click.option("--image-std", default=None, help="Normalisation std: R,G,B (or one value for all)."),
        click.option("--resize", type=click.IntRange(min=1), default=None,
                     help="Resize to this many pixels (the side --resize-mode names) before the crop."),
        click.option("--crop", type=click.IntRange(min=1), default=None,
                     help="Centre crop size in pixels (alone: keeps the model's resize/crop fraction)."),
        click.option("--interpolation", type=click.Choice(INTERPOLATIONS), default=None, help="Resize interpolation."),
        click.option("--resize-mode", type=click.Choice(RESIZE_MODES), default=None,
                     help="shortest side (then crop), longest side (then pad), or squash both sides."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _preprocess(image_mean, image_std, resize, crop, interpolation, resize_mode) -> dict:
    from featurestore.encoders.preprocessing import parse_triple

    return {"mean": parse_triple(image_mean, "image-mean"), "std": parse_triple(image_std, "image-std"),
            "resize": resize, "crop": crop, "interpolation": interpolation, "resize_mode": resize_mode}


@click.command("extract")
@click.argument("source", required=False)
@click.option("--store", required=True, type=click.Path(dir_okay=False), help="Store file to create or extend.")
@click.option("--model", required=True,
              help="open_clip architecture (ViT-B-32), hf-hub:org/repo, local-dir:/path, or timm:ARCH for a timm "
                   "image encoder (see fs models).")
@click.option("--pretrained", default=None,
              help="open_clip pretrained tag (e.g. openai), a checkpoint file (.pt/.pth/.bin/.safetensors), or "
                   "'random'. Required, except for hf-hub:/local-dir: models (they carry their weights).")
@click.option("--model-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON architecture config for a model open_clip does not ship (named after the file).")
@preprocessing_options
@click.option("--split", default=None, help="Split name (default: the source's name).")
@click.option("--kind", type=click.Choice(["folder", "manifest", "webdataset"]), default=None,
              help="Source kind (default: guessed from the path).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Images per batch (default: 64 on CPU; on CUDA the largest that fits the free GPU memory).")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="Reading/decoding workers (default: cores - 1 with --decode cpu, cores / 4 with --decode gpu).")
@click.option("--decode", type=click.Choice(DECODE_CHOICES), default="auto", show_default=True,
              help="Where JPEGs are decoded and preprocessed: gpu (nvjpeg + torchvision on the device; other "
                   "images still go through PIL), cpu (PIL in the workers), auto (gpu when the device is CUDA and "
                   "the images are JPEGs).")
@device_option
@precision_option
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default=None,
              help="Stored feature type (default: float32 for fp32 models, else float16).")
@click.option("--views", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also store N seeded random augmented views per image.")
@seeds_option("Seed of the augmented views (one value).")
@click.option("--cluster", default=None, help="Extract on a Dask LocalCluster of N worker processes: local:N.")
@click.option("--scheduler", default=None, help="Extract on an existing Dask cluster: tcp://host:8786.")
@click.option("--shard-rows", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Rows per shard store with --cluster/--scheduler.")
@click.option("--dataset", default=None,
              help="Extract a named dataset (see fs datasets) from --root instead of SOURCE: all its splits, "
                   "its class names and its prompt templates as the class bank <split>/dataset.")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Data root holding the --dataset folder.")
@click.option("--download", is_flag=True, help="With --dataset: let torchvision download a dataset it can (CIFAR).")
@quiet_option
def command(source: str, store: str, model: str, pretrained: str | None, model_config: str | None,
            image_mean: str | None, image_std: str | None, resize: int | None, crop: int | None,
            interpolation: str | None, resize_mode: str | None, split: str | None, kind: str | None,
            batch_size: int | None, workers: int | None, decode: str, device: str | None,
            precision: str | None, dtype: str | None, views: int, seeds: list[int], cluster: str | None,
            scheduler: str | None, shard_rows: int, dataset: str | None, root: str | None, download: bool,
            quiet: bool) -> None:
    """Embed the images of SOURCE (folder, .csv/.tsv/.parquet manifest, .tar shards) into a store.

    Rows already extracted by the same encoder are skipped; a killed run resumes where it stopped.
    With --cluster/--scheduler, shards are extracted on Dask workers into shard stores beside
    the store and linked into the split with HDF5 virtual datasets.
    """
    from featurestore.encoders.loading import check_model_spec

    # Cheap refusals first: a second writer, then a model that cannot load, before the source is
    # scanned or torch is imported.
    refuse_if_locked(store)
    check_model_spec(model, pretrained, model_config)
    from featurestore.encoders import load_encoder
    from featurestore.extract.pipeline import extract
    from featurestore.sources import open_source
    from featurestore.store.split_names import check_split_name

    seed = one_seed(seeds, "fs extract's augmented views")
    preprocess = _preprocess(image_mean, image_std, resize, crop, interpolation, resize_mode)
    if dataset is not None or root is not None:
        _extract_dataset(source, dataset, root, download, store, model, pretrained, model_config, split, kind,
                         cluster or scheduler, device, precision, preprocess, batch_size=batch_size,
                         workers=workers, views=views, seed=seed, dtype=dtype, decode=decode, quiet=quiet)
        return
    if source is None:
        raise click.UsageError("give a SOURCE (folder, manifest, .tar shards) or --dataset NAME --root DIR")
    src = open_source(source, kind=kind)
    check_split_name(split or src.name)  # before the model loads: a bad name costs nothing
    encoder = load_encoder(model, pretrained, device=device, precision=precision, model_config=model_config,
                           preprocess=preprocess)
    if cluster or scheduler:
        if decode != "auto":
            raise click.UsageError("--decode applies to extraction in this process, not with --cluster/--scheduler")
        from featurestore.cluster import dask_client
        from featurestore.extract.sharded import EncoderSpec, extract_distributed

        spec = EncoderSpec(model, pretrained, model_config, precision, device,
                           preprocess=tuple((k, v) for k, v in preprocess.items() if v is not None))
        with dask_client(cluster, scheduler) as client:
            sharded = extract_distributed(src, store, spec, client, encoder_key=encoder.key, split=split,
                                         shard_rows=shard_rows, batch_size=batch_size, views=views, seed=seed,
                                         dtype=dtype, quiet=quiet)
        click.echo(sharded.summary())
        return
    report = extract(src, store, encoder, split=split, batch_size=batch_size, workers=workers,
                     views=views, seed=seed, dtype=dtype, decode=_decode_mode(decode, encoder), quiet=quiet)
    click.echo(report.summary())


def _decode_mode(decode: str, encoder) -> str:
    """--decode gpu|cpu|auto -> extract()'s tensor|pil|auto; gpu needs the encoder on CUDA."""
    if decode == "gpu" and encoder.device.type != "cuda":
        raise click.UsageError(f"--decode gpu needs a CUDA device; the encoder runs on {encoder.device.type}")
    return {"gpu": "tensor", "cpu": "pil", "auto": "auto"}[decode]


def _extract_dataset(source, dataset, root, download, store, model, pretrained, model_config, split, kind,
                     distributed, device, precision, preprocess, **options) -> None:
    """``fs extract --dataset NAME --root DIR``: every split of a named dataset, then its templates."""
    from featurestore.datasets.extraction import extract_dataset
    from featurestore.encoders import load_encoder

    if dataset is None or root is None:
        raise click.UsageError("--dataset and --root go together")
    if source is not None or split is not None or kind is not None or distributed:
        raise click.UsageError("--dataset names its own splits: give no SOURCE, --split, --kind, --cluster or "
                               "--scheduler")
    from featurestore.datasets import open_dataset

    loaded = open_dataset(dataset, root, download=download)  # a missing dataset fails before the model loads
    encoder = load_encoder(model, pretrained, device=device, precision=precision, model_config=model_config,
                           preprocess=preprocess)
    options["decode"] = _decode_mode(options["decode"], encoder)
    for report in extract_dataset(loaded, root, store, encoder, **options):
        click.echo(report.summary())
