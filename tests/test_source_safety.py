"""Sources facing hostile or damaged inputs: symlink loops, dangling links, FIFOs, devices,
oversized files, truncated tar shards, out-of-range labels, '::' in shard paths and unusable
split names. Expected records are written out by hand from the trees each test builds."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from featurestore.errors import FeatureStoreError, SourceError
from featurestore.sources import WebDatasetSource, open_source
from featurestore.sources import local_files as local_files_module
from tests.images import random_image_bytes, write_manifest, write_random_image, write_webdataset_tar


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result or exception, failing the test if it takes longer than ``seconds``
    (a FIFO opened for reading blocks forever: the call runs in a daemon thread)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s (a read that blocks)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def read_reason(source: Any, record: Any) -> str:
    """The one-line reason reading ``record`` fails with (the test fails if it is read)."""
    with pytest.raises(SourceError) as info:
        within(10, lambda: source.read_bytes(record))
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------- directory symlinks


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    write_random_image(root / "cat" / "a.jpg", seed=1)
    write_random_image(root / "dog" / "b.jpg", seed=2)
    return root


def test_directory_symlink_loop_is_one_error_row_not_a_walk_around_the_loop(pets: Path) -> None:
    (pets / "cat" / "up").symlink_to("..")  # cat/up -> pets: cat/up/cat/up/... forever
    source = open_source(pets)
    records = {r.id: r for r in source.records()}
    assert sorted(records) == ["cat/a.jpg", "cat/up", "dog/b.jpg"]
    assert (records["cat/a.jpg"].label, records["dog/b.jpg"].label) == (0, 1)
    assert source.read_bytes(records["cat/a.jpg"]) == (pets / "cat" / "a.jpg").read_bytes()
    reason = read_reason(source, records["cat/up"])
    assert "loop" in reason and str(pets) in reason


def test_symlink_to_another_class_folder_is_not_followed_under_the_wrong_class(pets: Path) -> None:
    (pets / "cat" / "dogs").symlink_to(pets / "dog")  # dog images would be labelled "cat"
    source = open_source(pets)
    assert [(r.id, r.label) for r in source.records()] == [("cat/a.jpg", 0), ("cat/dogs", 0), ("dog/b.jpg", 1)]
    assert "not followed twice" in read_reason(source, source.records()[1])


def test_symlinks_into_the_tree_leave_files_at_their_own_place(pets: Path) -> None:
    write_random_image(pets / "cat" / "z" / "c.png", seed=3)
    write_random_image(pets / "dog" / "deep" / "d.png", seed=4)
    (pets / "cat" / "a_link").symlink_to(pets / "cat" / "z")  # walked before z itself, by name order
    (pets / "cat" / "puppies").symlink_to(pets / "dog" / "deep")  # a sub-folder of another class
    source = open_source(pets)
    assert [(r.id, r.label) for r in source.records()] == [
        ("cat/a.jpg", 0), ("cat/a_link", 0), ("cat/puppies", 0), ("cat/z/c.png", 0), ("dog/b.jpg", 1),
        ("dog/deep/d.png", 1)]
    assert "listed at its own place" in read_reason(source, source.records()[1])
    assert "listed at its own place" in read_reason(source, source.records()[2])


def test_symlinked_folders_are_followed_once_each(pets: Path, tmp_path: Path) -> None:
    extra = tmp_path / "elsewhere"
    write_random_image(extra / "c.png", seed=3)
    (pets / "cat" / "more").symlink_to(extra)
    (pets / "cat" / "again").symlink_to(extra)  # the same real folder a second time in one class
    (pets / "dog" / "more").symlink_to(extra)  # another class may link it too (its own rows)
    source = open_source(pets)
    ids = [r.id for r in source.records()]
    # "again" sorts before "more", so it is the walked one and "more" the repeat
    assert ids == ["cat/a.jpg", "cat/again/c.png", "cat/more", "dog/b.jpg", "dog/more/c.png"]
    by_id = {r.id: r for r in source.records()}
    assert source.read_bytes(by_id["cat/again/c.png"]) == (extra / "c.png").read_bytes()
    assert by_id["dog/more/c.png"].label == 1
    assert "not followed twice" in read_reason(source, by_id["cat/more"])


def test_top_level_symlink_to_the_root_is_not_a_class(pets: Path) -> None:
    (pets / "zoo").symlink_to(".")
    source = open_source(pets)
    assert source.classes == ["cat", "dog"]
    assert [(r.id, r.label) for r in source.records()] == [("cat/a.jpg", 0), ("dog/b.jpg", 1), ("zoo", -1)]
    assert "loop" in read_reason(source, source.records()[2])


def test_a_subfolder_that_cannot_be_listed_is_an_error_row(pets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(chmod cannot lock root out, so listing fails the way scandir fails on a 0o000 folder.)"""
    from featurestore.sources import folder as folder_module

    write_random_image(pets / "dog" / "locked" / "c.jpg", seed=3)
    real_scandir = folder_module._scandir_sorted

    def scandir(directory: str) -> list:
        if os.path.basename(directory) == "locked":
            raise PermissionError(13, "Permission denied", directory)
        return real_scandir(directory)

    monkeypatch.setattr(folder_module, "_scandir_sorted", scandir)
    source = open_source(pets)
    assert [(r.id, r.label) for r in source.records()] == [("cat/a.jpg", 0), ("dog/b.jpg", 1), ("dog/locked", 1)]
    assert read_reason(source, source.records()[2]) == "cannot list folder: Permission denied"


