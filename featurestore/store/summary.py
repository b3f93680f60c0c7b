"""A plain-dict summary of a store, for `fs info` and notebooks."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from featurestore.store.feature_store import FeatureStore, h5_name

ERROR_REASONS_LISTED = 20


def error_reasons(store: FeatureStore, split: str, top: int = ERROR_REASONS_LISTED) -> list[dict[str, Any]]:
    """The most frequent reasons of a split's unreadable rows: reason, row count and one example
    id each, most frequent first (at most ``top``)."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for row in store.errors(split):
        counts[row["reason"]] += 1
        examples.setdefault(row["reason"], row["id"])
    return [{"reason": reason, "rows": n, "example": examples[reason]} for reason, n in counts.most_common(top)]


def summarize(path: str | os.PathLike) -> dict[str, Any]:
    """Splits (rows, unreadable and why, classes, captions), encoders (provenance, per-split completeness,
    text banks), saved models and FAISS index files beside the store."""
    from featurestore.errors import MissingShardsError
    from featurestore.store.shard_consolidation import missing_shard_files

    with FeatureStore(path) as store:
        splits: list[dict[str, Any]] = []
        unreadable_splits = set()
        for name in store.splits():
            try:
                valid = store.valid(name)
            except MissingShardsError:  # a --cluster split whose .shards/ folder was not copied
                unreadable_splits.add(name)
                splits.append({"name": name, "rows": None, "invalid": None, "classes": 0, "captions": False,
                               "error_reasons": [], "missing_shards": missing_shard_files(store.file, name)})
                continue
            classes = store.classes(name)
            invalid = int((~valid).sum())
            splits.append({"name": name, "rows": len(valid), "invalid": invalid,
                           "classes": len(classes) if classes else 0,
                           "captions": store.captions(name, valid_only=False) is not None,
                           "error_reasons": error_reasons(store, name) if invalid else []})
        encoders = []
        for key in store.encoders():
            info = store.encoder_info(key)
            features = {}
            for split in store.splits():
                if split not in unreadable_splits and store.has_features(key, split):
                    done = store.done(key, split)
                    views = f"views/{h5_name(split)}" in store.file["encoders"][h5_name(key)]
                    features[split] = {"rows": len(done), "done": int(done.sum()), "views": views}
            encoders.append({"key": key, "model": info.get("model"), "weights": info.get("weights"),
                             "embed_dim": info.get("embed_dim"), "precision": info.get("precision"),
                             "family": info.get("family", "open_clip"),
                             "modalities": info.get("modalities", ["image", "text"]),
                             "preprocess": info.get("preprocess"),
                             "features": features, "text_banks": store.text_banks(key)})
        root = store.file.attrs
        store_path = Path(path)
        indexes = sorted(p.name for p in store_path.parent.glob(f"{store_path.name}.*.faiss"))
        return {"path": str(store_path), "format_version": int(root["format_version"]),
                "created_by": str(root.get("created_by", "")), "splits": splits, "encoders": encoders,
                "models": store.models(), "indexes": indexes}
