"""The one solve path, used by ``fs solve``, ``fs benchmark`` and notebooks.

``load_dataset`` reads a dataset's arrays from a store once: features, labels mapped by class
name onto the model's class list (the text bank's order: weight row k is class k), the text
weights, augmented views and the arrays a solver reads from the store (``--input``).
``run(method, data, shots, seed, params)`` fits one shots/seed cell on them and returns a
``RunRecord``: metrics (``top1``, ``top5``, ``balanced_accuracy``, ``ece``, ``nll``), the chosen
hyper-parameters, warnings, timings and the fitted model. Whatever calls it, the same inputs give
the same record.
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.errors import NotFoundError
from featurestore.store.feature_store import FeatureStore, check_model_name, h5_name
from solvers.errors import InputError
from solvers.model_selection.fewshot import SAMPLERS as FEWSHOT_SAMPLERS
from workflows.inputs.stored_rows import StoredRows
from workflows.inputs.streamed_split import StreamedRows

#: Solvers whose logits add a zero-shot term from the class text weights (dropped without them).
TEXT_TERM_SOLVERS = ("gda", "tip-adapter")
#: Solvers that need the class text weights and refuse to run without them.
TEXT_SOLVERS = ("zero-shot",)
#: Solvers that read a second image encoder's features after the CLIP ones (``aux_encoder``).
AUX_SOLVERS = ("amu", "label-free")
#: Solvers whose record includes the gain over zero-shot CLIP on the same rows.
GAIN_SOLVERS = ("amu", "label-free")
VIEWS_AS = ("samples", "mean")
SAMPLERS = ("auto", *FEWSHOT_SAMPLERS)
#: Store dataset names (``fs extract --dataset``) whose Tip-Adapter config file has another name.
TIP_ADAPTER_CONFIG_NAMES = {"fgvc_aircraft": "fgvc"}
#: Seed offset of the validation rows held out of the training pool (never the few-shot draw's seed).
HOLDOUT_SEED_OFFSET = 1_000_003


@dataclass
class Dataset:
    """A dataset's arrays, read once from a store (``load_dataset``). Labels index ``classes``."""

    name: str
    store: str
    encoder: str
    bank: str | None
    classes: list[str] | None
    text_weights: np.ndarray | None
    train: str | None = None
    X_train: np.ndarray | StoredRows | None = None
    y_train: np.ndarray | None = None
    views_train: np.ndarray | None = None
    X_unlabelled: np.ndarray | None = None
    val: str | None = None
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    test: str | None = None
    X_test: np.ndarray | StreamedRows | None = None
    y_test: np.ndarray | None = None
    source_dataset: str | None = None
    aux_encoder: str | None = None
    shifts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs_used: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: rows drawn from ``y_train`` so far (``drawn_rows``): a sweep's plan and its cells share them
    draws: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class RunRecord:
    """One shots/seed cell of one method: what ``fs solve`` prints and ``fs benchmark`` writes."""

    method: str
    shots: int | None
    seed: int | None
    views_as: str | None
    sampler: str | None
    val: str | None
    metrics: dict[str, float | None] | None
    val_metrics: dict[str, float | None] | None
    chosen: dict[str, Any]
    params: dict[str, Any]
    warnings: list[str]
    gain: dict[str, Any] | None
    fit_s: float
    predict_s: float
    solver: Any = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (no model)."""
        return {"method": self.method, "shots": self.shots, "seed": self.seed, "views_as": self.views_as,
                "sampler": self.sampler, "val": self.val, "metrics": self.metrics, "val_metrics": self.val_metrics,
                "chosen": self.chosen, "params": self.params, "warnings": list(self.warnings), "gain": self.gain,
                "fit_s": self.fit_s, "predict_s": self.predict_s}


def split_dataset(store: FeatureStore, split: str) -> str | None:
    """The named dataset a split was extracted from (``fs extract --dataset``), or None."""
    from featurestore.datasets import split_source_dataset

    group = store.file["splits"].get(h5_name(split))
    return None if group is None else split_source_dataset(str(group.attrs.get("source", "")))


def load_dataset(store: str | os.PathLike, *, train: str | None = None, val: str | None = None,
                 test: str | None = None, encoder: str | None = None, bank: str | None = None,
                 methods: Sequence[str] = (), inputs: dict[str, dict[str, Any]] | None = None,
                 aux_encoder: str | None = None, views: bool = False, shifts: bool = False,
                 name: str | None = None, rows_by_index: bool = False, stream_test: bool = False) -> Dataset:
    """Read a dataset's arrays from the store file ``store`` once.

    ``bank`` defaults to ``<train>/dataset`` (``fs extract --dataset``), else the class bank whose
    classes are the split's. ``methods`` (solver names) whose arrays come from the store are read
    here (``inputs[method]``: ``--input`` names); a REAL method's own bank then gives the class
    list. ``views``: the training rows' augmented views; ``shifts``: the distribution-shift splits
    of a named dataset (scored on their class subset); ``aux_encoder``: a second encoder's
    features after the CLIP ones (AMU, label-free). Missing text weights are a recorded warning.
    ``rows_by_index``: the training split's labels are read now, its features by row index when a
    run draws them (``StoredRows``; without ``aux_encoder``), not the whole pool.
    ``stream_test``: the test split's features are read block by block while a run scores them
    (``StreamedRows``; without ``aux_encoder`` and the solvers that need the whole split, ``GAIN_SOLVERS``).
    """
    from featurestore.text.banks import DATASET_BANK
    from solvers.registry import solver_class
    from workflows.inputs.arrays import solver_arrays
    from workflows.inputs.aux_features import check_aux_encoder, paired_features, paired_labelled
    from workflows.inputs.solver_inputs import (
        labelled_views,
        model_classes,
        resolve_encoder,
        stored_labelled,
        text_weights,
    )

    if val is not None and val == test:
        raise InputError("--val and --test are the same split: hyper-parameters are never chosen on the test split")
    if aux_encoder is not None and views:
        raise InputError("--aux-encoder is not available with --views-as")
    classes_of = {m: solver_class(m) for m in methods}
    fit_inputs = {cls.fit_input for cls in classes_of.values()} if methods else {"labels"}
    notes: list[str] = []
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        if aux_encoder is not None:
            check_aux_encoder(reader, encoder, aux_encoder)
        splits = reader.splits()
        for split in (train, val, test):
            if split is not None and split not in splits:
                raise NotFoundError(f"store {store} has no split {split!r} (it has: {', '.join(splits)})")
        reference = train or val or test
        source = split_dataset(reader, train) if train else None
        if bank is None and train is not None and f"{train}/{DATASET_BANK}" in reader.text_banks(encoder):
            bank = f"{train}/{DATASET_BANK}"
        T, bank = text_weights(reader, encoder, bank, reference)
        extra, used = {}, {}
        for method in methods:
            extra[method], used[method] = solver_arrays(method, reader, encoder, (inputs or {}).get(method, {}), T)
        own = {m: used[m].get("real_bank") for m in methods if "text_weights" in extra[m]}
        if own and (len(methods) == 1 or T is None):  # REAL: its own bank replaces the class bank
            method = next(iter(own))
            T, bank = extra[method]["text_weights"], own[method]
        classes = model_classes(reader, encoder, bank, reference)
        for method, real_bank in own.items():
            if model_classes(reader, encoder, real_bank, reference) != classes:
                raise InputError(f"{method}'s bank {real_bank!r} lists the classes in another order than "
                                 f"{bank!r}: run it alone")
        missing = [m for m in methods if m in TEXT_SOLVERS and T is None]
        if missing:
            raise NotFoundError(f"{missing[0]} needs class text weights: store {store} has no class bank for "
                                f"{encoder} matching split {reference!r} (run fs text or give --bank)")
        if T is None:
            notes.append(f"no class text bank matches split {reference!r} (run fs text or give --bank): "
                         "solvers run without zero-shot text weights")
        data = Dataset(name or source or Path(store).stem, os.path.abspath(store), encoder, bank, classes, T,
                       train=train, val=val, test=test, source_dataset=source, aux_encoder=aux_encoder,
                       inputs_used=used, warnings=notes)

        def read(split: str) -> tuple[np.ndarray, np.ndarray]:
            return paired_labelled(reader, encoder, aux_encoder, split, classes)

        def read_train(split: str) -> tuple[np.ndarray | StoredRows, np.ndarray]:
            if rows_by_index and aux_encoder is None:
                return stored_labelled(reader, encoder, split, classes)
            return read(split)

        if train is not None:
            if "labels" in fit_inputs:
                data.X_train, data.y_train = read_train(train)
            elif "none" in fit_inputs and val is None and reader.labels(train).max(initial=-1) >= 0:
                data.X_train, data.y_train = read_train(train)  # the pool validation rows may be held out of
            if views:
                data.views_train = labelled_views(reader, encoder, train, classes=classes)
            if "unlabelled" in fit_inputs:
                data.X_unlabelled = paired_features(reader, encoder, aux_encoder, train)
        if val is not None:
            data.X_val, data.y_val = read(val)
        if test is not None:
            if stream_test and aux_encoder is None and not set(methods) & set(GAIN_SOLVERS):
                from workflows.inputs.streamed_split import streamed_labelled

                data.X_test, data.y_test = streamed_labelled(reader, encoder, test, classes)
            else:
                data.X_test, data.y_test = read(test)
        if shifts and classes is not None:
            data.shifts = _shift_splits(reader, encoder, source, classes, {train, val, test})
    for method, cls in classes_of.items():
        extra[method].update(_class_params(cls, data, extra[method]))
    data.extra = extra
    return data


def _shift_splits(reader: FeatureStore, encoder: str, source: str | None, classes: list[str],
                  taken: set[str | None]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The store's distribution-shift splits of the named dataset ``source`` (ImageNet-V2/-A/...),
    each with its class subset (indices into ``classes``) when it covers only some classes."""
    from featurestore.datasets import dataset_info
    from featurestore.datasets.catalogue import DATASETS
    from featurestore.datasets.extraction import subset_name
    from workflows.inputs.solver_inputs import labelled

    out = {}
    for split in reader.splits():
        named = split_dataset(reader, split)
        if split in taken or named is None or named not in DATASETS or dataset_info(named).shift_of != source:
            continue
        X, y = labelled(reader, encoder, split, classes=classes)
        subset = None
        if subset_name(split) in reader.class_sets():
            subset = np.array([classes.index(n) for n in reader.class_names(subset_name(split))], dtype=np.int64)
        out[split] = (X, y, subset)
    return out


