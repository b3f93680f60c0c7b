"""`fs benchmark`: the few-shot papers' table from cached features: stores (one per dataset) x
methods x shots x seeds, into results.csv / results.json / summary.md / accuracy_vs_shots.png.
Each cell is the run `fs solve` makes (``workflows.solve.run``), with the same options."""
from __future__ import annotations

import click

from cli import solve_options as shared
from cli.options import NAME, NumberList, quiet_option


@click.command("benchmark")
@click.option("--store", "stores", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="A store per dataset (repeat); `fs extract --dataset` stores name their dataset.")
@click.option("--encoder", required=True, help="Encoder key, e.g. RN50/openai.")
@click.option("--methods", default="zero-shot,gda,tip-adapter,linear-probe,knn", show_default=True,
              help="Comma-separated solver names (fs solve --list).")
@click.option("--shots", type=NumberList(click.IntRange(min=1), "integers", skip_empty=True), default="1,2,4,8,16",
              show_default=True, help="Comma-separated shots per class.")
@shared.seeds_option
@shared.val_shots_option
@shared.allow_fewer_option
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Results folder (rerun to resume).")
@click.option("--param", "params", multiple=True, help="A method's hyper-parameter: method.key=value (JSON value).")
@click.option("--input", "inputs", multiple=True,
              help="Store contents a method reads: method.key=value (pool split, banks; see fs solve --list).")
@click.option("--train", default="train", show_default=True)
@click.option("--val", default="val", show_default=True,
              help="Validation split for hyper-parameters (absent: --holdout rows held out of --train, said so).")
@click.option("--test", default="test", show_default=True)
@click.option("--bank", type=NAME, default=None,
              help="Class text bank (default: <train>/dataset, else the class bank matching --train).")
@shared.sampler_option
@shared.views_as_option
@shared.holdout_option(4)
@shared.calibrate_option
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Cells run in N processes (BLAS threads = cores / N each).")
@click.option("--reference", default=None, help="Published table to compare with: gda-rn50, tip-adapter-rn50.")
@click.option("--no-plot", is_flag=True, help="Do not write accuracy_vs_shots.png.")
@quiet_option
def command(stores: tuple[str, ...], encoder: str, methods: str, shots: list[int], seeds: list[int],
            val_shots: int | None, allow_fewer: bool, output: str, params: tuple[str, ...], inputs: tuple[str, ...],
            train: str, val: str, test: str, bank: str | None, sampler: str, views_as: str | None, holdout: int,
            calibrate: bool, jobs: int, reference: str | None, no_plot: bool, quiet: bool) -> None:
    """Run the few-shot sweep over STOREs; finished cells are kept, a rerun does only the rest."""
    from pathlib import Path

    from workflows.benchmark import run
    from workflows.params import parse_method_pairs

    frame = run(list(stores), encoder, methods=[m.strip() for m in methods.split(",") if m.strip()],
                shots=shots, seeds=seeds, output=output, params=parse_method_pairs(params),
                inputs=parse_method_pairs(inputs, "--input"), train=train, val=val, test=test, bank=bank,
                sampler=sampler, views_as=views_as, holdout=holdout, calibrate=calibrate, val_shots=val_shots,
                allow_fewer=allow_fewer,
                jobs=jobs, reference=reference, plot=not no_plot, quiet=quiet,
                echo=lambda message: click.echo(message, err=True))
    click.echo((Path(output) / "summary.md").read_text(encoding="utf-8"))
    click.echo(f"{len(frame)} rows in {Path(output) / 'results.csv'}")
