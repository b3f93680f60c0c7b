"""`fs benchmark`: the few-shot papers' table from cached features: stores (one per dataset) x
methods x shots x seeds, into results.csv / results.json / summary.md / accuracy_vs_shots.png."""
from __future__ import annotations

import json

import click

from cli.options import NumberList, quiet_option


def _method_params(pairs: tuple[str, ...]) -> dict[str, dict]:
    """``method.key=value`` pairs (value parsed as JSON where it is JSON) by method."""
    out: dict[str, dict] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        method, dot, key = name.partition(".")
        if not sep or not dot or not method or not key:
            raise click.UsageError(f"--param takes method.key=value (e.g. gda.covariance=oas), got {pair!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(method.strip(), {})[key.strip()] = parsed
    return out


@click.command("benchmark")
@click.option("--store", "stores", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="A store per dataset (repeat); `fs extract --dataset` stores name their dataset.")
@click.option("--encoder", required=True, help="Encoder key, e.g. RN50/openai.")
@click.option("--methods", default="zero-shot,gda,tip-adapter,linear-probe,knn", show_default=True,
              help="Comma-separated solver names (fs solve --list).")
@click.option("--shots", type=NumberList(click.INT, "integers", skip_empty=True), default="1,2,4,8,16", show_default=True,
              help="Comma-separated shots per class.")
@click.option("--seeds", type=NumberList(click.INT, "integers", skip_empty=True), default="1,2,3", show_default=True,
              help="Comma-separated few-shot seeds.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Results folder (rerun to resume).")
@click.option("--param", "params", multiple=True, help="A method's hyper-parameter: method.key=value (JSON value).")
@click.option("--train", default="train", show_default=True)
@click.option("--val", default="val", show_default=True,
              help="Validation split for hyper-parameters (absent: rows held out of --train, said so).")
@click.option("--test", default="test", show_default=True)
@click.option("--text", default=None, help="Class text bank (default: <train>/dataset, else the class bank matching --train).")
@click.option("--sampler", type=click.Choice(["auto", "coop", "numpy"]), default="auto", show_default=True,
              help="Few-shot sampler: coop for stores of named datasets (CoOp's exact images), else numpy.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Cells run in N processes (BLAS threads = cores / N each).")
@click.option("--reference", default=None, help="Published table to compare with: gda-rn50, tip-adapter-rn50.")
@click.option("--average-views", is_flag=True, help="Few-shot features averaged over stored augmented views.")
@click.option("--no-plot", is_flag=True, help="Do not write accuracy_vs_shots.png.")
@quiet_option
def command(stores: tuple[str, ...], encoder: str, methods: str, shots: list[int], seeds: list[int], out: str,
            params: tuple[str, ...], train: str, val: str, test: str, text: str | None, sampler: str, jobs: int,
            reference: str | None, average_views: bool, no_plot: bool, quiet: bool) -> None:
    """Run the few-shot sweep over STOREs; finished cells are kept, a rerun does only the rest."""
    from pathlib import Path

    from workflows.benchmark import run

    if val == test:
        raise click.UsageError("--val and --test are the same split: hyper-parameters are never chosen on test")
    frame = run(list(stores), encoder, methods=[m.strip() for m in methods.split(",") if m.strip()],
                shots=shots, seeds=seeds, out=out,
                params=_method_params(params), train=train, val=val, test=test, text=text, sampler=sampler,
                jobs=jobs, reference=reference, average_views=average_views, plot=not no_plot, quiet=quiet,
                echo=lambda message: click.echo(message, err=True))
    click.echo((Path(out) / "summary.md").read_text(encoding="utf-8"))
    click.echo(f"{len(frame)} rows in {Path(out) / 'results.csv'}")
