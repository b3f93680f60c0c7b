"""Tensor decoding (the path the GPU runs, here on CPU tensors) against the PIL path.

Oracles: the library-built PIL transform of the same recorded `Preprocessing`
(open_clip's or timm's) on PIL-decoded images, and the store written by the PIL path.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from featurestore.encoders.preprocessing import Preprocessing
from featurestore.extract.image_dataset import decode_image
from featurestore.extract.pipeline import extract
from featurestore.extract.tensor_decoding import (
    TensorDecoder,
    TensorPreprocess,
    jpeg_for_tensor_path,
    tensor_unsupported,
)
from featurestore.sources import open_source
from featurestore.store.feature_store import FeatureStore
from tests.images import write_corrupt_jpeg, write_random_image

# (width, height): landscape, portrait, tiny (upscaled), very wide, square, odd sizes
SIZES = [(500, 375), (375, 500), (20, 14), (640, 120), (256, 256), (97, 33)]


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like image: a smooth random field (coarse grid, bicubic-upsampled) with mild noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.integers(-8, 9, smooth.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **save)
    return buffer.getvalue()


def tensor_path(preprocessing: Preprocessing, data: list[bytes]) -> torch.Tensor:
    decoder = TensorDecoder(preprocessing, "cpu", preprocessing.transform())
    payloads = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    images, ok, errors = decoder(payloads, torch.ones(len(data), dtype=torch.bool), [""] * len(data))
    assert ok.all() and decoder.pil_decoded == 0
    return images


def pil_path(preprocessing: Preprocessing, data: list[bytes]) -> torch.Tensor:
    transform = preprocessing.transform()
    return torch.stack([transform(decode_image(d)) for d in data])


PREPROCESSINGS = {
    "open_clip shortest 32 bicubic": Preprocessing(size=(32, 32), resize=32),
    "timm resize 40 crop 32 bilinear": Preprocessing(size=(32, 32), resize=40, interpolation="bilinear",
                                                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "squash 36 crop 32": Preprocessing(size=(32, 32), resize=36, resize_mode="squash"),
    "open_clip longest, grey padding": Preprocessing(size=(32, 32), resize=32, resize_mode="longest",
                                                     fill_color=128),
    "timm border 40 crop 32": Preprocessing(size=(32, 32), resize=40, resize_mode="longest"),
    "open_clip ViT-B-32 default (224)": Preprocessing(size=(224, 224), resize=224),
}


@pytest.mark.parametrize("name", PREPROCESSINGS)
def test_tensor_preprocessing_matches_the_library_pil_transform(name):
    preprocessing = PREPROCESSINGS[name]
    data = [jpeg_bytes(photo(w, h, seed=i)) for i, (w, h) in enumerate(SIZES)]
    ours, theirs = tensor_path(preprocessing, data), pil_path(preprocessing, data)
    assert ours.shape == theirs.shape == (len(SIZES), 3, *preprocessing.size)
    flat_ours, flat_theirs = ours.flatten(1), theirs.flatten(1)
    cosine = torch.nn.functional.cosine_similarity(flat_ours, flat_theirs, dim=1)
    assert cosine.min() > 0.9999, cosine
    # torch's antialiased resampling rounds a few pixels one uint8 level (1/255/std = 0.015)
    # away from PIL's; a one-pixel shift, a wrong crop or a wrong padding colour would not
    assert (ours - theirs).abs().mean() < 1e-3
    assert (ours - theirs).abs().max() < 0.1


def test_tensor_decoding_embeddings_match_the_pil_path(tiny_encoder):
    """Cosine > 0.999 per row between embeddings of the two paths, JPEGs of several sizes and
    aspect ratios, with the encoder's own recorded preprocessing."""
    preprocessing = Preprocessing.from_dict(tiny_encoder.info["preprocess"])
    data = [jpeg_bytes(photo(w, h, seed=10 + i)) for i, (w, h) in enumerate(SIZES)]
    ours = tiny_encoder.encode_images(tensor_path(preprocessing, data))
    theirs = tiny_encoder.encode_images(torch.stack([tiny_encoder.preprocess(decode_image(d)) for d in data]))
    cosine = np.sum(ours * theirs, axis=1)
    assert cosine.min() > 0.999, cosine


