"""featurestore: embed images and texts once with frozen CLIP-style encoders into an HDF5 store.

Names are resolved lazily (PEP 562): ``import featurestore`` imports neither h5py nor torch,
so the `fs` command line starts fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurestore.errors import FeatureStoreError

if TYPE_CHECKING:  # for type checkers; at run time FeatureStore is imported on first use
    from featurestore.store.feature_store import FeatureStore

__version__ = "0.1.0"
__all__ = ["FeatureStore", "FeatureStoreError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "FeatureStore":
        from featurestore.store.feature_store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")
