"""`fs solve NAME`: fit a closed-form solver on stored features, report accuracy, save it."""
from __future__ import annotations

import json

import click



def _parse_params(pairs: tuple[str, ...]) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.UsageError(f"--param takes key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _fitted_scalars(solver) -> dict:
    """Hyper-parameters the solver chose (fitted scalar attributes)."""
    return {k: v for k, v in vars(solver).items()
            if k.endswith("_") and not k.startswith("_") and k != "n_features_in_"
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


@click.command("solve")
@click.argument("name", required=False)
@click.option("--list", "list_solvers", is_flag=True, help="List the solvers and their hyper-parameters.")
@click.option("--store", type=click.Path(dir_okay=False), help="The store file (.h5).")
@click.option("--encoder", help="Encoder key in the store.")
@click.option("--train", help="Labelled split to fit on (unlabelled rows for unsupervised-gda).")
@click.option("--val", help="Validation split for hyper-parameter search (never the test split).")
@click.option("--test", help="Split to report accuracy on.")
@click.option("--text", "bank", help="Text bank of zero-shot weights (default: the class bank matching --train).")
@click.option("--shots", type=click.IntRange(min=1), help="Sample this many training rows per class.")
@click.option("--val-shots", type=click.IntRange(min=1), help="Sample this many validation rows per class.")
@click.option("--seed", "seeds", multiple=True, type=int, default=(1,), show_default=True,
              help="Few-shot sampling seed (repeat for several runs: mean and std are reported).")
@click.option("--allow-fewer", is_flag=True, help="Take all rows of classes smaller than --shots.")
@click.option("--average-views", is_flag=True,
              help="Average each training feature with its augmented views (extract with --views N), "
                   "as Tip-Adapter and GDA build their caches.")
@click.option("--param", "params", multiple=True, help="Solver hyper-parameter key=value (JSON value).")
@click.option("--save", help="Save the fitted model in the store under this name (name-seedS for several seeds).")
@click.option("--calibrate", is_flag=True,
              help="Fit a softmax temperature on --val (temperature scaling); saved with the model.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="gda only: fit out of core from statistics streamed in chunks of this many rows.")
@click.option("--cluster", default=None, help="With --chunk-rows: reduce statistics on a Dask LocalCluster (local:N).")
@click.option("--scheduler", default=None, help="With --chunk-rows: reduce statistics on a Dask cluster (tcp://host:port).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(name: str | None, list_solvers: bool, store: str | None, encoder: str | None, train: str | None,
            val: str | None, test: str | None, bank: str | None, shots: int | None, val_shots: int | None,
            seeds: tuple[int, ...], allow_fewer: bool, average_views: bool, params: tuple[str, ...],
            save: str | None,
            calibrate: bool, chunk_rows: int | None, cluster: str | None, scheduler: str | None,
            as_json: bool, quiet: bool) -> None:
    """Fit solver NAME (see --list) on stored features; alpha/beta/C are searched on --val."""
    from solvers.progress import quiet as quiet_progress

    click.get_current_context().with_resource(quiet_progress(quiet))
    if list_solvers:
        from solvers.registry import describe

        for solver_name, entry in describe().items():
            click.echo(f"{solver_name}  ({entry['class']}): {entry['doc']}")
            for key, default in entry["params"].items():
                click.echo(f"    {key} = {default!r}")
        return
    if not name or not store or not encoder:
        raise click.UsageError("give a solver NAME, --store and --encoder (or --list)")
    if val is not None and val == test:
        raise click.UsageError("--val and --test are the same split: hyper-parameters are never chosen on the test split")
    import numpy as np

    from workflows.solver_inputs import labelled, text_weights
    from featurestore.store import FeatureStore
    from solvers.fewshot import fewshot_split
    from solvers.registry import solver_class

    if chunk_rows or cluster or scheduler:
        if average_views:
            raise click.UsageError("--average-views is not available with out-of-core fitting (--chunk-rows/--cluster)")
        from solvers.streaming import DEFAULT_CHUNK_ROWS

        _solve_streaming(name, store, encoder, train, val, test, bank, shots, _parse_params(params), save,
                         chunk_rows or DEFAULT_CHUNK_ROWS, cluster, scheduler, as_json, quiet)
        return
    cls = solver_class(name)
    kwargs = _parse_params(params)
    needs = cls.fit_input
    with FeatureStore(store) as reader:
        reader.encoder_info(encoder)
        if needs != "none" and train is None:
            raise click.UsageError(f"{name} needs --train")
        T, bank = text_weights(reader, encoder, bank, train or test)
        if T is not None and "text_weights" not in kwargs and "text_weights" in cls._get_param_names():
            kwargs["text_weights"] = T
        kwargs.update(cls.store_inputs(reader, encoder, kwargs))
        X_train, y_train = None, None
        if needs == "unlabelled":
            X_train = reader.features(encoder, train)
        elif needs == "labels":
            X_train, y_train = labelled(reader, encoder, train, average_views=average_views)
        X_val, y_val = labelled(reader, encoder, val) if val else (None, None)
        X_test, y_test = labelled(reader, encoder, test) if test else (X_val, y_val)
    runs = []
    for seed in seeds:
        solver = cls(**kwargs)
        X_fit, y_fit = X_train, y_train
        if shots and y_fit is not None:
            rows = fewshot_split(y_fit, shots, seed, allow_fewer=allow_fewer)
            X_fit, y_fit = X_fit[rows], y_fit[rows]
        Xv, yv = X_val, y_val
        if val_shots and yv is not None:
            rows = fewshot_split(yv, val_shots, seed, allow_fewer=allow_fewer)
            Xv, yv = Xv[rows], yv[rows]
        if needs == "none":
            solver.fit(X_val=Xv, y_val=yv)
        elif needs == "unlabelled":
            solver.fit(X_fit, X_val=Xv, y_val=yv)
        else:
            solver.fit(X_fit, y_fit, X_val=Xv, y_val=yv)
        if calibrate:
            if Xv is None:
                raise click.UsageError("--calibrate fits the temperature on --val; give --val")
            from solvers.temperature_scaling import calibrate as fit_temperature_on

            fit_temperature_on(solver, Xv, yv)
        accuracy = float(solver.score(X_test, y_test)) if X_test is not None else None
        runs.append({"seed": seed, "accuracy": accuracy, "chosen": {**_fitted_scalars(solver), **({"temperature": solver.temperature} if calibrate else {})}, "solver": solver})
    saved = []
    if save:
        from solvers.persistence import save_to_store

        with FeatureStore(store, mode="a") as writer:
            for run in runs:
                model_name = save if len(runs) == 1 else f"{save}-seed{run['seed']}"
                save_to_store(writer, model_name, run["solver"], encoder)
                saved.append(model_name)
    accuracies = [r["accuracy"] for r in runs if r["accuracy"] is not None]
    summary = {"solver": name, "encoder": encoder, "text_bank": bank, "train": train, "val": val,
               "test": test or val, "shots": shots,
               "runs": [{k: v for k, v in r.items() if k != "solver"} for r in runs],
               "mean_accuracy": float(np.mean(accuracies)) if accuracies else None,
               "std_accuracy": float(np.std(accuracies)) if accuracies else None, "saved": saved}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    for run in runs:
        chosen = ", ".join(f"{k}={v:.4g}" for k, v in run["chosen"].items())
        acc = f"{100 * run['accuracy']:.2f}%" if run["accuracy"] is not None else "n/a (no --test/--val)"
        click.echo(f"{name} seed {run['seed']}: accuracy {acc}" + (f"  [{chosen}]" if chosen else ""))
    if len(accuracies) > 1:
        click.echo(f"{name}: mean {100 * summary['mean_accuracy']:.2f}% +- {100 * summary['std_accuracy']:.2f} "
                   f"over {len(accuracies)} seeds")
    for model_name in saved:
        click.echo(f"saved model {model_name!r}")


def _solve_streaming(name: str, store: str, encoder: str, train: str | None, val: str | None, test: str | None,
                     bank: str | None, shots: int | None, params: dict, save: str | None, chunk_rows: int,
                     cluster: str | None, scheduler: str | None, as_json: bool, quiet: bool) -> None:
    """GDA fitted from streamed sufficient statistics (store larger than RAM), optionally on Dask."""
    import contextlib

    import numpy as np

    from workflows.solver_inputs import labelled, text_weights
    from featurestore.store import FeatureStore
    from solvers.streaming import decision_in_chunks, fit_gda_streaming

    if name != "gda":
        raise click.UsageError("--chunk-rows/--cluster fit gda only (other solvers predict in chunks via fs predict)")
    if shots or train is None:
        raise click.UsageError("out-of-core gda fits a whole --train split (no --shots)")
    if cluster or scheduler:
        from featurestore.cluster import dask_client

        context = dask_client(cluster, scheduler)
    else:
        context = contextlib.nullcontext(None)
    with FeatureStore(store) as reader, context as client:
        T, bank = text_weights(reader, encoder, bank, train)
        if T is not None:
            params.setdefault("text_weights", T)
        X_val, y_val = labelled(reader, encoder, val) if val else (None, None)
        solver = fit_gda_streaming(reader, encoder, train, chunk_rows=chunk_rows, client=client,
                                   X_val=X_val, y_val=y_val, quiet=as_json or quiet, **params)
        accuracy = None
        if test:
            pred = decision_in_chunks(solver, reader, encoder, test, chunk_rows=chunk_rows, method="predict")
            y = reader.labels(test)
            accuracy = float(np.mean(pred[y >= 0] == y[y >= 0]))
    if save:
        from solvers.persistence import save_to_store

        with FeatureStore(store, mode="a") as writer:
            save_to_store(writer, save, solver, encoder)
    summary = {"solver": name, "encoder": encoder, "text_bank": bank, "train": train, "test": test,
               "accuracy": accuracy, "alpha": solver.alpha_, "chunk_rows": chunk_rows, "saved": [save] if save else []}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    acc = f"{100 * accuracy:.2f}%" if accuracy is not None else "n/a (no --test)"
    click.echo(f"{name} (out of core, chunks of {chunk_rows} rows): accuracy {acc}  [alpha_={solver.alpha_}]")
    if save:
        click.echo(f"saved model {save!r}")
