"""Moving embeddings and logits in and out: clip-retrieval's export layout, another classifier's logits."""
from __future__ import annotations

from featurestore.io.export import export_clip_retrieval, partition_names
from featurestore.io.external_logits import align_logits, read_logits_file

__all__ = ["align_logits", "export_clip_retrieval", "partition_names", "read_logits_file"]
