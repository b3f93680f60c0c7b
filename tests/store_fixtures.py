"""Test helper: write a small feature store through the public FeatureStore writer API.

Shared by the test modules (``from tests.store_fixtures import make_feature_store``), so
tests exercise the same add_rows -> ensure_encoder -> prepare_features -> write_features
path as a real extraction instead of poking HDF5 datasets directly.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featurestore.store.feature_store import FeatureStore


def default_ids(split: str, n: int) -> list[str]:
    """Ids ``make_feature_store`` gives rows when none are passed: ``<split>-00000`` ..."""
    return [f"{split}-{i:05d}" for i in range(n)]


def make_feature_store(path: str | os.PathLike, features: dict[str, np.ndarray], encoder: str = "test/enc",
                       labels: dict[str, Sequence[int]] | None = None,
                       ids: dict[str, Sequence[str]] | None = None, *,
                       invalid: dict[str, Sequence[int]] | None = None,
                       classes: dict[str, Sequence[str]] | None = None,
                       model: str = "test-model", weights: str = "test-weights") -> Path:
    """Create (or append to) the store at ``path`` with ``features[split]`` (N, D) for ``encoder``.

    - ``labels[split]``: N ints (default -1 = unlabelled); ``classes[split]``: class names.
    - ``ids[split]``: N unique ids (default :func:`default_ids`); paths are ``<split>/<id>.jpg``.
    - ``invalid[split]``: indices into ``features[split]`` written with ``ok=False`` (bad images).

    Calling it again on an existing store appends the ids not yet there and rewrites the
    features of those that are, as a resumed extraction would. Returns the store path.
    """
    path = Path(path)
    with FeatureStore(path, mode="a") as store:
        for split, feats in features.items():
            feats = np.asarray(feats, dtype=np.float32)
            n, dim = feats.shape
            split_ids = list(ids[split]) if ids and split in ids else default_ids(split, n)
            split_labels = list(labels[split]) if labels and split in labels else [-1] * n
            rows = store.add_rows(split, split_ids, [f"{split}/{i}.jpg" for i in split_ids], split_labels,
                                  classes=classes.get(split) if classes else None, source="test fixture")
            store.ensure_encoder(encoder, {"model": model, "weights": weights, "embed_dim": dim})
            store.prepare_features(encoder, split, dim)
            store.begin_appending()
            ok = np.ones(n, dtype=bool)
            if invalid and split in invalid:
                ok[np.asarray(invalid[split], dtype=np.int64)] = False
            reasons = ["" if good else "unreadable image (test fixture)" for good in ok]
            order = np.argsort(rows)
            store.write_features(encoder, split, rows[order], feats[order], ok[order],
                                 [reasons[i] for i in order])
    return path


def make_aux_store(path: str | os.PathLike, seed: int, classes: Sequence[str],
                   sizes: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                    dict[str, np.ndarray], np.ndarray]:
    """A store with a CLIP-like encoder ``test/enc`` (8-d, with the class bank ``train/simple``) and
    an image-only auxiliary encoder ``test/aux`` (5-d) over the same labelled splits, as AMU and
    label-free read them. Returns (labels, clip features, aux features, text weights) per split."""
    rng = np.random.default_rng(seed)
    n_classes = len(classes)
    T = rng.standard_normal((n_classes, 8))
    centres = 3 * rng.standard_normal((n_classes, 5))
    labels = {split: np.arange(n) % n_classes for split, n in sizes.items()}
    clip = {s: 0.35 * T[y] + rng.standard_normal((len(y), 8)) for s, y in labels.items()}
    aux = {s: centres[y] + rng.standard_normal((len(y), 5)) for s, y in labels.items()}
    names = {s: list(classes) for s in labels}
    make_feature_store(path, clip, labels=labels, classes=names)
    make_feature_store(path, aux, encoder="test/aux", labels=labels, classes=names, model="aux-model")
    with FeatureStore(path, mode="a") as writer:
        w = T.astype(np.float32)
        writer.put_text_bank("test/enc", "train/simple", w, [f"a {c}" for c in classes], kind="classes",
                             classes=list(classes), templates=["a {}"], per_template=w[:, None, :])
    return labels, clip, aux, T
