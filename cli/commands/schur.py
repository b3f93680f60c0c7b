"""`fs schur score|remove`: Schur-complement decomposition of a split's image embeddings given
paired prompts (Ospanov et al., 2024). Prompts pair with rows either one bank row per image, or
through the labels of a class bank."""
from __future__ import annotations

import json
from typing import Any

import click

from cli.options import NAME, bank_option, encoder_option, store_option


def _paired_texts(store, encoder: str, split: str, bank: str):
    """Valid-row image features and the text embedding paired with each row."""
    from featurestore.errors import NotFoundError

    X, texts = store.features(encoder, split), store.text(encoder, bank)
    if len(texts) == len(X):
        return X, texts
    labels = store.labels(split)
    if (labels >= 0).all() and labels.max() < len(texts):
        return X, texts[labels]
    raise NotFoundError(f"bank {bank!r} has {len(texts)} rows: it neither pairs with the {len(X)} rows of split "
                        f"{split!r} nor is a class bank for its labels")


def _prompt_row(store, encoder: str, bank: str, prompt: str):
    from featurestore.errors import NotFoundError

    entry = store.text_bank(encoder, bank)
    names = list(entry.get("classes") or entry["strings"])
    if prompt not in names:
        raise NotFoundError(f"prompt {prompt!r} is not in bank {bank!r} (e.g. {', '.join(names[:5])})")
    return entry["weights"][names.index(prompt)]


@click.group("schur")
def command() -> None:
    """Schur-complement decomposition: SCE diversity score, prompt removal."""


@command.command("score")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split of images.")
@bank_option("Text bank paired with the images (one row per image, or a class bank).", required=True)
@click.option("--kernel", type=click.Choice(["gaussian", "cosine"]), default="gaussian", show_default=True,
              help="gaussian: the paper's random-feature kernel on the stored features; cosine: their inner products.")
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), default=3.5, show_default=True,
              help="Gaussian kernel bandwidth (the paper's 3.5 is for raw CLIP features; stored features are "
                   "L2-normalized).")
@click.option("--rff-dim", type=click.IntRange(min=1), default=2500, show_default=True,
              help="Random Fourier frequencies m (2m features; Gaussian).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def score(store: str, encoder: str, split: str, bank: str, kernel: str, sigma: float, rff_dim: int,
          as_json: bool) -> None:
    """Print SCE as the official code reports it (of the non-text component and of the text part)
    and the entropies of the normalized eigenvalues of each part."""
    from featurestore.store.feature_store import FeatureStore
    from solvers.schur_decomposition import schur_scores
    from workflows.inputs.solver_inputs import resolve_encoder

    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        X, texts = _paired_texts(reader, encoder, split, bank)
    out = {"split": split, "rows": len(X), "kernel": kernel,
           **schur_scores(X, texts, kernel=kernel, sigma=sigma, rff_dim=rff_dim)}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    for key, value in out.items():
        click.echo(f"{key:<18}{value:.4f}" if isinstance(value, float) else f"{key:<18}{value}")


@command.command("remove")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split whose embeddings are corrected (all rows are written).")
@bank_option("Text bank paired with the images, to fit the text->image map.", required=True)
@click.option("--prompt", required=True, help="Class name or string (of --prompt-bank) whose component to remove.")
@click.option("--prompt-bank", type=NAME, default=None, help="Bank holding --prompt (default: --bank).")
@click.option("--method", type=click.Choice(["schur", "project"]), default="schur", show_default=True,
              help="schur: x - phi(t) A*; project: remove the prompt's image direction.")
@click.option("--isolate", is_flag=True, help="Keep only the prompt's direction instead (method project).")
@click.option("--name", default=None, help="Suffix of the new encoder key (default: the prompt).")
def remove(store: str, encoder: str, split: str, bank: str, prompt: str, prompt_bank: str | None,
           method: str, isolate: bool, name: str | None) -> None:
    """Write corrected embeddings as encoder ``<encoder>+schur-remove-<name>`` with provenance."""
    import numpy as np

    from featurestore.store.feature_store import FeatureStore
    from solvers.schur_decomposition import remove_prompt

    if isolate and method != "project":
        raise click.UsageError("--isolate needs --method project")
    from workflows.inputs.solver_inputs import resolve_encoder

    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        X, texts = _paired_texts(reader, encoder, split, bank)
        t = _prompt_row(reader, encoder, prompt_bank or bank, prompt)
        X_all = reader.features(encoder, split, valid_only=False)
        info = reader.encoder_info(encoder)
    corrected = remove_prompt(X, texts, X_all, t, method=method, isolate=isolate)
    suffix = name or prompt.replace("/", "-").replace(" ", "_")
    key = f"{encoder}+schur-{'isolate' if isolate else 'remove'}-{suffix}"
    provenance: dict[str, Any] = {k: info[k] for k in ("model", "weights", "preprocess", "precision") if k in info}
    provenance.update({"normalized": False, "source_encoder": encoder,
                       "derivation": {"method": f"schur-{method}", "isolate": isolate, "prompt": prompt,
                                      "prompt_bank": prompt_bank or bank, "prompts_bank": bank,
                                      "fit_split": split}})
    with FeatureStore(store, mode="a") as writer:
        writer.put_features(key, split, corrected.astype(np.float32), provenance)
    click.echo(f"wrote {len(corrected)} rows of split {split!r} as encoder {key!r}")
