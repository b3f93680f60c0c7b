"""Named datasets: tiny trees in each supported layout, built from real CIFAR-10 JPEGs, read back
and checked against the split files they were written from (splits, labels, class names, rows,
order); broken layouts are one line and exit 2; `fs extract --dataset` stores the splits in the
dataset's order so the coop sampler picks the images Dassl's algorithm picks from the JSON."""
from __future__ import annotations

import json
import random
import tarfile
from collections import defaultdict
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from featurestore.datasets import dataset_status, open_dataset
from featurestore.errors import SourceError
from tests import dataset_trees as trees
from tests.cli_runner import run


def test_coop_split_file_layout(tmp_path):
    split = trees.coop_tree(tmp_path)
    data = open_dataset("oxford_pets", tmp_path)
    assert list(data.splits) == ["train", "val", "test"]
    # class names come from the triples, underscores become spaces (CoOp's and Tip-Adapter's clean-up)
    assert data.classes == ["airplane", "sports car", "bird"]
    for name, entries in split.items():
        source = data.splits[name]
        records = source.records()
        assert len(records) == len(entries)
        # store order (sorted ids) is the split file's order, paths resolve under images/
        assert [r.path for r in records] == [str(tmp_path / "oxford_pets" / "images" / e[0]) for e in entries]
        assert [r.label for r in records] == [e[1] for e in entries]
        assert all(Path(r.path).is_file() for r in records)
    assert data.templates == ["a photo of a {}, a type of pet."]


def test_eurosat_and_caltech_clean_ups(tmp_path):
    folder = tmp_path / "eurosat"
    (folder / "2750" / "SeaLake").mkdir(parents=True)
    triples = {s: [[f"SeaLake/{s}.jpg", 0, "SeaLake"], [f"River/{s}.jpg", 1, "River"]]
               for s in ("train", "val", "test")}
    (folder / "split_zhou_EuroSAT.json").write_text(json.dumps(triples))
    assert open_dataset("eurosat", tmp_path).classes == ["Sea or Lake", "River"]
    folder = tmp_path / "caltech-101"
    (folder / "101_ObjectCategories").mkdir(parents=True)
    triples = {s: [["airplanes/a.jpg", 0, "airplanes"], ["Faces_easy/b.jpg", 1, "Faces_easy"]]
               for s in ("train", "val", "test")}
    (folder / "split_zhou_Caltech101.json").write_text(json.dumps(triples))
    with pytest.raises(SourceError, match="Faces_easy is not part of the dataset"):
        open_dataset("caltech101", tmp_path)
    triples = {s: [["airplanes/a.jpg", 0, "airplanes"]] for s in ("train", "val", "test")}
    (folder / "split_zhou_Caltech101.json").write_text(json.dumps(triples))
    assert open_dataset("caltech101", tmp_path).classes == ["airplane"]


def test_fgvc_variant_listings(tmp_path):
    listing = trees.fgvc_tree(tmp_path)
    data = open_dataset("fgvc_aircraft", tmp_path)
    assert data.classes == ["707-320", "A300B4", "Cessna 172"]
    for split, rows in listing.items():
        records = data.splits[split].records()
        assert [Path(r.path).name for r in records] == [f"{ident}.jpg" for ident, _ in rows]
        assert [data.classes[r.label] for r in records] == [variant for _, variant in rows]


def test_imagenet_folders_and_shift_sets(tmp_path):
    trees.imagenet_trees(tmp_path)
    imagenet = open_dataset("imagenet", tmp_path)
    sorted_wnids = sorted(trees.WNIDS)
    assert imagenet.classes == ["brambling", "airliner", "beach wagon"]  # sorted wnid order
    assert list(imagenet.splits) == ["train", "test"]  # the official val set is the test split
    train = imagenet.splits["train"].records()
    assert len(train) == 9 and len(imagenet.splits["test"].records()) == 6
    for r in train:
        assert r.label == sorted_wnids.index(Path(r.path).parent.name)
    v2 = open_dataset("imagenetv2", tmp_path)
    assert list(v2.splits) == ["imagenetv2"] and v2.classes == imagenet.classes
    assert {r.label for r in v2.splits["imagenetv2"].records()} == {0, 1, 2}
    assert all(r.label == int(Path(r.path).parent.name) for r in v2.splits["imagenetv2"].records())
    a = open_dataset("imagenet_a", tmp_path)
    records = a.splits["imagenet_a"].records()
    assert len(records) == 4  # README.txt at the top is not a class
    assert a.classes == imagenet.classes  # labels index ImageNet's classes ...
    assert a.subset == ["airliner", "beach wagon"]  # ... and the set covers two of them
    assert all(a.classes[r.label] in a.subset for r in records)


