"""Statistics over a pool's captions: REAL's concept frequency and MetaCLIP's curation."""
from __future__ import annotations

from featurestore.corpus.curation import read_metadata, entry_probabilities, keep_probability, balanced_sample, Curation, curate
from featurestore.corpus.frequency import words, CaptionIndex, ConceptFrequency, class_matches, concept_frequency

__all__ = ["CaptionIndex", "ConceptFrequency", "Curation", "balanced_sample", "class_matches", "concept_frequency", "curate", "entry_probabilities", "keep_probability", "read_metadata", "words"]
