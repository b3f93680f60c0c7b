"""Checkpoint files: reading their tensors, fingerprinting them, loading them into a model.

A checkpoint is a ``.pt``/``.pth``/``.bin`` (a pickled state dict, read with
``torch.load(weights_only=True)``: no code runs), a ``.safetensors`` file, or a ``.npz``.
A ``{"state_dict": ...}`` wrapper and a DistributedDataParallel ``module.`` prefix are removed,
as open_clip does.

**Fingerprint.** The encoder key of a checkpoint names the SHA-256 of its *tensors*, not of
its bytes: tensors sorted by name, each contributing its name, dtype, shape and raw bytes. The
same weights saved as ``.pt`` and as ``.safetensors`` get the same key.

**Loading by order.** When the file's names differ from the model's (weights exported by
another implementation of the same network), the tensors are matched to the model's
``state_dict`` in file order, but only if both have the same number of tensors and every
pair has the same shape; anything else is refused. Safetensors files store tensors sorted by
name, not in the exporter's order, so loading by order needs a pickled (``.pt``) file.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from featurestore.errors import EncoderError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


def looks_like_checkpoint(value: str) -> bool:
    """A path (has a separator or a checkpoint suffix), as opposed to a tag."""
    return os.path.sep in value or Path(value).suffix in CHECKPOINT_SUFFIXES or Path(value).is_file()


def read_state_dict(path: str | os.PathLike) -> OrderedDict[str, Any]:
    """The file's tensors by name, in file order, as CPU torch tensors."""
    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                state = OrderedDict((k, torch.from_numpy(np.array(arrays[k]))) for k in arrays.files)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a garbage file raises whatever its reader raises
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EncoderError(f"cannot read checkpoint {path}: {first[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise EncoderError(f"checkpoint {path} holds no tensors (expected a state dict of name -> tensor)")
    tensors = OrderedDict((k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise EncoderError(f"checkpoint {path} holds no tensors (expected a state dict of name -> tensor)")
    if all(k.startswith("module.") for k in tensors):
        tensors = OrderedDict((k[len("module."):], v) for k, v in tensors.items())
    return tensors


def tensors_sha256(state: OrderedDict[str, Any] | dict[str, Any]) -> str:
    """SHA-256 over the tensors sorted by name: name, dtype, shape and raw bytes of each."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).removeprefix("torch.").encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The tensor fingerprint of a checkpoint file (see the module docstring)."""
    return tensors_sha256(read_state_dict(path))


def map_by_order(model_state: dict[str, Any], file_state: OrderedDict[str, Any], path: Any,
                 target: str) -> OrderedDict[str, Any]:
    """The file's tensors renamed to the model's names, matched one to one in order.

    Refuses (one line) when the counts differ or any pair's shapes differ."""
    names, tensors = list(model_state), list(file_state.values())
    if len(names) != len(tensors):
        raise EncoderError(
            f"checkpoint {path} does not fit {target}: its names differ from the model's and it holds "
            f"{len(tensors)} tensors, not {len(names)}, so they cannot be matched by order")
    for i, (name, (file_name, tensor)) in enumerate(zip(names, file_state.items())):
        if tuple(model_state[name].shape) != tuple(tensor.shape):
            raise EncoderError(
                f"checkpoint {path} does not fit {target}: its names differ from the model's, and by order "
                f"tensor {i} {file_name!r} {tuple(tensor.shape)} does not match "
                f"{name!r} {tuple(model_state[name].shape)}")
    return OrderedDict(zip(names, tensors))


def load_state(module: Any, file_state: OrderedDict[str, Any], path: Any, target: str) -> str:
    """Load ``file_state`` into ``module`` strictly by name, else by order (see module docstring).

    Returns ``"names"`` or ``"order"``: how the tensors were matched."""
    model_state = module.state_dict()
    if set(file_state) == set(model_state):
        mismatched = [k for k in model_state if tuple(model_state[k].shape) != tuple(file_state[k].shape)]
        if mismatched:
            k = mismatched[0]
            raise EncoderError(f"checkpoint {path} does not fit {target}: {k!r} has shape "
                               f"{tuple(file_state[k].shape)}, the model's {tuple(model_state[k].shape)}")
        module.load_state_dict(file_state, strict=True)
        return "names"
    module.load_state_dict(map_by_order(model_state, file_state, path, target), strict=True)
    return "order"
