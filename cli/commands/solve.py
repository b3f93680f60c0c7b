"""`fs solve NAME`: fit a closed-form solver on stored features, report accuracy, save it.
Parses, calls ``workflows.solve`` (the path `fs benchmark` runs too) and prints."""
from __future__ import annotations

import re
from typing import Any

import click

from cli import solve_options as shared
from cli.options import NAME


@click.command("solve")
@click.argument("name", required=False)
@click.option("--list", "list_solvers", is_flag=True, help="List the solvers, their hyper-parameters and store inputs.")
@click.option("--store", type=click.Path(dir_okay=False), help="The store file (.h5).")
@click.option("--encoder", help="Encoder key in the store (default: the store's only encoder).")
@click.option("--train", help="Labelled split to fit on (unlabelled rows for unsupervised-gda).")
@click.option("--val", help="Validation split for hyper-parameter search (never the test split).")
@click.option("--test", help="Split to report accuracy on.")
@click.option("--bank", type=NAME, help="Text bank of zero-shot weights (default: <train>/dataset, else the class "
                                        "bank matching --train).")
@click.option("--shots", type=click.IntRange(min=1), help="Sample this many training rows per class.")
@shared.val_shots_option
@shared.seeds_option
@shared.allow_fewer_option
@shared.views_as_option
@shared.sampler_option
@shared.holdout_option(None)
@click.option("--param", "params", multiple=True, help="Solver hyper-parameter key=value (JSON value; see --list).")
@click.option("--input", "inputs", multiple=True,
              help="Store contents a solver reads, key=value: pool split, support shots, banks (see --list).")
@click.option("--aux-encoder", default=None,
              help="amu, label-free: an auxiliary image encoder of the store (e.g. DINO) over the same splits; "
                   "its features follow the CLIP encoder's.")
@click.option("--unlabelled", default=None,
              help="label-free: the unlabelled split to pseudo-label and fit on (transductive when it is also --test).")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="label-free, unsupervised-gda: pseudo-label rounds.")
@click.option("--incremental", type=click.Path(dir_okay=False), default=None,
              help="gda: the few-shot class-incremental protocol over the sessions of this JSON file "
                   "(base + N-way K-shot sessions; prints the per-session accuracy table).")
