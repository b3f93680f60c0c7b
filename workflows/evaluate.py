"""Saved models scored on a labelled split (``fs eval``), with the solve workflow's metrics.

A name that is no saved model but the prefix of ``NAME-seedS`` models (what ``fs solve --seeds
1,2,3 --save NAME`` saves) is a seed group: its metrics are the mean and standard deviation over
the seeds. A group whose members were not saved together (their recorded generations differ) is
refused in one line, never averaged. Each model is scored by ``workflows.solve.score``, so
``fs eval`` of a model that ``fs solve`` saved reports the numbers ``fs solve`` reported, float
for float.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from featurestore.store.feature_store import FeatureStore
from solvers.persistence import check_group
from workflows.inputs.aux_features import model_labelled
from workflows.inputs.solver_inputs import load_model
from workflows.reports.result_files import mean_and_std, record
from workflows.solve import score


@dataclass
class Evaluation:
    """One row of ``fs eval``: a model (or seed group) and its metrics on the split."""

    model: str
    encoder: str
    rows: int
    n_classes: int
    metrics: dict[str, float | None]
    #: the group's saved models in seed order (empty for a single model)
    members: list[str] = field(default_factory=list)
    std: dict[str, float | None] | None = None
    #: the CLIP_benchmark-shaped result of ``--output``
    result: dict[str, Any] = field(default_factory=dict)


def group_members(saved: list[str], name: str) -> list[str]:
    """``name`` itself when saved (or zero-shot), else its ``name-seedS`` models in seed order."""
    if name in saved or name == "zero-shot":
        return [name]
    pattern = re.compile(rf"{re.escape(name)}-seed(\d+)")
    seeded = sorted((int(m.group(1)), m.group(0)) for m in map(pattern.fullmatch, saved) if m)
    return [model for _, model in seeded] or [name]  # unknown: load_model names what the store has


def evaluate(store: str | os.PathLike, names: list[str], split: str, *, encoder: str | None = None,
             bank: str | None = None) -> list[Evaluation]:
    """Score each saved model (or seed group) of ``names`` on the labelled ``split``. zero-shot is
    built on the fly from ``bank`` with ``encoder``, else the saved models' encoder, else the
    store's only one."""
    out: list[Evaluation] = []
    with FeatureStore(store) as reader:
        saved = reader.models()
        groups = {name: group_members(saved, name) for name in names}
        loaded = {m: load_model(reader, m, encoder, bank, split)[:2]
                  for members in groups.values() for m in members if m != "zero-shot"}
        saved_encoders = {key for _, key in loaded.values()}
        zero_shot_key = encoder or (next(iter(saved_encoders)) if len(saved_encoders) == 1 else None)
        for name, members in groups.items():
            if len(members) > 1 or members[0] != name:
                check_group(name, {m: reader.load_model(m)[1].get("group") for m in members if m in saved})
            runs = []
            for member in members:
                solver, key = (loaded[member] if member in loaded
                               else load_model(reader, member, zero_shot_key, bank, split)[:2])
                X, y = model_labelled(reader, solver, key, split, classes=getattr(solver, "class_names_", None))
                runs.append(score(solver, X, y))
            metrics, std = mean_and_std(runs)
            group = len(members) > 1 or members[0] != name
            seeds = [int(m.rpartition("-seed")[2]) for m in members] if group else None
            result = record(dataset=split, encoder=key, method=name, metrics=metrics, rows=len(y), store=str(store),
                            split=split, encoder_info=reader.encoder_info(key), metrics_std=std if group else None,
                            seeds=seeds, **({"members": members} if group else {}))
            out.append(Evaluation(model=name, encoder=key, rows=len(y), n_classes=len(solver.classes_),
                                  metrics=metrics, members=members if group else [], std=std if group else None,
                                  result=result))
    return out
