"""The few-shot benchmark sweep: datasets (one store each) x methods x shots x seeds, the papers'
Table 1, from cached features (``fs benchmark``; in Python ``workflows.benchmark.run``).

Each cell (dataset, method, shots, seed) samples its few-shot rows, fits the solver with its
hyper-parameters searched on the validation rows only, scores the test split (and the store's
distribution-shift splits, restricted to their class subset) and is appended to
``results.csv`` as soon as it finishes, in one write (a killed run never leaves half a row;
a rerun skips the cells already there). ``--jobs N`` runs cells in N forked processes that
share the parent's arrays copy-on-write, each with BLAS limited to cores / N threads.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import FeatureStoreError, NotFoundError
from featurestore.store.feature_store import FeatureStore, h5_name

COLUMNS = ("dataset", "encoder", "method", "shots", "seed", "top1", "top5", "balanced_accuracy", "ece", "nll",
           "hyperparameters", "fit_seconds", "score_seconds", "store", "test_split", "val", "sampler", "warnings")
ZERO_SHOT_METHODS = ("zero-shot",)
DEFAULT_METHODS = ("zero-shot", "gda", "tip-adapter", "linear-probe", "knn")
HOLDOUT_PER_CLASS = 4


class BenchmarkError(FeatureStoreError):
    """A benchmark that cannot run as asked (bad store set, unknown method, broken results file)."""


@dataclass
class DatasetArrays:
    """What every cell of one store needs, read once."""

    name: str
    store: str
    encoder: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray
    text_weights: np.ndarray | None
    bank: str | None
    sampler: str
    test_split: str
    shifts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)


def split_dataset(store: FeatureStore, split: str) -> str | None:
    """The named dataset a split was extracted from (``fs extract --dataset``), or None."""
    from featurestore.datasets import split_source_dataset

    group = store.file["splits"].get(h5_name(split))
    return None if group is None else split_source_dataset(str(group.attrs.get("source", "")))


def load_dataset(path: str, encoder: str, methods: list[str], *, train: str = "train", val: str | None = "val",
                 test: str = "test", bank: str | None = None, sampler: str = "auto",
                 average_views: bool = False, name: str | None = None) -> DatasetArrays:
    """Read one store's arrays for the sweep. Without a val split, validation rows are held out
    of the training pool per cell (said in the notes and the ``val`` column)."""
    from featurestore.datasets import dataset_info
    from featurestore.datasets.catalogue import DATASETS
    from featurestore.datasets.extraction import DATASET_BANK, subset_name
    from solvers.registry import solver_class
    from workflows.inputs.arrays import solver_arrays
    from workflows.inputs.solver_inputs import labelled, model_classes, solver_class_params, text_weights

    notes: list[str] = []
    with FeatureStore(path) as store:
        store.encoder_info(encoder)
        splits = store.splits()
        for needed in (train, test):
            if needed not in splits:
                raise NotFoundError(f"store {path} has no split {needed!r} (it has: {', '.join(splits)})")
        named = split_dataset(store, train)
        dataset = name or named or Path(path).stem
        if bank is None:
            own = f"{train}/{DATASET_BANK}"
            bank = own if own in store.text_banks(encoder) else None
        T, bank = text_weights(store, encoder, bank, train)
        classes = model_classes(store, encoder, bank, train)  # the bank's order: weight row k is class k
        X_train, y_train = labelled(store, encoder, train, average_views=average_views, classes=classes)
        X_test, y_test = labelled(store, encoder, test, classes=classes)
        X_val = y_val = None
        if val is not None and val in splits:
            if val == test:
                raise BenchmarkError("the val and test splits are the same: hyper-parameters are never chosen on test")
            X_val, y_val = labelled(store, encoder, val, classes=classes)
        else:
            notes.append(f"{dataset}: no {val!r} split; validation uses {HOLDOUT_PER_CLASS} rows per class held "
                         f"out of {train!r} (never the few-shot rows, never {test!r})")
        if T is None:
            notes.append(f"{dataset}: no class text bank for {encoder}: methods run without zero-shot text weights")
        shifts = {}
        for split in splits:
            source = split_dataset(store, split)
            if split in (train, val, test) or source is None or source not in DATASETS:
                continue
            if dataset_info(source).shift_of != named:
                continue
            Xs, ys = labelled(store, encoder, split, classes=classes)
            subset = None
            if subset_name(split) in store.class_sets():
                names = store.class_names(subset_name(split))
                subset = np.array([classes.index(n) for n in names], dtype=np.int64)
            shifts[split] = (Xs, ys, subset)
        extra = {}
        for method in methods:
            if method in ZERO_SHOT_METHODS and T is None:
                raise NotFoundError(f"{method} needs class text weights: store {path} has no class bank for "
                                    f"{encoder} (run fs text or fs extract --dataset)")
            cls = solver_class(method)
            extra[method], _ = solver_arrays(method, store, encoder, {}, T)
            # logits columns = the class list's indices, also for a solver without a bank
            uses_text = "text_weights" in extra[method] or (T is not None and "text_weights" in cls._get_param_names())
            extra[method].update(solver_class_params(cls, classes, uses_text))
    if sampler == "auto":
        sampler = "coop" if named else "numpy"
    return DatasetArrays(dataset, os.path.abspath(path), encoder, X_train, y_train, X_val, y_val, X_test, y_test,
                         T, bank, sampler, test, shifts, notes, extra)


def _check_params(method: str, given: dict[str, Any]) -> None:
    """Refuse a hyper-parameter the method does not have, or one that carries data."""
    from solvers.registry import solver_class

    cls = solver_class(method)
    data = set(getattr(cls, "_data_params", ()))
    offered = [p for p in cls._get_param_names() if p not in data]
    for key in given:
        if key not in offered:
            raise BenchmarkError(f"{method} has no hyper-parameter {key!r} (it has: {', '.join(offered)})")


# --------------------------------------------------------------------------- one cell
def _fitted_scalars(solver: Any) -> dict[str, Any]:
    """Hyper-parameters the solver chose (fitted scalar attributes ending in ``_``)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in vars(solver).items()
            if k.endswith("_") and not k.startswith("_") and k != "n_features_in_"
            and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


