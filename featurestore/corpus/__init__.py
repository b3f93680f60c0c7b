"""Statistics over a pool's captions: REAL's concept frequency and MetaCLIP's curation.

The names below are imported from their modules on first use (``featurestore.lazy_exports``):
counting words does not import the shard readers, the sources or tarfile."""
from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.lazy_exports import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_import_paths.py checks both agree)
    from featurestore.corpus.curation import (
        Curation,
        balanced_sample,
        curate,
        entry_probabilities,
        keep_probability,
        read_metadata,
    )
    from featurestore.corpus.distributed import ShardedCuration, sharded_curate, sharded_frequency
    from featurestore.corpus.frequency import CaptionIndex, ConceptFrequency, class_matches, concept_frequency, words
    from featurestore.corpus.shards import CaptionShard, caption_shards, read_caption_shard

_EXPORTS = {
    **dict.fromkeys(("Curation", "balanced_sample", "curate", "entry_probabilities", "keep_probability",
                     "read_metadata"), "curation"),
    **dict.fromkeys(("ShardedCuration", "sharded_curate", "sharded_frequency"), "distributed"),
    **dict.fromkeys(("CaptionIndex", "ConceptFrequency", "class_matches", "concept_frequency", "words"), "frequency"),
    **dict.fromkeys(("CaptionShard", "caption_shards", "read_caption_shard"), "shards"),
}
__all__ = [
    "CaptionIndex", "CaptionShard", "ConceptFrequency", "Curation", "ShardedCuration", "balanced_sample",
    "caption_shards", "class_matches", "concept_frequency", "curate", "entry_probabilities", "keep_probability",
    "read_caption_shard", "read_metadata", "sharded_curate", "sharded_frequency", "words"
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
