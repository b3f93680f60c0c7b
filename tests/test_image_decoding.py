"""decode_image: EXIF orientation, 16-bit and float pixels, unsupported modes. The oracles are
numpy rotations of the stored pixels and torchvision's own dtype conversion (to_dtype with
scale=True), applied to arrays written independently of PIL's decoder."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from featurestore.extract.image_dataset import ImageRecordDataset, UnsupportedImageError, decode_image, failure_reason
from featurestore.sources import open_source


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of `pixels` (H, W) grey or (H, W, 3) RGB uint16, written by hand (PIL
    cannot write 16-bit RGB), so the decoder under test never produced its own input."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def torchvision_uint8(pixels: np.ndarray) -> np.ndarray:
    """What torchvision makes of these pixels as 8-bit (to_dtype(..., uint8, scale=True))."""
    tensor = torch.from_numpy(pixels.astype(np.int32)).to(torch.uint16) if pixels.dtype == np.uint16 \
        else torch.from_numpy(pixels)
    return F.to_dtype(tensor, torch.uint8, scale=True).numpy()


RNG = np.random.default_rng(0)


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    pixels = RNG.integers(0, 65536, size=(12, 17), dtype=np.uint16)
    decoded = np.asarray(decode_image(png16(pixels)))
    assert decoded.shape == (12, 17, 3)
    expected = torchvision_uint8(pixels)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], expected)


def test_sixteen_bit_rgb_png_keeps_its_high_bytes() -> None:
    pixels = RNG.integers(0, 65536, size=(9, 5, 3), dtype=np.uint16)
    np.testing.assert_array_equal(np.asarray(decode_image(png16(pixels))), torchvision_uint8(pixels))


def test_sixteen_bit_pgm_is_scaled() -> None:
    pixels = RNG.integers(0, 65536, size=(4, 6), dtype=np.uint16)
    data = b"P5\n6 4\n65535\n" + pixels.astype(">u2").tobytes()
    np.testing.assert_array_equal(np.asarray(decode_image(data))[..., 1], torchvision_uint8(pixels))


def _tiff(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "TIFF")
    return buffer.getvalue()


def test_float_tiff_in_unit_range_is_scaled_like_torchvision() -> None:
    pixels = RNG.random((7, 8), dtype=np.float32)
    pixels[0, :3] = (0.0, 1.0, 0.5)
    decoded = np.asarray(decode_image(_tiff(pixels)))
    np.testing.assert_array_equal(decoded[..., 0], torchvision_uint8(pixels))
    assert decoded[0, :3, 0].tolist() == [0, 255, 127]


@pytest.mark.parametrize(
    ("pixels", "words"),
    [
        (RNG.random((4, 4), dtype=np.float32) * 300, "not 0..1"),
        (np.full((4, 4), np.nan, dtype=np.float32), "not 0..1"),
        ((RNG.integers(0, 2**20, size=(4, 4))).astype(np.int32), "32-bit integer pixels"),
    ],
    ids=["float-0-300", "float-nan", "int32"],
)
def test_pixels_without_a_defined_8bit_scale_are_unsupported(pixels: np.ndarray, words: str) -> None:
    with pytest.raises(UnsupportedImageError) as info:
        decode_image(_tiff(pixels))
    reason = failure_reason(info.value)
    assert words in reason and "\n" not in reason


@pytest.mark.parametrize(("orientation", "turns"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(orientation: int, turns: int) -> None:
    """EXIF 6 = "rotate 90 degrees clockwise to view", 8 = counter-clockwise, 3 = 180 degrees."""
    pixels = RNG.integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif)  # lossless, so the rotation is checked pixel for pixel
    np.testing.assert_array_equal(np.asarray(decode_image(buffer.getvalue())), np.rot90(pixels, k=turns))


def test_dataset_items_of_a_sixteen_bit_png_and_a_rotated_photo(tmp_path: Path) -> None:
    preprocess = open_clip.image_transform(32, is_train=False)
    grey = RNG.integers(0, 65536, size=(40, 48), dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(png16(grey))
    photo = RNG.integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    image = Image.fromarray(photo)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "sideways.png", exif=exif)
    (tmp_path / "hdr.tif").write_bytes(_tiff(RNG.random((8, 8), dtype=np.float32) * 4))

    source = open_source(tmp_path)
    dataset = ImageRecordDataset(source, source.records(), preprocess)
    items = {record.id: dataset[i] for i, record in enumerate(dataset.records)}
    expected_grey = Image.fromarray(np.repeat(torchvision_uint8(grey)[..., None], 3, axis=2))
    assert items["deep.png"].ok and torch.equal(items["deep.png"].images[0], preprocess(expected_grey))
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(photo, k=-1)))
    assert items["sideways.png"].ok and torch.equal(items["sideways.png"].images[0], preprocess(upright))
    assert not items["hdr.tif"].ok and "unsupported float image" in items["hdr.tif"].error