def _metrics(solver: Any, X: np.ndarray, y: np.ndarray, subset: np.ndarray | None) -> dict[str, float]:
    from solvers.metrics.classification import logit_metrics

    logits = solver.class_logits(X)
    if subset is not None:  # predictions among the classes the split covers (ImageNet-A/-R)
        position = np.full(logits.shape[1], -1)
        position[subset] = np.arange(subset.size)
        logits, y = logits[:, subset], position[y]
    return logit_metrics(y, logits, float(getattr(solver, "temperature", 1.0) or 1.0))


def fit_cell(data: DatasetArrays, method: str, shots: int, seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit and score one cell; its rows (the test split, then each shift split)."""
    from solvers.model_selection.fewshot import fewshot_split
    from solvers._base.fit_warnings import SolverWarning
    from solvers.registry import solver_class

    cls = solver_class(method)
    kwargs = {**data.extra.get(method, {}), **params}
    if data.text_weights is not None and "text_weights" in cls._get_param_names() and "text_weights" not in kwargs:
        kwargs["text_weights"] = data.text_weights
    solver = cls(**kwargs)
    val_label = "val"
    X_val, y_val = data.X_val, data.y_val
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverWarning)  # recorded in fit_warnings_, reported per row
        if cls.fit_input == "none":
            if X_val is None:
                X_val, y_val, val_label = _holdout(data, np.zeros(0, dtype=np.int64), seed)
            solver.fit(X_val=X_val, y_val=y_val)
        else:
            rows = fewshot_split(data.y_train, shots, seed, sampler=data.sampler)
            if X_val is None:
                X_val, y_val, val_label = _holdout(data, rows, seed)
            if cls.fit_input == "unlabelled":
                solver.fit(data.X_train[rows], X_val=X_val, y_val=y_val)
            else:
                solver.fit(data.X_train[rows], data.y_train[rows], X_val=X_val, y_val=y_val)
    seconds = time.perf_counter() - start
    common = {"dataset": data.name, "encoder": data.encoder, "method": method, "shots": shots, "seed": seed,
              "hyperparameters": json.dumps({**{k: v for k, v in params.items()}, **_fitted_scalars(solver)},
                                            sort_keys=True),
              "fit_seconds": round(seconds, 4), "store": data.store, "val": val_label, "sampler": data.sampler,
              "warnings": json.dumps(list(getattr(solver, "fit_warnings_", []) or []))}
    out = []
    for split, (Xs, ys, subset) in [(data.test_split, (data.X_test, data.y_test, None)), *data.shifts.items()]:
        start = time.perf_counter()
        scores = _metrics(solver, Xs, ys, subset)
        out.append({**common, "dataset": data.name if split == data.test_split else split, "test_split": split,
                    **scores, "score_seconds": round(time.perf_counter() - start, 4)})
    return out


def _holdout(data: DatasetArrays, taken: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Validation rows from the training pool: HOLDOUT_PER_CLASS per class, none of ``taken``."""
    from solvers.model_selection.fewshot import fewshot_split

    free = np.ones(data.y_train.size, dtype=bool)
    free[taken] = False
    pool = np.where(free, data.y_train, -1)
    if not (pool >= 0).any():
        raise BenchmarkError(f"{data.name}: no training rows are left for validation after the few-shot draw; "
                             "give the store a val split")
    rows = fewshot_split(pool, HOLDOUT_PER_CLASS, seed + 1_000_003, allow_fewer=True)
    return data.X_train[rows], data.y_train[rows], f"train-holdout ({HOLDOUT_PER_CLASS}/class)"


# --------------------------------------------------------------------------- results file
def _cell_key(row: dict[str, Any]) -> tuple[str, str, str, int, int]:
    return (row["store"], row["encoder"], row["method"], int(row["shots"]), int(row["seed"]))


def read_results(path: Path) -> list[dict[str, str]]:
    """Rows of an existing results.csv (a run killed between two writes leaves whole rows only)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkError(f"{path} is not a featurestore results file (no column {missing[0]!r}); "
                                 "give another --out")
        return list(reader)


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append a cell's rows with one ``write`` on an O_APPEND descriptor, then fsync: a kill
    leaves the file with the whole cell or none of it."""
    header = None
    if path.exists() and path.stat().st_size > 0:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header or list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    if header is None:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buffer.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the sweep
_DATA: dict[str, DatasetArrays] = {}


def _run_cell_in_worker(store: str, method: str, shots: int, seed: int, params: dict[str, Any]) -> list[dict]:
    return fit_cell(_DATA[store], method, shots, seed, params)


def _limit_worker_blas(threads: int) -> None:
    from workflows.blas_threads import limit_process_blas

    limit_process_blas(threads)
    from solvers._base.progress import quiet as quiet_progress

    quiet_progress(True).__enter__()  # no nested grid-search bars from worker processes


def plan_cells(datasets: list[DatasetArrays], methods: list[str], shots: list[int], seeds: list[int]) -> list[tuple]:
    """(store, method, shots, seed) of every cell; zero-shot methods run once per dataset (shots 0, seed 0)."""
    from solvers.registry import solver_class

    cells = []
    for data in datasets:
        for method in methods:
            if solver_class(method).fit_input == "none":
                cells.append((data.store, method, 0, 0))
            else:
                cells += [(data.store, method, k, s) for k in shots for s in seeds]
    return cells


def run(stores: list[str], encoder: str, *, methods: list[str] | tuple[str, ...] = DEFAULT_METHODS,
        shots: list[int] | tuple[int, ...] = (1, 2, 4, 8, 16), seeds: list[int] | tuple[int, ...] = (1, 2, 3),
        out: str | os.PathLike | None = None, params: dict[str, dict[str, Any]] | None = None,
        train: str = "train", val: str | None = "val", test: str = "test", text: str | None = None,
        sampler: str = "auto", jobs: int = 1, reference: str | None = None, average_views: bool = False,
        plot: bool = True, quiet: bool = False, echo: Any = None) -> Any:
    """Run the sweep and return its rows as a pandas DataFrame (with ``reference_top1`` and
    ``delta_top1`` columns when ``reference`` names a shipped table).

    With ``out``, rows are appended to ``out/results.csv`` as cells finish, cells already there
    are skipped, and ``results.json``, ``summary.md`` and ``accuracy_vs_shots.png`` are written
    at the end. ``params`` maps a method to constructor arguments (``--param method.key=value``).
    """
    from tqdm.auto import tqdm

    from solvers.registry import NAMES
    from workflows.reports import benchmark_report as report

    echo = echo or (lambda message: None)
    methods, params = list(methods), dict(params or {})
    unknown = [m for m in methods + list(params) if m not in NAMES]
    if unknown:
        raise BenchmarkError(f"unknown method {unknown[0]!r}; choose from {', '.join(NAMES)}")
    if not stores:
        raise BenchmarkError("give at least one store")
    if len(set(map(os.path.abspath, stores))) != len(stores):
        raise BenchmarkError("the same store is given twice")
    for method, given in params.items():
        _check_params(method, given)
    table = report.load_reference(reference) if reference else None
    datasets = [load_dataset(str(path), encoder, methods, train=train, val=val, test=test, bank=text,
                             sampler=sampler, average_views=average_views) for path in stores]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"two stores hold the same dataset ({', '.join(sorted(names))})")
    for data in datasets:
        for note in data.notes:
            echo(f"note: {note}")
    results_path = Path(out) / "results.csv" if out is not None else None
    if results_path is not None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_results(results_path) if results_path is not None else []
    done = {_cell_key(row) for row in existing}
    cells = plan_cells(datasets, methods, list(shots), list(seeds))
    todo = [c for c in cells if (c[0], encoder, c[1], c[2], c[3]) not in done]
    by_store = {d.store: d for d in datasets}
    new_rows: list[dict[str, Any]] = []

    def finish(rows: list[dict[str, Any]]) -> None:
        if results_path is not None:
            append_rows(results_path, rows)
        new_rows.extend(rows)

    with tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc="benchmark",
              disable=quiet, dynamic_ncols=True) as bar:
        if jobs <= 1 or len(todo) <= 1:
            from solvers._base.progress import quiet as quiet_progress

            with quiet_progress(True):
                for store, method, k, s in todo:
                    finish(fit_cell(by_store[store], method, k, s, params.get(method, {})))
                    bar.update(1)
        else:
            _run_parallel(todo, by_store, params, jobs, finish, bar)
    rows = existing + [{k: str(v) for k, v in row.items()} for row in new_rows] if results_path else new_rows
    wanted = {(c[0], encoder, c[1], c[2], c[3]) for c in cells}
    rows = [r for r in rows if _cell_key(r) in wanted]
    frame = report.to_frame(rows, table)
    if out is not None:
        report.write_outputs(Path(out), frame, table, plot=plot)
    return frame


def _run_parallel(todo: list[tuple], by_store: dict[str, DatasetArrays], params: dict, jobs: int, finish: Any,
                  bar: Any) -> None:
    """Cells on ``jobs`` forked workers (arrays shared copy-on-write), BLAS at cores/jobs threads
    each; results are written by this process only, as they arrive."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    _DATA.clear()
    _DATA.update(by_store)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_limit_worker_blas,
                               initargs=(threads,))
    try:
        pending = {pool.submit(_run_cell_in_worker, store, method, k, s, params.get(method, {}))
                   for store, method, k, s in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                finish(future.result())
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _DATA.clear()
