"""`fs solve NAME`: fit a closed-form solver on stored features, report accuracy, save it."""
from __future__ import annotations

import json
import re

import click

from cli.options import NAME


#: Solvers whose logits add a zero-shot term from the class text weights and drop it silently
#: without them (others either need the weights, and say so, or use them only to count classes).
TEXT_TERM_SOLVERS = ("gda", "tip-adapter")
#: Solvers that read a second image encoder's features after the CLIP ones (--aux-encoder).
AUX_SOLVERS = ("amu", "label-free")
#: Solvers whose report includes the gain over zero-shot CLIP on the same rows.
GAIN_SOLVERS = ("amu", "label-free")


def _parse_pairs(pairs: tuple[str, ...], option: str) -> dict:
    """``key=value`` strings as a dict, values parsed as JSON where they are JSON."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{option} takes key=value, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def _check_params(name: str, cls, params: dict) -> None:
    """Refuse hyper-parameters the solver does not have, data parameters (read from the store, not
    given on the command line) and text where the parameter takes numbers, naming the parameter."""
    import inspect

    from workflows.inputs.arrays import INPUTS

    data = set(getattr(cls, "_data_params", ()))
    signature = inspect.signature(cls.__init__).parameters
    offered = [p for p in signature if p != "self" and p not in data]
    inputs = {spec.name for spec in INPUTS.get(name, ())}
    for key, value in params.items():
        if key in inputs:
            raise click.UsageError(f"{key} names store contents: give --input {key}=..., not --param")
        if key in data:
            raise click.UsageError(f"{key} is read from the store (--text, --input), not given as --param")
        if key not in offered:
            raise click.UsageError(f"{name} has no parameter {key!r} (it has: {', '.join(offered)}; see fs solve --list)")
        annotation = signature[key].annotation
        if annotation is not inspect.Parameter.empty and not _matches(value, str(annotation)):
            shown = value if isinstance(value, str) else json.dumps(value)
            raise click.UsageError(f"--param {key}={shown}: {key} takes {annotation}")


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "["
        depth -= char == "]"
        if char == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def _matches(value, annotation: str) -> bool:
    """Whether a JSON value fits a constructor annotation such as ``float | None``,
    ``tuple[float, ...]`` or ``str | tuple[float, float]`` (unknown annotations accept anything)."""
    import math

    for option in _split_top(annotation, "|"):
        if option == "None" and value is None:
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option == "float" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return True
        if option == "str" and isinstance(value, str):
            return True
        if option.startswith(("tuple[", "list[")) and isinstance(value, list):
            inner = _split_top(option[option.index("[") + 1:-1], ",")
            if inner[-1] == "...":
                if value and all(_matches(v, inner[0]) for v in value):
                    return True
            elif len(inner) == len(value) and all(_matches(v, t) for v, t in zip(value, inner)):
                return True
        if option not in ("None", "bool", "int", "float", "str") and not option.startswith(("tuple[", "list[")):
            return True
    return False


def _fitted_scalars(solver) -> dict:
    """Hyper-parameters the solver chose (fitted scalar attributes; scores such as
    ``val_accuracy_`` are reported under their own keys, not as choices)."""
    return {k: v for k, v in vars(solver).items()
            if k.endswith("_") and not k.startswith("_") and k != "n_features_in_" and "accuracy" not in k
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _print_list() -> None:
    from solvers.registry import describe
    from workflows.inputs.arrays import INPUTS

    for solver_name, entry in describe().items():
        click.echo(f"{solver_name}  ({entry['class']}): {entry['doc']}")
        for key, default in entry["params"].items():
            click.echo(f"    --param {key}={json.dumps(default)}")
        for spec in INPUTS.get(solver_name, ()):
            shown = "" if spec.default is None else f" (default {spec.default})"
            click.echo(f"    --input {spec.name}=...  {spec.help}{shown}")


@click.command("solve")
@click.argument("name", required=False)
@click.option("--list", "list_solvers", is_flag=True, help="List the solvers, their hyper-parameters and store inputs.")
@click.option("--store", type=click.Path(dir_okay=False), help="The store file (.h5).")
@click.option("--encoder", help="Encoder key in the store (default: the store's only encoder).")
@click.option("--train", help="Labelled split to fit on (unlabelled rows for unsupervised-gda).")
@click.option("--val", help="Validation split for hyper-parameter search (never the test split).")
@click.option("--test", help="Split to report accuracy on.")
@click.option("--text", "bank", type=NAME, help="Text bank of zero-shot weights (default: the class bank matching --train).")
@click.option("--shots", type=click.IntRange(min=1), help="Sample this many training rows per class.")
@click.option("--val-shots", type=click.IntRange(min=1), help="Sample this many validation rows per class.")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(min=0), default=(1,), show_default=True,
              help="Few-shot sampling seed (repeat for several runs: mean and std are reported).")
@click.option("--allow-fewer", is_flag=True, help="Take all rows of classes smaller than --shots.")
@click.option("--views-as", type=click.Choice(["samples", "mean"]), default=None,
              help="Build the training set from the stored augmented views (fs extract --views N), without the "
                   "centre crop: 'samples' = every view a row (official GDA), 'mean' = each image's views "
                   "averaged, then normalized (official Tip-Adapter). Applied after --shots sampling.")
@click.option("--param", "params", multiple=True, help="Solver hyper-parameter key=value (JSON value; see --list).")
@click.option("--input", "inputs", multiple=True,
              help="Store contents a solver reads, key=value: pool split, support shots, banks (see --list).")
@click.option("--aux-encoder", default=None,
              help="amu, label-free: an auxiliary image encoder of the store (e.g. DINO) over the same splits; "
                   "its features follow the CLIP encoder's.")
@click.option("--unlabelled", default=None,
              help="label-free: the unlabelled split to pseudo-label and fit on (transductive when it is also --test).")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="label-free: pseudo-label rounds.")
@click.option("--incremental", type=click.Path(dir_okay=False), default=None,
              help="gda: the few-shot class-incremental protocol over the sessions of this JSON file "
                   "(base + N-way K-shot sessions; prints the per-session accuracy table).")
@click.option("--save", help="Save the fitted model in the store under this name (name-seedS for several seeds).")
@click.option("--calibrate", is_flag=True,
              help="Fit a softmax temperature on --val (temperature scaling); saved with the model.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="gda only: fit out of core from statistics streamed in chunks of this many rows.")
@click.option("--cluster", default=None, help="With --chunk-rows: reduce statistics on a Dask LocalCluster (local:N).")
@click.option("--scheduler", default=None, help="With --chunk-rows: reduce statistics on a Dask cluster (tcp://host:port).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the result in CLIP_benchmark's shape (dataset, model, pretrained, task, metrics "
                   "acc1/acc5/mean_per_class_recall: mean over seeds, std in metrics_std) to this JSON file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(name: str | None, list_solvers: bool, store: str | None, encoder: str | None, train: str | None,
            val: str | None, test: str | None, bank: str | None, shots: int | None, val_shots: int | None,
            seeds: tuple[int, ...], allow_fewer: bool, views_as: str | None, params: tuple[str, ...],
            inputs: tuple[str, ...], aux_encoder: str | None, unlabelled: str | None, rounds: int | None,
            incremental: str | None, save: str | None, calibrate: bool, chunk_rows: int | None,
            cluster: str | None, scheduler: str | None, as_json: bool, output: str | None, quiet: bool) -> None:
    """Fit solver NAME (see --list) on stored features; alpha/beta/C are searched on --val.

    Without --test, the accuracy reported is the validation accuracy (key val_accuracy)."""
    from solvers._base.progress import quiet as quiet_progress

    click.get_current_context().with_resource(quiet_progress(quiet))
    if list_solvers:
        _print_list()
        return
    if not name or not store:
        raise click.UsageError("give a solver NAME and --store (or --list)")
    if val is not None and val == test:
        raise click.UsageError("--val and --test are the same split: hyper-parameters are never chosen on the test split")
    from solvers.registry import NAMES, solver_class

    if name not in NAMES:
        raise click.UsageError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")
    cls = solver_class(name)
    kwargs = _parse_pairs(params, "--param")
    _check_params(name, cls, kwargs)
    given_inputs = _parse_pairs(inputs, "--input")
    if unlabelled is not None:
        if cls.fit_input != "unlabelled":
            raise click.UsageError(f"--unlabelled is for solvers that fit on unlabelled rows (label-free), not {name}")
        if train is not None and train != unlabelled:
            raise click.UsageError("give --unlabelled or --train, not two different splits")
        train = unlabelled
    if shots and cls.fit_input == "unlabelled":
        raise click.UsageError(f"{name} fits on unlabelled rows: --shots (rows per class) does not apply")
    if rounds is not None:
        if "rounds" not in cls._get_param_names():
            raise click.UsageError(f"--rounds is for label-free, not {name}")
        kwargs["rounds"] = rounds
    if aux_encoder is not None and name not in AUX_SOLVERS:
        raise click.UsageError(f"--aux-encoder is for {', '.join(AUX_SOLVERS)}, not {name}")
    if name == "amu" and aux_encoder is None:
        raise click.UsageError("amu adds a logit bias from an auxiliary encoder's features: give --aux-encoder KEY")
    if aux_encoder is not None and (views_as or chunk_rows or cluster or scheduler):
        raise click.UsageError("--aux-encoder is not available with --views-as or out-of-core fitting")
    if incremental is not None:
        if name != "gda":
            raise click.UsageError(f"--incremental runs class-incremental gda, not {name}")
        if chunk_rows or cluster or scheduler or views_as or calibrate or save or output:
            raise click.UsageError("--incremental runs the protocol only "
                                   "(no --chunk-rows, --views-as, --calibrate, --save, --output)")
        _solve_incremental(cls, kwargs, store, encoder, train, val, test, bank, shots,
                           seeds[0], incremental, as_json)
        return
    if scheduler is not None and not re.fullmatch(r"([a-z]+://)?[^\s:/]+:\d+", scheduler):
        raise click.UsageError(f"--scheduler takes a Dask scheduler address such as tcp://host:8786, got {scheduler!r}")
    if chunk_rows or cluster or scheduler:
        if views_as or output:
            raise click.UsageError("--views-as and --output are not available with out-of-core fitting "
                                   "(--chunk-rows/--cluster)")
        from workflows.streaming import DEFAULT_CHUNK_ROWS

        _solve_streaming(name, store, encoder, train, val, test, bank, shots, kwargs, save,
                         chunk_rows or DEFAULT_CHUNK_ROWS, cluster, scheduler, as_json, quiet)
        return
    _solve(name, cls, kwargs, given_inputs, store, encoder, train, val, test, bank, shots, val_shots, seeds,
           allow_fewer, views_as, save, calibrate, as_json, aux_encoder, output)


def _check_shots(y, shots: int, class_list: list[str] | None, split: str, flag: str) -> None:
    """Refuse --shots / --val-shots larger than a class, naming the class and --allow-fewer."""
    import numpy as np

    counts = np.bincount(y[y >= 0])
    present = np.flatnonzero(counts)
    smallest = present[np.argmin(counts[present])]
    if counts[smallest] < shots:
        label = class_list[smallest] if class_list is not None and smallest < len(class_list) else str(smallest)
        raise click.UsageError(f"class {label!r} of split {split!r} has only {counts[smallest]} row(s), fewer than "
                               f"{flag} {shots}; add --allow-fewer to take all of its rows")


def _solve(name, cls, kwargs, given_inputs, store, encoder, train, val, test, bank, shots, val_shots, seeds,
           allow_fewer, views_as, save, calibrate, as_json, aux_encoder=None, output=None) -> None:
    import warnings

    import numpy as np

    from featurestore.store.feature_store import FeatureStore
    from solvers.model_selection.fewshot import fewshot_split
    from solvers._base.fit_warnings import SolverWarning
    from workflows.inputs.aux_features import check_aux_encoder, paired_features, paired_labelled
    from workflows.inputs.arrays import solver_arrays
    from workflows.inputs.solver_inputs import model_classes, resolve_encoder, solver_class_params, text_weights

    needs = cls.fit_input
    if needs != "none" and train is None:
        raise click.UsageError(f"{name} needs --train")
    if views_as and needs != "labels":
        raise click.UsageError(f"--views-as builds a labelled training set; {name} does not fit on one")
    notes: list[str] = []
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        if aux_encoder is not None:
            check_aux_encoder(reader, encoder, aux_encoder)

        def labelled(store, key, split, classes=None):
            return paired_labelled(store, key, aux_encoder, split, classes)

        reference = train or val or test
        T, bank = text_weights(reader, encoder, bank, reference)
        takes_text = "text_weights" in cls._get_param_names()
        if T is not None and takes_text:
            kwargs["text_weights"] = T
        arrays, used = solver_arrays(name, reader, encoder, given_inputs, T)
        kwargs.update(arrays)
        if "text_weights" in arrays:  # REAL: its own bank replaces the class bank
            bank = used.get("real_bank", bank)
        elif name in TEXT_TERM_SOLVERS and T is None:
            notes.append(f"no class text bank matches split {reference!r} (run fs text or give --text): "
                         f"{name} runs without zero-shot text weights")
        # labels are mapped by name onto the class list of the text weights the solver holds
        uses_text = "text_weights" in kwargs
        classes = model_classes(reader, encoder, bank if uses_text else None, reference)
        kwargs.update(solver_class_params(cls, classes, uses_text))
        X_train, y_train, views_train = None, None, None
        if needs == "unlabelled":
            X_train = paired_features(reader, encoder, aux_encoder, train)
        elif needs == "labels":
            X_train, y_train = labelled(reader, encoder, train, classes=classes)
            if views_as:
                from workflows.inputs.solver_inputs import labelled_views

                views_train = labelled_views(reader, encoder, train, classes=classes)
        X_val, y_val = labelled(reader, encoder, val, classes=classes) if val else (None, None)
        X_test, y_test = labelled(reader, encoder, test, classes=classes) if test else (None, None)
    if shots and y_train is not None and not allow_fewer:
        _check_shots(y_train, shots, classes, train, "--shots")
    if val_shots and y_val is not None and not allow_fewer:
        _check_shots(y_val, val_shots, classes, val, "--val-shots")
    seeded = bool(shots or val_shots)
    runs = []
    for seed in (seeds if seeded else seeds[:1]):
        solver = cls(**kwargs)
        X_fit, y_fit = X_train, y_train
        if shots and y_fit is not None:
            rows = fewshot_split(y_fit, shots, seed, allow_fewer=allow_fewer)
            X_fit, y_fit = X_fit[rows], y_fit[rows]
        if views_train is not None:
            from solvers.model_selection.augmented_views import augmented_training_set

            X_fit, y_fit = augmented_training_set(views_train if not shots else views_train[rows], y_fit, views_as)
        Xv, yv = X_val, y_val
        if val_shots and yv is not None:
            rows = fewshot_split(yv, val_shots, seed, allow_fewer=allow_fewer)
            Xv, yv = Xv[rows], yv[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SolverWarning)  # reported below from fit_warnings_
            if needs == "none":
                solver.fit(X_val=Xv, y_val=yv)
            elif needs == "unlabelled":
                solver.fit(X_fit, X_val=Xv, y_val=yv)
            else:
                solver.fit(X_fit, y_fit, X_val=Xv, y_val=yv)
            if calibrate:
                if Xv is None:
                    raise click.UsageError("--calibrate fits the temperature on --val; give --val")
                from solvers.model_selection.temperature_scaling import calibrate as fit_temperature_on

                fit_temperature_on(solver, Xv, yv)
        solver.class_names_ = classes
        run = {"seed": seed if seeded else None}
        if X_test is not None:
            run["accuracy"] = float(solver.score(X_test, y_test))
        if Xv is not None:
            run["val_accuracy"] = float(solver.score(Xv, yv))
        if name in GAIN_SOLVERS and (X_test is not None or Xv is not None):
            from solvers.zero_shot.zero_shot_gain import gain_over_zero_shot

            Xg, yg = (X_test, y_test) if X_test is not None else (Xv, yv)
            D = solver.text_weights.shape[1]
            run.update(gain_over_zero_shot(solver.predict(Xg), Xg[:, :D], yg, solver.text_weights, solver.logit_scale))
        run["chosen"] = {**_fitted_scalars(solver), **({"temperature": solver.temperature} if calibrate else {})}
        run["warnings"] = list(getattr(solver, "fit_warnings_", []) or [])
        run["solver"] = solver
        if output:
            from workflows.reports.result_files import classification_metrics

            Xo, yo = (X_test, y_test) if X_test is not None else (Xv, yv)
            if Xo is None:
                raise click.UsageError("--output reports metrics on --test (or --val): give one")
            run["metrics"] = classification_metrics(yo, solver.predict_proba(Xo))
        runs.append(run)
    saved = []
    if save:
        from solvers.persistence import save_to_store

        with FeatureStore(store, mode="a") as writer:
            for run in runs:
                model_name = save if len(runs) == 1 else f"{save}-seed{run['seed']}"
                save_to_store(writer, model_name, run["solver"], encoder)
                saved.append(model_name)
    if name == "label-free":
        summary_mode = "transductive" if test == train else "inductive" if test else None
        notes.append(f"label-free fitted on unlabelled split {train!r} without its labels"
                     + (f"; {summary_mode} evaluation on {test!r}" if summary_mode else ""))
    summary = {"solver": name, "encoder": encoder, "aux_encoder": aux_encoder, "text_bank": bank, "inputs": used,
               "mode": summary_mode if name == "label-free" else None, "train": train, "val": val,
               "test": test, "shots": shots, "views_as": views_as, "notes": notes,
               "runs": [{k: v for k, v in r.items() if k != "solver"} for r in runs], "saved": saved}
    if output:
        _write_output(output, name, store, encoder, test or val, runs, seeded, saved, notes)
    for key in ("accuracy", "val_accuracy"):
        values = [r[key] for r in runs if key in r]
        summary[f"mean_{key}"] = float(np.mean(values)) if values else None
        summary[f"std_{key}"] = float(np.std(values)) if values else None
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    for run in runs:
        for message in run["warnings"]:
            click.echo(f"warning: {name}{'' if run['seed'] is None else ' seed ' + str(run['seed'])}: {message}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    sources = f"text bank {bank!r}" if bank else "no text bank"
    sources += "".join(f", {k} {v!r}" for k, v in used.items() if v is not None)
    click.echo(f"{name} on encoder {encoder!r} ({sources})")
    for run in runs:
        chosen = ", ".join(f"{k}={v:.4g}" for k, v in run["chosen"].items())
        if "accuracy" in run:
            result = f"test accuracy {100 * run['accuracy']:.2f}% on {test!r}"
        elif "val_accuracy" in run:
            result = f"validation accuracy {100 * run['val_accuracy']:.2f}% on {val!r} (no --test)"
        else:
            result = "no accuracy (give --test or --val)"
        label = name if run["seed"] is None else f"{name} seed {run['seed']}"
        click.echo(f"{label}: {result}" + (f"  [{chosen}]" if chosen else ""))
        if "gain" in run:
            verdict = "significant" if run["gain_significant"] else "not significant: no gain claimed"
            click.echo(f"{label}: zero-shot {100 * run['zero_shot_accuracy']:.2f}%, "
                       f"gain {100 * run['gain']:+.2f} points (paired s.e. {100 * run['gain_se']:.2f}; {verdict})")
    key = "accuracy" if test else "val_accuracy"
    if len(runs) > 1 and summary[f"mean_{key}"] is not None:
        kind = "test" if test else "validation"
        click.echo(f"{name}: mean {kind} accuracy {100 * summary[f'mean_{key}']:.2f}% +- "
                   f"{100 * summary[f'std_{key}']:.2f} over {len(runs)} seeds")
    for model_name in saved:
        click.echo(f"saved model {model_name!r}")


def _write_output(output: str, name: str, store: str, encoder: str, split: str, runs: list[dict], seeded: bool,
                  saved: list[str], notes: list[str]) -> None:
    """The result file: metrics on ``split`` (mean over seeds, std beside), CLIP_benchmark's keys first."""
    from featurestore.store.feature_store import FeatureStore
    from workflows.reports.result_files import mean_and_std, output_path, record, write_result

    metrics, std = mean_and_std([r.pop("metrics") for r in runs])
    with FeatureStore(store) as reader:
        info, rows = reader.encoder_info(encoder), len(reader.ids(split))
    result = record(dataset=split, encoder=encoder, method=name, metrics=metrics, rows=rows, store=str(store),
                    split=split, encoder_info=info, metrics_std=std if len(runs) > 1 else None,
                    seeds=[r["seed"] for r in runs] if seeded else None,
                    chosen=[r["chosen"] for r in runs], saved=saved,
                    warnings=notes + [m for r in runs for m in r["warnings"]])
    write_result(output_path(output, result), result)


