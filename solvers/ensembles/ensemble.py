"""Ensembles of fitted solvers (or imported logits): a weighted average of member probabilities
softmax(z_m / T_m) or of scaled logits z_m / T_m (Lakshminarayanan et al., NeurIPS 2017 for the
probability average; COOkeD, Liberatori et al., 2025, for heterogeneous CLIP ensembles).

Members may need different inputs (imported logits are per row, not a function of X), so the
math works on a list of member logit matrices (``fit_logits``, ``combine``); ``fit`` and
``class_logits`` on X just ask each member for its logits first.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from solvers._base.checks import check_features, check_labels, check_target, encode_labels
from solvers._base.softmax import log_softmax, softmax
from solvers._base.solver import STATE_FORMAT_VERSION, Solver, _to_json, classes_from_state, classes_to_state
from solvers.errors import InputError
from solvers.model_selection.temperature_scaling import fit_temperature


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors whose entries are multiples of ``step`` and sum to one, (G, M)."""
    units = round(1.0 / step)
    if units < 1 or abs(units * step - 1.0) > 1e-9:
        raise InputError(f"grid_step must divide 1 (e.g. 0.1, 0.05), got {step}")
    rows = [c for c in itertools.product(range(units + 1), repeat=n_members) if sum(c) == units]
    return np.asarray(rows, dtype=np.float64) / units


