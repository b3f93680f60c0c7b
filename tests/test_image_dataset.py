"""ImageRecordDataset: decoding, error rows, reproducible augmented views, DataLoader parity."""

from __future__ import annotations

import io
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from featurestore.extract.augment import build_augment, input_size
from featurestore.extract.image_dataset import ImageRecordDataset, collate, make_loader
from featurestore.sources import open_source
from tests.images import (
    write_corrupt_jpeg,
    write_empty_file,
    write_random_image,
    write_text_as_image,
    write_webdataset_tar,
)

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def preprocess():
    return open_clip.image_transform(32, is_train=False)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    for i in range(6):
        write_random_image(tmp_path / f"good{i}.jpg", size=(40 + 3 * i, 34), seed=i)
    write_random_image(tmp_path / "good_png.png", seed=9)
    write_corrupt_jpeg(tmp_path / "corrupt.jpg")
    write_empty_file(tmp_path / "empty.jpg")
    write_text_as_image(tmp_path / "text.png")
    return tmp_path


def _items_by_id(dataset: ImageRecordDataset, order: list[int]) -> dict[str, tuple]:
    return {dataset.records[i].id: dataset[i] for i in order}


def test_good_image_equals_preprocess_of_pil_image(mixed_folder: Path, preprocess) -> None:
    source = open_source(mixed_folder)
    dataset = ImageRecordDataset(source, source.records(), preprocess)
    for i, record in enumerate(dataset.records):
        if not record.id.startswith("good"):
            continue
        index, images, ok, error = dataset[i]
        expected = preprocess(Image.open(mixed_folder / record.id).convert("RGB"))
        assert (index, ok, error) == (i, True, "")
        assert images.shape == (1, 3, 32, 32)
        assert torch.equal(images[0], expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("corrupt.jpg", "truncated"), ("empty.jpg", "empty file"), ("text.png", "cannot identify image file")],
)
def test_broken_files_give_error_rows(mixed_folder: Path, preprocess, name: str, reason: str) -> None:
    source = open_source(mixed_folder)
    records = [r for r in source.records() if r.id == name]
    dataset = ImageRecordDataset(source, records, preprocess, views=2)
    index, images, ok, error = dataset[0]
    assert index == 0 and ok is False
    assert reason in error and "0x" not in error and "\n" not in error
    assert images.shape == (3, 3, 32, 32) and not images.any()


def test_vanished_file_gives_error_row(tmp_path: Path, preprocess) -> None:
    path = write_random_image(tmp_path / "a.jpg")
    source = open_source(tmp_path)
    records = source.records()
    path.unlink()
    item = ImageRecordDataset(source, records, preprocess)[0]
    assert item.ok is False and "No such file" in item.error


def test_views_are_reproducible_order_independent_and_distinct(mixed_folder: Path, preprocess) -> None:
    source = open_source(mixed_folder)
    records = [r for r in source.records() if r.id.startswith("good")]
    first = ImageRecordDataset(source, records, preprocess, views=3, seed=7)
    again = ImageRecordDataset(source, list(reversed(records)), preprocess, views=3, seed=7)
    a = _items_by_id(first, list(range(len(records))))
    torch.manual_seed(123)  # global RNG state must not matter
    b = _items_by_id(again, [3, 0, 5, 1, 6, 2, 4])
    for rid in a:
        assert a[rid].images.shape == (4, 3, 32, 32)
        assert torch.equal(a[rid].images, b[rid].images)
        assert torch.equal(a[rid].images[0], preprocess(Image.open(mixed_folder / rid).convert("RGB")))
        views = a[rid].images
        for j in range(4):
            for k in range(j + 1, 4):
                assert not torch.equal(views[j], views[k])
    other_seed = ImageRecordDataset(source, records, preprocess, views=3, seed=8)[0].images
    assert torch.equal(other_seed[0], a[records[0].id].images[0])
    assert not torch.equal(other_seed[1:], a[records[0].id].images[1:])


def test_augment_of_constant_image_is_the_normalised_colour(preprocess) -> None:
    augment = build_augment(preprocess)
    colour = (200, 30, 90)
    out = augment(Image.new("RGB", (50, 41), colour))
    expected = torch.tensor([(c / 255 - m) / s for c, m, s in zip(colour, MEAN, STD, strict=True)]).view(3, 1, 1)
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, expected.expand(3, 32, 32), atol=1e-5)


def test_full_scale_views_are_the_image_or_its_mirror(tmp_path: Path, preprocess) -> None:
    for i in range(8):
        write_random_image(tmp_path / f"{i}.png", size=(32, 32), seed=i)
    source = open_source(tmp_path)
    augment = build_augment(preprocess, scale=(1.0, 1.0))
    dataset = ImageRecordDataset(source, source.records(), preprocess, views=1, augment_preprocess=augment)
    flips = []
    for item in dataset:
        plain, view = item.images
        if torch.allclose(view, plain, atol=1e-5):
            flips.append(False)
        else:
            assert torch.allclose(view, plain.flip(-1), atol=1e-5)
            flips.append(True)
    assert any(flips) and not all(flips)


def test_input_size_reads_torchvision_and_open_clip_transforms(preprocess) -> None:
    assert input_size(preprocess) == (32, 32)
    assert input_size(T.Compose([T.Resize(24), T.CenterCrop((20, 18)), T.ToTensor()])) == (20, 18)
    assert input_size(T.Compose([T.Resize((16, 16)), T.ToTensor()])) == (16, 16)


def test_loader_with_two_workers_matches_in_process_loading(tmp_path: Path, preprocess) -> None:
    samples = write_webdataset_tar(tmp_path / "00000.tar", 5)
    write_webdataset_tar(tmp_path / "00001.tar", 4, first_key=5, seed=50)
    source = open_source(str(tmp_path / "*.tar"))
    records = source.records()
    dataset = ImageRecordDataset(source, records, preprocess, views=2, seed=3)

    def run(n: int):
        batches = list(make_loader(dataset, batch_size=4, workers=n, pin_memory=False))
        return (
            torch.cat([b.indices for b in batches]),
            torch.cat([b.images for b in batches]),
            torch.cat([b.ok for b in batches]),
            [e for b in batches for e in b.errors],
        )

    serial, parallel = run(0), run(2)
    assert torch.equal(serial[0], torch.arange(len(records)))
    assert torch.equal(serial[0], parallel[0])
    assert torch.equal(serial[1], parallel[1])
    assert serial[1].shape == (9, 3, 3, 32, 32)
    assert serial[2].all() and parallel[2].all() and serial[3] == parallel[3]
    first = Image.open(io.BytesIO(samples[0]["image"])).convert("RGB")
    assert torch.equal(serial[1][0, 0], preprocess(first))


def test_collate_stacks_items(tmp_path: Path, preprocess) -> None:
    write_random_image(tmp_path / "a.jpg")
    write_empty_file(tmp_path / "b.jpg")
    source = open_source(tmp_path)
    dataset = ImageRecordDataset(source, source.records(), preprocess)
    batch = collate([dataset[0], dataset[1]])
    assert batch.indices.tolist() == [0, 1]
    assert batch.images.shape == (2, 1, 3, 32, 32)
    assert batch.ok.tolist() == [True, False]
    assert batch.errors == ["", "empty file"]
