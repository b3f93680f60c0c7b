"""`fs ensemble`: combine saved models (and zero-shot) into one saved ensemble solver."""
from __future__ import annotations

import json

import click

from cli.options import NumberList, bank_option, model_names, store_option


def _weights(values: list[float] | None, n_members: int) -> list[float] | None:
    """--weights (parsed by NumberList): one finite, non-negative weight per member, not all zero."""
    import math

    if values is None:
        return None
    if len(values) != n_members:
        raise click.UsageError(f"--weights has {len(values)} value(s) for {n_members} member(s)")
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) == 0:
        shown = ",".join(map(str, values))
        raise click.UsageError(f"--weights must be finite, non-negative and not all zero, got {shown!r}")
    return values


@click.command("ensemble")
@store_option
@click.option("--models", required=True, help="Comma-separated saved model names (zero-shot is built on the fly).")
@click.option("--encoder", default=None, help="Encoder key (default: the members' own).")
@click.option("--val", default=None, help="Validation split: weights (and --fit-temperatures) are chosen on it.")
@click.option("--combine", type=click.Choice(["proba", "logits"]), default="proba", show_default=True,
              help="Average member probabilities softmax(z/T), or scaled logits z/T.")
@click.option("--weights", type=NumberList(click.FLOAT, "numbers"), default=None,
              help="Fixed comma-separated member weights (default: searched on --val, uniform without it).")
@click.option("--fit-temperatures", is_flag=True, help="Fit each member's temperature on --val first.")
@click.option("--grid-step", type=click.FloatRange(min=0, min_open=True, max=1), default=0.1, show_default=True,
              help="Step of the weight simplex grid searched on --val (must divide 1).")
@bank_option("Text bank for zero-shot (default: matches --val).")
@click.option("--save", required=True, help="Name of the saved ensemble (use it with fs predict / fs eval).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(store: str, models: str, encoder: str | None, val: str | None, combine: str, weights: list[float] | None,
            fit_temperatures: bool, grid_step: float, bank: str | None, save: str, as_json: bool) -> None:
    """Weighted ensemble of fitted solvers, itself a solver: saved, predicted and evaluated like one.

    Imported logits (logits:NAME) only cover the split they were imported for, so they join
    ensembles in `fs ood`, not here.
    """
    from featurestore.errors import ProvenanceError
    from featurestore.store.feature_store import FeatureStore
    from solvers.ensembles.ensemble import Ensemble
    from solvers.persistence import save_to_store
    from workflows.inputs.solver_inputs import labelled, load_model

    names = model_names(models)
    if any(name.startswith("logits:") for name in names):
        raise click.UsageError("imported logits cover one split only; combine them with `fs ood --models`")
    if fit_temperatures and val is None:
        raise click.UsageError("--fit-temperatures needs --val")
    fixed = _weights(weights, len(names))
    with FeatureStore(store) as reader:
        members, keys = [], set()
        for name in names:
            if name == "zero-shot" and val is None and bank is None:
                raise click.UsageError("zero-shot in an ensemble needs its class text bank: give --val (its "
                                       "classes pick the bank) or --bank BANK")
            solver, key, _ = load_model(reader, name, encoder, bank, val)
            members.append(solver)
            keys.add(key)
        if len(keys) != 1:
            raise ProvenanceError(f"the members were fitted on different encoders ({', '.join(sorted(keys))})")
        key = keys.pop()
        class_lists = {tuple(m.class_names_) for m in members if getattr(m, "class_names_", None) is not None}
        if len(class_lists) > 1:
            raise ProvenanceError("the members were fitted on different class lists; ensemble models of one task")
        classes = list(class_lists.pop()) if class_lists else None
        X_val, y_val = labelled(reader, key, val, classes=classes) if val else (None, None)
    ensemble = Ensemble(members=members, combine=combine, weights=fixed,
                        temperatures="fit" if fit_temperatures else None, grid_step=grid_step)
    ensemble.fit(X_val=X_val, y_val=y_val)
    ensemble.class_names_ = classes
    with FeatureStore(store, mode="a") as writer:
        save_to_store(writer, save, ensemble, key)
    summary = {"ensemble": save, "members": names, "encoder": key, "combine": combine,
               "weights": [float(w) for w in ensemble.weights_],
               "temperatures": [float(t) for t in ensemble.temperatures_]}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    parts = ", ".join(f"{n} w={w:.2f} T={t:.3g}" for n, w, t in zip(names, summary["weights"], summary["temperatures"]))
    click.echo(f"saved ensemble {save!r} ({combine}): {parts}")
