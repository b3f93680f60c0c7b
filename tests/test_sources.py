"""Sources: image folders, manifests and WebDataset shards, checked against hand-made trees."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from featurestore.errors import SourceError
from featurestore.sources import (
    ImageFolderSource,
    ManifestSource,
    Record,
    Source,
    WebDatasetSource,
    open_source,
)
from tests.images import (
    write_class_tree,
    write_corrupt_jpeg,
    write_empty_file,
    write_manifest,
    write_random_image,
    write_text_as_image,
    write_webdataset_tar,
)

# ---------- folders


def test_class_folders_give_sorted_records_and_label_indices(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_class_tree(root, {"dog": 2, "cat": 3, "bird": 1})
    write_corrupt_jpeg(root / "cat" / "broken.JPG")
    write_random_image(root / "dog" / "deep" / "x.png")
    (root / "dog" / "notes.txt").write_text("ignored")
    (root / "empty_dir").mkdir()

    source = open_source(root)
    assert isinstance(source, ImageFolderSource) and isinstance(source, Source)
    assert source.name == "pets" and source.spec == str(root.absolute())
    assert source.classes == ["bird", "cat", "dog"]
    expected = sorted(
        ["bird/0.jpg", "cat/0.jpg", "cat/1.jpg", "cat/2.jpg", "cat/broken.JPG"]
        + ["dog/0.jpg", "dog/1.jpg", "dog/deep/x.png"]
    )
    records = source.records()
    assert [r.id for r in records] == expected
    label_of = {"bird": 0, "cat": 1, "dog": 2}
    for r in records:
        assert r.label == label_of[r.id.split("/")[0]]
        assert r.path == str((root / r.id).absolute())
        assert r.caption is None
    broken = next(r for r in records if r.id == "cat/broken.JPG")
    assert source.read_bytes(broken) == (root / "cat" / "broken.JPG").read_bytes()


def test_flat_folder_is_unlabelled_and_keeps_broken_files(tmp_path: Path) -> None:
    write_random_image(tmp_path / "b.png")
    write_random_image(tmp_path / "a.jpeg")
    write_empty_file(tmp_path / "c.jpg")
    write_text_as_image(tmp_path / "d.png")
    (tmp_path / "e.txt").write_text("not listed")
    (tmp_path / ".hidden.jpg").write_bytes(b"")

    source = open_source(tmp_path)
    assert source.classes is None
    assert [r.id for r in source.records()] == ["a.jpeg", "b.png", "c.jpg", "d.png"]
    assert all(r.label == -1 for r in source.records())


def test_explicit_classes_fix_label_indices(tmp_path: Path) -> None:
    write_class_tree(tmp_path, {"cat": 1, "dog": 1})
    source = open_source(tmp_path, classes=["zebra", "dog", "cat"])
    assert source.classes == ["zebra", "dog", "cat"]
    assert {r.id: r.label for r in source.records()} == {"cat/0.jpg": 2, "dog/0.jpg": 1}
    with pytest.raises(SourceError, match="not in the given classes"):
        open_source(tmp_path, classes=["cat"])


def test_folder_mixing_root_images_and_class_folders_is_refused(tmp_path: Path) -> None:
    write_class_tree(tmp_path, {"cat": 1})
    write_random_image(tmp_path / "stray.jpg")
    with pytest.raises(SourceError, match="mixes"):
        open_source(tmp_path)


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path)


def test_missing_and_unknown_specs_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(SourceError, match="don't know how to read"):
        open_source(tmp_path / "data.json")
    with pytest.raises(SourceError, match="unknown source kind"):
        open_source(tmp_path, kind="zip")


# ---------- manifests


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_manifest_with_relative_paths_string_labels_and_captions(tmp_path: Path, suffix: str) -> None:
    write_random_image(tmp_path / "imgs" / "x.jpg")
    write_random_image(tmp_path / "imgs" / "y.png")
    elsewhere = write_random_image(tmp_path / "other" / "z.jpg")
    rows = [  # relative paths resolve against the manifest's folder, tmp_path/meta
        {"path": "../imgs/y.png", "label": "zebra", "caption": "a striped horse"},
        {"path": "../imgs/x.jpg", "label": "ant", "caption": "a small, busy insect"},
        {"path": str(elsewhere), "label": "", "caption": ""},
        {"path": "../imgs/missing.jpg", "label": "ant", "caption": "not on disk yet"},
    ]
    manifest = write_manifest(tmp_path / "meta" / f"train{suffix}", rows)

    source = open_source(manifest)
    assert isinstance(source, ManifestSource)
    assert source.name == "train"
    assert source.classes == ["ant", "zebra"]
    by_id = {r.id: r for r in source.records()}
    assert [r.id for r in source.records()] == sorted(by_id)
    assert by_id["../imgs/y.png"] == Record(
        "../imgs/y.png", str((tmp_path / "imgs" / "y.png").absolute()), 1, "a striped horse"
    )
    assert by_id["../imgs/x.jpg"].label == 0 and by_id["../imgs/x.jpg"].caption == "a small, busy insect"
    assert by_id[str(elsewhere)].label == -1 and by_id[str(elsewhere)].caption is None
    assert by_id["../imgs/missing.jpg"].path == str((tmp_path / "imgs" / "missing.jpg").absolute())
    assert source.read_bytes(by_id["../imgs/x.jpg"]) == (tmp_path / "imgs" / "x.jpg").read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_int_labels_and_id_column(tmp_path: Path, suffix: str) -> None:
    rows = [{"id": "b", "path": "1.jpg", "label": 3}, {"id": "a", "path": "2.jpg", "label": 0}]
    source = open_source(write_manifest(tmp_path / f"m{suffix}", rows))
    assert source.classes is None
    assert [(r.id, r.label) for r in source.records()] == [("a", 0), ("b", 3)]
    named = open_source(tmp_path / f"m{suffix}", classes=["c0", "c1", "c2", "c3"])
    assert named.classes == ["c0", "c1", "c2", "c3"]
    with pytest.raises(SourceError, match="outside"):
        open_source(tmp_path / f"m{suffix}", classes=["c0"])


def test_manifest_float_written_int_labels_are_indices(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "a.jpg", "label": "2.0"}, {"path": "b.jpg", "label": "0"}])
    assert [r.label for r in open_source(manifest).records()] == [2, 0]


def test_manifest_given_classes_map_names(tmp_path: Path) -> None:
    rows = [{"path": "a.jpg", "label": "dog"}, {"path": "b.jpg", "label": "cat"}]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    source = open_source(manifest, classes=["dog", "cat", "emu"])
    assert [r.label for r in source.records()] == [0, 1]
    with pytest.raises(SourceError, match="not in the given classes"):
        open_source(manifest, classes=["dog"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_manifest_without_path_column_is_refused(tmp_path: Path, suffix: str) -> None:
    manifest = write_manifest(tmp_path / f"m{suffix}", [{"file": "a.jpg", "label": 1}])
    with pytest.raises(SourceError, match="no 'path' column"):
        open_source(manifest)


def test_manifest_duplicate_ids_are_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "a.jpg"}, {"path": "a.jpg"}])
    with pytest.raises(SourceError, match="more than once"):
        open_source(manifest)


# ---------- webdataset shards


def test_webdataset_tar_records_captions_and_exact_bytes(tmp_path: Path) -> None:
    shard = tmp_path / "00000.tar"
    samples = write_webdataset_tar(shard, 4)
    source = open_source(shard)
    assert isinstance(source, WebDatasetSource)
    assert source.name == "00000" and source.classes is None
    records = source.records()
    assert [r.id for r in records] == [f"00000.tar/{s['key']}" for s in samples]
    for record, sample in zip(records, samples, strict=True):
        assert record.path == f"{shard.absolute()}::{sample['member']}"
        assert record.caption == sample["caption"]
        assert record.label == -1
        assert source.read_bytes(record) == sample["image"]


def test_webdataset_labels_from_cls_members(tmp_path: Path) -> None:
    write_webdataset_tar(tmp_path / "s.tar", 3, labels=[2, 0, 1], ext="png")
    assert [r.label for r in open_source(tmp_path / "s.tar").records()] == [2, 0, 1]


@pytest.mark.parametrize("pattern", ["shards/*.tar", "shards/{00000..00002}.tar", "shards"])
def test_webdataset_several_shards_by_glob_brace_or_directory(tmp_path: Path, pattern: str, monkeypatch) -> None:
    expected = {}
    for s in range(3):
        for sample in write_webdataset_tar(tmp_path / "shards" / f"{s:05d}.tar", 2, first_key=10 * s, seed=s):
            expected[f"{s:05d}.tar/{sample['key']}"] = sample["image"]
    (tmp_path / "shards" / "00000_stats.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    source = open_source(pattern)
    assert isinstance(source, WebDatasetSource)
    assert source.name == "00000"
    assert source.spec == (str(tmp_path / "shards") if pattern == "shards" else pattern)
    assert [r.id for r in source.records()] == sorted(expected)
    assert {r.id: source.read_bytes(r) for r in source.records()} == expected


def test_webdataset_brace_pattern_with_missing_shard_is_refused(tmp_path: Path) -> None:
    write_webdataset_tar(tmp_path / "00000.tar", 1)
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "{00000..00001}.tar"))
    with pytest.raises(SourceError, match="no tar shard matches"):
        open_source(str(tmp_path / "*.nothing.tar"))


def test_webdataset_source_pickles_and_reads_after_unpickling(tmp_path: Path) -> None:
    samples = write_webdataset_tar(tmp_path / "00000.tar", 3)
    source = open_source(tmp_path / "00000.tar")
    records = source.records()
    source.read_bytes(records[0])  # opens a file handle that must not travel in the pickle
    clone = pickle.loads(pickle.dumps(source))
    assert [clone.read_bytes(r) for r in records] == [s["image"] for s in samples]
    assert clone.records() == records
    source.close()


def test_folder_and_manifest_sources_pickle(tmp_path: Path) -> None:
    write_class_tree(tmp_path / "f", {"a": 2})
    folder = open_source(tmp_path / "f")
    clone = pickle.loads(pickle.dumps(folder))
    assert clone.records() == folder.records() and clone.classes == ["a"]
    manifest = open_source(write_manifest(tmp_path / "m.csv", [{"path": "f/a/0.jpg", "label": "a"}]))
    clone = pickle.loads(pickle.dumps(manifest))
    assert clone.read_bytes(clone.records()[0]) == (tmp_path / "f" / "a" / "0.jpg").read_bytes()


def test_directory_mixing_shards_and_images_is_refused(tmp_path: Path) -> None:
    write_webdataset_tar(tmp_path / "00000.tar", 1)
    write_random_image(tmp_path / "a.jpg")
    with pytest.raises(SourceError, match="mixes .tar shards"):
        open_source(tmp_path)
    assert [r.id for r in open_source(tmp_path, kind="folder").records()] == ["a.jpg"]
    assert len(open_source(tmp_path, kind="webdataset").records()) == 1


def test_corrupt_tar_raises_source_error(tmp_path: Path) -> None:
    (tmp_path / "bad.tar").write_bytes(os.urandom(1000))
    with pytest.raises(SourceError, match="cannot read tar shard"):
        open_source(tmp_path / "bad.tar")