class Ensemble(Solver):
    """Weighted ensemble of fitted solvers (members are not refitted).

    ``combine="proba"``: p = sum_m w_m softmax(z_m / T_m); logits are log p (so softmax gives p).
    ``combine="logits"``: logits = sum_m w_m z_m / T_m. ``weights=None`` searches the simplex grid
    (``grid_step``) on the validation split by accuracy (ties: lower NLL), else uniform weights;
    ``temperatures=None`` uses each member's own ``temperature`` (1 if none), ``"fit"`` fits T_m
    on the validation split (temperature scaling), or give a list.
    """

    fit_input = "none"

    def __init__(self, members: Sequence[Solver] | None = None, combine: str = "proba",
                 weights: Sequence[float] | None = None, temperatures: Sequence[float] | str | None = None,
                 grid_step: float = 0.1, temperature: float = 1.0) -> None:
        self.members = members
        self.combine = combine
        self.weights = weights
        self.temperatures = temperatures
        self.grid_step = grid_step
        self.temperature = temperature

    # ------------------------------------------------------------------ the math on logit lists
    def _check_members(self, member_logits: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.combine not in ("proba", "logits"):
            raise InputError(f"combine must be 'proba' or 'logits', not {self.combine!r}")
        mats = [np.asarray(z, dtype=np.float64) for z in member_logits]
        if not mats:
            raise InputError("an ensemble needs at least one member")
        shapes = {z.shape for z in mats}
        if len(shapes) != 1 or mats[0].ndim != 2:
            raise InputError(f"member logits must share one (n_samples, n_classes) shape, got {sorted(shapes)}")
        return mats

    def _combine(self, mats: list[np.ndarray], weights: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
        if self.combine == "logits":
            return sum(w * z / t for w, z, t in zip(weights, mats, temperatures))
        p = sum(w * softmax(z, t) for w, z, t in zip(weights, mats, temperatures))
        return np.log(np.clip(p, 1e-300, None))

    def fit_logits(self, member_logits: Sequence[np.ndarray], y_val: np.ndarray | None = None) -> Ensemble:
        """Set ``weights_`` and ``temperatures_`` from members' validation logits (only these
        and ``y_val`` are read; the test split is never seen). ``y_val`` holds column indices of
        the logits; ``fit`` maps labels onto them through the members' ``classes_``."""
        mats = self._check_members(member_logits)
        m, (n, c) = len(mats), mats[0].shape
        y = None if y_val is None else check_labels(y_val, n, c, name="y_val")
        if isinstance(self.temperatures, str):
            if self.temperatures != "fit" or y is None:
                raise InputError("temperatures='fit' needs a validation split (X_val, y_val)")
            temps = np.array([fit_temperature(z, y) for z in mats])
        elif self.temperatures is None:
            members: Sequence[object] = self.members or [None] * m
            temps = np.array([float(getattr(s, "temperature", 1.0)) for s in members])
        else:
            temps = np.asarray(self.temperatures, dtype=np.float64)
        if temps.shape != (m,) or (temps <= 0).any():
            raise InputError(f"need {m} positive temperatures, got {temps.tolist()}")
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (m,) or (weights < 0).any() or weights.sum() <= 0:
                raise InputError(f"need {m} non-negative weights with a positive sum, got {weights.tolist()}")
            weights = weights / weights.sum()
            self.validation_scores_: np.ndarray | None = None
        elif y is not None and m > 1:
            weights = self._search(mats, temps, y)
        else:
            weights = np.full(m, 1.0 / m)
        self.weights_, self.temperatures_ = weights, temps
        self._set_classes(c, getattr(self, "n_features_in_", 0))
        return self

    def _search(self, mats: list[np.ndarray], temps: np.ndarray, y: np.ndarray) -> np.ndarray:
        grid = simplex_grid(len(mats), self.grid_step)
        best, best_key, scores = grid[0], None, []
        rows = np.arange(len(y))
        for w in grid:
            z = self._combine(mats, w, temps)
            log_p = log_softmax(z)
            accuracy = float(np.mean(z.argmax(axis=1) == y))
            key = (accuracy, float(np.mean(log_p[rows, y])))
            scores.append(accuracy)
            if best_key is None or key > best_key:
                best, best_key = w, key
        self.validation_scores_ = np.asarray(scores)
        return best

    def combine_logits(self, member_logits: Sequence[np.ndarray]) -> np.ndarray:
        """Ensemble logits (n, C) from the members' logits on the same rows, in member order."""
        self._check_fitted()
        mats = self._check_members(member_logits)
        if len(mats) != len(self.weights_):
            raise InputError(f"the ensemble has {len(self.weights_)} members, got {len(mats)} logit matrices")
        return self._combine(mats, np.asarray(self.weights_), np.asarray(self.temperatures_))

    # ------------------------------------------------------------------ the Solver interface
    def _fitted_members(self) -> Sequence[Solver]:
        if not self.members:
            raise InputError("Ensemble needs fitted members (members=[...])")
        return self.members

    def _member_logits(self, X: np.ndarray) -> list[np.ndarray]:
        return [member.class_logits(X) for member in self._fitted_members()]

    def _member_classes(self) -> np.ndarray:
        """The members' common ``classes_`` (refused when they differ: their columns would not align)."""
        classes = [np.asarray(member.classes_) for member in self._fitted_members()]
        if any(c.shape != classes[0].shape or not np.array_equal(c, classes[0]) for c in classes[1:]):
            raise InputError("the members have different classes_; an ensemble needs one class list")
        return classes[0]

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> Ensemble:
        """Choose weights (and temperatures) on (X_val, y_val), whose labels are among the members'
        ``classes_``; X, y are ignored (members are fitted). ``classes_`` are the members'."""
        classes = self._member_classes()
        if X_val is not None:
            X_val = check_features(X_val, name="X_val")
            if y_val is not None:
                y_val = encode_labels(check_target(y_val, X_val.shape[0], name="y_val"), classes, name="y_val")
            self.fit_logits(self._member_logits(X_val), y_val)
            self.n_features_in_ = int(X_val.shape[1])
        else:
            members = self._fitted_members()
            self.fit_logits([np.zeros((1, classes.size))] * len(members))
            self.n_features_in_ = int(getattr(members[0], "n_features_in_", 0))
        self.classes_ = classes
        return self

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Ensemble logits: log of the mixed probabilities, or the weighted scaled logits."""
        return self.combine_logits(self._member_logits(X))

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and params with each member's state nested under ``member<i>.``."""
        self._check_fitted()
        arrays = {"weights_": np.asarray(self.weights_), "temperatures_": np.asarray(self.temperatures_)}
        fitted = {"n_features_in_": int(self.n_features_in_)}
        classes_to_state(self.classes_, arrays, fitted)
        members = []
        for i, member in enumerate(self.members or []):
            member_arrays, member_params = member.get_state()
            arrays.update({f"member{i}.{k}": v for k, v in member_arrays.items()})
            members.append(member_params)
        ctor = {k: _to_json(v) for k, v in self.get_params(deep=False).items() if k != "members"}
        params = {"class": type(self).__name__, "params": ctor, "members": members,
                  "fitted": fitted,
                  "state_format_version": STATE_FORMAT_VERSION}
        return arrays, params

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Ensemble:
        """Rebuild the ensemble and its members from ``get_state`` output."""
        from solvers.registry import solver_class

        if params.get("class") != cls.__name__:
            raise InputError(f"state is for {params.get('class')!r}, not {cls.__name__}")
        _check_member_tree(params)
        members = []
        for i, member_params in enumerate(params["members"]):
            prefix = f"member{i}."
            member_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            members.append(solver_class(member_params["class"]).from_state(member_arrays, member_params))
        ensemble = cls(members=members, **params["params"])
        for name in ("weights_", "temperatures_"):
            setattr(ensemble, name, np.asarray(arrays[name]))
        classes = classes_from_state(arrays, params["fitted"])
        if classes is None:
            raise InputError("the saved Ensemble lacks classes_; fit and save it again")
        ensemble.classes_ = classes
        ensemble.n_features_in_ = params["fitted"]["n_features_in_"]
        return ensemble


MAX_NESTING = 32  # ensembles of ensembles, levels deep; far past any model built by hand


class MemberCycleError(InputError):
    """A saved ensemble contains itself among its members (a cycle, or a state copied into itself)."""


def _check_member_tree(params: dict[str, Any]) -> None:
    """Refuse a saved state whose members contain the ensemble itself: a member that is one of
    its own ancestors (a cycle), or ensembles nested past MAX_NESTING levels (a crafted state that
    copies itself into its members). Walked without recursion, so neither ends in RecursionError."""
    stack: list[tuple[Any, tuple[int, ...]]] = [(params, ())]
    while stack:
        node, ancestors = stack.pop()
        if not isinstance(node, dict):
            raise InputError(f"a saved ensemble member state must be an object, not {type(node).__name__}")
        if id(node) in ancestors:
            raise MemberCycleError("the saved ensemble lists itself (or a cycle of members) as a member")
        if len(ancestors) >= MAX_NESTING:
            raise MemberCycleError(f"the saved ensemble nests ensembles more than {MAX_NESTING} levels deep: a member "
                             "that contains the ensemble itself")
        members = node.get("members", []) if node.get("class") == "Ensemble" else []
        if not isinstance(members, list):
            raise InputError("a saved ensemble's members must be a list")
        stack.extend((member, (*ancestors, id(node))) for member in members)
