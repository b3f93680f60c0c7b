"""featurestore: embed images and texts once with frozen CLIP-style encoders into an HDF5 store.

Heavy modules (torch, open_clip, faiss) are imported only by the functions that need them, so
``import featurestore`` stays cheap.
"""
from featurestore.errors import FeatureStoreError
from featurestore.store import FeatureStore

__version__ = "0.1.0"
__all__ = ["FeatureStore", "FeatureStoreError", "__version__"]
