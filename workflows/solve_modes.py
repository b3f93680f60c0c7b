"""Two GDA protocols of ``fs solve gda`` beside the one solve path (``workflows.solve``): the
few-shot class-incremental sessions (``--incremental``) and the out-of-core fit from streamed
statistics (``--chunk-rows``, optionally on Dask). Each returns its summary as a dict."""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from featurestore.store.feature_store import FeatureStore
from solvers.errors import InputError


def _no_bank(split: str | None) -> str:
    return (f"no class text bank matches split {split!r} (run fs text or give --bank): "
            "gda runs without zero-shot text weights")


def incremental(store: str, sessions_file: str, *, encoder: str | None, train: str | None, val: str | None,
                test: str | None, bank: str | None, shots: int | None, seed: int,
                params: dict[str, Any]) -> dict[str, Any]:
    """GDA.partial_fit over the sessions of ``sessions_file``: the FSCIL accuracy table."""
    from solvers.few_shot.class_incremental import fscil_table
    from solvers.registry import solver_class
    from workflows.incremental import read_sessions
    from workflows.inputs.solver_inputs import labelled, model_classes, resolve_encoder, text_weights

    if train is None or test is None:
        raise InputError("--incremental needs --train and --test")
    if val is not None:
        raise InputError("--incremental fixes alpha (--param alpha=..., default 1.0): no --val search")
    cls = solver_class("gda")
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        T, bank = text_weights(reader, encoder, bank, train)
        classes = model_classes(reader, encoder, bank, train)  # the bank's order: weight row k is class k
        spec = read_sessions(sessions_file, classes)
        X_train, y_train = labelled(reader, encoder, train, classes=classes)
        X_test, y_test = labelled(reader, encoder, test, classes=classes)
    notes = [] if T is not None else [_no_bank(train)]
    params = dict(params)
    if params.get("alpha") is None and T is not None:
        params["alpha"] = 1.0
        notes.append("alpha fixed at 1.0 (no validation split in the incremental protocol; "
                     "--param alpha=... to change)")
    k = shots or spec["shots"]

    def make(order: np.ndarray) -> Any:
        return cls(**{**params, **({"text_weights": T[order]} if T is not None else {})})

    table = fscil_table(make, X_train, y_train, X_test, y_test, spec["sessions"], shots=k, seed=seed,
                        base_shots=spec["base_shots"])
    return {"solver": "gda", "mode": "class-incremental", "encoder": encoder, "text_bank": bank,
            "train": train, "test": test, "sessions_file": sessions_file, "shots": k,
            "base_shots": spec["base_shots"], "seed": seed, "notes": notes, **table}


def streaming(store: str, *, encoder: str | None, train: str | None, val: str | None, test: str | None,
              bank: str | None, params: dict[str, Any], save: str | None, chunk_rows: int,
              cluster: str | None, scheduler: str | None, quiet: bool) -> dict[str, Any]:
    """GDA fitted from streamed sufficient statistics (a store larger than RAM), optionally on Dask."""
    from workflows.inputs.solver_inputs import labelled, model_classes, resolve_encoder, split_labels, text_weights
    from workflows.streaming import decision_in_chunks, fit_gda_streaming

    if train is None:
        raise InputError("out-of-core gda fits a whole --train split (no --shots)")
    context: Any = contextlib.nullcontext(None)
    if cluster or scheduler:
        from featurestore.cluster import dask_client

        context = dask_client(cluster, scheduler)
    notes = []
    params = dict(params)
    with FeatureStore(store) as reader:
        encoder = resolve_encoder(reader, encoder)
        T, bank = text_weights(reader, encoder, bank, train)
        classes = model_classes(reader, encoder, bank, train)  # the bank's order: weight row k is class k
        if T is not None:
            params.setdefault("text_weights", T)
        else:
            notes.append(_no_bank(train))
        X_val, y_val = labelled(reader, encoder, val, classes=classes) if val else (None, None)
        with context as client:
            solver = fit_gda_streaming(reader, encoder, train, chunk_rows=chunk_rows, client=client,
                                       X_val=X_val, y_val=y_val, quiet=quiet,
                                       classes=classes if classes != reader.classes(train) else None, **params)
        accuracy = None
        if test:
            pred = decision_in_chunks(solver, reader, encoder, test, chunk_rows=chunk_rows, method="predict")
            y = split_labels(reader, test, classes)
            accuracy = float(np.mean(pred[y >= 0] == y[y >= 0]))
    solver.class_names_ = classes
    if save:
        from solvers.persistence import save_to_store

        with FeatureStore(store, mode="a") as writer:
            save_to_store(writer, save, solver, encoder)
    return {"solver": "gda", "encoder": encoder, "text_bank": bank, "train": train, "val": val, "test": test,
            "accuracy": accuracy, "val_accuracy": getattr(solver, "val_accuracy_", None), "alpha": solver.alpha_,
            "chunk_rows": chunk_rows, "notes": notes, "warnings": list(getattr(solver, "fit_warnings_", []) or []),
            "saved": [save] if save else []}
