"""`fs ensemble`: combine saved models (and zeroshot) into one saved ensemble solver."""
from __future__ import annotations

import json

import click

from cli.options import store_option


@click.command("ensemble")
@store_option
@click.option("--models", required=True, help="Comma-separated saved model names (zeroshot is built on the fly).")
@click.option("--encoder", default=None, help="Encoder key (default: the members' own).")
@click.option("--val", default=None, help="Validation split: weights (and --fit-temperatures) are chosen on it.")
@click.option("--combine", type=click.Choice(["proba", "logits"]), default="proba", show_default=True,
              help="Average member probabilities softmax(z/T), or scaled logits z/T.")
@click.option("--weights", default=None, help="Fixed comma-separated member weights (default: searched on --val, "
                                              "uniform without it).")
@click.option("--fit-temperatures", is_flag=True, help="Fit each member's temperature on --val first.")
@click.option("--grid-step", default=0.1, show_default=True, help="Step of the weight simplex grid searched on --val.")
@click.option("--text", "bank", default=None, help="Text bank for zeroshot (default: matches --val).")
@click.option("--save", required=True, help="Name of the saved ensemble (use it with fs predict / fs eval).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(store: str, models: str, encoder: str | None, val: str | None, combine: str, weights: str | None,
            fit_temperatures: bool, grid_step: float, bank: str | None, save: str, as_json: bool) -> None:
    """Weighted ensemble of fitted solvers, itself a solver: saved, predicted and evaluated like one.

    Imported logits (logits:NAME) only cover the split they were imported for, so they join
    ensembles in `fs ood`, not here.
    """
    from workflows.solver_inputs import labelled, load_model
    from featurestore.errors import ProvenanceError
    from featurestore.store import FeatureStore
    from solvers.ensemble import Ensemble
    from solvers.persistence import save_to_store

    names = [m.strip() for m in models.split(",") if m.strip()]
    if any(name.startswith("logits:") for name in names):
        raise click.UsageError("imported logits cover one split only; combine them with `fs ood --model`")
    if fit_temperatures and val is None:
        raise click.UsageError("--fit-temperatures needs --val")
    fixed = [float(w) for w in weights.split(",")] if weights else None
    with FeatureStore(store) as reader:
        members, keys = [], set()
        for name in names:
            solver, key, _ = load_model(reader, name, encoder, bank, val or "")
            members.append(solver)
            keys.add(key)
        if len(keys) != 1:
            raise ProvenanceError(f"the members were fitted on different encoders ({', '.join(sorted(keys))})")
        key = keys.pop()
        X_val, y_val = labelled(reader, key, val) if val else (None, None)
    ensemble = Ensemble(members=members, combine=combine, weights=fixed,
                        temperatures="fit" if fit_temperatures else None, grid_step=grid_step)
    ensemble.fit(X_val=X_val, y_val=y_val)
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
