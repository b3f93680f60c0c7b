"""`fs ood`: OOD detection scores of saved models, zero-shot CLIP, imported logits and their
COOkeD ensemble on an in-distribution split vs an OOD split (maybe from another store)."""
from __future__ import annotations

import json
from typing import Any

import click

from cli.options import bank_option, encoder_option, model_names, store_option

PLOT_SCORES = ["msp", "max-logit", "energy", "entropy", "gen"]


def _member_logits(store, encoder: str, member: str, split: str, bank: str | None):
    """Logits of one member on ``split`` (divided by its temperature): ``logits:NAME``
    (imported), a saved model, or zero-shot."""
    import numpy as np

    from workflows.inputs.solver_inputs import load_model

    if member.startswith("logits:"):
        from solvers.ensembles.fixed_logits import FixedLogits

        values, kind = store.logits(member[len("logits:"):], split)
        solver = FixedLogits(logits=values, kind=kind, source=member).fit()
        return solver.class_logits(np.empty((len(values), 0)))
    solver, key, _ = load_model(store, member, encoder, bank, split)
    return solver.class_logits(store.features(key, split)) / float(getattr(solver, "temperature", 1.0))


def _check_same_encoder(id_store, ood_store, encoder: str) -> None:
    from featurestore.errors import ProvenanceError

    a, b = id_store.encoder_info(encoder), ood_store.encoder_info(encoder)
    for field in ("model", "weights"):
        if a.get(field) != b.get(field):
            raise ProvenanceError(f"encoder {encoder!r} has {field}={a.get(field)!r} in {id_store.path} but "
                                  f"{b.get(field)!r} in {ood_store.path}; extract the OOD split with the same encoder")


@click.command("ood")
@store_option
@encoder_option
@click.option("--models", "models", required=True,
              help="Comma-separated members: saved model names, zero-shot, logits:NAME (imported). "
                   "Several members are also combined as COOkeD (mean of their softmax).")
@click.option("--id-split", required=True, help="In-distribution split (positives).")
@click.option("--ood-split", required=True, help="Out-of-distribution split.")
@click.option("--ood-store", type=click.Path(dir_okay=False), help="Store holding the OOD split (default: --store).")
@bank_option("Class text bank for zero-shot and MCM (default: matches --id-split).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write ROC curves and ID/OOD score histograms to this PNG file.")
@click.option("--plot-score", type=click.Choice(PLOT_SCORES), default="msp", show_default=True,
              help="Score plotted for each member (COOkeD is plotted with its entropy, zero-shot with MCM).")
@click.option("--columns", type=click.Choice(["all", "openood"]), default="all", show_default=True,
              help="Table columns. all: AUROC, FPR@95 both ways, AUPR-In/Out as average precision (scikit-learn's "
                   "average_precision_score). openood: OpenOOD v1.5's FPR@95 (OOD positive), AUROC, AUPR_IN, "
                   "AUPR_OUT (trapezoid auc(recall, precision)). --json always holds every column.")
def command(store: str, encoder: str, models: str, id_split: str, ood_split: str, ood_store: str | None,
            bank: str | None, as_json: bool, plot: str | None, plot_score: str, columns: str) -> None:
    """AUROC, FPR@95TPR, AUPR-In and AUPR-Out of every OOD score for each member."""
    from contextlib import ExitStack

    import numpy as np

    from featurestore.store.feature_store import FeatureStore
    from solvers.ensembles.cooked import cooked_scores
    from solvers.metrics.ood import ood_metrics
    from solvers.ood.scores import LOGIT_SCORES, zero_shot_mcm
    from workflows.inputs.solver_inputs import resolve_encoder, text_weights

    names = model_names(models)
    scores: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    with ExitStack() as stack:
        id_reader = stack.enter_context(FeatureStore(store))
        encoder = resolve_encoder(id_reader, encoder)
        ood_reader = id_reader
        if ood_store:
            ood_reader = stack.enter_context(FeatureStore(ood_store))
            _check_same_encoder(id_reader, ood_reader, encoder)
        weights, bank = text_weights(id_reader, encoder, bank, id_split)
        logits_id, logits_ood = [], []
        for name in names:
            z_id = _member_logits(id_reader, encoder, name, id_split, bank)
            z_ood = _member_logits(ood_reader, encoder, name, ood_split, bank)
            if z_id.shape[1] != z_ood.shape[1]:
                raise click.UsageError(f"{name} has {z_id.shape[1]} classes on {id_split!r} but {z_ood.shape[1]} "
                                       f"on {ood_split!r}")
            for score_name, score in LOGIT_SCORES.items():
                scores[(name, score_name)] = (score(z_id), score(z_ood))
            logits_id.append(z_id)
            logits_ood.append(z_ood)
        if len(names) > 1:
            cooked_id, cooked_ood = cooked_scores(logits_id), cooked_scores(logits_ood)
            for score_name in ("msp", "entropy"):
                scores[("cooked", score_name)] = (cooked_id[score_name], cooked_ood[score_name])
        if weights is not None:
            scores[("zero-shot-cosine", "mcm")] = (zero_shot_mcm(id_reader.features(encoder, id_split), weights),
                                                  zero_shot_mcm(ood_reader.features(encoder, ood_split), weights))
    rows: list[dict[str, Any]] = [
        {"model": model, "score": score, **ood_metrics(s_id, s_ood), "n_id": len(s_id), "n_ood": len(s_ood)}
        for (model, score), (s_id, s_ood) in scores.items()]
    if plot:
        from workflows.reports.plots import ood_summary, save_png

        shown = [(name, plot_score) for name in names] + [("cooked", "entropy"), ("zero-shot-cosine", "mcm")]
        curves = {f"{model} {score}": scores[(model, score)] for model, score in shown if (model, score) in scores}
        save_png(ood_summary(curves, title=f"ID {id_split!r} vs OOD {ood_split!r}"), plot)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    width = max(len(r["model"]) for r in rows) + 2
    if columns == "openood":
        from solvers.metrics.ood import OPENOOD_COLUMNS

        click.echo(f"{'model':<{width}}{'score':<11}" + "".join(f"{h:>10}" for h in OPENOOD_COLUMNS))
        for r in rows:
            click.echo(f"{r['model']:<{width}}{r['score']:<11}"
                       + "".join(f"{100 * r[key]:>10.2f}" for key in OPENOOD_COLUMNS.values()))
        click.echo("OpenOOD v1.5's columns (compute_all_metrics, x100): FPR@95 with OOD positive; AUPR_IN/AUPR_OUT "
                   "by the trapezoid auc(recall, precision), not average precision; its ACC is fs eval's top1")
        return
    click.echo(f"{'model':<{width}}{'score':<11}{'AUROC':>8}{'FPR95-ID':>9}{'FPR95-OOD':>10}{'AUPR-In':>9}"
               f"{'AUPR-Out':>9}")
    for r in rows:
        click.echo(f"{r['model']:<{width}}{r['score']:<11}{100 * r['auroc']:>8.2f}{100 * r['fpr95']:>9.2f}"
                   f"{100 * r['fpr95_ood']:>10.2f}{100 * r['aupr_in']:>9.2f}{100 * r['aupr_out']:>9.2f}")
    click.echo("FPR95-ID: OOD accepted at 95% ID kept (ID positive, Hendrycks & Gimpel); FPR95-OOD: ID rejected "
               "at 95% OOD caught (OOD positive, OpenOOD v1.5); AUPR-In/Out: average precision (scikit-learn), "
               "not OpenOOD's trapezoid AUPR (--columns openood)")
