"""Issue 28, item 11 (the smaller faults): a planted lock-note link, non-UTF-8 file names,
labels past int64, model names that cannot exist, crafted stores that crashed `fs verify`,
and tar members that are links or devices. Each refusal is one stderr line and exit 2; each
unreadable input is an error row whose reason is written out here by hand."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from featurestore.errors import FeatureStoreError, SourceError
from featurestore.sources import WebDatasetSource, open_source
from featurestore.store.feature_store import FeatureStore
from featurestore.store.verify import verify_store
from featurestore.store.writer_lock import WriterLock
from tests.cli_runner import run
from tests.fault_injection import run_forked
from tests.images import random_image_bytes, write_manifest, write_random_image, write_webdataset_tar
from tests.store_fixtures import make_feature_store

ENCODER = "toy/enc"


def _one_line_refusal(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------- the lock note never follows a planted link


@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_planted_lock_note_link_leaves_its_target_untouched(tmp_path: Path, plant: str) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("precious content\n")
    store = tmp_path / "s.h5"
    note = Path(f"{store}.lock")
    if plant == "symlink":
        note.symlink_to(victim)
    else:
        os.link(victim, note)
    lock = WriterLock(store)
    lock.acquire()
    try:
        assert lock.held
    finally:
        lock.release()
    assert victim.read_text() == "precious content\n"
    assert note.is_symlink() == (plant == "symlink")


def test_plain_lock_note_still_names_the_writer(tmp_path: Path) -> None:
    store = tmp_path / "s.h5"
    lock = WriterLock(store)
    lock.acquire()
    try:
        assert Path(f"{store}.lock").read_text() == str(os.getpid())
    finally:
        lock.release()
    assert Path(f"{store}.lock").read_text() == ""


# ---------- non-UTF-8 file names


def _tree_with_latin1_name(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "pets"
    write_random_image(root / "cat" / "a.jpg", seed=1)
    write_random_image(root / "dog" / "b.jpg", seed=2)
    bad = os.fsencode(root / "dog") + b"/caf\xe9.jpg"  # Latin-1 "café.jpg": not valid UTF-8
    with open(bad, "wb") as f:
        f.write((root / "dog" / "b.jpg").read_bytes())
    return root, bad


def test_non_utf8_file_name_is_an_error_row_of_the_folder_source(tmp_path: Path) -> None:
    root, _ = _tree_with_latin1_name(tmp_path)
    source = open_source(root)
    records = {r.id: r for r in source.records()}
    assert sorted(records) == ["cat/a.jpg", "dog/b.jpg", "dog/caf\\xe9.jpg"]
    bad = records["dog/caf\\xe9.jpg"]
    assert bad.path == f"{root}/dog/caf\\xe9.jpg" and bad.label == 1
    assert bad.id.encode("utf-8") and bad.path.encode("utf-8")  # storable in the store's UTF-8 strings
    with pytest.raises(SourceError, match="not valid UTF-8"):
        source.read_bytes(bad)
    assert source.read_bytes(records["dog/b.jpg"]) == (root / "dog" / "b.jpg").read_bytes()


def test_non_utf8_file_name_is_an_error_row_of_fs_extract(tmp_path: Path, fs_args, capsys) -> None:
    root, _ = _tree_with_latin1_name(tmp_path)
    store = tmp_path / "s.h5"
    code, out, err = run(["extract", root, "--store", store, *fs_args, "--workers", "0", "--quiet"], capsys)
    assert code == 0, err
    assert "3 rows" in out and "1 unreadable" in out
    code, out, err = run(["info", "--store", store], capsys)
    assert code == 0, err
    assert "1 unreadable: file name is not valid UTF-8" in out and "(e.g. dog/caf\\xe9.jpg)" in out


def test_non_utf8_class_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_random_image(root / "cat" / "a.jpg", seed=1)
    folder = os.fsencode(root) + b"/chi\xe9n"
    os.mkdir(folder)
    with open(folder + b"/b.jpg", "wb") as f:
        f.write((root / "cat" / "a.jpg").read_bytes())
    with pytest.raises(SourceError, match=r"class folder name\(s\) \['chi\\\\xe9n'\]"):
        open_source(root)


# ---------- labels past int64


def test_manifest_label_past_int64_is_one_line(tmp_path: Path, fs_args, capsys) -> None:
    write_random_image(tmp_path / "a.jpg", seed=1)
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "a.jpg", "label": str(2**63)}])
    with pytest.raises(SourceError, match=r"label 9223372036854775808 .* too large"):
        open_source(manifest)
    code, _, err = run(["extract", manifest, "--store", tmp_path / "s.h5", *fs_args, "--workers", "0", "-q"],
                       capsys)
    assert "too large for a class index" in _one_line_refusal(code, err)
    # the largest int64 is still a label
    write_manifest(tmp_path / "ok.csv", [{"path": "a.jpg", "label": str(2**63 - 1)}])
    assert [r.label for r in open_source(tmp_path / "ok.csv").records()] == [2**63 - 1]


def test_tar_cls_label_past_int64_is_refused(tmp_path: Path) -> None:
    shard = tmp_path / "00000.tar"
    write_webdataset_tar(shard, 1, labels=[0])
    data = shard.read_bytes()
    patched = tmp_path / "p.tar"
    with tarfile.open(shard) as src, tarfile.open(patched, "w") as dst:
        for info in src:
            content = src.extractfile(info).read()
            if info.name.endswith(".cls"):
                content = str(2**64).encode()
                info.size = len(content)
            dst.addfile(info, io.BytesIO(content))
    assert data
    with pytest.raises(SourceError, match="too large for a class index"):
        WebDatasetSource([patched])


# ---------- model names


BAD_NAMES = ["", "a/b", "a\nb", "../x", "..", ".hidden", "-x", "a,b", "a|b", "a\\b", " x", "x ", "a\tb", "a\x00b",
             "x" * 201]


def _toy_store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    x = (np.eye(3, 8)[y] * 3 + rng.normal(size=(12, 8))).astype(np.float32)
    return make_feature_store(path, {"train": x, "test": x}, ENCODER, labels={"train": y, "test": y},
                              classes={"train": ["a", "b", "c"], "test": ["a", "b", "c"]})


@pytest.mark.parametrize("name", BAD_NAMES)
def test_save_model_refuses_a_name_that_cannot_exist(tmp_path: Path, name: str) -> None:
    store = _toy_store(tmp_path / "s.h5")
    with FeatureStore(store, mode="a") as writer:
        with pytest.raises(FeatureStoreError) as info:
            writer.save_model(name, {"w": np.ones(3)}, {"kind": "test"})
        assert "\n" not in str(info.value)
        writer.save_model("fine-name_1.v2", {"w": np.ones(3)}, {"kind": "test"})
    with FeatureStore(store) as reader:
        assert reader.models() == ["fine-name_1.v2"]
        assert list(reader.file["models"]) == ["fine-name_1.v2"]


@pytest.mark.parametrize("name", ["", "a/b", "a\nb", "../x"])
def test_fs_solve_save_refuses_a_bad_name_in_one_line(tmp_path: Path, name: str, capsys) -> None:
    store = _toy_store(tmp_path / "s.h5")
    code, out, err = run(["solve", "knn", "--store", store, "--encoder", ENCODER, "--train", "train", "--test", "test",
                          "--save", name, "-q"], capsys)
    assert "model name" in _one_line_refusal(code, err)
    with FeatureStore(store) as reader:
        assert reader.models() == []


def test_fs_ensemble_save_refuses_an_empty_name(tmp_path: Path, capsys) -> None:
    store = _toy_store(tmp_path / "s.h5")
    code, _, err = run(["solve", "knn", "--store", store, "--encoder", ENCODER, "--train", "train", "--save", "m",
                        "-q"], capsys)
    assert code == 0, err
    code, _, err = run(["ensemble", "--store", store, "--models", "m", "--weights", "1", "--save", ""], capsys)
    assert "model name cannot be empty" in _one_line_refusal(code, err)
    with FeatureStore(store) as reader:
        assert reader.models() == ["m"]


# ---------- crafted stores: fs verify reports damage instead of failing itself


def _set_n_rows(value: object) -> Callable[[h5py.File], None]:
    def craft(f: h5py.File) -> None:
        del f["splits/train/n_rows"]
        f["splits/train/n_rows"] = value
    return craft


def _set_format_version(value: object) -> Callable[[h5py.File], None]:
    def craft(f: h5py.File) -> None:
        f.attrs["format_version"] = value
    return craft


def _nan_labels(f: h5py.File) -> None:
    del f["splits/train/labels"]
    f.create_dataset("splits/train/labels", data=np.full(12, np.nan), maxshape=(None,))


def _encoder_attr(name: str, value: str) -> Callable[[h5py.File], None]:
    def craft(f: h5py.File) -> None:
        f["encoders/toy|enc"].attrs[name] = value
    return craft


def _sparse_model(f: h5py.File) -> None:
    f.create_dataset("models/m/w", shape=(10**12,), dtype=np.int64, chunks=(1024,), maxshape=(None,))


def _bad_model_meta(f: h5py.File) -> None:
    f.create_group("models/m").attrs["meta"] = "{broken"


CRAFTED = {
    "n_rows past the columns": (_set_n_rows(np.int64(10**12)),
                                "split 'train': column ids has 12 of 1000000000000 rows"),
    "negative n_rows": (_set_n_rows(np.int64(-5)), "split 'train': n_rows is -5, a negative count"),
    "string n_rows": (_set_n_rows("abc"), "split 'train': n_rows is () object, not an integer count"),
    "NaN n_rows": (_set_n_rows(np.float64(np.nan)), "split 'train': n_rows is () float64, not an integer count"),
    "array n_rows": (_set_n_rows(np.arange(3)), "split 'train': n_rows is (3,) int64, not an integer count"),
    "string format_version": (_set_format_version("abc"),
                              "cannot be opened as a store: its format_version attribute is 'abc', not an integer"),
    "NaN format_version": (_set_format_version(np.nan),
                           "cannot be opened as a store: its format_version attribute is 'nan', not an integer"),
    "NaN labels": (_nan_labels, "split 'train': labels are float64, not integer class indices"),
    "bad preprocess JSON": (_encoder_attr("preprocess", "{not json"),
                            "encoder 'toy/enc': its provenance attributes cannot be read (Expecting property name"),
    "bad model meta JSON": (_bad_model_meta, "model 'm': its metadata cannot be read (Expecting property name"),
    "sparse array of absurd shape": (_sparse_model, "/models/m/w: shape (1000000000000,) (8000000000000 bytes) "
                                                    "held in 0 stored bytes: a crafted or damaged shape, not read"),
}


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _toy_store(tmp_path_factory.mktemp("verify") / "base.h5")


@pytest.mark.parametrize("case", list(CRAFTED))
def test_verify_reports_a_crafted_store_as_damage(toy_base: Path, tmp_path: Path, case: str, capsys) -> None:
    craft, expected = CRAFTED[case]
    store = tmp_path / "s.h5"
    shutil.copy(toy_base, store)
    with h5py.File(store, "a") as f:
        craft(f)
    report = verify_store(store)
    assert not report.ok
    assert any(p.startswith(expected) for p in report.problems), report.problems
    code, _, err = run(["verify", "--store", store], capsys)
    assert "is damaged" in _one_line_refusal(code, err)


def test_verify_reads_only_committed_rows_of_a_sparse_column(toy_base: Path, tmp_path: Path) -> None:
    """A column resized far past n_rows (as by a crafted store, or a huge append killed before its
    commit) is read up to n_rows only: verify finishes at once and the store is fine."""
    store = tmp_path / "s.h5"
    shutil.copy(toy_base, store)
    with h5py.File(store, "a") as f:
        f["splits/train/labels"].resize((10**12,))
    report = verify_store(store)
    assert report.ok, report.problems
    assert report.bytes_read < 10**6


def test_verify_still_passes_an_intact_store(toy_base: Path) -> None:
    report = verify_store(toy_base)
    assert report.ok and not report.problems and report.datasets > 10


# ---------- tar members that are links or devices


def _tar_with_odd_members(path: Path) -> None:
    good = random_image_bytes("jpg", (40, 36), 1)
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("00000.jpg", good)
        add("00000.cls", b"1")
        add("00001.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("00002.jpg", kind=tarfile.LNKTYPE, link="00000.jpg")
        add("00003.jpg", kind=tarfile.CHRTYPE)
        add("00004.jpg", good)
        add("00004.cls", kind=tarfile.SYMTYPE, link="00000.cls")  # its label would vanish unsaid
        add("00005.jpg", kind=tarfile.FIFOTYPE)
        add("sub", kind=tarfile.DIRTYPE)  # a folder member is normal: no row


def test_tar_link_and_device_members_are_error_rows(tmp_path: Path) -> None:
    shard = tmp_path / "00000.tar"
    _tar_with_odd_members(shard)
    source = WebDatasetSource([shard])
    records = {r.id: r for r in source.records()}
    assert sorted(records) == [f"00000.tar/0000{i}" for i in range(6)]
    assert records["00000.tar/00000"].label == 1
    assert source.read_bytes(records["00000.tar/00000"]) == random_image_bytes("jpg", (40, 36), 1)
    reasons = {}
    for key in ("00001", "00002", "00003", "00004", "00005"):
        with pytest.raises(SourceError) as info:
            source.read_bytes(records[f"00000.tar/{key}"])
        reasons[key] = str(info.value)
    assert reasons == {
        "00001": "its member 00001.jpg is a symlink (to /etc/passwd), not a regular file",
        "00002": "its member 00002.jpg is a hard link (to 00000.jpg), not a regular file",
        "00003": "its member 00003.jpg is a character device, not a regular file",
        "00004": "its member 00004.cls is a symlink (to 00000.cls), not a regular file",
        "00005": "its member 00005.jpg is a FIFO, not a regular file",
    }


def test_tar_link_members_are_error_rows_of_fs_extract(tmp_path: Path, fs_args, capsys) -> None:
    shard = tmp_path / "00000.tar"
    _tar_with_odd_members(shard)
    store = tmp_path / "s.h5"
    code, out, err = run(["extract", shard, "--store", store, *fs_args, "--workers", "0", "-q"], capsys)
    assert code == 0, err
    assert "6 rows" in out and "5 unreadable" in out
    code, out, err = run(["info", "--store", store], capsys)
    assert "1 unreadable: its member 00001.jpg is a symlink (to /etc/passwd), not a regular file" in out


# ---------- item 6: the crash sweep's children are waited for, not timed


def _busy(seconds: float) -> int:
    end = time.process_time() + seconds  # CPU time: on a loaded machine it takes longer on the clock
    while time.process_time() < end:
        pass
    return 0


def test_fault_injection_waits_for_a_working_child_past_its_timeout() -> None:
    """A child that computes for longer than `timeout` (a loaded machine: the crash sweep's
    rerun or reader taking more than its 30-120 s) is waited for, not killed as hung."""
    assert run_forked(lambda: _busy(1.5), timeout=0.5) == 0


def test_fault_injection_still_kills_a_blocked_child() -> None:
    def blocked() -> int:
        read_end, _ = os.pipe()
        os.read(read_end, 1)  # nobody writes: blocked for ever, no CPU used
        return 0

    start = time.monotonic()
    assert run_forked(blocked, timeout=0.5) == -signal.SIGALRM
    assert time.monotonic() - start < 60