def _class_params(cls: type, data: Dataset, extra: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments that make the solver's ``classes_`` the indices of ``data.classes``."""
    from workflows.inputs.solver_inputs import solver_class_params

    takes_text = "text_weights" in cls._get_param_names()  # type: ignore[attr-defined]
    uses_text = "text_weights" in extra or (data.text_weights is not None and takes_text)
    return solver_class_params(cls, data.classes, uses_text)


# --------------------------------------------------------------------------- one run
def fitted_scalars(solver: Any) -> dict[str, Any]:
    """The hyper-parameters a solver chose and its validation score: its fitted scalar
    attributes (ending in ``_``; ``val_accuracy_`` included), as plain Python numbers."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in vars(solver).items()
            if k.endswith("_") and not k.startswith("_") and k != "n_features_in_"
            and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))}


#: Rows per ``class_logits`` call when a split is scored: a solver's temporaries (normalized rows,
#: products) are those of one block, not of the whole split (ImageNet's test split is 50,000 rows).
SCORE_BLOCK_ROWS = 8192


def _row_blocks(X: np.ndarray | StreamedRows) -> Generator[np.ndarray, None, None]:
    """``X`` in consecutive blocks of ``SCORE_BLOCK_ROWS`` rows (at least one block, maybe empty):
    slices of an array, or a ``StreamedRows`` split read from the store as they are scored."""
    if isinstance(X, StreamedRows) and X.shape[0]:
        yield from X.blocks(SCORE_BLOCK_ROWS, prefetch=STREAM_PREFETCH)
        return
    for start in range(0, max(X.shape[0], 1), SCORE_BLOCK_ROWS):
        yield np.asarray(X[start:start + SCORE_BLOCK_ROWS])


#: Read a streamed test split's next block on a thread while the current one is scored.
STREAM_PREFETCH = True


def score(solver: Any, X: np.ndarray | StreamedRows, y: np.ndarray,
          subset: np.ndarray | None = None) -> dict[str, float | None]:
    """top1, top5 (None below 5 classes: it would be 1 by construction), balanced_accuracy, ece
    and nll of the solver's logits on (X, y), at its temperature. With ``subset`` (class
    indices), among those classes only (a split covering some classes, e.g. ImageNet-A).
    ``X`` may be a ``StreamedRows`` split: its blocks are read as they are scored."""
    from solvers.metrics.classification import LogitMetrics

    # Block by block: each block of logits is reduced to per-row ranks and probabilities while in
    # cache, so the split's (n, C) logits are never allocated (ImageNet's test split: 200 MB).
    metrics = LogitMetrics(float(getattr(solver, "temperature", 1.0) or 1.0), n_rows=X.shape[0])
    position = None
    blocks = _row_blocks(X)
    try:
        for start, block in zip(range(0, max(X.shape[0], 1), SCORE_BLOCK_ROWS), blocks, strict=True):
            logits, labels = solver.class_logits(block), y[start:start + SCORE_BLOCK_ROWS]
            if subset is not None:
                if position is None:
                    position = np.full(logits.shape[1], -1)
                    position[subset] = np.arange(subset.size)
                logits, labels = logits[:, subset], position[labels]
            metrics.add(labels, logits)
    finally:
        blocks.close()  # a streamed split: its reader thread is done and its store closed, even on an error
    return metrics.result()


def check_shots(y: np.ndarray, shots: int, classes: list[str] | None, split: str | None, option: str) -> None:
    """Refuse ``shots`` rows per class where a class has fewer, naming it and --allow-fewer."""
    counts = np.bincount(y[y >= 0])
    present = np.flatnonzero(counts)
    smallest = present[np.argmin(counts[present])]
    if counts[smallest] < shots:
        label = classes[smallest] if classes is not None and smallest < len(classes) else str(smallest)
        raise InputError(f"class {label!r} of split {split!r} has only {counts[smallest]} row(s), fewer than "
                         f"{option} {shots}; add --allow-fewer to take all of its rows")


def holdout_rows(y: np.ndarray, taken: np.ndarray, per_class: int, seed: int, where: str) -> np.ndarray:
    """Validation rows of the training pool ``y``: ``per_class`` per class, none of ``taken``."""
    from solvers.model_selection.fewshot import fewshot_split

    pool = y.copy()
    pool[taken] = -1
    if not (pool >= 0).any():
        raise InputError(f"{where}: no training rows are left for validation after the few-shot draw; "
                         "give a validation split")
    return fewshot_split(pool, per_class, seed + HOLDOUT_SEED_OFFSET, allow_fewer=True)


def drawn_rows(data: Dataset, shots: int, seed: int, allow_fewer: bool, sampler: str,
               holdout: int | None = None) -> np.ndarray:
    """``fewshot_split(data.y_train, shots, seed, ...)`` (``shots`` 0: no rows) or, with ``holdout``,
    ``holdout_rows`` around that draw, each drawn once per dataset and kept (read-only) in
    ``data.draws``: the benchmark's plan (which rows to read) and its cells draw the same rows."""
    from solvers.model_selection.fewshot import fewshot_split

    key = (shots, seed, allow_fewer, sampler if shots else None, holdout)
    if key not in data.draws:
        assert data.y_train is not None
        if holdout:
            taken = drawn_rows(data, shots, seed, allow_fewer, sampler)
            rows = holdout_rows(data.y_train, taken, holdout, seed, data.name)
        elif shots:
            rows = fewshot_split(data.y_train, shots, seed, allow_fewer=allow_fewer, sampler=sampler)
        else:
            rows = np.zeros(0, dtype=np.int64)
        rows.setflags(write=False)
        data.draws[key] = rows
    return data.draws[key]