@click.option("--save", help="Save the fitted model in the store under this name (name-seedS for several seeds).")
@shared.calibrate_option
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="gda only: fit out of core from statistics streamed in chunks of this many rows.")
@click.option("--cluster", default=None, help="With --chunk-rows: reduce statistics on a Dask LocalCluster (local:N).")
@click.option("--scheduler", default=None, help="With --chunk-rows: reduce statistics on a Dask cluster (tcp://host:port).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the result in CLIP_benchmark's shape (dataset, model, pretrained, task, metrics "
                   "acc1/acc5/mean_per_class_recall: mean over seeds, std in metrics_std) to this JSON file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def command(name: str | None, list_solvers: bool, store: str | None, **o: Any) -> None:
    """Fit solver NAME (see --list) on stored features; alpha/beta/C are searched on --val.

    Without --test, the accuracy reported is the validation accuracy (key val_accuracy)."""
    from cli import solve_output as out
    from solvers import quiet as quiet_progress
    from solvers.registry import NAMES, solver_class
    from workflows.params import check_params, parse_pairs

    click.get_current_context().with_resource(quiet_progress(o["quiet"]))
    if list_solvers:
        out.print_list()
        return
    if not name or not store:
        raise click.UsageError("give a solver NAME and --store (or --list)")
    if name not in NAMES:
        raise click.UsageError(f"unknown solver {name!r}; choose from {', '.join(NAMES)}")
    cls = solver_class(name)
    params = parse_pairs(o["params"], "--param")
    check_params(name, cls, params)
    train, seeds = o["train"], o["seeds"]
    if len(seeds) > 1 and not (o["shots"] or o["val_shots"]):
        raise click.UsageError("several --seeds draw several few-shot sets: give --shots or --val-shots, or one seed")
    if o["unlabelled"] is not None:
        if cls.fit_input != "unlabelled":
            raise click.UsageError(f"--unlabelled is for solvers that fit on unlabelled rows (label-free), not {name}")
        if train is not None and train != o["unlabelled"]:
            raise click.UsageError("give --unlabelled or --train, not two different splits")
        train = o["unlabelled"]
    if o["rounds"] is not None:
        if "rounds" not in cls._get_param_names():
            raise click.UsageError(f"--rounds is for label-free, not {name}")
        params["rounds"] = o["rounds"]
    streamed = o["chunk_rows"] or o["cluster"] or o["scheduler"]
    if o["aux_encoder"] is not None and streamed:
        raise click.UsageError("--aux-encoder is not available with out-of-core fitting")
    if o["incremental"] is not None:
        if name != "gda":
            raise click.UsageError(f"--incremental runs class-incremental gda, not {name}")
        if streamed or o["views_as"] or o["calibrate"] or o["save"] or o["output"] or len(seeds) > 1:
            raise click.UsageError("--incremental runs the protocol only, with one seed "
                                   "(no --chunk-rows, --views-as, --calibrate, --save, --output)")
        from workflows.solve_modes import incremental

        out.print_incremental(incremental(store, o["incremental"], encoder=o["encoder"], train=train, val=o["val"],
                                          test=o["test"], bank=o["bank"], shots=o["shots"], seed=seeds[0],
                                          params=params), o["as_json"])
        return
    if o["scheduler"] is not None and not re.fullmatch(r"([a-z]+://)?[^\s:/]+:\d+", o["scheduler"]):
        raise click.UsageError(f"--scheduler takes a Dask scheduler address such as tcp://host:8786, "
                               f"got {o['scheduler']!r}")
    if streamed:
        if name != "gda":
            raise click.UsageError("--chunk-rows/--cluster fit gda only (other solvers predict in chunks: fs predict)")
        if o["views_as"] or o["output"] or o["shots"] or o["calibrate"] or o["holdout"]:
            raise click.UsageError("out-of-core gda fits a whole --train split: no --shots, --views-as, --output, "
                                   "--calibrate or --holdout")
        from workflows.solve_modes import streaming
        from workflows.streaming import DEFAULT_CHUNK_ROWS

        out.print_streaming(streaming(store, encoder=o["encoder"], train=train, val=o["val"], test=o["test"],
                                      bank=o["bank"], params=params, save=o["save"],
                                      chunk_rows=o["chunk_rows"] or DEFAULT_CHUNK_ROWS, cluster=o["cluster"],
                                      scheduler=o["scheduler"], quiet=o["as_json"] or o["quiet"]), o["as_json"])
        return
    _solve(name, store, train, params, seeds, o)


def _solve(name: str, store: str, train: str | None, params: dict[str, Any], seeds: list[int],
           o: dict[str, Any]) -> None:
    from cli import solve_output as out
    from workflows.params import parse_pairs
    from workflows.solve import check_run, load_dataset, run, save_models, write_result_file

    check_run(name, train=train, shots=o["shots"], views_as=o["views_as"], aux_encoder=o["aux_encoder"],
              save=o["save"])
    if o["holdout"] and o["val"]:
        raise click.UsageError("give --val or --holdout, not both (--holdout holds validation rows out of --train)")
    if o["output"] and not (o["test"] or o["val"]):
        raise click.UsageError("--output reports metrics on --test (or --val): give one")
    data = load_dataset(store, train=train, val=o["val"], test=o["test"], encoder=o["encoder"], bank=o["bank"],
                        methods=[name], inputs={name: parse_pairs(o["inputs"], "--input")},
                        aux_encoder=o["aux_encoder"], views=o["views_as"] is not None, stream_test=True)
    seeded = bool(o["shots"] or o["val_shots"])
    records = [run(name, data, o["shots"], seed, params, views_as=o["views_as"], sampler=o["sampler"],
                   val_shots=o["val_shots"], allow_fewer=o["allow_fewer"], holdout=o["holdout"],
                   calibrate=o["calibrate"]) for seed in (seeds if seeded else [None])]
    saved, removed = save_models(data, records, o["save"]) if o["save"] is not None else ([], [])
    notes, mode = [], None
    if name == "label-free":
        mode = "transductive" if o["test"] == train else "inductive" if o["test"] else None
        notes.append(f"label-free fitted on unlabelled split {train!r} without its labels"
                     + (f"; {mode} evaluation on {o['test']!r}" if mode else ""))
    if o["output"]:
        write_result_file(o["output"], data, records, saved)
    out.print_runs(out.summary(data, records, notes, saved, mode, removed), o["as_json"])