def test_only_plain_upright_jpegs_take_the_tensor_path():
    image = photo(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    cmyk = io.BytesIO()
    image.convert("CMYK").save(cmyk, "JPEG")
    png = io.BytesIO()
    image.save(png, "PNG")
    assert jpeg_for_tensor_path(jpeg_bytes(image))
    assert jpeg_for_tensor_path(jpeg_bytes(image.convert("L")))
    assert not jpeg_for_tensor_path(jpeg_bytes(image, exif=exif.tobytes()))
    assert jpeg_for_tensor_path(jpeg_bytes(image, exif=Image.Exif().tobytes()))  # EXIF without orientation
    assert not jpeg_for_tensor_path(cmyk.getvalue())
    assert not jpeg_for_tensor_path(png.getvalue())
    assert not jpeg_for_tensor_path(b"\xff\xd8\xff garbage")


def test_preprocessings_tensors_cannot_reproduce_are_named():
    assert tensor_unsupported(Preprocessing(size=(32, 32), resize=32)) is None
    assert "lanczos" in tensor_unsupported(Preprocessing(size=(32, 32), resize=32, interpolation="lanczos"))
    assert "non-square" in tensor_unsupported(Preprocessing(size=(32, 48), resize=48))
    with pytest.raises(Exception, match="--decode cpu"):
        TensorPreprocess(Preprocessing(size=(32, 32), resize=32, interpolation="lanczos"))


def test_extract_with_tensor_decoding_equals_the_pil_store(tmp_path, tiny_encoder):
    """The whole pipeline in both modes over a folder mixing plain JPEGs of several sizes, a
    greyscale JPEG, an EXIF-rotated JPEG, a CMYK JPEG, a PNG and a truncated JPEG."""
    root = tmp_path / "mixed" / "things"
    for i, (w, h) in enumerate(SIZES):
        (root / f"photo{i}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (root / f"photo{i}.jpg").write_bytes(jpeg_bytes(photo(w, h, seed=20 + i)))
    (root / "grey.jpg").write_bytes(jpeg_bytes(photo(60, 45, seed=30).convert("L")))
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "rotated.jpg").write_bytes(jpeg_bytes(photo(80, 40, seed=31), exif=exif.tobytes()))
    photo(50, 50, seed=32).convert("CMYK").save(root / "cmyk.jpg", "JPEG")
    write_random_image(root / "drawing.png", (45, 30), seed=33)
    write_corrupt_jpeg(root / "broken.jpg")

    stores = {}
    for mode in ("pil", "tensor"):
        stores[mode] = tmp_path / f"{mode}.h5"
        report = extract(open_source(tmp_path / "mixed"), stores[mode], tiny_encoder, decode=mode, batch_size=4,
                         workers=0, quiet=True)
        assert report.decode == mode and report.extracted == 10 and report.failed == 1
    assert report.pil_decoded == 4  # rotated, CMYK, PNG, and the truncated JPEG nvjpeg/libjpeg rejects
    key = tiny_encoder.key
    with FeatureStore(stores["pil"]) as a, FeatureStore(stores["tensor"]) as b:
        assert a.ids("mixed", False).tolist() == b.ids("mixed", False).tolist()
        assert a.errors("mixed") == b.errors("mixed") and len(a.errors("mixed")) == 1
        np.testing.assert_array_equal(a.valid("mixed"), b.valid("mixed"))
        fa, fb = a.features(key, "mixed"), b.features(key, "mixed")  # the valid rows
        assert fa.shape == fb.shape == (10, tiny_encoder.embed_dim)
        assert np.sum(fa * fb, axis=1).min() > 0.999
        np.testing.assert_allclose(a.norms(key, "mixed"), b.norms(key, "mixed"), rtol=0.02)
