"""Statistics over a pool's captions: REAL's concept frequency and MetaCLIP's curation."""
from __future__ import annotations

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

__all__ = [
    "CaptionIndex", "CaptionShard", "ConceptFrequency", "Curation", "ShardedCuration", "balanced_sample",
    "caption_shards", "class_matches", "concept_frequency", "curate", "entry_probabilities", "keep_probability",
    "read_caption_shard", "read_metadata", "sharded_curate", "sharded_frequency", "words"
]
