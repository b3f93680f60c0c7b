"""Saving fitted solvers without pickle: arrays in an .npz (or the store's /models group) and
JSON metadata (class, params, encoder key, auxiliary encoder key, class names, format version)
beside them. A loaded solver records the encoder whose features it was fitted on (``encoder_``),
the auxiliary encoder whose features followed them in each row (``aux_encoder_``, AMU and
label-free; None otherwise) and the names of its classes (``class_names_``, None when not given);
``workflows.inputs.solver_inputs.check_encoder`` refuses to mix encoders and
``workflows.inputs.aux_features`` builds the same ``[clip | aux]`` rows for it."""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from solvers._base.solver import Solver
from solvers.errors import InputError

FORMAT_VERSION = 1


class ModelStore(Protocol):
    """What a store must offer to hold solvers (featurestore.store.feature_store.FeatureStore does)."""

    def save_model(self, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None: ...

    def save_models(self, models: Mapping[str, tuple[dict[str, np.ndarray], dict[str, Any]]],
                    remove: Sequence[str] = ()) -> None: ...

    def load_model(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...


def _meta(solver: Solver, encoder: str | None,
          aux_encoder: str | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, params = solver.get_state()
    names = getattr(solver, "class_names_", None)
    return arrays, {"format_version": FORMAT_VERSION, "class": params["class"], "encoder": encoder,
                    "aux_encoder": aux_encoder,
                    "class_names": None if names is None else [str(n) for n in names], "state": params}


def _solver_from(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Solver:
    from solvers.registry import solver_class

    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"saved solver has format_version {version!r}; this code reads {FORMAT_VERSION}")
    solver = solver_class(meta["class"]).from_state(arrays, meta["state"])
    solver.encoder_ = meta.get("encoder")
    solver.aux_encoder_ = meta.get("aux_encoder")
    solver.class_names_ = meta.get("class_names")
    return solver


def _base(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def save_npz(solver: Solver, path: str | Path, encoder: str | None = None,
             aux_encoder: str | None = None) -> tuple[Path, Path]:
    """Write ``<path>.npz`` (arrays) and ``<path>.json`` (class, params, encoder keys, version)."""
    base = _base(path)
    arrays, meta = _meta(solver, encoder, aux_encoder)
    npz, meta_path = base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")
    np.savez(npz, allow_pickle=False, **arrays)
    meta_path.write_text(json.dumps(meta, indent=1))
    return npz, meta_path


def load_npz(path: str | Path) -> Solver:
    """Load a solver written by ``save_npz``; its ``encoder_`` is the recorded encoder key or None."""
    base = _base(path)
    meta = json.loads(base.with_name(base.name + ".json").read_text())
    with np.load(base.with_name(base.name + ".npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return _solver_from(arrays, meta)


def save_to_store(store: ModelStore, name: str, solver: Solver, encoder: str | None,
                  aux_encoder: str | None = None) -> None:
    """Save a fitted solver under ``name`` in a store (``store.save_model``); ``aux_encoder`` names
    the encoder whose features follow ``encoder``'s in each row the solver was fitted on."""
    arrays, meta = _meta(solver, encoder, aux_encoder)
    store.save_model(name, arrays, meta)


def save_group_to_store(store: ModelStore, group: str, members: Mapping[str, Solver], encoder: str | None,
                        aux_encoder: str | None = None, remove: Sequence[str] = ()) -> None:
    """Save the fitted solvers ``members`` (name -> solver) of seed group ``group`` in one switch
    (``store.save_models``: after a kill all of them are old or all new), deleting the saved models
    named in ``remove`` in the same switch. Each member records ``group``: the group's name, its
    members and one generation id shared by this save (see :func:`check_group`)."""
    record = {"name": group, "generation": uuid.uuid4().hex, "members": list(members)}
    batch = {}
    for name, solver in members.items():
        arrays, meta = _meta(solver, encoder, aux_encoder)
        batch[name] = (arrays, {**meta, "group": record})
    store.save_models(batch, remove)


def check_group(group: str, records: Mapping[str, Any]) -> None:
    """Refuse (InputError, one line) a seed group whose members were not saved together.

    ``records`` maps each member found to its saved metadata's ``group`` entry (None for models
    saved before groups were recorded: a group of those only passes). Refused: members of
    different saves (generations), or a set of members other than the one the save listed."""
    if not any(records.values()):
        return
    saves: dict[str, list[str]] = {}
    for name, record in records.items():
        saves.setdefault(record.get("generation", "?") if isinstance(record, dict) else "none", []).append(name)
    listed = next(r for r in records.values() if isinstance(r, dict)).get("members")
    if len(saves) == 1 and sorted(listed or []) == sorted(records):
        return
    if len(saves) == 1:
        missing = sorted(set(listed or []) ^ set(records))
        raise InputError(f"seed group {group!r} is not the set of models its save wrote (differs in "
                         f"{', '.join(missing)}); save the group again (fs solve ... --save {group})")
    mixed = "; ".join(", ".join(names) for names in saves.values())
    raise InputError(f"seed group {group!r} mixes models of different saves ({mixed}); save the group again "
                     f"(fs solve ... --save {group}) or name one model")


def load_from_store(store: ModelStore, name: str) -> Solver:
    """Load the solver saved under ``name`` (``store.load_model``); ``encoder_`` and
    ``aux_encoder_`` are set."""
    arrays, meta = store.load_model(name)
    return _solver_from(arrays, meta)
