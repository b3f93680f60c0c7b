"""A plain-dict summary of a store, for `fs info` and notebooks."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from featurestore.store import FeatureStore, h5_name


def summarize(path: str | os.PathLike) -> dict[str, Any]:
    """Splits (rows, unreadable, classes, captions), encoders (provenance, per-split completeness,
    text banks), saved models and FAISS index files beside the store."""
    with FeatureStore(path) as store:
        splits = []
        for name in store.splits():
            valid = store.valid(name)
            classes = store.classes(name)
            splits.append({"name": name, "rows": int(len(valid)), "invalid": int((~valid).sum()),
                           "classes": len(classes) if classes else 0,
                           "captions": store.captions(name, valid_only=False) is not None})
        encoders = []
        for key in store.encoders():
            info = store.encoder_info(key)
            features = {}
            for split in store.splits():
                if store.has_features(key, split):
                    done = store.done(key, split)
                    views = f"views/{h5_name(split)}" in store.file["encoders"][h5_name(key)]
                    features[split] = {"rows": int(len(done)), "done": int(done.sum()), "views": views}
            encoders.append({"key": key, "model": info.get("model"), "weights": info.get("weights"),
                             "embed_dim": info.get("embed_dim"), "precision": info.get("precision"),
                             "features": features, "text_banks": store.text_banks(key)})
        root = store.file.attrs
        store_path = Path(path)
        indexes = sorted(p.name for p in store_path.parent.glob(f"{store_path.name}.*.faiss"))
        return {"path": str(store_path), "format_version": int(root["format_version"]),
                "created_by": str(root.get("created_by", "")), "splits": splits, "encoders": encoders,
                "models": store.models(), "indexes": indexes}
