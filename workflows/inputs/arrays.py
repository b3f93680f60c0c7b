"""The arrays a solver takes beyond the training split, read from a store by the names a user gives
(``fs solve NAME --input key=value``, or keyword arguments in a notebook).

The estimators in ``solvers/`` take arrays only (support features, retrieved rows, prompt
embeddings); which pool, which caption bank or which descriptor bank they come from is decided
here. ``INPUTS`` lists, per solver name, the names it reads; ``solver_arrays`` returns the
constructor arguments and a record of what was used (for the output and the JSON).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore.errors import NotFoundError
from solvers.errors import InputError


@dataclass(frozen=True)
class StoreInput:
    """One name a solver's arrays are read by: ``--input name=value`` on the command line."""

    name: str
    help: str
    type: type = str
    default: Any = None

    def parse(self, value: Any) -> Any:
        """``value`` as this input's type; a one-line InputError naming the input otherwise."""
        if self.type is int:
            try:
                number = int(str(value))
            except ValueError:
                raise InputError(f"--input {self.name}={value!r}: expected a whole number") from None
            if number < (0 if self.name == "seed" else 1):
                raise InputError(f"--input {self.name}={value!r}: must be {'>= 0' if self.name == 'seed' else '>= 1'}")
            return number
        text = str(value)
        if not text:
            raise InputError(f"--input {self.name}= is empty: give a name")
        return text


_POOL = StoreInput("pool", "split of unlabelled pool images (with captions for caption retrieval)")
_BANK = StoreInput("bank", "text bank of descriptor prompts (default: the encoder's only bank of that kind)")
INPUTS: dict[str, tuple[StoreInput, ...]] = {
    "tip-x": (_POOL, StoreInput("shots", "support rows retrieved per class", int, 16)),
    "caps-adapter": (_POOL, StoreInput("shots", "support rows retrieved per class", int, 16),
                     StoreInput("captions_bank", "the pool's caption embeddings (default: POOL/captions, fs captions)"),
                     StoreInput("class_captions", "grouped text bank {class: [captions]} (fs text --file)")),
    "real-prompt": (StoreInput("real_bank", "REAL-Prompt text bank (default: the encoder's only one)"),),
    "real-linear": (_POOL, StoreInput("synonyms", "JSON file {class: [synonyms]} for caption retrieval"),
                    StoreInput("real_bank", "REAL-Prompt text bank (default: the encoder's only one)"),
                    StoreInput("retrieval", "'captions' (synonyms in pool captions) or 'text' (nearest pool "
                                            "images to the REAL-Prompt weights)", str, "captions"),
                    StoreInput("cap", "retrieved pool rows per class at most", int, 100),
                    StoreInput("seed", "seed of the balanced sampling of retrieved rows", int, 0)),
    "descriptors": (_BANK,),
    "description-selection": (_BANK,),
    "fudd": (StoreInput("bank", "differential descriptor bank (default: the encoder's only one)"),
             StoreInput("fallback_bank", "plain descriptor bank for pairs without differential descriptions")),
    "perception-clip": (StoreInput("bank", "contexts bank (default: the encoder's only one)"),),
}


