"""What ``fs benchmark`` writes besides results.csv: the rows as a DataFrame (with published
numbers when a reference table is named), results.json, summary.md in the layout of the papers'
Table 1 (a row per method and shots, a column per dataset, mean +- std over seeds, an average
column) and accuracy_vs_shots.png (a panel per dataset plus the average, a line per method)."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = ("shots", "seed", "top1", "top5", "balanced_accuracy", "ece", "nll", "fit_seconds", "score_seconds")


def references() -> dict[str, Any]:
    """The shipped published tables (featurestore/data/reference_results.json)."""
    text = resources.files("featurestore").joinpath("data/reference_results.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_reference(name: str) -> dict[str, Any]:
    """One published table by name, with a lookup (dataset, method, shots) -> top-1 (%)."""
    from workflows.benchmark import BenchmarkError

    tables = references()
    if name not in tables:
        raise BenchmarkError(f"unknown reference {name!r}; shipped: {', '.join(tables)}")
    table = dict(tables[name], name=name)
    table["lookup"] = {(r["dataset"], r["method"], int(r["shots"])): float(r["top1"]) for r in table["rows"]}
    return table


def to_frame(rows: list[dict[str, Any]], table: dict[str, Any] | None) -> Any:
    """Rows as a DataFrame with typed numbers; top-1 etc. stay fractions (0..1) as in results.csv.
    With a reference table: ``reference_top1`` (percent, as published) and ``delta_top1``
    (this row's top-1 in percent minus the published number)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        from workflows.benchmark import COLUMNS

        frame = pd.DataFrame(columns=list(COLUMNS))
    for column in NUMERIC:  # an empty cell of results.csv is a None (top5 below 5 classes)
        frame[column] = pd.to_numeric(frame[column].map(lambda v: None if v == "" else v))
    frame["shots"] = frame["shots"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    if table is not None:
        lookup = table["lookup"]
        frame["reference_top1"] = [lookup.get((d, m, int(k)), np.nan)
                                   for d, m, k in zip(frame["dataset"], frame["method"], frame["shots"])]
        frame["delta_top1"] = 100 * frame["top1"] - frame["reference_top1"]
    return frame.sort_values(["dataset", "method", "shots", "seed"], kind="stable").reset_index(drop=True)


def summary_table(frame: Any) -> tuple[list[str], list[tuple[str, int]], dict]:
    """(dataset columns in the papers' order, (method, shots) rows, {(method, shots, dataset): (mean, std, n)})
    of top-1 in percent over seeds."""
    from featurestore.datasets import FEWSHOT_ELEVEN, IMAGENET_SHIFTS

    present = list(dict.fromkeys(frame["dataset"]))
    order = {name: i for i, name in enumerate(FEWSHOT_ELEVEN + IMAGENET_SHIFTS)}
    datasets = sorted(present, key=lambda d: (order.get(d, len(order)), d))
    cells = {}
    for (method, shots, dataset), group in frame.groupby(["method", "shots", "dataset"]):
        values = 100 * group["top1"].to_numpy(dtype=float)
        cells[(method, int(shots), dataset)] = (float(values.mean()), float(values.std()), int(values.size))
    rows = sorted({(m, k) for m, k, _ in cells}, key=lambda r: (r[1] != 0, r[0], r[1]))
    return datasets, rows, cells


def _average(cells: dict, method: str, shots: int, datasets: list[str]) -> float | None:
    means = [cells[(method, shots, d)][0] for d in datasets if (method, shots, d) in cells]
    return float(np.mean(means)) if len(means) == len(datasets) else None


def summary_markdown(frame: Any, table: dict[str, Any] | None) -> str:
    """summary.md: Table 1 of the papers (top-1 %, mean +- std over seeds, average over datasets;
    the average is left blank for a row missing a dataset), with published numbers and deltas."""
    datasets, rows, cells = summary_table(frame)
    main = [d for d in datasets if not _is_shift(d)]
    encoders = ", ".join(sorted(set(frame["encoder"])))
    lines = [f"# Few-shot benchmark ({encoders})", "",
             "Top-1 accuracy (%) on each dataset's test split, mean +- std over seeds "
             "(n = seeds); zero-shot has no shots and no seed. Average = mean over the datasets "
             "of the row (blank when one is missing). Shift sets (ImageNet-V2/-Sketch/-A/-R) are scored "
             "with the ImageNet cells' models and not averaged in.", ""]
    if table is not None:
        lines += [f"Reference `{table['name']}`: {table['title']} ({table['encoder']}). Source: {table['source']}. "
                  f"Verified: {table['verified']}", ""]
    header = ["method", "shots"] + datasets + ["average"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, shots in rows:
        values = []
        for d in datasets:
            if (method, shots, d) in cells:
                mean, std, n = cells[(method, shots, d)]
                values.append(f"{mean:.2f} +- {std:.2f}" + (f" (n={n})" if n != 1 else ""))
            else:
                values.append("")
        average = _average(cells, method, shots, main)
        cells_of_row = [method, str(shots)] + values + ["" if average is None else f"{average:.2f}"]
        lines.append("| " + " | ".join(cells_of_row) + " |")
        if table is not None and any((d, method, shots) in table["lookup"] for d in datasets):
            published = [table["lookup"].get((d, method, shots)) for d in datasets]
            delta = [None if p is None or (method, shots, d) not in cells else cells[(method, shots, d)][0] - p
                     for d, p in zip(datasets, published)]
            lines.append("| " + " | ".join([f"{method} published", str(shots)]
                                           + ["" if p is None else f"{p:.2f}" for p in published] + [""]) + " |")
            lines.append("| " + " | ".join([f"{method} delta", str(shots)]
                                           + ["" if x is None else f"{x:+.2f}" for x in delta] + [""]) + " |")
    seconds = frame.groupby("method")["fit_seconds"].sum()
    lines += ["", "Fit seconds per method (all cells): "
              + ", ".join(f"{m} {s:.2f}" for m, s in seconds.items()), ""]
    warned = frame[frame["warnings"].fillna("[]").astype(str) != "[]"]
    if len(warned):
        lines += [f"{len(warned)} row(s) carry solver warnings (see the warnings column of results.csv).", ""]
    return "\n".join(lines)


def _is_shift(dataset: str) -> bool:
    from featurestore.datasets import IMAGENET_SHIFTS

    return dataset in IMAGENET_SHIFTS


def accuracy_figure(frame: Any) -> Any:
    """One panel per dataset plus the average: mean top-1 (%) against shots, a line per method
    (zero-shot as a dashed horizontal line)."""
    from workflows.reports.plots import accuracy_vs_shots

    datasets, rows, cells = summary_table(frame)
    main = [d for d in datasets if not _is_shift(d)]
    panels: dict[str, dict[str, tuple[list[int], list[float], list[float]]]] = {}
    for d in datasets + (["average"] if len(main) > 1 else []):
        lines: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for method, shots in rows:
            if d == "average":
                value, std = _average(cells, method, shots, main), 0.0
                if value is None:
                    continue
            elif (method, shots, d) in cells:
                value, std, _ = cells[(method, shots, d)]
            else:
                continue
            xs, ys, es = lines.setdefault(method, ([], [], []))
            xs.append(shots)
            ys.append(value)
            es.append(std)
        panels[d] = lines
    return accuracy_vs_shots(panels)


def write_outputs(out: Path, frame: Any, table: dict[str, Any] | None, *, plot: bool = True) -> None:
    """results.json (rows, reference columns included), summary.md and accuracy_vs_shots.png."""
    records = json.loads(frame.to_json(orient="records"))
    keys = ("name", "title", "encoder", "source", "verified")
    meta = {"reference": None if table is None else {k: table[k] for k in keys}, "rows": records}
    (out / "results.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(frame, table), encoding="utf-8")
    if plot and len(frame):
        from workflows.reports.plots import save_png

        save_png(accuracy_figure(frame), out / "accuracy_vs_shots.png")
