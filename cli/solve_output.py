"""What `fs solve` prints: the solver list, the run records (text or JSON), and the summaries of
the class-incremental and out-of-core GDA protocols."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
import numpy as np

from workflows.solve import Dataset, RunRecord


def print_list() -> None:
    """Each solver, its hyper-parameters (--param) and the store contents it reads (--input)."""
    from solvers.registry import describe
    from workflows.inputs.arrays import INPUTS

    for solver_name, entry in describe().items():
        click.echo(f"{solver_name}  ({entry['class']}): {entry['doc']}")
        for key, default in entry["params"].items():
            click.echo(f"    --param {key}={json.dumps(default)}")
        for spec in INPUTS.get(solver_name, ()):
            shown = "" if spec.default is None else f" (default {spec.default})"
            click.echo(f"    --input {spec.name}=...  {spec.help}{shown}")


def run_entry(record: RunRecord) -> dict[str, Any]:
    """A record as `fs solve --json` lists it: its fields, ``accuracy`` (test top-1) and
    ``val_accuracy`` where there are such rows, the gain over zero-shot flattened."""
    entry = {k: v for k, v in record.to_dict().items() if k not in ("method", "gain")}
    if record.metrics is not None:
        entry["accuracy"] = record.metrics["top1"]
    if record.val_metrics is not None:
        entry["val_accuracy"] = record.val_metrics["top1"]
    entry.update(record.gain or {})
    return entry


def summary(data: Dataset, records: Sequence[RunRecord], notes: list[str], saved: list[str],
            mode: str | None, removed: Sequence[str] = ()) -> dict[str, Any]:
    """The `fs solve --json` object (``removed``: older members of a saved seed group this run replaced)."""
    name = records[0].method
    out: dict[str, Any] = {
        "solver": name, "encoder": data.encoder, "aux_encoder": data.aux_encoder, "text_bank": data.bank,
        "inputs": data.inputs_used.get(name, {}), "mode": mode, "train": data.train, "val": data.val,
        "test": data.test, "shots": records[0].shots, "views_as": records[0].views_as,
        "sampler": records[0].sampler, "notes": [*data.warnings, *notes],
        "runs": [run_entry(r) for r in records], "saved": saved, "removed": list(removed)}
    for key in ("accuracy", "val_accuracy"):
        values = [r[key] for r in out["runs"] if key in r]
        out[f"mean_{key}"] = float(np.mean(values)) if values else None
        out[f"std_{key}"] = float(np.std(values)) if values else None
    return out


def print_runs(report: dict[str, Any], as_json: bool) -> None:
    """Warnings on stderr (each once), then the JSON object or a line per run."""
    name = report["solver"]
    for message in dict.fromkeys([*report["notes"], *(m for r in report["runs"] for m in r["warnings"])]):
        click.echo(f"warning: {message}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    sources = f"text bank {report['text_bank']!r}" if report["text_bank"] else "no text bank"
    sources += "".join(f", {k} {v!r}" for k, v in report["inputs"].items() if v is not None)
    click.echo(f"{name} on encoder {report['encoder']!r} ({sources})")
    for run in report["runs"]:
        chosen = ", ".join(f"{k}={v:.4g}" for k, v in run["chosen"].items())
        if "accuracy" in run:
            result = f"test accuracy {100 * run['accuracy']:.2f}% on {report['test']!r}"
        elif "val_accuracy" in run:
            result = f"validation accuracy {100 * run['val_accuracy']:.2f}% on {run['val']!r} (no --test)"
        else:
            result = "no accuracy (give --test or --val)"
        label = name if run["seed"] is None else f"{name} seed {run['seed']}"
        click.echo(f"{label}: {result}" + (f"  [{chosen}]" if chosen else ""))
        if "gain" in run:
            verdict = "significant" if run["gain_significant"] else "not significant: no gain claimed"
            click.echo(f"{label}: zero-shot {100 * run['zero_shot_accuracy']:.2f}%, "
                       f"gain {100 * run['gain']:+.2f} points (paired s.e. {100 * run['gain_se']:.2f}; {verdict})")
    key = "accuracy" if report["test"] else "val_accuracy"
    if len(report["runs"]) > 1 and report[f"mean_{key}"] is not None:
        kind = "test" if report["test"] else "validation"
        click.echo(f"{name}: mean {kind} accuracy {100 * report[f'mean_{key}']:.2f}% +- "
                   f"{100 * report[f'std_{key}']:.2f} over {len(report['runs'])} seeds")
    for model_name in report["saved"]:
        click.echo(f"saved model {model_name!r}")
    for model_name in report["removed"]:
        click.echo(f"removed model {model_name!r} (an older member of the group; this run has no seed for it)")


def print_incremental(report: dict[str, Any], as_json: bool) -> None:
    """The FSCIL table of `fs solve gda --incremental`."""
    for note in report["notes"]:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    source = f"text bank {report['text_bank']!r}" if report["text_bank"] else "no text bank"
    click.echo(f"class-incremental gda on encoder {report['encoder']!r} ({source}), "
               f"{len(report['sessions']) - 1} sessions of {report['shots']} shots, seed {report['seed']}")
    click.echo(f"{'session':>10} {'classes':>8} {'new rows':>9} {'accuracy':>9}")
    for row in report["sessions"]:
        label = "base" if row["session"] == 0 else str(row["session"])
        click.echo(f"{label:>10} {row['classes']:>8} {row['new_rows']:>9} {100 * row['accuracy']:>8.2f}%")
    click.echo(f"{'average':>10} {'':>8} {'':>9} {100 * report['average']:>8.2f}%")
    click.echo(f"{'drop':>10} {'':>8} {'':>9} {100 * report['drop']:>8.2f}  (base minus last session, points)")


def print_streaming(report: dict[str, Any], as_json: bool) -> None:
    """The result of out-of-core `fs solve gda --chunk-rows`."""
    for note in report["notes"] + report["warnings"]:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    accuracy, bank = report["accuracy"], report["text_bank"]
    acc = f"test accuracy {100 * accuracy:.2f}% on {report['test']!r}" if accuracy is not None else "no --test"
    click.echo(f"gda (out of core, chunks of {report['chunk_rows']} rows, "
               f"{'text bank ' + repr(bank) if bank else 'no text bank'}): {acc}  [alpha_={report['alpha']}]")
    for model_name in report["saved"]:
        click.echo(f"saved model {model_name!r}")
