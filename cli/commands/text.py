"""`fs text`: encode class prompts (zero-shot weights) or a text file into a named text bank."""
from __future__ import annotations

import click

from cli.options import encoder_option, store_option, stored_encoder_options


@click.command("text")
@store_option
@encoder_option
@click.option("--classes", default=None, help="Class list in the store (a labelled split's name).")
@click.option("--templates", default="imagenet", show_default=True,
              help="Prompt templates: imagenet (CLIP's 80), simple, or a file with one template per line.")
@click.option("--file", "text_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Encode the strings of a .txt/.json/.csv file instead (captions, descriptors, synonyms).")
@click.option("--name", default=None, help="Bank name (default: <classes>/<templates> or the file's stem).")
@stored_encoder_options
def command(store: str, encoder: str, classes: str | None, templates: str, text_file: str | None,
            name: str | None, pretrained: str | None, device: str | None, precision: str | None,
            quiet: bool) -> None:
    """Encode a text bank with the same encoder that made the store's image features."""
    from pathlib import Path

    from featurestore.encoders import load_encoder_from_info
    from workflows.solver_inputs import resolve_encoder
    from featurestore.store import FeatureStore
    from featurestore.templates import get_templates
    from featurestore.textbanks import class_prompt_embeddings, read_text_file

    if (classes is None) == (text_file is None):
        raise click.UsageError("give exactly one of --classes or --file")
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
        class_names = reader.class_names(classes) if classes else None
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    if class_names is not None:
        template_list = get_templates(templates)
        weights, per_template = class_prompt_embeddings(model, class_names, template_list, quiet=quiet)
        bank = name or f"{classes}/{Path(templates).stem}"
        strings = [t.format(c) for c in class_names for t in template_list]
        with FeatureStore(store, mode="a") as writer:
            writer.put_text_bank(encoder, bank, weights, strings, kind="classes", classes=class_names,
                                 templates=template_list, per_template=per_template)
        click.echo(f"text bank {bank!r}: {len(class_names)} classes x {len(template_list)} templates")
        return
    strings, groups = read_text_file(text_file)
    weights = model.encode_texts(strings, quiet=quiet)
    bank = name or Path(text_file).stem
    extra = {"groups": groups} if groups is not None else {}
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank, weights, strings, kind="list", **extra)
    click.echo(f"text bank {bank!r}: {len(strings)} strings")
