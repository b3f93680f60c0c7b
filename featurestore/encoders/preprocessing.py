"""An encoder's image preprocessing as one recorded object, and the transform it stands for.

``Preprocessing`` holds what turns a decoded image into the model's input: the resize step
(``resize_mode`` and its target ``resize`` in pixels), the output (crop) ``size``, the
``interpolation``, and the normalisation ``mean``/``std``. It is stored with the encoder's
provenance (``preprocess`` attribute) and compared when features are appended under the same
encoder key.

Resize modes (open_clip's names): ``shortest`` resizes the shortest side to ``resize`` and
centre-crops ``size``; ``squash`` resizes both sides to ``resize`` and centre-crops ``size``;
``longest`` resizes the longest side to ``resize`` and centre-crops or pads to ``size``.

The transform is built by the libraries, not by hand: open_clip's own inference transform
(``open_clip.transform.image_transform_v2``) where it can express the object (``resize`` equal
to the crop size, bicubic or bilinear), timm's ``create_transform`` otherwise (a crop smaller
than the resize: ``crop_pct = size / resize``; other interpolations).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from featurestore.errors import EncoderError

RESIZE_MODES = ("shortest", "longest", "squash")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos")
_OPEN_CLIP_INTERPOLATIONS = ("bicubic", "bilinear")
# our resize mode -> timm's eval crop_mode
_TIMM_CROP_MODE = {"shortest": "center", "squash": "squash", "longest": "border"}
# open_clip preprocess_cfg keys understood in a model config's "preprocess_cfg"
_CONFIG_KEYS = {"size", "mean", "std", "interpolation", "resize_mode", "fill_color", "mode", "resize", "crop"}


@dataclass(frozen=True)
class Preprocessing:
    """Resize ``resize`` px (``resize_mode``), crop ``size`` (H, W), normalise by ``mean``/``std``."""

    size: tuple[int, int]
    resize: int
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)
    fill_color: int = 0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise EncoderError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise EncoderError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise EncoderError(f"crop size must be a positive H, W pair, not {self.size}")
        if self.resize < max(self.size) and self.resize_mode != "longest":
            raise EncoderError(f"resize {self.resize} is smaller than the crop {max(self.size)}: "
                               "resize must be at least the crop size")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise EncoderError(f"image {name} needs 3 values (R, G, B), not {len(values)}")
        if min(self.std) <= 0:
            raise EncoderError(f"image std must be positive, not {list(self.std)}")

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in a store (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        try:
            return cls(size=_pair(data["size"]), resize=int(data["resize"]),
                       resize_mode=str(data.get("resize_mode", "shortest")),
                       interpolation=str(data.get("interpolation", "bicubic")),
                       mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]),
                       fill_color=int(data.get("fill_color", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"recorded preprocessing {dict(data)} is incomplete or malformed ({exc})") from None

    @classmethod
    def from_open_clip(cls, cfg: Mapping[str, Any]) -> Preprocessing:
        """open_clip's ``model.visual.preprocess_cfg`` (resize equals the crop size)."""
        size = _pair(cfg.get("size", 224))
        return cls(size=size, resize=max(size), resize_mode=str(cfg.get("resize_mode", "shortest")),
                   interpolation=str(cfg.get("interpolation", "bicubic")),
                   mean=_triple(cfg.get("mean", cls.mean)), std=_triple(cfg.get("std", cls.std)),
                   fill_color=int(cfg.get("fill_color", 0)))

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any]) -> Preprocessing:
        """timm's ``resolve_data_config`` dict: resize = floor(crop / crop_pct), as timm computes it."""
        size = _pair(tuple(data_config["input_size"])[-2:])
        crop_pct = float(data_config.get("crop_pct") or 0.875)
        mode = {v: k for k, v in _TIMM_CROP_MODE.items()}.get(data_config.get("crop_mode") or "center", "shortest")
        interpolation = data_config.get("interpolation") or "bilinear"
        if interpolation not in INTERPOLATIONS:
            interpolation = "bicubic"
        return cls(size=size, resize=math.floor(max(size) / crop_pct), resize_mode=mode,
                   interpolation=interpolation, mean=_triple(data_config["mean"]), std=_triple(data_config["std"]))

    def override(self, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 resize: int | None = None, crop: int | None = None, interpolation: str | None = None,
                 resize_mode: str | None = None, fill_color: int | None = None) -> Preprocessing:
        """A copy with the given fields replaced. A new ``crop`` without ``resize`` keeps the
        crop fraction (``resize / crop``) of the defaults, as timm's ``crop_pct`` does."""
        changes: dict[str, Any] = {}
        if mean is not None:
            changes["mean"] = _triple(mean)
        if std is not None:
            changes["std"] = _triple(std)
        if crop is not None:
            changes["size"] = (int(crop), int(crop))
            if resize is None:
                changes["resize"] = math.floor(int(crop) * self.resize / max(self.size))
        if resize is not None:
            changes["resize"] = int(resize)
        if interpolation is not None:
            changes["interpolation"] = interpolation
        if resize_mode is not None:
            changes["resize_mode"] = resize_mode
        if fill_color is not None:
            changes["fill_color"] = int(fill_color)
        return replace(self, **changes) if changes else self

    def override_from_config(self, cfg: Mapping[str, Any]) -> Preprocessing:
        """Apply a model config's ``preprocess_cfg`` (open_clip's keys, plus ``resize``/``crop``)."""
        unknown = set(cfg) - _CONFIG_KEYS
        if unknown:
            raise EncoderError(f"preprocess_cfg has unknown keys {sorted(unknown)}; "
                               f"known: {', '.join(sorted(_CONFIG_KEYS))}")
        out = self
        if "size" in cfg:
            size = _pair(cfg["size"])
            out = replace(out, size=size, resize=max(size) if "resize" not in cfg else out.resize)
        return out.override(mean=cfg.get("mean"), std=cfg.get("std"), resize=cfg.get("resize"),
                            crop=cfg.get("crop"), interpolation=cfg.get("interpolation"),
                            resize_mode=cfg.get("resize_mode"), fill_color=cfg.get("fill_color"))

    # ------------------------------------------------------------------ transforms
    @property
    def open_clip_can_build(self) -> bool:
        """open_clip's inference transform resizes straight to the crop size, bicubic or bilinear."""
        return self.resize == max(self.size) and self.interpolation in _OPEN_CLIP_INTERPOLATIONS

    def open_clip_kwargs(self) -> dict[str, Any]:
        """``create_model_and_transforms`` keyword arguments carrying this preprocessing."""
        kwargs: dict[str, Any] = {"image_mean": self.mean, "image_std": self.std,
                                  "image_resize_mode": self.resize_mode}
        if self.interpolation in _OPEN_CLIP_INTERPOLATIONS:
            kwargs["image_interpolation"] = self.interpolation
        return kwargs

    def timm_kwargs(self) -> dict[str, Any]:
        """``timm.data.create_transform`` keyword arguments for this preprocessing (eval mode).

        timm resizes to ``floor(crop / crop_pct)``; ``crop_pct = crop / (resize + 0.5)`` makes
        that floor exactly ``resize`` with no rounding surprise."""
        return {"input_size": (3, *self.size), "is_training": False, "interpolation": self.interpolation,
                "mean": self.mean, "std": self.std, "crop_pct": max(self.size) / (self.resize + 0.5),
                "crop_mode": _TIMM_CROP_MODE[self.resize_mode]}

    def transform(self) -> Any:
        """The PIL image -> (3, H, W) tensor transform (open_clip's where it can, else timm's)."""
        if self.open_clip_can_build:
            from open_clip.transform import PreprocessCfg, image_transform_v2

            cfg = PreprocessCfg(size=self.size, mean=self.mean, std=self.std, interpolation=self.interpolation,
                                resize_mode=self.resize_mode, fill_color=self.fill_color)
            return image_transform_v2(cfg, is_train=False)
        from timm.data import create_transform

        return create_transform(**self.timm_kwargs())

    def describe(self) -> str:
        """One line for `fs info`: resize 256 (shortest) -> crop 224x224, bicubic, mean/std."""
        mean = ",".join(f"{v:.4g}" for v in self.mean)
        std = ",".join(f"{v:.4g}" for v in self.std)
        return (f"resize {self.resize} ({self.resize_mode}) -> crop {self.size[0]}x{self.size[1]}, "
                f"{self.interpolation}, mean {mean}, std {std}")


def parse_triple(text: str | None, name: str) -> tuple[float, float, float] | None:
    """``0.5,0.5,0.5`` (or one value for all three channels) -> a float triple."""
    if text is None:
        return None
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise EncoderError(f"--{name} takes 1 or 3 comma-separated numbers, not {text!r}") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise EncoderError(f"--{name} takes 1 or 3 comma-separated finite numbers, not {text!r}")
    return tuple(values)  # type: ignore[return-value]


def _pair(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, float)):
        return int(size), int(size)
    size = [int(s) for s in size]
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def _triple(values: Any) -> tuple[float, ...]:
    if isinstance(values, (int, float)):
        return (float(values),) * 3
    return tuple(float(v) for v in values)
