"""`fs text`: encode class prompts (zero-shot weights) or a text file into a named text bank."""
from __future__ import annotations

from typing import cast

import click

from cli.options import encoder_option, refuse_if_locked, store_option, stored_encoder_options


@click.command("text")
@store_option
@encoder_option
@click.option("--classes", default=None,
              help="Class list in the store (a labelled split's name), or a file with one class name per line.")
@click.option("--templates", default="imagenet", show_default=True,
              help="Prompt templates: imagenet (CLIP's 80), simple, or a file with one template per line.")
@click.option("--file", "text_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Encode the strings of a .txt/.json/.csv file instead (captions, descriptors, synonyms).")
@click.option("--weights", "head", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Store a classifier head as the class bank instead of encoding prompts: a .npz with W (C, D) "
                   "[and b (C,)], or a .npy with W. Works for any encoder, image-only ones included. What each "
                   "command computes from it: zero-shot (fs solve zero-shot; --models zero-shot --bank NAME in "
                   "eval, predict, ensemble, ood) is 100 * cos(x, W_k), without b; the head's own logits "
                   "W x_raw + b (raw features from the stored norms) are what --logits stores, for "
                   "fs ood --models logits:NAME.")
@click.option("--logits", "logit_splits", default=None,
              help="With --weights: also store the head's own logits W x_raw + b on these comma-separated splits "
                   "as imported logits named after the bank (fs ood --models logits:NAME).")
@click.option("--name", default=None, help="Bank name (default: <classes>/<templates>, the file's stem, or the "
                                           "head file's stem).")
@stored_encoder_options
def command(store: str, encoder: str, classes: str | None, templates: str, text_file: str | None,
            head: str | None, logit_splits: str | None, name: str | None, pretrained: str | None,
            device: str | None, precision: str | None, quiet: bool) -> None:
    """Encode a text bank with the same encoder that made the store's image features."""
    from pathlib import Path

    from featurestore.encoders import load_encoder_from_info
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.banks import class_prompt_embeddings, read_text_file
    from featurestore.text.templates import get_templates
    from workflows.inputs.solver_inputs import resolve_encoder

    if head is not None:
        if classes is None or text_file is not None:
            raise click.UsageError("--weights needs --classes (the head's class names) and no --file")
        _store_head(store, encoder, head, classes, name, logit_splits)
        return
    if logit_splits is not None:
        raise click.UsageError("--logits stores a head's own logits: it needs --weights")
    if (classes is None) == (text_file is None):
        raise click.UsageError("give exactly one of --classes or --file")
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
        class_names = _class_names(reader, classes) if classes else None
    if "text" not in info.get("modalities", ["image", "text"]):
        from featurestore.encoders import image_only_error

        raise image_only_error(encoder)
    refuse_if_locked(store)
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    if classes is not None and class_names is not None:
        template_list = get_templates(templates)
        weights, per_template = class_prompt_embeddings(model, class_names, template_list, quiet=quiet)
        label = classes if not Path(classes).is_file() else Path(classes).stem  # a names file: its stem
        bank = name or f"{label}/{Path(templates).stem}"
        strings = [t.format(c) for c in class_names for t in template_list]
        with FeatureStore(store, mode="a") as writer:
            writer.put_text_bank(encoder, bank, weights, strings, kind="classes", classes=class_names,
                                 templates=template_list, per_template=per_template)
        click.echo(f"text bank {bank!r}: {len(class_names)} classes x {len(template_list)} templates")
        return
    text_path = cast(str, text_file)  # exactly one of --classes and --file was given
    strings, groups = read_text_file(text_path)
    weights = model.encode_texts(strings, quiet=quiet)
    bank = name or Path(text_path).stem
    extra = {"groups": groups} if groups is not None else {}
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank, weights, strings, kind="list", **extra)
    click.echo(f"text bank {bank!r}: {len(strings)} strings")


def _class_names(reader, classes: str) -> list[str]:
    """A class list stored in the store by that name, else a file of names (one per line)."""
    from pathlib import Path

    from featurestore.text.class_heads import read_class_file

    if classes in reader.class_sets() or not Path(classes).is_file():
        return reader.class_names(classes)
    return read_class_file(classes)


def _store_head(store: str, encoder: str | None, head: str, classes: str, name: str | None,
                logit_splits: str | None) -> None:
    """`fs text --weights HEAD --classes NAMES`: W (C, D) [+ b] as a class bank, no model needed;
    with ``--logits``, the head's own logits on those splits too."""
    from pathlib import Path

    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore
    from featurestore.text.class_heads import read_head, stored_head_logits
    from workflows.inputs.solver_inputs import resolve_encoder

    W, b = read_head(head)
    splits = [s.strip() for s in logit_splits.split(",")] if logit_splits is not None else []
    if any(not s for s in splits):
        raise click.UsageError(f"--logits takes comma-separated split names, got {logit_splits!r}")
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        dim = int(reader.encoder_info(encoder)["embed_dim"])
        class_names = _class_names(reader, classes)
        for split in splits:
            if split not in reader.splits():
                raise NotFoundError(f"no split {split!r} in {store} (it has: {', '.join(reader.splits())})")
            reader.norms(encoder, split)  # the raw features must be recoverable before anything is written
    if W.shape[1] != dim:
        raise click.UsageError(f"the head's W is {W.shape}: its {W.shape[1]} columns do not match encoder "
                               f"{encoder!r}'s dimension {dim}")
    if len(class_names) != W.shape[0]:
        raise click.UsageError(f"the head has {W.shape[0]} classes but {classes} names {len(class_names)}")
    bank = name or Path(head).stem
    extra = {"bias": b} if b is not None else {}
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank, W, class_names, kind="classes", classes=class_names, **extra)
        for split in splits:
            writer.put_logits(bank, split, stored_head_logits(writer, encoder, bank, split, valid_only=False))
    click.echo(f"class bank {bank!r}: head W {W.shape[0]} x {W.shape[1]}{' + bias' if b is not None else ''} "
               f"for encoder {encoder}; zero-shot with --bank {bank} computes 100 * cos(x, W_k) without b")
    if splits:
        click.echo(f"the head's own logits W x_raw + b on {', '.join(splits)}: logits:{bank} (fs ood --models)")
    else:
        click.echo(f"the head's own logits W x_raw + b: add --logits SPLITS (stored as logits:{bank})")