def _solve_incremental(cls, params: dict, store: str, encoder: str | None, train: str | None, val: str | None,
                       test: str | None, bank: str | None, shots: int | None, seed: int,
                       sessions_file: str, as_json: bool) -> None:
    """GDA.partial_fit over the sessions of ``sessions_file``: the FSCIL accuracy table."""
    from featurestore.store.feature_store import FeatureStore
    from solvers.few_shot.class_incremental import fscil_table
    from workflows.incremental import read_sessions
    from workflows.inputs.solver_inputs import labelled, model_classes, resolve_encoder, text_weights

    if train is None or test is None:
        raise click.UsageError("--incremental needs --train and --test")
    if val is not None:
        raise click.UsageError("--incremental fixes alpha (--param alpha=..., default 1.0): no --val search")
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        T, bank = text_weights(reader, encoder, bank, train)
        classes = model_classes(reader, encoder, bank, train)  # the bank's order: weight row k is class k
        spec = read_sessions(sessions_file, classes)
        X_train, y_train = labelled(reader, encoder, train, classes=classes)
        X_test, y_test = labelled(reader, encoder, test, classes=classes)
    notes = []
    if T is None:
        notes.append(f"no class text bank matches split {train!r} (run fs text or give --text): "
                     "gda runs without zero-shot text weights")
    if params.get("alpha") is None and T is not None:
        params["alpha"] = 1.0
        notes.append("alpha fixed at 1.0 (no validation split in the incremental protocol; "
                     "--param alpha=... to change)")
    k = shots or spec["shots"]

    def make(order):
        return cls(**{**params, **({"text_weights": T[order]} if T is not None else {})})

    table = fscil_table(make, X_train, y_train, X_test, y_test, spec["sessions"], shots=k, seed=seed,
                        base_shots=spec["base_shots"])
    summary = {"solver": "gda", "mode": "class-incremental", "encoder": encoder, "text_bank": bank,
               "train": train, "test": test, "sessions_file": sessions_file, "shots": k,
               "base_shots": spec["base_shots"], "seed": seed, "notes": notes, **table}
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    source = f"text bank {bank!r}" if bank else "no text bank"
    click.echo(f"class-incremental gda on encoder {encoder!r} ({source}), "
               f"{len(table['sessions']) - 1} sessions of {k} shots, seed {seed}")
    click.echo(f"{'session':>10} {'classes':>8} {'new rows':>9} {'accuracy':>9}")
    for row in table["sessions"]:
        label = "base" if row["session"] == 0 else str(row["session"])
        click.echo(f"{label:>10} {row['classes']:>8} {row['new_rows']:>9} {100 * row['accuracy']:>8.2f}%")
    click.echo(f"{'average':>10} {'':>8} {'':>9} {100 * table['average']:>8.2f}%")
    click.echo(f"{'drop':>10} {'':>8} {'':>9} {100 * table['drop']:>8.2f}  (base minus last session, points)")


