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
from featurestore.corpus.frequency import CaptionIndex, ConceptFrequency, class_matches, concept_frequency, words

__all__ = [
    "CaptionIndex", "ConceptFrequency", "Curation", "balanced_sample", "class_matches", "concept_frequency", "curate",
    "entry_probabilities", "keep_probability", "read_metadata", "words"
]