def tip_adapter_preset(data: Dataset) -> str | None:
    """The official Tip-Adapter search-scale preset (configs/<name>.yaml ``search_scale``) of the
    named dataset the store was extracted from, or None (another dataset, or none named)."""
    from solvers.few_shot.tip_adapter import SEARCH_SCALE_PRESETS

    if data.source_dataset is None:
        return None
    name = TIP_ADAPTER_CONFIG_NAMES.get(data.source_dataset, data.source_dataset)
    return name if name in SEARCH_SCALE_PRESETS else None


def resolve_sampler(sampler: str, data: Dataset) -> str:
    """``auto``: CoOp's sampler for a store of a named dataset (its exact images), else NumPy's;
    ``gda-iclr24`` / ``tip-adapter``: the draws of GDA's / Tip-Adapter's official scripts."""
    if sampler not in SAMPLERS:
        raise InputError(f"unknown few-shot sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if sampler == "auto":
        return "coop" if data.source_dataset else "numpy"
    return sampler


def check_run(method: str, *, train: str | None, shots: int | None, views_as: str | None,
              aux_encoder: str | None, save: str | None = None) -> None:
    """Refuse a run that cannot be made, before any array is read (``run`` checks it again), and
    a ``save`` name no model can have (``""`` is refused, not ignored)."""
    from solvers.registry import NAMES, solver_class

    if save is not None:
        check_model_name(save)

    if method not in NAMES:
        raise InputError(f"unknown solver {method!r}; choose from {', '.join(NAMES)}")
    fit_input = solver_class(method).fit_input
    if views_as is not None:
        if views_as not in VIEWS_AS:
            raise InputError(f"views_as must be one of {', '.join(VIEWS_AS)}, got {views_as!r}")
        if fit_input != "labels":
            raise InputError(f"--views-as builds a labelled training set; {method} does not fit on one")
    if fit_input != "none" and train is None:
        raise InputError(f"{method} needs --train")
    if shots and fit_input == "unlabelled":
        raise InputError(f"{method} fits on unlabelled rows: --shots (rows per class) does not apply")
    if method == "amu" and aux_encoder is None:
        raise InputError(f"{method} adds a logit bias from an auxiliary encoder's features: give --aux-encoder KEY")
    if aux_encoder is not None and method not in AUX_SOLVERS:
        raise InputError(f"--aux-encoder is for {', '.join(AUX_SOLVERS)}, not {method}")


def run(method: str, data: Dataset, shots: int | None = None, seed: int | None = None,
        params: dict[str, Any] | None = None, *, views_as: str | None = None, sampler: str = "auto",
        val_shots: int | None = None, allow_fewer: bool = False, holdout: int | None = None,
        calibrate: bool = False, score_val: bool = True) -> RunRecord:
    """Fit ``method`` on ``shots`` rows per class of ``data``'s training split (all rows without
    ``shots``) drawn with ``seed``, search its hyper-parameters on the validation rows, score it.

    ``views_as``: the training rows' augmented views as the rows ("samples", official GDA) or
    their mean ("mean", official Tip-Adapter), without the centre crop. ``val_shots``: that many
    validation rows per class. ``holdout``: without a validation split, that many rows per class
    held out of the training pool (never the few-shot rows). ``calibrate``: a softmax temperature
    fitted on the validation rows. ``score_val``: also score the validation rows (the record's
    ``val_metrics``; None without).
    """
    from solvers import SolverWarning
    from solvers.model_selection.fewshot import fewshot_split
    from solvers.registry import solver_class
    from workflows.params import check_params

    check_run(method, train=data.train, shots=shots, views_as=views_as, aux_encoder=data.aux_encoder)
    cls = solver_class(method)
    params = dict(params or {})
    check_params(method, cls, params)
    fit_input = cls.fit_input
    notes: list[str] = []
    if views_as is not None and data.views_train is None:
        raise InputError("no augmented views were read: load_dataset(..., views=True) on a store extracted "
                         "with fs extract --views N")
    if method not in data.extra and (fit_input == "unlabelled" or method in _store_readers()):
        raise InputError(f"{method} reads arrays from the store: load_dataset(..., methods=[{method!r}])")
    extra = data.extra[method] if method in data.extra else _class_params(cls, data, {})
    kwargs = {**extra, **params}
    if data.text_weights is not None and "text_weights" in cls._get_param_names() and "text_weights" not in kwargs:
        kwargs["text_weights"] = data.text_weights
    draw = 0 if seed is None else seed
    drawn_with = resolve_sampler(sampler, data) if shots else None
    X_fit: Any = data.X_train
    y_fit: Any = data.y_train
    rows: np.ndarray | None = None
    if fit_input == "unlabelled":
        X_fit, y_fit = data.X_unlabelled, None
    elif fit_input == "labels":
        if shots:
            if not allow_fewer:
                check_shots(y_fit, shots, data.classes, data.train, "--shots")
            rows = drawn_rows(data, shots, draw, allow_fewer, drawn_with or "numpy")
            X_fit, y_fit = X_fit[rows], y_fit[rows]
        if views_as is not None:
            from solvers.model_selection.augmented_views import augmented_training_set

            views: Any = data.views_train if rows is None else data.views_train[rows]  # type: ignore[index]
            X_fit, y_fit = augmented_training_set(views, y_fit, views_as)
    X_val: Any = data.X_val
    y_val: Any = data.y_val
    val_label = data.val
    if X_val is not None and val_shots:
        if not allow_fewer:
            check_shots(y_val, val_shots, data.classes, data.val, "--val-shots")
        picked = fewshot_split(y_val, val_shots, draw, allow_fewer=allow_fewer)
        X_val, y_val = X_val[picked], y_val[picked]
    elif X_val is None and holdout:
        if data.y_train is None or (fit_input == "labels" and rows is None):
            raise InputError("validation rows are held out of --train around a few-shot draw: give --shots "
                             "(or a validation split)")
        picked = drawn_rows(data, (shots or 0) if rows is not None else 0, draw, allow_fewer, drawn_with or "numpy",
                            holdout)
        X_val, y_val = data.X_train[picked], data.y_train[picked]  # type: ignore[index]
        val_label = f"train-holdout ({holdout}/class)"
        notes.append(f"no validation split: {holdout} rows per class held out of {data.train!r} for the "
                     "hyper-parameter search (never the few-shot rows, never the test split)")
    if calibrate and X_val is None:
        raise InputError("--calibrate fits the temperature on --val; give --val")
    preset = tip_adapter_preset(data) if method == "tip-adapter" and "search_scale" not in kwargs else None
    if preset is not None:
        from solvers.few_shot.tip_adapter import SEARCH_SCALE_PRESETS

        kwargs["search_scale"] = preset
        notes.append(f"tip-adapter: search scale {SEARCH_SCALE_PRESETS[preset]} (beta, alpha), the official preset "
                     f"of {data.source_dataset} (Tip-Adapter's configs/{preset}.yaml)")
    if method in TEXT_TERM_SOLVERS and "text_weights" not in kwargs:
        notes.append(f"{method} runs without its zero-shot term (no class text weights)")
    solver: Any = cls(**kwargs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SolverWarning)  # recorded in fit_warnings_, reported with the record
        if fit_input == "none":
            solver.fit(X_val=X_val, y_val=y_val)
        elif fit_input == "unlabelled":
            solver.fit(X_fit, X_val=X_val, y_val=y_val)
        else:
            solver.fit(X_fit, y_fit, X_val=X_val, y_val=y_val)
        if calibrate:
            from solvers.model_selection.temperature_scaling import calibrate as fit_temperature

            fit_temperature(solver, X_val, y_val)
    fit_s = time.perf_counter() - start
    solver.class_names_ = data.classes
    if X_val is None:
        kept = {p: getattr(solver, p) for p in cls._get_param_names()
                if p.startswith("default_") and getattr(solver, p[len("default_"):], 0) is None}
        said = any("validation" in m for m in getattr(solver, "fit_warnings_", []) or [])
        if kept and not said:
            notes.append(f"no validation split: {method} keeps {', '.join(f'{k}={v:g}' for k, v in kept.items())} "
                         "(give --val to search)")
    start = time.perf_counter()
    metrics = score(solver, data.X_test, data.y_test) if data.X_test is not None and data.y_test is not None else None
    val_metrics = score(solver, X_val, y_val) if X_val is not None and score_val else None
    predict_s = time.perf_counter() - start
    gain = None
    if method in GAIN_SOLVERS and (data.X_test is not None or X_val is not None):
        from solvers.zero_shot.zero_shot_gain import gain_over_zero_shot

        Xg: Any = data.X_test if data.X_test is not None else X_val
        yg: Any = data.y_test if data.X_test is not None else y_val
        D = solver.text_weights.shape[1]
        gain = gain_over_zero_shot(solver.predict(Xg), Xg[:, :D], yg, solver.text_weights, solver.logit_scale)
    chosen = fitted_scalars(solver)
    if preset is not None:
        from solvers.few_shot.tip_adapter import resolve_search_scale

        chosen["search_scale_beta"], chosen["search_scale_alpha"] = resolve_search_scale(preset)
    if calibrate:
        chosen["temperature"] = float(solver.temperature)
    return RunRecord(method, shots or None, seed, views_as, drawn_with, val_label, metrics, val_metrics, chosen, params,
                     [*data.warnings, *notes, *(getattr(solver, "fit_warnings_", []) or [])], gain,
                     round(fit_s, 4), round(predict_s, 4), solver)


def _store_readers() -> tuple[str, ...]:
    from workflows.inputs.arrays import INPUTS

    return tuple(INPUTS)


# --------------------------------------------------------------------------- saving and result files
def save_models(data: Dataset, records: Sequence[RunRecord], name: str) -> tuple[list[str], list[str]]:
    """Save each record's model into the store (``name``, or ``name-seedS`` for several records).
    Returns the names saved and the names removed.

    Several records are one seed group saved in one switch (all seeds old or all new after a kill),
    which also removes the group's older ``name-seedS`` models this run has no seed for (a group
    holds one run's seeds only)."""
    from solvers.persistence import save_group_to_store, save_to_store
    from workflows.evaluate import group_members

    with FeatureStore(data.store, mode="a") as writer:
        if len(records) == 1:
            save_to_store(writer, name, records[0].solver, data.encoder, data.aux_encoder)
            return [name], []
        members = {f"{name}-seed{record.seed}": record.solver for record in records}
        older = group_members([m for m in writer.models() if m != name], name)  # a model `name` does not hide them
        stale = [m for m in older if m != name and m not in members]
        save_group_to_store(writer, name, members, data.encoder, data.aux_encoder, remove=stale)
    return list(members), stale


def write_result_file(path: str, data: Dataset, records: Sequence[RunRecord], saved: Sequence[str]) -> str:
    """A CLIP_benchmark-shaped result file of the records' metrics on the test split (else the
    validation rows): mean over seeds, std beside. Returns the path written."""
    from workflows.reports.result_files import mean_and_std, output_path, record, write_result

    split = data.test or data.val
    runs = [r.metrics if data.test is not None else r.val_metrics for r in records]
    if split is None or any(m is None for m in runs):
        raise InputError("--output reports metrics on --test (or --val): give one")
    metrics, std = mean_and_std(runs)  # type: ignore[arg-type]
    with FeatureStore(data.store) as reader:
        info, rows = reader.encoder_info(data.encoder), len(reader.ids(split))
    seeds = [r.seed for r in records if r.seed is not None]
    result = record(dataset=split, encoder=data.encoder, method=records[0].method, metrics=metrics, rows=rows,
                    store=data.store, split=split, encoder_info=info,
                    metrics_std=std if len(records) > 1 else None, seeds=seeds or None,
                    chosen=[r.chosen for r in records], saved=list(saved),
                    warnings=list(dict.fromkeys(m for r in records for m in r.warnings)))
    target = output_path(path, result)
    write_result(target, result)
    return target
