"""Data sources: image folders, manifests and WebDataset shards, all yielding `Record`s."""

from featurestore.sources.folder import IMAGE_EXTENSIONS, ImageFolderSource
from featurestore.sources.manifest import ManifestSource
from featurestore.sources.open_source import open_source
from featurestore.sources.record import NO_LABEL, Record, Source
from featurestore.sources.webdataset import WebDatasetSource

__all__ = [
    "IMAGE_EXTENSIONS", "NO_LABEL", "ImageFolderSource", "ManifestSource", "Record", "Source", "WebDatasetSource",
    "open_source"
]
