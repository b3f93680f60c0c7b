"""Moving embeddings and logits in and out: clip-retrieval's export layout, another classifier's logits."""
from __future__ import annotations

from featurestore.io.export import partition_names, export_clip_retrieval
from featurestore.io.external_logits import read_logits_file, align_logits

__all__ = ["align_logits", "export_clip_retrieval", "partition_names", "read_logits_file"]