def _solve_streaming(name: str, store: str, encoder: str | None, train: str | None, val: str | None,
                     test: str | None, bank: str | None, shots: int | None, params: dict, save: str | None,
                     chunk_rows: int, cluster: str | None, scheduler: str | None, as_json: bool, quiet: bool) -> None:
    """GDA fitted from streamed sufficient statistics (store larger than RAM), optionally on Dask."""
    import contextlib

    import numpy as np

    from featurestore.store.feature_store import FeatureStore
    from workflows.inputs.solver_inputs import labelled, model_classes, resolve_encoder, split_labels, text_weights
    from workflows.streaming import decision_in_chunks, fit_gda_streaming

    if name != "gda":
        raise click.UsageError("--chunk-rows/--cluster fit gda only (other solvers predict in chunks via fs predict)")
    if shots or train is None:
        raise click.UsageError("out-of-core gda fits a whole --train split (no --shots)")
    if cluster or scheduler:
        from featurestore.cluster import dask_client

        context = dask_client(cluster, scheduler)
    else:
        context = contextlib.nullcontext(None)
    notes = []
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        T, bank = text_weights(reader, encoder, bank, train)
        classes = model_classes(reader, encoder, bank, train)  # the bank's order: weight row k is class k
        if T is not None:
            params.setdefault("text_weights", T)
        else:
            notes.append(f"no class text bank matches split {train!r} (run fs text or give --text): "
                         "gda runs without zero-shot text weights")
        X_val, y_val = labelled(reader, encoder, val, classes=classes) if val else (None, None)
        with context as client:
            solver = fit_gda_streaming(reader, encoder, train, chunk_rows=chunk_rows, client=client,
                                       X_val=X_val, y_val=y_val, quiet=as_json or quiet,
                                       classes=classes if classes != reader.classes(train) else None, **params)
        accuracy = None
        if test:
            pred = decision_in_chunks(solver, reader, encoder, test, chunk_rows=chunk_rows, method="predict")
            y = split_labels(reader, test, classes)
            accuracy = float(np.mean(pred[y >= 0] == y[y >= 0]))
    solver.class_names_ = classes
    if save:
        from solvers.persistence import save_to_store

        with FeatureStore(store, mode="a") as writer:
            save_to_store(writer, save, solver, encoder)
    val_accuracy = getattr(solver, "val_accuracy_", None)
    summary = {"solver": name, "encoder": encoder, "text_bank": bank, "train": train, "val": val, "test": test,
               "accuracy": accuracy, "val_accuracy": val_accuracy, "alpha": solver.alpha_, "chunk_rows": chunk_rows,
               "notes": notes, "warnings": list(getattr(solver, "fit_warnings_", []) or []),
               "saved": [save] if save else []}
    for note in notes + summary["warnings"]:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    acc = f"test accuracy {100 * accuracy:.2f}% on {test!r}" if accuracy is not None else "no --test"
    click.echo(f"{name} (out of core, chunks of {chunk_rows} rows, "
               f"{'text bank ' + repr(bank) if bank else 'no text bank'}): {acc}  [alpha_={solver.alpha_}]")
    if save:
        click.echo(f"saved model {save!r}")
