"""`fs models`: the encoders fs extract can use (open_clip architectures and pretrained tags,
timm image encoders)."""
from __future__ import annotations

import json

import click


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--library", type=click.Choice(["open_clip", "timm", "all"]), default="all", show_default=True,
              help="Which library's models to list.")
@click.option("--pretrained-only", is_flag=True, help="timm: only architectures with pretrained tags.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(pattern: str | None, library: str, pretrained_only: bool, as_json: bool) -> None:
    """List encoders for fs extract --model, optionally those matching PATTERN (a substring or a
    shell pattern such as 'ViT-B-*').

    open_clip models take --pretrained TAG (downloaded from the hub), a checkpoint file, or
    'random'; open_clip also accepts hf-hub:org/repo and local-dir:/path models. timm encoders
    (timm:ARCH) are image-only and take --pretrained FILE or 'random'; their tags are listed
    for reference (timm:ARCH.TAG selects that tag's preprocessing).
    """
    from featurestore.encoders.catalog import open_clip_models, timm_models

    listing: dict[str, list] = {}
    if library in ("open_clip", "all"):
        listing["open_clip"] = open_clip_models(pattern)
    if library in ("timm", "all"):
        listing["timm"] = timm_models(pattern, pretrained_only=pretrained_only)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if "open_clip" in listing:
        click.echo(f"open_clip ({len(listing['open_clip'])} architectures; --pretrained TAG | FILE | random):")
        for entry in listing["open_clip"]:
            click.echo(f"  {entry['model']}: {', '.join(entry['pretrained']) or '(no pretrained tags)'}")
    if "timm" in listing:
        click.echo(f"timm image encoders ({len(listing['timm'])}; image-only; --pretrained FILE | random):")
        for entry in listing["timm"]:
            tags = f"  [tags: {', '.join(entry['pretrained'])}]" if entry["pretrained"] else ""
            click.echo(f"  {entry['model']}{tags}")
    if not any(listing.values()):
        click.echo(f"no model matches {pattern!r}")
