"""Exceptions a user can cause. The CLI turns each into one line on stderr and exit code 2."""


class FeatureStoreError(Exception):
    """Base class of every error a user can cause in featurestore."""


class StoreLockedError(FeatureStoreError):
    """Another process holds the store's writer lock."""


class StoreFormatError(FeatureStoreError):
    """The file is not a featurestore store, or has an unsupported format version."""


class StoreBusyError(StoreFormatError):
    """A writer kept the store in its non-SWMR phase (restructuring) past a reader's wait."""


class StoreCreatingError(StoreBusyError):
    """A writer is creating the store and has not committed its first rows past a reader's wait."""


class StoreEmptyError(StoreFormatError):
    """The store file exists but its first writer stopped before committing anything."""


class StoreDamagedError(StoreFormatError):
    """The store file is damaged: truncated, or a checksum or HDF5 structure fails on read."""


class MissingShardsError(StoreDamagedError):
    """A split built by ``fs extract --cluster`` links shard files that are not there (a store
    copied without its ``.shards/`` folder)."""


class NotFoundError(FeatureStoreError, KeyError):
    """A split, encoder, text bank or model is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProvenanceError(FeatureStoreError):
    """Features of different encoders (or dimensions) would be mixed."""


class SourceError(FeatureStoreError):
    """A data source (folder, manifest, tar shard) cannot be read."""


class EncoderError(FeatureStoreError):
    """A model or its weights cannot be loaded."""


class NoSpaceError(FeatureStoreError):
    """The disk (or the user's quota) holding a store or an output filled up during a write;
    what was committed before stays, and a re-run after freeing space resumes. ``before_writing``:
    refused before anything was written (the file needs no special closing)."""

    before_writing = False
