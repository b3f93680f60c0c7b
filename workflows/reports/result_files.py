"""Result files as CLIP_benchmark writes them, and a table of many of them.

One file is one evaluation: ``{"dataset", "model", "pretrained", "task", "metrics": {"acc1",
"acc5", "mean_per_class_recall"}, "language"}`` (LAION-AI/CLIP_benchmark's ``--output``), plus
featurestore's own keys (``method``, ``encoder``, ``store``, ``split``, ``rows``, ``seeds``,
``metrics_std``, ECE and NLL among the metrics). ``acc5`` is None below 5 classes, as in
CLIP_benchmark. Files written by CLIP_benchmark itself are read as well, so both end up in one
CSV (``fs results``).

CLIP_benchmark's metric names live only in the files: :func:`record` writes featurestore's
``top1``, ``top5``, ``balanced_accuracy`` as ``acc1``, ``acc5``, ``mean_per_class_recall``
(``CLIP_BENCHMARK_NAMES``) and :func:`read_results` reads them back under featurestore's names.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import SourceError

# CLIP_benchmark's task names where one applies; any other method is an adapted classifier.
TASKS = {"zero-shot": "zeroshot_classification", "linear-probe": "linear_probe"}
# featurestore's metric name -> CLIP_benchmark's, used only in result files
CLIP_BENCHMARK_NAMES = {"top1": "acc1", "top5": "acc5", "balanced_accuracy": "mean_per_class_recall"}
FEATURESTORE_NAMES = {v: k for k, v in CLIP_BENCHMARK_NAMES.items()}
LEADING_COLUMNS = ("dataset", "model", "pretrained", "task", "method", "language")
TRAILING_COLUMNS = ("encoder", "store", "split", "rows", "seeds", "file")


def to_file_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with featurestore's names replaced by CLIP_benchmark's (the others as they are)."""
    return {CLIP_BENCHMARK_NAMES.get(k, k): v for k, v in metrics.items()}


def from_file_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` of a result file with CLIP_benchmark's names replaced by featurestore's."""
    return {FEATURESTORE_NAMES.get(k, k): v for k, v in metrics.items()}


def mean_and_std(runs: Sequence[dict[str, float | None]]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Per metric, the mean and the (population, ddof=0) standard deviation over runs; None where
    a run has none."""
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        numbers = [v for v in values if v is not None]
        if len(numbers) < len(values):
            mean[key] = std[key] = None
        else:
            mean[key], std[key] = float(np.mean(numbers)), float(np.std(numbers))
    return mean, std


def split_encoder_key(encoder: str, info: dict[str, Any] | None = None) -> tuple[str, str]:
    """(model, pretrained) of an encoder key ``MODEL/TAG`` (a hub tag or ``sha256-...``); the
    recorded model name wins when the store records one."""
    model, _, tag = encoder.partition("/")
    if info and info.get("model"):
        model = str(info["model"])
    return model, tag


def record(*, dataset: str, encoder: str, method: str, metrics: dict[str, float | None], rows: int,
           store: str, split: str, encoder_info: dict[str, Any] | None = None,
           metrics_std: dict[str, float | None] | None = None, seeds: Sequence[int] | None = None,
           **extra: Any) -> dict[str, Any]:
    """One result in CLIP_benchmark's shape (its keys first), featurestore's keys after; the
    metrics (featurestore's names) are written under CLIP_benchmark's names."""
    model, pretrained = split_encoder_key(encoder, encoder_info)
    result: dict[str, Any] = {"dataset": dataset, "model": model, "pretrained": pretrained,
                              "task": TASKS.get(method, "classification"), "metrics": to_file_names(metrics),
                              "language": "en", "method": method, "encoder": encoder, "store": store,
                              "split": split, "rows": int(rows)}
    if metrics_std is not None:
        result["metrics_std"] = to_file_names(metrics_std)
    if seeds is not None:
        result["seeds"] = [int(s) for s in seeds]
    result.update(extra)
    return result


def output_path(template: str, result: dict[str, Any]) -> str:
    """``template`` with CLIP_benchmark's placeholders filled: {dataset}, {model}, {pretrained},
    {task}, {language}, and {method} (a model name of fs eval); '/' in a value becomes '_'."""
    values = {k: str(result.get(k, "")).replace("/", "_") for k in
              ("dataset", "model", "pretrained", "task", "language", "method")}
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise SourceError(f"--output {template!r}: unknown placeholder {exc} (use {{dataset}}, {{model}}, "
                          "{pretrained}, {task}, {language}, {method})") from None


def has_placeholder(template: str) -> bool:
    """Whether ``template`` names a placeholder (so several results get several files)."""
    return output_path(template, {"method": "\0"}) != output_path(template, {"method": "\1"})


def write_result(path: str | os.PathLike, result: dict[str, Any]) -> None:
    """Write one result file whole (aside, then renamed: a kill leaves the old file or the new)."""
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_results(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every result of ``paths`` (a file holds one result object or a list of them), each with
    the file it came from under ``file`` and its metrics under featurestore's names. A file that
    is no result file is a SourceError."""
    results = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{path} is not a JSON result file ({exc})") from None
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict) or not isinstance(item.get("metrics"), dict) or "dataset" not in item:
                raise SourceError(f"{path} is not a result file: each result needs 'dataset' and a 'metrics' object")
            std = item.get("metrics_std")
            results.append({**item, "metrics": from_file_names(item["metrics"]),
                            **({"metrics_std": from_file_names(std)} if isinstance(std, dict) else {}),
                            "file": str(path)})
    return results


def results_table(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a CSV with one row per result: CLIP_benchmark's keys, then each metric
    (and ``<metric>_std`` where a result has one), then the other keys; lists and objects as JSON."""
    metrics: list[str] = []
    others: list[str] = []
    for result in results:
        for key in result["metrics"]:
            if key not in metrics:
                metrics.append(key)
        for key in result.get("metrics_std") or {}:
            if f"{key}_std" not in metrics:
                metrics.append(f"{key}_std")
        for key in result:
            if key not in (*LEADING_COLUMNS, *TRAILING_COLUMNS, "metrics", "metrics_std") and key not in others:
                others.append(key)
    columns = [*LEADING_COLUMNS, *metrics, *others, *TRAILING_COLUMNS]
    rows = []
    for result in results:
        row: dict[str, Any] = {k: v for k, v in result.items() if k not in ("metrics", "metrics_std")}
        row.update(result["metrics"])
        row.update({f"{k}_std": v for k, v in (result.get("metrics_std") or {}).items()})
        rows.append({c: json.dumps(row[c]) if isinstance(row.get(c), (list, dict)) else row.get(c)
                     for c in columns})
    return columns, rows