def parse_inputs(solver: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``INPUTS[solver]``, typed, with the defaults filled in."""
    known = {spec.name: spec for spec in INPUTS.get(solver, ())}
    for key in given:
        if key not in known:
            takes = f"it takes: {', '.join(known)}" if known else "it reads nothing beyond the splits and --bank"
            raise InputError(f"{solver} has no input {key!r} ({takes})")
    return {name: spec.parse(given[name]) if given.get(name) is not None else spec.default
            for name, spec in known.items()}


def solver_arrays(solver: str, store: Any, encoder: str, given: dict[str, Any],
                  text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor arguments, inputs used) of ``solver`` read from ``store``.

    ``text_weights`` are the class text weights (``--bank`` or the class bank matching the
    split); solvers that build a support set from them refuse to run without them.
    """
    inputs = parse_inputs(solver, given)
    reader = _READERS.get(solver)
    if reader is None:
        return {}, {}
    kwargs, used = reader(store, encoder, inputs, text_weights)
    return kwargs, used


# ---------------------------------------------------------------- retrieval solvers
def _needs_text(solver: str, text_weights: np.ndarray | None) -> np.ndarray:
    if text_weights is None:
        raise NotFoundError(f"{solver} builds its support set from the class text weights: run fs text or give --bank")
    return np.asarray(text_weights, np.float32)


def tipx_support(store: Any, encoder: str, inputs: dict[str, Any],
                 text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """SuS-LC support set (SuS-X): the ``shots`` pool rows nearest to each class's text embedding."""
    from workflows.inputs.pool import check_pool, nearest_per_query, pool_features_at

    pool = check_pool(store, encoder, inputs["pool"])
    T = _needs_text("tip-x", text_weights)
    positions = nearest_per_query(store, encoder, pool, T, inputs["shots"])
    labels = np.repeat(np.arange(len(T)), positions.shape[1])
    return ({"support_features": pool_features_at(store, encoder, pool, positions.ravel()), "support_labels": labels},
            {"pool": pool, "shots": inputs["shots"]})


def _class_order(store: Any, groups: list[str]) -> list[str]:
    """The groups in the order of a store class list holding exactly these names, else as given."""
    for name in store.class_sets():
        names = store.class_names(name)
        if sorted(names) == sorted(groups):
            return names
    return groups


def caps_support(store: Any, encoder: str, inputs: dict[str, Any],
                 text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """CapS-Adapter's caption-based support set from the pool's caption bank and a bank of
    class-conditioned captions."""
    from solvers.support_sets.caps_adapter import caption_support_positions
    from workflows.inputs.pool import check_pool, pool_features_at

    pool = check_pool(store, encoder, inputs["pool"])
    T = _needs_text("caps-adapter", text_weights)
    names = inputs["captions_bank"] or f"{pool}/captions"
    pool_bank = store.text_bank(encoder, names)
    n_valid = len(store.ids(pool))
    if pool_bank["weights"].shape[0] != n_valid:
        raise NotFoundError(f"caption bank {names!r} has {pool_bank['weights'].shape[0]} rows but pool {pool!r} "
                            f"has {n_valid} valid rows; run fs captions again")
    if not inputs["class_captions"]:
        raise NotFoundError("give --input class_captions=BANK: a grouped text bank {class: [captions]} "
                            "(fs text --file)")
    class_bank = store.text_bank(encoder, inputs["class_captions"])
    groups = class_bank.get("groups")
    if groups is None:
        raise NotFoundError(f"text bank {inputs['class_captions']!r} has no class groups; encode a JSON object "
                            "{class: [captions]} with fs text --file")
    order = _class_order(store, list(dict.fromkeys(groups)))
    if len(order) != len(T):
        raise NotFoundError(f"text bank {inputs['class_captions']!r} has captions for {len(order)} classes "
                            f"but the text weights have {len(T)}")
    class_of = np.array([order.index(g) for g in groups], np.int64)
    shots = inputs["shots"]
    positions = caption_support_positions(pool_bank["weights"], class_bank["weights"], class_of, len(T), shots)
    flat = positions.ravel()
    return ({"support_features": pool_features_at(store, encoder, pool, flat),
             "support_caption_features": np.asarray(pool_bank["weights"], np.float32)[flat],
             "support_labels": np.repeat(np.arange(len(T)), shots)},
            {"pool": pool, "shots": shots, "captions_bank": names, "class_captions": inputs["class_captions"]})


def real_prompt_weights(store: Any, encoder: str, inputs: dict[str, Any],
                        text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The REAL-Prompt bank's weights replace the class bank's."""
    from featurestore.text.real_prompts import find_real_bank

    bank = find_real_bank(store, encoder, inputs["real_bank"])
    return {"text_weights": store.text(encoder, bank)}, {"real_bank": bank}


def real_linear_rows(store: Any, encoder: str, inputs: dict[str, Any],
                     text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """REAL-Prompt weights and per-template prompts from the REAL bank; pool rows retrieved by
    caption synonyms (or by text similarity with ``retrieval=text``), balanced to ``cap`` per class."""
    from featurestore.text.real_prompts import find_real_bank
    from solvers.support_sets.balanced_retrieval import balanced_rows
    from workflows.inputs.pool import check_pool, nearest_per_query, pool_features_at

    bank_name = find_real_bank(store, encoder, inputs["real_bank"])
    bank = store.text_bank(encoder, bank_name)
    T = np.asarray(bank["weights"], np.float32)
    per_template = np.asarray(bank["per_template"], np.float32)
    classes = list(bank["classes"])
    pool = check_pool(store, encoder, inputs["pool"])
    cap, retrieval = inputs["cap"], inputs["retrieval"]
    used = {"pool": pool, "real_bank": bank_name, "retrieval": retrieval, "cap": cap}
    if retrieval == "captions":
        from featurestore.corpus.frequency import CaptionIndex, class_matches
        from featurestore.text.synonyms import read_synonyms
        from workflows.inputs.pool import pool_captions

        if not inputs["synonyms"]:
            raise NotFoundError("REAL-Linear retrieves by caption: give --input synonyms=FILE "
                                "(JSON {class: [synonyms]})")
        synonyms = read_synonyms(inputs["synonyms"], classes)
        rows, row_classes, _ = class_matches(CaptionIndex.build(pool_captions(store, pool)), synonyms)
        positions, labels = balanced_rows(rows, row_classes, len(classes), cap, inputs["seed"])
        used.update(synonyms=inputs["synonyms"], seed=inputs["seed"])
    elif retrieval == "text":
        found = nearest_per_query(store, encoder, pool, T, cap)
        positions, labels = found.ravel(), np.repeat(np.arange(len(T)), found.shape[1])
    else:
        raise InputError(f"--input retrieval must be 'captions' or 'text', not {retrieval!r}")
    features = (pool_features_at(store, encoder, pool, positions) if len(positions)
                else np.zeros((0, T.shape[1]), np.float32))
    used["retrieved_rows"] = len(positions)
    return ({"text_weights": T, "retrieved_features": features, "retrieved_labels": labels,
             "prompt_features": per_template.reshape(-1, T.shape[1]),
             "prompt_labels": np.repeat(np.arange(len(T)), per_template.shape[1])}, used)


# ---------------------------------------------------------------- description solvers
def descriptor_prompts(store: Any, encoder: str, inputs: dict[str, Any],
                       text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The descriptor bank (default: the encoder's only descriptor bank)."""
    from workflows.inputs.prompt_banks import read_prompt_bank

    name, bank = read_prompt_bank(store, encoder, inputs["bank"], "descriptors")
    return ({"prompt_weights": bank["weights"], "prompt_classes": bank["prompt_classes"],
             "descriptors": list(bank["descriptors"]), "n_classes": len(bank["classes"])}, {"bank": name})


def differential_prompts(store: Any, encoder: str, inputs: dict[str, Any],
                         text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The differential bank and, with ``fallback_bank``, the plain descriptor bank used for
    class pairs without differential descriptions."""
    from workflows.inputs.prompt_banks import read_prompt_bank

    name, bank = read_prompt_bank(store, encoder, inputs["bank"], "differential")
    out = {"pair_weights": bank["weights"], "pair_classes": bank["prompt_classes"],
           "pair_others": bank["prompt_others"]}
    used = {"bank": name, "fallback_bank": None}
    if inputs["fallback_bank"] is not None:
        fallback, plain = read_prompt_bank(store, encoder, inputs["fallback_bank"], "descriptors",
                                           input_name="fallback_bank")
        if list(plain["classes"]) != list(bank["classes"]):
            raise NotFoundError(f"banks {name!r} and {fallback!r} were made for different class lists")
        out.update(prompt_weights=plain["weights"], prompt_classes=plain["prompt_classes"])
        used["fallback_bank"] = fallback
    return out, used


def context_prompts(store: Any, encoder: str, inputs: dict[str, Any],
                    text_weights: np.ndarray | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contexts bank (default: the encoder's only contexts bank)."""
    from workflows.inputs.prompt_banks import read_prompt_bank

    name, bank = read_prompt_bank(store, encoder, inputs["bank"], "contexts")
    return ({"prompt_weights": bank["weights"], "context_weights": bank["context_weights"],
             "contexts": list(bank["contexts"])}, {"bank": name})


_READERS: dict[str, Callable[..., tuple[dict[str, Any], dict[str, Any]]]] = {
    "tip-x": tipx_support,
    "caps-adapter": caps_support,
    "real-prompt": real_prompt_weights,
    "real-linear": real_linear_rows,
    "descriptors": descriptor_prompts,
    "description-selection": descriptor_prompts,
    "fudd": differential_prompts,
    "perception-clip": context_prompts,
}
