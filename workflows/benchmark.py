"""The few-shot benchmark sweep: datasets (one store each) x methods x shots x seeds, the papers'
Table 1, from cached features (``fs benchmark``; in Python ``workflows.benchmark.run``).

Each cell (dataset, method, shots, seed) is one run of the solve path ``fs solve`` runs too
(``workflows.solve.run``): it samples its few-shot rows, fits the solver with its
hyper-parameters searched on the validation rows only, scores the test split (and the store's
distribution-shift splits, restricted to their class subset) and is appended to
``results.csv`` as soon as it finishes, in one write (a killed run never leaves half a row;
a rerun skips the cells already there). ``--jobs N`` runs cells in N forked processes that
share the parent's arrays copy-on-write, each with BLAS limited to cores / N threads.

Stores are read one at a time: its test and validation splits whole, its training pool by row
index (the label column first, then, in one pass over the HDF5 chunks that hold them, the rows
every cell's few-shot draw and held-out validation rows take), so a sweep's memory is a
dataset's test split and draws, never a whole pool (ImageNet's is 1.28M rows). With one
process each store is dropped before the next is read; with ``--jobs N`` the next store is read
while the previous one's cells run (the largest store read second, behind the second largest
one's cells: ``overlap_order``), consecutive small stores read together and run on one set of
workers (``pool_groups``), at most two such groups' arrays at once. Every store's metadata
(name, splits, encoder, class bank) is checked before the first cell.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import FeatureStoreError, NotFoundError
from featurestore.store.feature_store import FeatureStore
from solvers.errors import InputError
from workflows.inputs.stored_rows import StoredRows
from workflows.solve import Dataset, drawn_rows, resolve_sampler, score
from workflows.solve import load_dataset as load_arrays
from workflows.solve import run as run_cell

COLUMNS = ("dataset", "encoder", "method", "shots", "seed", "top1", "top5", "balanced_accuracy", "ece", "nll",
           "hyperparameters", "fit_seconds", "score_seconds", "store", "test_split", "val", "sampler", "warnings")
DEFAULT_METHODS = ("zero-shot", "gda", "tip-adapter", "linear-probe", "knn")
HOLDOUT_PER_CLASS = 4


class BenchmarkError(FeatureStoreError):
    """A benchmark that cannot run as asked (bad store set, unknown method, broken results file)."""


def load_dataset(path: str, encoder: str, methods: list[str], *, train: str = "train", val: str | None = "val",
                 test: str = "test", bank: str | None = None, views: bool = False,
                 inputs: dict[str, dict[str, Any]] | None = None, name: str | None = None,
                 rows_by_index: bool = True) -> Dataset:
    """One store's arrays for the sweep (``workflows.solve.load_dataset`` with the shift splits).
    Without a val split, validation rows are held out of the training pool per cell (said in each
    record's warnings and the ``val`` column). ``rows_by_index``: the training pool's features are
    read by row index (``StoredRows``; ``prefetch_draws`` reads a sweep's rows in one pass), else
    whole."""
    with FeatureStore(path) as store:
        splits = store.splits()
    return load_arrays(path, train=train, val=val if val in splits else None, test=test, encoder=encoder, bank=bank,
                       methods=methods, inputs=inputs, views=views, shifts=True, name=name,
                       rows_by_index=rows_by_index)


def check_dataset(path: str, encoder: str, methods: list[str], *, train: str = "train", val: str | None = "val",
                  test: str = "test", bank: str | None = None, views: bool = False,
                  inputs: dict[str, dict[str, Any]] | None = None) -> Dataset:
    """What ``load_dataset`` checks and names, reading the class bank, the labels and the arrays
    methods read from the store, not the features: the sweep checks every store with it before its
    first cell and reads each store's features in turn. Returns the dataset without its splits'
    features (``val`` is None when the store has no such split)."""
    with FeatureStore(path) as store:
        splits = store.splits()
    if test not in splits:
        raise NotFoundError(f"store {path} has no split {test!r} (it has: {', '.join(splits)})")
    data = load_arrays(path, train=train, val=None, test=None, encoder=encoder, bank=bank, methods=methods,
                       inputs=inputs, views=views, rows_by_index=True)
    data.val, data.test = (val if val in splits else None), test
    return data


def cell_draws(data: Dataset, cells: list[tuple], options: dict[str, Any]) -> np.ndarray:
    """The training rows (indices into ``data.y_train``) that ``cells`` (store, method, shots, seed)
    draw: each labelled cell's few-shot rows and, without a validation split, the validation
    rows held out of the pool around them, as ``workflows.solve.run`` draws them. A cell whose
    draw fails is left out (its run reports why)."""
    from solvers.registry import solver_class

    if data.y_train is None:
        return np.zeros(0, dtype=np.int64)
    drawn = [np.zeros(0, dtype=np.int64)]
    holdout = options.get("holdout")
    allow_fewer, sampler = bool(options.get("allow_fewer")), resolve_sampler(options.get("sampler", "auto"), data)
    for _, method, shots, seed in cells:
        fit_input = solver_class(method).fit_input
        drawn_shots = shots if fit_input == "labels" and shots else 0
        try:  # drawn_rows keeps each draw on data: the cell that runs later takes the same rows without drawing
            if drawn_shots:
                drawn.append(drawn_rows(data, drawn_shots, seed, allow_fewer, sampler))
            if data.X_val is None and holdout and (fit_input != "labels" or drawn_shots):
                drawn.append(drawn_rows(data, drawn_shots, seed, allow_fewer, sampler, holdout))
        except InputError:
            continue
    return np.unique(np.concatenate(drawn))


def prefetch_draws(data: Dataset, cells: list[tuple], options: dict[str, Any], processes: int = 1) -> int:
    """Read the training rows ``cells`` draw (``cell_draws``) in one pass when the pool is read
    by row index (``processes`` reading parts of it at once); returns how many."""
    if not isinstance(data.X_train, StoredRows):
        return 0
    rows = cell_draws(data, cells, options)
    data.X_train.prefetch(rows, processes)
    return int(rows.size)


# --------------------------------------------------------------------------- one cell
def fit_cell(data: Dataset, method: str, shots: int, seed: int, params: dict[str, Any],
             options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Fit and score one cell with ``workflows.solve.run``; its rows (the test split, then each
    shift split). ``options``: ``run``'s keyword arguments (sampler, views_as, holdout, calibrate, ...)."""
    options = {"sampler": "auto", "holdout": HOLDOUT_PER_CLASS, "score_val": False, **(options or {})}
    record = run_cell(method, data, shots or None, seed, params, **options)
    common = {"dataset": data.name, "encoder": data.encoder, "method": method, "shots": shots, "seed": seed,
              "hyperparameters": json.dumps({**record.params, **record.chosen}, sort_keys=True),
              "fit_seconds": record.fit_s, "store": data.store, "val": record.val,
              "sampler": resolve_sampler(options["sampler"], data), "warnings": json.dumps(record.warnings)}
    out = [{**common, "test_split": data.test, **(record.metrics or {}), "score_seconds": record.predict_s}]
    for split, (Xs, ys, subset) in data.shifts.items():
        start = time.perf_counter()
        scores = score(record.solver, Xs, ys, subset)
        out.append({**common, "dataset": split, "test_split": split, **scores,
                    "score_seconds": round(time.perf_counter() - start, 4)})
    return out


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
                                 "give another --output")
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
_DATA: dict[str, Dataset] = {}


def _run_cell_in_worker(store: str, method: str, shots: int, seed: int, params: dict[str, Any],
                        options: dict[str, Any]) -> list[dict]:
    return fit_cell(_DATA[store], method, shots, seed, params, options)


#: glibc's mallopt parameters: the size from which an allocation is its own mmap, and the free
#: memory at the top of the heap kept rather than given back to the system.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
WORKER_HEAP_KEEP = 1 << 30


def keep_freed_memory(size: int = WORKER_HEAP_KEEP) -> bool:
    """Make glibc serve arrays below ``size`` bytes from the heap and keep up to ``size`` bytes of
    freed memory there, for a process that allocates the same large arrays again and again (a
    worker's cells: drawn rows, blocks of logits, normalized copies). By default each array of 32 MB
    or more is a fresh mmap, zero-filled page by page on first touch, and given back when freed.
    Returns whether the C library took the setting (False elsewhere than glibc)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(size)) and mallopt(M_TRIM_THRESHOLD, int(size)))


def _limit_worker_blas(threads: int) -> None:
    from workflows.blas_threads import limit_process_blas

    limit_process_blas(threads)
    keep_freed_memory()
    from solvers import quiet as quiet_progress

    quiet_progress(True).__enter__()  # no nested grid-search bars from worker processes


def plan_cells(datasets: list[Dataset], methods: list[str], shots: list[int], seeds: list[int]) -> list[tuple]:
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
        shots: list[int] | tuple[int, ...] = (1, 2, 4, 8, 16), seeds: list[int] | tuple[int, ...] = (1,),
        output: str | os.PathLike | None = None, params: dict[str, dict[str, Any]] | None = None,
        inputs: dict[str, dict[str, Any]] | None = None, val_shots: int | None = None, allow_fewer: bool = False,
        train: str = "train", val: str | None = "val", test: str = "test", bank: str | None = None,
        sampler: str = "auto", views_as: str | None = None, holdout: int = HOLDOUT_PER_CLASS,
        calibrate: bool = False, jobs: int = 1, reference: str | None = None, plot: bool = True,
        quiet: bool = False, echo: Any = None) -> Any:
    """Run the sweep and return its rows as a pandas DataFrame (with ``reference_top1`` and
    ``delta_top1`` columns when ``reference`` names a shipped table).

    Each cell is ``workflows.solve.run`` (the path of ``fs solve``) with ``sampler``,
    ``views_as``, ``holdout`` (rows per class held out of ``train`` when the store has no
    ``val`` split), ``val_shots``, ``allow_fewer`` and ``calibrate``; ``inputs`` maps a method
    to the store contents it reads (``--input method.key=value``). With ``output``, rows are appended to
    ``output/results.csv`` as cells finish, cells already there are skipped, and
    ``results.json``, ``summary.md`` and ``accuracy_vs_shots.png`` are written at the end.
    ``params`` maps a method to constructor arguments (``--param method.key=value``).
    """
    from tqdm.auto import tqdm

    from solvers.registry import NAMES, solver_class
    from workflows.params import check_params
    from workflows.reports import benchmark_report as report

    echo = echo or (lambda message: None)
    methods, params = list(methods), dict(params or {})
    inputs = dict(inputs or {})
    unknown = [m for m in methods + list(params) + list(inputs) if m not in NAMES]
    if unknown:
        raise BenchmarkError(f"unknown method {unknown[0]!r}; choose from {', '.join(NAMES)}")
    if not stores:
        raise BenchmarkError("give at least one store")
    if len(set(map(os.path.abspath, stores))) != len(stores):
        raise BenchmarkError("the same store is given twice")
    for method, given in params.items():
        check_params(method, solver_class(method), given)
    if sampler != "auto" and any(solver_class(m).fit_input == "labels" for m in methods):
        from solvers.model_selection.fewshot import check_sampler

        for k, s in ((k, s) for k in shots for s in seeds if k):  # before any cell is fitted
            check_sampler(sampler, k, s)
    if val is not None and val == test:
        raise BenchmarkError("--val and --test are the same split: hyper-parameters are never chosen on test")
    table = report.load_reference(reference) if reference else None
    options = {"sampler": sampler, "views_as": views_as, "holdout": holdout, "calibrate": calibrate,
               "val_shots": val_shots, "allow_fewer": allow_fewer}
    load: dict[str, Any] = {"train": train, "val": val, "test": test, "bank": bank, "views": views_as is not None,
                            "inputs": inputs}
    datasets = [check_dataset(str(path), encoder, methods, **load) for path in stores]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"two stores hold the same dataset ({', '.join(sorted(names))})")
    for data in datasets:
        for note in data.warnings:
            echo(f"note: {data.name}: {note}")
        if data.val is None:
            echo(f"note: {data.name}: no {val!r} split; validation uses {holdout} rows per class held out of "
                 f"{train!r} (never the few-shot rows, never {test!r})")
    results_path = Path(output) / "results.csv" if output is not None else None
    if results_path is not None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
    existing = read_results(results_path) if results_path is not None else []
    done = {_cell_key(row) for row in existing}
    cells = plan_cells(datasets, methods, list(shots), list(seeds))
    todo = [c for c in cells if (c[0], encoder, c[1], c[2], c[3]) not in done]
    new_rows: list[dict[str, Any]] = []

    def finish(rows: list[dict[str, Any]]) -> None:
        if results_path is not None:
            append_rows(results_path, rows)
        new_rows.extend(rows)

    with tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc="benchmark",
              disable=quiet, dynamic_ncols=True) as bar:
        batches = [(d, [c for c in todo if c[0] == d.store]) for d in datasets]
        batches = [(d, own) for d, own in batches if own]
        if jobs > 1 and sum(len(own) for _, own in batches) > 1:
            _run_overlapped([batches[i] for i in overlap_order(batches)], encoder, methods, load, params, options,
                            jobs, finish, bar)
        else:
            from solvers import quiet as quiet_progress

            for described, own in batches:  # one store's arrays in memory at a time
                data = load_dataset(described.store, encoder, methods, **load)
                prefetch_draws(data, own, options)
                with quiet_progress(True):
                    for _, method, k, s in own:
                        finish(fit_cell(data, method, k, s, params.get(method, {}), options))
                        bar.update(1)
                del data
    as_read = [{k: "" if v is None else str(v) for k, v in row.items()} for row in new_rows]
    rows = existing + as_read if results_path else new_rows
    wanted = {(c[0], encoder, c[1], c[2], c[3]) for c in cells}
    rows = [r for r in rows if _cell_key(r) in wanted]
    frame = report.to_frame(rows, table)
    if output is not None:
        report.write_outputs(Path(output), frame, table, plot=plot)
    return frame


def dataset_work(data: Dataset, cells: list[tuple]) -> float:
    """A rough cost of ``cells`` of one dataset, for ordering the datasets only: each cell's
    products of its test and validation rows with the class weights, a pass over those rows,
    and the D x D work of a fit."""
    with FeatureStore(data.store) as store:
        n_classes = len(data.classes or (store.classes(data.test) if data.test else None) or [None])
        rows = store.n_rows(data.test) if data.test else 0
        rows += store.n_rows(data.val) if data.val else HOLDOUT_PER_CLASS * n_classes
    width = next((a.shape[1] for a in (data.text_weights, data.X_train) if a is not None), 1)
    return len(cells) * (2.0 * rows * n_classes * width + 50.0 * rows * width + 4.0 * float(width) ** 3)


def overlap_order(batches: list[tuple[Dataset, list[tuple]]]) -> list[int]:
    """The order in which ``_run_overlapped`` loads the datasets of ``batches`` (dataset, cells):
    the second largest first, the largest next (its load, the longest, runs while the first
    one's cells run), then the rest from the largest down (small cells fill the large one's tail)."""
    work = [dataset_work(data, cells) for data, cells in batches]
    order = sorted(range(len(batches)), key=lambda i: -work[i])
    if len(order) > 1:
        order[0], order[1] = order[1], order[0]
    return order


#: Consecutive datasets whose arrays add up to at most this many bytes share one set of workers.
GROUP_BYTES = 256 << 20


def dataset_bytes(data: Dataset, cells: list[tuple]) -> int:
    """The bytes of the arrays ``load_dataset`` and ``prefetch_draws`` read for ``cells`` of one
    dataset, roughly: every split it reads whole (test, val) and at most each cell's draw and
    held-out rows of the training pool, as float32 rows."""
    with FeatureStore(data.store) as store:
        splits = store.splits()
        rows = sum(store.n_rows(s) for s in {data.test, data.val} if s is not None and s in splits)
    n_classes = len(data.classes or [None])
    rows += sum((shots + (HOLDOUT_PER_CLASS if data.val is None else 0)) * n_classes for _, _, shots, _ in cells)
    width = next((a.shape[1] for a in (data.text_weights, data.X_train) if a is not None), 1)
    return 4 * rows * int(width)


def pool_groups(batches: list[tuple[Dataset, list[tuple]]], budget: int | None = None) -> list[list[int]]:
    """``batches`` (dataset, cells; in the order they run) as runs of consecutive positions whose
    ``dataset_bytes`` add up to at most ``budget`` (default ``GROUP_BYTES``; a larger dataset
    alone): each run is read
    whole and then shares one set of forked workers (a fork and a warm-up of the workers' memory
    per run instead of per dataset: the papers' small datasets take a fraction of a second each)."""
    budget = GROUP_BYTES if budget is None else budget
    groups: list[list[int]] = []
    total = budget + 1
    for i, (data, cells) in enumerate(batches):
        size = dataset_bytes(data, cells)
        if groups and total + size <= budget:
            groups[-1].append(i)
            total += size
        else:
            groups.append([i])
            total = size
    return groups


def _run_overlapped(batches: list[tuple[Dataset, list[tuple]]], encoder: str, methods: list[str],
                    load: dict[str, Any], params: dict, options: dict[str, Any], jobs: int, finish: Any,
                    bar: Any) -> None:
    """The cells of ``batches`` (dataset, its cells), in that order, on ``jobs`` forked workers per
    group of datasets (``pool_groups``; arrays shared copy-on-write), BLAS at cores/jobs threads
    each; results are written by this process only, as they arrive.

    A group is read while the previous one's cells run, its workers start when the previous
    one has at most ``jobs`` cells left (so the cores never wait for a read or for the last cell
    of a group), and the previous one's arrays are dropped as soon as its last cell is done:
    this process holds at most two groups' arrays (each a single dataset or at most
    ``GROUP_BYTES`` of them).
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    import scipy.linalg  # noqa: F401  (imported here once, not in every forked worker)
    import threadpoolctl  # noqa: F401
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("fork")
    live: list[tuple[list[str], ProcessPoolExecutor, set[Future]]] = []  # (stores, their workers, unfinished cells)

    def collect(enough: Any) -> None:
        while not enough():
            done, _ = wait(set().union(*(futures for _, _, futures in live)), return_when=FIRST_COMPLETED)
            for future in done:
                finish(future.result())
                bar.update(1)
            for batch in list(live):
                batch[2].difference_update(done)
                if not batch[2]:
                    batch[1].shutdown(wait=True)
                    live.remove(batch)
                    for store in batch[0]:
                        _DATA.pop(store, None)

    _DATA.clear()
    try:
        for group in pool_groups(batches):
            loaded = []
            for described, own in (batches[i] for i in group):
                data = load_dataset(described.store, encoder, methods, **load)
                prefetch_draws(data, own, options, processes=jobs)
                loaded.append((data, own))
            collect(lambda: all(len(futures) <= jobs for _, _, futures in live))
            _DATA.update((data.store, data) for data, _ in loaded)
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_limit_worker_blas,
                                       initargs=(threads,))
            live.append(([data.store for data, _ in loaded], pool, set()))
            for _, own in loaded:
                for store, method, k, s in sorted(own, key=lambda cell: -cell[2]):  # the largest draws first
                    live[-1][2].add(pool.submit(_run_cell_in_worker, store, method, k, s, params.get(method, {}),
                                                options))
            del data, loaded
            if "pandas" not in sys.modules:  # the report's import, here while the first cells run, not after the last
                import pandas  # noqa: F401
            collect(lambda: len(live) <= 1)  # the previous dataset's last cells: then its arrays go
        collect(lambda: not live)
    finally:
        for _, pool, _ in live:
            pool.shutdown(wait=True, cancel_futures=True)
        _DATA.clear()