def test_dangling_and_looping_file_symlinks_are_error_rows(tmp_path: Path) -> None:
    write_random_image(tmp_path / "good.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "ping.jpg").symlink_to(tmp_path / "pong.jpg")
    (tmp_path / "pong.jpg").symlink_to(tmp_path / "ping.jpg")
    source = open_source(tmp_path)
    records = {r.id: r for r in source.records()}
    assert sorted(records) == ["gone.jpg", "good.jpg", "ping.jpg", "pong.jpg"]
    target = tmp_path / "missing.jpg"
    assert read_reason(source, records["gone.jpg"]) == f"dangling symlink (its target {target} does not exist)"
    assert read_reason(source, records["ping.jpg"]) == "symlink loop (too many levels of symbolic links)"


def test_looping_symlinks_in_a_class_tree_and_as_the_source_are_one_line(pets: Path, tmp_path: Path) -> None:
    (pets / "l1").symlink_to(pets / "l2")  # not image names: ignored, and no traceback listing them
    (pets / "l2").symlink_to(pets / "l1")
    (pets / "dog" / "x.jpg").symlink_to(pets / "dog" / "x.jpg")
    source = open_source(pets)
    assert [r.id for r in source.records()] == ["cat/a.jpg", "dog/b.jpg", "dog/x.jpg"]
    assert "symlink loop" in read_reason(source, source.records()[2])
    (tmp_path / "selfloop").symlink_to(tmp_path / "selfloop")
    with pytest.raises(SourceError, match="symlink loop"):
        open_source(tmp_path / "selfloop")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nothing.csv")
    with pytest.raises(SourceError, match="dangling symlink"):
        open_source(tmp_path / "dangling.csv")


# ---------- regular files only, size cap


def test_manifest_paths_that_are_not_regular_files_are_error_rows_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would wait for a writer forever
    (tmp_path / "folder.jpg").mkdir()
    good = write_random_image(tmp_path / "good.jpg")
    rows = [{"path": "pipe.jpg"}, {"path": "/dev/zero"}, {"path": "folder.jpg"}, {"path": "good.jpg"}]
    source = open_source(write_manifest(tmp_path / "m.csv", rows))
    records = {r.id: r for r in source.records()}
    assert read_reason(source, records["pipe.jpg"]) == "not a regular file (a FIFO)"
    assert read_reason(source, records["/dev/zero"]) == "not a regular file (a character device)"
    assert read_reason(source, records["folder.jpg"]) == "not a regular file (a directory)"
    assert within(10, lambda: source.read_bytes(records["good.jpg"])) == good.read_bytes()


def test_files_over_the_size_cap_are_error_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = write_random_image(tmp_path / "small.png", size=(8, 8))
    big = write_random_image(tmp_path / "big.png", size=(64, 64), seed=1)
    cap = (small.stat().st_size + big.stat().st_size) // 2
    monkeypatch.setattr(local_files_module, "MAX_IMAGE_BYTES", cap)
    source = open_source(tmp_path)
    small_record, big_record = sorted(source.records(), key=lambda r: r.id != "small.png")
    assert source.read_bytes(small_record) == small.read_bytes()
    size = big.stat().st_size
    assert read_reason(source, big_record) == f"file of {size} bytes is over the {cap} bytes image size cap"

    samples = write_webdataset_tar(tmp_path / "shards" / "s.tar", 2)
    shard = open_source(tmp_path / "shards" / "s.tar")
    sizes = [len(s["image"]) for s in samples]
    assert sizes[0] != sizes[1]
    monkeypatch.setattr(local_files_module, "MAX_IMAGE_BYTES", min(sizes))
    for record, sample in zip(shard.records(), samples, strict=True):
        if len(sample["image"]) == min(sizes):
            assert shard.read_bytes(record) == sample["image"]
        else:
            assert read_reason(shard, record) == (f"member of {len(sample['image'])} bytes is over the "
                                                  f"{min(sizes)} bytes image size cap")


def test_oversized_caption_or_label_member_makes_its_sample_an_error_row(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from featurestore.sources import webdataset

    monkeypatch.setattr(webdataset, "MAX_TEXT_BYTES", 16)
    shard = _tar(tmp_path / "s.tar", [("a.jpg", random_image_bytes(seed=1)), ("a.txt", b"short"),
                                      ("b.jpg", random_image_bytes(seed=2)), ("b.txt", b"x" * 17),
                                      ("c.jpg", random_image_bytes(seed=3)), ("c.cls", b"0" * 17)])
    source = open_source(shard)
    a, b, c = source.records()
    assert a.caption == "short" and source.read_bytes(a) == random_image_bytes(seed=1)
    assert read_reason(source, b) == "its .txt member is 17 bytes, over the 16 bytes cap"
    assert read_reason(source, c).startswith("its .cls member is 17 bytes") and c.label == -1


# ---------- labels


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_negative_labels_other_than_minus_one_are_refused(tmp_path: Path, suffix: str) -> None:
    rows = [{"path": "a.jpg", "label": 1}, {"path": "b.jpg", "label": -5}]
    with pytest.raises(SourceError, match="label -5 .* is not a class index"):
        open_source(write_manifest(tmp_path / f"m{suffix}", rows))
    rows[1]["label"] = -1  # -1 (like an empty cell) says "no label"
    source = open_source(write_manifest(tmp_path / f"n{suffix}", rows))
    assert [r.label for r in source.records()] == [1, -1]


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("cls", [b"-7", b"-1"])
def test_tar_negative_cls_is_refused(tmp_path: Path, cls: bytes) -> None:
    shard = _tar(tmp_path / "s.tar", [("a.jpg", random_image_bytes()), ("a.cls", cls)])
    with pytest.raises(SourceError, match="not a class index"):
        open_source(shard)


def test_tar_cls_outside_the_given_classes_is_refused(tmp_path: Path) -> None:
    shard = _tar(tmp_path / "s.tar", [("a.jpg", random_image_bytes()), ("a.cls", b"999"),
                                      ("b.jpg", random_image_bytes()), ("b.cls", b"1")])
    with pytest.raises(SourceError, match="999, outside the 2 given classes"):
        open_source(shard, classes=["cat", "dog"])
    # without a class list the label space is unknown: 999 stays class index 999
    assert [r.label for r in open_source(shard).records()] == [999, 1]


# ---------- truncated tar shards


def _member_offsets(shard: Path) -> dict[str, tuple[int, int, int]]:
    """member name -> (header offset, data offset, data size), read with tarfile from the intact shard."""
    with tarfile.open(shard) as tar:
        return {m.name: (m.offset, m.offset_data, m.size) for m in tar}


@pytest.mark.parametrize(
    ("cut_at", "last"),
    [
        # (where the file is cut, the sample the cut falls in: the samples before it are complete)
        (lambda o: o["00002.cls"][0], 2),  # at the .cls header of sample 2: its label is gone
        (lambda o: o["00002.cls"][0] + 100, 2),  # inside that header
        (lambda o: o["00002.jpg"][1] + 10, 2),  # inside the image data of sample 2
        (lambda o: o["00003.cls"][1] + 512, 3),  # after the last member, before the end-of-archive blocks
    ],
    ids=["cls-header", "inside-header", "inside-image", "end-blocks"],
)
def test_truncated_tar_shard_is_recorded_and_a_cut_cls_never_becomes_no_label(tmp_path: Path, cut_at,
                                                                             last: int) -> None:
    intact = tmp_path / "intact" / "00000.tar"
    samples = write_webdataset_tar(intact, 4, labels=[3, 1, 2, 0])
    cut = cut_at(_member_offsets(intact))
    shard = tmp_path / "00000.tar"
    shard.write_bytes(intact.read_bytes()[:cut])

    source = open_source(shard)
    records = {r.id: r for r in source.records()}
    good = [f"00000.tar/{s['key']}" for s in samples[:last]]
    suspect = f"00000.tar/{samples[last]['key']}"  # the sample at the cut: members may be missing
    assert sorted(records) == sorted(["00000.tar", *good, suspect])
    for s, rid in zip(samples, good, strict=False):
        assert records[rid].label == s["label"]
        assert source.read_bytes(records[rid]) == s["image"]
    assert "truncated tar shard" in read_reason(source, records[suspect])
    reason = read_reason(source, records["00000.tar"])
    assert reason.startswith("truncated tar shard (") and "samples after the cut are missing" in reason


def test_intact_shards_have_no_truncation_row(tmp_path: Path) -> None:
    write_webdataset_tar(tmp_path / "00000.tar", 3, labels=[0, 1, 2])
    assert [r.id for r in open_source(tmp_path / "00000.tar").records()] == [
        "00000.tar/00000", "00000.tar/00001", "00000.tar/00002"]


# ---------- '::' in shard paths and member names


def test_shard_path_holding_the_member_separator_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "a::b"
    write_webdataset_tar(folder / "00000.tar", 1)
    with pytest.raises(SourceError, match="contains '::'"):
        open_source(folder / "00000.tar")


def test_member_names_holding_the_separator_read_back(tmp_path: Path) -> None:
    from featurestore.sources.webdataset import split_member_path

    image = random_image_bytes(seed=4)
    shard = _tar(tmp_path / "s.tar", [("x::y.jpg", image), ("x::y.txt", b"a caption")])
    source = open_source(shard)
    (record,) = source.records()
    assert record.path == f"{shard}::x::y.jpg" and record.caption == "a caption"
    assert split_member_path(record.path) == (str(shard), "x::y.jpg")
    assert source.read_bytes(record) == image
    assert isinstance(source, WebDatasetSource)


# ---------- split names


@pytest.mark.parametrize("name", ["a|b", ".", "..", "a/b", "../x", "", " train", "a\nb", "x" * 201, "a\\b"])
def test_unusable_split_names_are_refused(name: str) -> None:
    from featurestore.store.split_names import SplitNameError, check_split_name

    with pytest.raises(SplitNameError) as info:
        check_split_name(name)
    assert isinstance(info.value, FeatureStoreError) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["train", "val-1", "imagenet_v2.matched", "Images 2024", "é"])
def test_plain_split_names_pass(name: str) -> None:
    from featurestore.store.split_names import check_split_name

    assert check_split_name(name) == name


def test_store_and_shard_folder_refuse_bad_split_names(tmp_path: Path) -> None:
    from featurestore.extract.sharded import shard_dir
    from featurestore.store.feature_store import FeatureStore
    from featurestore.store.split_names import SplitNameError

    with FeatureStore(tmp_path / "s.h5", mode="a") as store:
        with pytest.raises(SplitNameError):
            store.add_rows("a|b", ["x"], ["x.jpg"], [0])
        store.add_rows("train", ["x"], ["x.jpg"], [0])
        assert store.splits() == ["train"]
    with pytest.raises(SplitNameError):
        shard_dir(tmp_path / "s.h5", "..")
    assert shard_dir(tmp_path / "s.h5", "train") == Path(f"{tmp_path / 's.h5'}.shards") / "train"
