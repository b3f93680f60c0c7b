"""Random augmented views matching a model's preprocess, for few-shot feature caches.

Tip-Adapter style: RandomResizedCrop to the model's input size (scale 0.5-1 by default) and a
horizontal flip, then the same ToTensor + Normalize as the plain preprocess, so augmented
and plain features live in the same space.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

DEFAULT_SCALE = (0.5, 1.0)


def _steps(transform: Any) -> Iterator[Any]:
    """Every step of a (possibly nested) Compose, depth first."""
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, Sequence):
        for step in inner:
            yield from _steps(step)
    else:
        yield transform


def _square(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def input_size(preprocess: Callable) -> tuple[int, int]:
    """(height, width) the preprocess outputs: its centre crop size, else its resize size."""
    steps = list(_steps(preprocess))
    for step in steps:
        if "CenterCrop" in type(step).__name__ and getattr(step, "size", None) is not None:
            return _square(step.size)
    for step in steps:
        if "Resize" in type(step).__name__:
            size = getattr(step, "size", None) or getattr(step, "max_size", None)
            if size is not None:
                return _square(size)
    raise ValueError(f"cannot find a CenterCrop or Resize size in preprocess {preprocess!r}")


def build_augment(preprocess: Callable, *, scale: tuple[float, float] = DEFAULT_SCALE) -> T.Compose:
    """The augmented-view transform for `preprocess`: random crop + flip, same normalisation.

    Randomness comes from torch's global generator, so callers seed it per view
    (see `ImageRecordDataset`) to make views reproducible.
    """
    steps = list(_steps(preprocess))
    interpolation = next(
        (s.interpolation for s in steps if "Resize" in type(s).__name__ and hasattr(s, "interpolation")),
        InterpolationMode.BICUBIC,
    )
    if not isinstance(interpolation, InterpolationMode):
        interpolation = InterpolationMode.BICUBIC
    augment = [
        T.RandomResizedCrop(input_size(preprocess), scale=scale, interpolation=interpolation),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
    ]
    normalize = next((s for s in steps if isinstance(s, T.Normalize)), None)
    if normalize is not None:
        augment.append(T.Normalize(mean=normalize.mean, std=normalize.std))
    return T.Compose(augment)