def test_cifar_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    trees.cifar_batches(tmp_path, n_train=6, n_test=4)
    # our tiny batch files cannot match the md5 sums of the real archive torchvision checks
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    data = open_dataset("cifar10", tmp_path)
    assert data.classes[:3] == list(trees.CLASSES) and len(data.classes) == 10
    train, test = data.splits["train"].records(), data.splits["test"].records()
    assert len(train) == 18 and len(test) == 12
    reference = cifar.CIFAR10(str(tmp_path), train=False)
    from PIL import Image

    decoded = np.asarray(Image.open(BytesIO(data.splits["test"].read_bytes(test[5]))))
    assert np.array_equal(decoded, reference.data[5]) and test[5].label == reference.targets[5]


def test_stl10_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.stl10 as stl10
    from PIL import Image

    trees.stl10_binary(tmp_path, n_train=2, n_test=3)
    monkeypatch.setattr(stl10, "check_integrity", lambda *args, **kwargs: True)  # md5 of the real files
    data = open_dataset("stl10", tmp_path)
    assert data.classes[:3] == list(trees.CLASSES) and len(data.classes) == 10
    assert data.templates == ["a photo of a {}.", "a photo of the {}."]
    train, test = data.splits["train"].records(), data.splits["test"].records()
    assert len(train) == 6 and len(test) == 9
    assert [r.label for r in test] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # labels on disk count from 1
    reference = stl10.STL10(str(tmp_path), split="test")
    decoded = np.asarray(Image.open(BytesIO(data.splits["test"].read_bytes(test[4]))))
    assert decoded.shape == (96, 96, 3) and np.array_equal(decoded, np.asarray(reference[4][0]))
    # the image the tree was written from, pixel for pixel: the column-major layout is undone
    source = trees.cifar_images("test", trees.CLASSES[1], 3)[1]
    assert np.array_equal(decoded, np.asarray(Image.open(source).convert("RGB").resize((96, 96))))


def test_mnist_through_torchvision_with_clips_digit_names(tmp_path):
    from PIL import Image

    trees.mnist_raw(tmp_path, n_train=2, n_test=3)
    data = open_dataset("mnist", tmp_path)
    assert data.classes == [str(d) for d in range(10)]  # CLIP's prompts name the digits, not "0 - zero"
    assert data.templates == ['a photo of the number: "{}".']
    test = data.splits["test"].records()
    assert len(data.splits["train"].records()) == 6 and [r.label for r in test] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    decoded = np.asarray(Image.open(BytesIO(data.splits["test"].read_bytes(test[7]))))
    source = trees.cifar_images("test", trees.CLASSES[2], 3)[1]
    assert np.array_equal(decoded, np.asarray(Image.open(source).convert("L").resize((28, 28))))


def test_stl10_and_mnist_missing_are_one_line(tmp_path):
    with pytest.raises(SourceError, match=r"STL-10: .*stl10_binary is missing.*--download"):
        open_dataset("stl10", tmp_path)
    with pytest.raises(SourceError, match=r"MNIST: .*MNIST is missing.*--download"):
        open_dataset("mnist", tmp_path)


def test_cifar_missing_is_one_line_without_download(tmp_path):
    with pytest.raises(SourceError, match=r"CIFAR-10: .*cifar-10-batches-py is missing.*--download"):
        open_dataset("cifar10", tmp_path)


