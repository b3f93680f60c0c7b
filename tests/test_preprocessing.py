"""Each preprocessing option: a known (non-square) image through our transform equals the same
image through a transform built by hand from torchvision's primitives, or timm's own transform
for the architecture's data config."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

from featurestore.encoders.preprocessing import Preprocessing, parse_triple
from featurestore.errors import EncoderError
from tests.images import random_image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
         "nearest": InterpolationMode.NEAREST, "lanczos": InterpolationMode.LANCZOS}


@pytest.fixture(scope="module")
def image():
    return random_image((61, 47), seed=3)  # width 61, height 47: shortest side is the height


def _by_hand(resize_step, crop: int, mean, std) -> T.Compose:
    return T.Compose([resize_step, T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)])


def _base(**changes) -> Preprocessing:
    return Preprocessing(size=(32, 32), resize=32, mean=OPENAI_MEAN, std=OPENAI_STD).override(**changes)


def _same(ours: Preprocessing, reference, image) -> None:
    got, want = ours.transform()(image), reference(image)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_defaults_are_shortest_side_resize_and_centre_crop(image):
    _same(_base(), _by_hand(T.Resize(32, MODES["bicubic"]), 32, OPENAI_MEAN, OPENAI_STD), image)


def test_mean_and_std(image):
    ours = _base(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    _same(ours, _by_hand(T.Resize(32, MODES["bicubic"]), 32, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), image)


@pytest.mark.parametrize("resize,crop", [(40, 32), (37, 29), (32, 32)])
def test_resize_then_smaller_crop(image, resize, crop):
    ours = _base(resize=resize, crop=crop)
    assert ours.size == (crop, crop) and ours.resize == resize
    _same(ours, _by_hand(T.Resize(resize, MODES["bicubic"]), crop, OPENAI_MEAN, OPENAI_STD), image)


def test_crop_alone_keeps_the_resize_fraction():
    p = Preprocessing(size=(224, 224), resize=256).override(crop=112)
    assert (p.size, p.resize) == ((112, 112), 128)


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest", "lanczos"])
def test_interpolation(image, interpolation):
    ours = _base(resize=40, crop=32, interpolation=interpolation)
    _same(ours, _by_hand(T.Resize(40, MODES[interpolation]), 32, OPENAI_MEAN, OPENAI_STD), image)


def test_squash_resizes_both_sides(image):
    ours = _base(resize_mode="squash")
    _same(ours, _by_hand(T.Resize((32, 32), MODES["bicubic"]), 32, OPENAI_MEAN, OPENAI_STD), image)
    ours = _base(resize_mode="squash", resize=40, crop=32)
    _same(ours, _by_hand(T.Resize((40, 40), MODES["bicubic"]), 32, OPENAI_MEAN, OPENAI_STD), image)


def test_longest_side_resize_pads_to_a_square(image):
    """open_clip's 'longest': the longest side becomes 32, the rest is padded with fill 0."""
    ours = _base(resize_mode="longest")
    out = ours.transform()(image)
    h = round(47 * 32 / 61)  # the height after the longest side (61) went to 32
    reference = T.Compose([T.Resize((h, 32), MODES["bicubic"]), T.ToTensor()])(image)
    top = (32 - h) // 2
    normalized_black = (torch.zeros(3) - torch.tensor(OPENAI_MEAN)) / torch.tensor(OPENAI_STD)
    torch.testing.assert_close(out[:, top:top + h], T.Normalize(OPENAI_MEAN, OPENAI_STD)(reference),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 0, 0], normalized_black)
    torch.testing.assert_close(out[:, -1, -1], normalized_black)


def test_timm_data_config_round_trips_to_timm_transform(image):
    """A timm architecture's default data config (crop_pct 0.95 at 160 px) through our object
    gives exactly timm's own create_transform output."""
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=timm.create_model("test_efficientnet"))
    ours = Preprocessing.from_timm(config)
    assert ours.resize == int(160 / 0.95) and ours.size == (160, 160)
    _same(ours, create_transform(**config), image)


def test_open_clip_preprocess_cfg_round_trips_to_open_clip_transform(image):
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear",
           "resize_mode": "squash"}
    ours = Preprocessing.from_open_clip(cfg)
    _same(ours, image_transform_v2(PreprocessCfg(**cfg), is_train=False), image)


def test_recorded_form_is_plain_json_and_round_trips():
    import json

    p = _base(resize=40, crop=32, interpolation="bilinear", mean=(0.5, 0.5, 0.5))
    record = json.loads(json.dumps(p.to_dict()))
    assert Preprocessing.from_dict(record) == p


def test_bad_values_are_refused():
    with pytest.raises(EncoderError, match="resize 20 is smaller than the crop 32"):
        _base(resize=20)
    with pytest.raises(EncoderError, match="std must be positive"):
        _base(std=(0.5, 0.0, 0.5))
    with pytest.raises(EncoderError, match="interpolation"):
        _base(interpolation="cubic")
    with pytest.raises(EncoderError, match="unknown keys"):
        _base().override_from_config({"sizee": 3})
    with pytest.raises(EncoderError, match="1 or 3"):
        parse_triple("0.5,0.5", "image-mean")
    with pytest.raises(EncoderError, match="1 or 3"):
        parse_triple("a,b,c", "image-std")
    assert parse_triple("0.5", "image-mean") == (0.5, 0.5, 0.5)
    np.testing.assert_allclose(parse_triple("0.1, 0.2,0.3", "image-mean"), (0.1, 0.2, 0.3))
