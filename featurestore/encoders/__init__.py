"""Frozen image (and text) encoders and the provenance that names their features.

One module per family: ``openclip_models`` (open_clip architectures, JSON configs, ``hf-hub:``
and ``local-dir:`` models), ``timm_models`` (image-only ``timm:ARCH`` encoders),
``checkpoints`` (reading, fingerprinting and loading checkpoint files), ``preprocessing`` (the
recorded preprocessing object and its transform), ``hub`` (fast failure offline) and
``catalog`` (what `fs models` lists). ``loading`` picks the family from the model name.
"""
from featurestore.encoders.checkpoints import checkpoint_sha256, read_state_dict, tensors_sha256
from featurestore.encoders.encoder import PRECISIONS, Encoder, default_device, image_only_error
from featurestore.encoders.loading import PREPROCESS_OPTIONS, check_model_spec, load_encoder, load_encoder_from_info
from featurestore.encoders.openclip_models import encoder_key, register_model_config
from featurestore.encoders.preprocessing import Preprocessing

__all__ = [
    "PRECISIONS", "PREPROCESS_OPTIONS", "Encoder", "Preprocessing", "check_model_spec", "checkpoint_sha256",
    "default_device",
    "encoder_key", "image_only_error", "load_encoder", "load_encoder_from_info", "read_state_dict",
    "register_model_config", "tensors_sha256"
]