def _write_shard(path: Path, samples: list[tuple[str, bytes, int]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, image, label in samples:
            for name, payload in ((f"{key}.jpg", image), (f"{key}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, BytesIO(payload))


def test_clip_benchmark_webdataset_folder(tmp_path):
    folder = tmp_path / "wds_tiny"
    for split, source, n in (("train", "train", 2), ("test", "test", 3)):
        (folder / split).mkdir(parents=True)
        samples = [(f"s{label}{i}", image.read_bytes(), label)
                   for label, cls in enumerate(trees.CLASSES)
                   for i, image in enumerate(trees.cifar_images(source, cls, n))]
        _write_shard(folder / split / "0.tar", samples)
    (folder / "classnames.txt").write_text("\n".join(trees.CLASSES) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\na blurry photo of a {c}.\n")
    data = open_dataset("wds:wds_tiny", tmp_path)
    assert data.classes == list(trees.CLASSES)
    assert data.templates == ["a photo of a {}.", "a blurry photo of a {}."]
    assert len(data.splits["train"].records()) == 6 and len(data.splits["test"].records()) == 9
    assert sorted(r.label for r in data.splits["test"].records()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    status = {e["name"]: e for e in dataset_status(tmp_path)}
    assert status["wds:wds_tiny"]["found"] and status["wds:wds_tiny"]["rows"] == {"train": 6, "test": 9}


def test_status_and_cli_report_found_missing_and_broken(tmp_path, capsys):
    trees.coop_tree(tmp_path)
    (tmp_path / "dtd").mkdir()  # folder without its split file
    (tmp_path / "oxford_pets" / "images" / sorted((tmp_path / "oxford_pets" / "images").iterdir())[0].name).unlink()
    code, out, err = run(["datasets", "--root", tmp_path], capsys)
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert lines["oxford_pets"].startswith("found") and "3 classes, train 12, val 6, test 9" in lines["oxford_pets"]
    assert "1 listed image file(s) missing" in lines["oxford_pets"]
    assert lines["dtd"].startswith("broken") and "missing split_zhou_DescribableTextures.json" in lines["dtd"]
    assert lines["food101"].startswith("missing") and "food-101/split_zhou_Food101.json" in lines["food101"]


@pytest.mark.parametrize("breakage, message", [
    ("no_folder", "OxfordPets: folder .*oxford_pets not found"),
    ("no_split_file", "OxfordPets: .*oxford_pets is incomplete, missing split_zhou_OxfordPets.json"),
    ("bad_json", "OxfordPets: cannot read split file"),
    ("bad_entry", "entry 1 of 'train' .* is not \\[path, integer label, class name\\]"),
])
def test_broken_layout_is_one_line_exit_2(tmp_path, capsys, fs_args, breakage, message):
    import re

    if breakage != "no_folder":
        trees.coop_tree(tmp_path)
        split_file = tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json"
        if breakage == "no_split_file":
            split_file.unlink()
        elif breakage == "bad_json":
            split_file.write_text("{not json")
        else:
            split_file.write_text(json.dumps({"train": [["a.jpg", "0", "x"]], "val": [], "test": []}))
    code, out, err = run(["extract", "--dataset", "oxford_pets", "--root", tmp_path, "--store", tmp_path / "s.h5",
                          *fs_args], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "s.h5").exists()


def _dassl_fewshot_paths(entries: list, shots: int, seed: int) -> set[str]:
    """Dassl's generate_fewshot_dataset on the split file's triples (global random seeded)."""
    state = random.getstate()
    random.seed(seed)
    tracker = defaultdict(list)
    for path, label, _ in entries:
        tracker[label].append(path)
    picked = set()
    for items in tracker.values():
        picked.update(random.sample(items, shots) if len(items) >= shots else items)
    random.setstate(state)
    return picked


def test_extract_dataset_end_to_end(tmp_path, capsys, fs_args):
    from featurestore.store.feature_store import FeatureStore
    from solvers.model_selection.fewshot import fewshot_split

    split = trees.coop_tree(tmp_path, counts=(6, 2, 3))
    store = tmp_path / "pets.h5"
    code, out, err = run(["extract", "--dataset", "oxford_pets", "--root", tmp_path, "--store", store,
                          "--workers", "0", "-q", *fs_args], capsys)
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()] == ["split 'train'", "split 'val'", "split 'test'"]
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
        assert reader.splits() == ["test", "train", "val"]
        for name, entries in split.items():
            assert reader.classes(name) == ["airplane", "sports car", "bird"]
            assert [p.rsplit("/", 1)[1] for p in reader.paths(name)] == [e[0] for e in entries]
            assert reader.labels(name).tolist() == [e[1] for e in entries]
            assert reader.features(key, name).shape[0] == len(entries)
        bank = reader.text_bank(key, "train/dataset")
        assert bank["templates"] == ["a photo of a {}, a type of pet."]
        assert bank["strings"][1] == "a photo of a sports car, a type of pet."
        labels, paths = reader.labels("train"), [p.rsplit("/", 1)[1] for p in reader.paths("train")]
    for seed in (1, 2, 3):
        rows = fewshot_split(labels, 2, seed, sampler="coop")
        assert {paths[i] for i in rows} == _dassl_fewshot_paths(split["train"], 2, seed)
    # a rerun extracts nothing again and keeps the bank
    code, out, err = run(["extract", "--dataset", "oxford_pets", "--root", tmp_path, "--store", store,
                          "--workers", "0", "-q", *fs_args], capsys)
    assert code == 0 and all(" 0 extracted" in line for line in out.splitlines())
