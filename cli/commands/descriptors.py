"""`fs descriptors FILE`: encode user-supplied class descriptors, differential (pair) descriptors or
contextual attributes into a text bank for the description-based solvers (see docs/methods.md)."""
from __future__ import annotations

import click

from cli.options import encoder_option, refuse_if_locked, store_option, stored_encoder_options

KINDS = ("descriptors", "differential", "contexts")


@click.command("descriptors")
@click.argument("file", type=click.Path(dir_okay=False))
@store_option
@encoder_option
@click.option("--classes", required=True, help="Class list in the store (a labelled split's name).")
@click.option("--kind", type=click.Choice(KINDS), default="descriptors", show_default=True,
              help="descriptors: {class: [...]}; differential: {\"a|b\": {a: [...], b: [...]}}; "
                   "contexts: {attribute: [values]} (PerceptionCLIP).")
@click.option("--template", default=None,
              help="Prompt template (default '{class}, which {descriptor}'; for contexts 'a photo of a {class}').")
@click.option("--name", default=None, help="Bank name (default: <classes>/<file stem>).")
@stored_encoder_options
def command(file: str, store: str, encoder: str, classes: str, kind: str, template: str | None,
            name: str | None, pretrained: str | None, device: str | None, precision: str | None,
            quiet: bool) -> None:
    """Build the prompts of FILE for the classes of --classes, embed them and store a grouped bank."""
    from pathlib import Path

    from featurestore.encoders import load_encoder_from_info
    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.solver_inputs import resolve_encoder

    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        info = reader.encoder_info(encoder)
        class_names = reader.class_names(classes)
    class_free: list[str] = []
    if kind == "contexts":
        from featurestore.text.contexts import (
            DEFAULT_CLASS_TEMPLATE,
            context_prompts,
            read_attributes,
        )

        prompts, class_free = context_prompts(read_attributes(file), class_names, template or DEFAULT_CLASS_TEMPLATE)
    else:
        from featurestore.text import descriptor_prompts as dp

        if kind == "descriptors":
            prompts = dp.class_descriptor_prompts(dp.read_class_descriptors(file, class_names), class_names,
                                                  template or dp.DEFAULT_TEMPLATE)
        else:
            prompts = dp.differential_prompts(dp.read_differential_descriptors(file, class_names), class_names,
                                              template or dp.DEFAULT_TEMPLATE)
    refuse_if_locked(store)
    model = load_encoder_from_info(info, pretrained=pretrained, device=device, precision=precision)
    weights = model.encode_texts(prompts.strings, quiet=quiet)
    extras = dict(prompts.extras)
    if kind == "contexts":
        weights = weights.reshape(len(class_names), len(class_free), -1)
        extras["context_weights"] = model.encode_texts(class_free)
        extras["context_strings"] = class_free
    bank = name or f"{classes}/{Path(file).stem}"
    with FeatureStore(store, mode="a") as writer:
        writer.put_text_bank(encoder, bank, weights, prompts.strings, kind=kind, **extras)
    click.echo(f"text bank {bank!r} ({kind}): {len(prompts.strings)} prompts for {len(class_names)} classes")
