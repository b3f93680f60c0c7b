"""Store durability rules, one test per rule (issue 17 items 1, 3, 6, 12 and issue 10 item 3):
append-only split columns, readers that recover from a dead writer and wait for a live one,
one lock per file whatever its name, an empty file from a kill before the first flush, the
views seed, and derived writes that leave the split's error reasons alone."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from featurestore.errors import ProvenanceError, StoreEmptyError, StoreLockedError
from featurestore.store.feature_store import FeatureStore
from featurestore.store.superblock import consistency_flags
from tests.store_fixtures import make_feature_store

INFO = {"model": "m", "weights": "w", "embed_dim": 4}


def _chunk_offsets(path, column):
    with h5py.File(path, "r", locking=False) as f:
        ds = f[f"splits/train/{column}"]
        return [ds.id.get_chunk_info(i).byte_offset for i in range(ds.id.get_num_chunks())]


def test_appending_rows_never_moves_committed_chunks(tmp_path):
    """A compressed string chunk changes size when rows are added and HDF5 moves it, freeing
    the old space; a kill before the flush left committed ids unreadable (issue 17 item 1)."""
    path = tmp_path / "s.h5"
    make_feature_store(path, {"train": np.ones((5, 4))})
    before = {c: _chunk_offsets(path, c) for c in ("ids", "paths", "errors", "captions")}
    make_feature_store(path, {"train": np.ones((9, 4))})  # 4 new ids appended to the same chunk
    with h5py.File(path, "r", locking=False) as f:
        assert all(f[f"splits/train/{c}"].compression is None for c in before)
    for column, offsets in before.items():
        assert _chunk_offsets(path, column)[: len(offsets)] == offsets, column
    with FeatureStore(path) as reader:
        assert list(reader.ids("train")) == [f"train-{i:05d}" for i in range(9)]


def test_a_version_1_split_is_copied_to_the_append_only_layout_on_append(tmp_path):
    path = tmp_path / "v1.h5"
    make_feature_store(path, {"train": np.ones((3, 4))})
    with h5py.File(path, "a", locking=False) as f:  # rewrite the columns as version 1 made them
        f.attrs["format_version"] = 1
        for column in ("ids", "paths"):
            values = f[f"splits/train/{column}"][:]
            del f[f"splits/train/{column}"]
            f.create_dataset(f"splits/train/{column}", data=values, maxshape=(None,), chunks=(4096,),
                             compression="gzip", dtype=h5py.string_dtype("utf-8"))
    with FeatureStore(path) as reader:  # read as it is
        assert list(reader.ids("train")) == ["train-00000", "train-00001", "train-00002"]
    make_feature_store(path, {"train": np.ones((4, 4))})
    with h5py.File(path, "r", locking=False) as f:
        assert f["splits/train/ids"].compression is None
    with FeatureStore(path) as reader:
        assert list(reader.ids("train")) == [f"train-{i:05d}" for i in range(4)]
        assert next(iter(reader.paths("train"))) == "train/train-00000.jpg"


def _kill_in_non_swmr_phase(path):
    code = ("import os\n"
            "from featurestore.store.feature_store import FeatureStore\n"
            f"s = FeatureStore({str(path)!r}, mode='a')\n"
            "s._require_writer()\n"  # the non-SWMR phase every object creation goes through
            "s.file.create_group('half-made')\n"
            "s.file.flush()\n"
            "os.kill(os.getpid(), 9)\n")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL


def test_a_reader_recovers_from_a_writer_killed_outside_swmr_mode(tmp_path):
    """Issue 17 item 3: the dead writer's "open for write" mark blocked every reader."""
    path = make_feature_store(tmp_path / "s.h5", {"train": np.arange(12.0).reshape(3, 4)})
    _kill_in_non_swmr_phase(path)
    assert consistency_flags(path) != 0
    with FeatureStore(path) as reader:
        np.testing.assert_array_equal(reader.features("test/enc", "train"), np.arange(12.0).reshape(3, 4))
    assert consistency_flags(path) == 0


def test_a_live_reader_waits_for_a_writers_non_swmr_phase(tmp_path):
    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((3, 4))})
    code = ("import sys, time\n"
            "from featurestore.store.feature_store import FeatureStore\n"
            f"s = FeatureStore({str(path)!r}, mode='a')\n"
            "s._require_writer()\n"
            "print('non-swmr', flush=True)\n"
            "time.sleep(1.5)\n"
            "s._idle()\n"
            "time.sleep(30)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "non-swmr"
        start = time.monotonic()
        with FeatureStore(path) as reader:  # waits until the writer is back in SWMR mode
            assert reader.n_rows("train") == 3
        assert writer.poll() is None and time.monotonic() - start > 0.5
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_links_to_one_store_share_its_lock(tmp_path, link):
    """Issue 17 item 6: the lock was on the typed path, so a link let two writers in."""
    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((3, 4))})
    other = tmp_path / "other-name.h5"
    (os.symlink if link == "symlink" else os.link)(path, other)
    with FeatureStore(path, mode="a"):
        code = ("from featurestore.store.feature_store import FeatureStore\n"
                f"FeatureStore({str(other)!r}, mode='a')\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "StoreLockedError" in out.stderr
        with pytest.raises(StoreLockedError):
            FeatureStore(other, mode="a")
        with FeatureStore(other) as reader:
            assert reader.splits() == ["train"]
    FeatureStore(other, mode="a").close()


def test_a_file_from_a_kill_before_the_first_flush_is_an_empty_store(tmp_path):
    """Issue 17 item 12: a 48-byte file (a superblock, nothing else) was refused forever."""
    path = tmp_path / "s.h5"
    code = ("import os, h5py\n"
            f"f = h5py.File({str(path)!r}, 'w', libver='latest', locking=False)\n"
            "os.kill(os.getpid(), 9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert os.path.getsize(path) <= 2048
    with pytest.raises(StoreEmptyError, match="empty store"):
        FeatureStore(path)
    make_feature_store(path, {"train": np.ones((2, 4))})
    with FeatureStore(path) as reader:
        assert reader.n_rows("train") == 2
    other = tmp_path / "notes.h5"
    other.write_text("my notes")  # a small file that is not HDF5 is never taken for an empty store
    with pytest.raises(Exception, match="not"):
        FeatureStore(other, mode="a")
    assert other.read_text() == "my notes"


def test_views_of_another_seed_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    with FeatureStore(path, mode="a") as store:
        store.add_rows("train", ["a", "b"], ["a", "b"], [0, 1])
        store.ensure_encoder("m/w", INFO)
        store.prepare_features("m/w", "train", 4, views=2, seed=3)
        with pytest.raises(ProvenanceError, match="--seed 3"):
            store.prepare_features("m/w", "train", 4, views=2, seed=4)
        store.prepare_features("m/w", "train", 4, views=2, seed=3)


def test_derived_features_keep_the_splits_error_reasons(tmp_path):
    """Issue 10 item 3: put_features rewrote every invalid row's reason as "unreadable image"."""
    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((4, 4))}, invalid={"train": [1]})
    with FeatureStore(path) as reader:
        before = reader.errors("train")
        valid = reader.valid("train")
    assert before[0]["reason"] == "unreadable image (test fixture)"
    with FeatureStore(path, mode="a") as store:
        store.put_features("test/enc+x", "train", np.full((4, 4), 2.0, dtype=np.float32),
                           {"model": "m", "weights": "w"})
        store.put_features("test/enc+x", "train", np.full((4, 4), 3.0, dtype=np.float32),
                           {"model": "m", "weights": "w"})
    with FeatureStore(path) as reader:
        assert reader.errors("train") == before
        np.testing.assert_array_equal(reader.valid("train"), valid)
        np.testing.assert_array_equal(reader.features("test/enc+x", "train"), np.full((3, 4), 3.0))


def test_replaced_objects_leave_nothing_behind(tmp_path):
    """Saves switch in whole (journaled, or through /.staging); nothing is left in /.staging
    afterwards and listings never show staged objects."""
    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((2, 4))})
    with FeatureStore(path, mode="a") as store:
        for value in (1.0, 2.0):
            store.save_model("m", {"w": np.full(3, value)}, {"v": value})
            store.put_text_bank("test/enc", "bank", np.full((2, 4), value), ["a", "b"])
            store.put_logits("ext", "train", np.full((2, 3), value))
    with FeatureStore(path) as reader:
        assert reader.models() == ["m"] and reader.text_banks("test/enc") == ["bank"]
        arrays, meta = reader.load_model("m")
        assert meta == {"v": 2.0} and arrays["w"].tolist() == [2.0] * 3
        assert reader.text("test/enc", "bank").tolist() == [[2.0] * 4] * 2
        assert ".staging" not in reader.file or len(reader.file[".staging"]) == 0


def test_every_kill_point_of_a_model_save_leaves_old_or_new(tmp_path):
    """Issue 17 item 2: deleting the old model before writing the new one let new arrays reuse
    the old space while the flushed metadata still pointed there (5 of 8 kill points gave a
    silently wrong model before the fix)."""
    from tests.fault_injection import KILLED, run_forked

    rng = np.random.default_rng(0)
    old = {f"a{i}": rng.normal(size=(50, 64)) for i in range(3)}
    new = {f"a{i}": rng.normal(size=(60, 64)) for i in range(3)}
    base = tmp_path / "base.h5"
    with FeatureStore(base, mode="a") as store:
        store.save_model("m", old, {"v": "old"})
    k, killed = 0, 0
    while True:
        k += 1
        path = tmp_path / f"k{k}.h5"
        path.write_bytes(base.read_bytes())

        def save(path=path):
            with FeatureStore(path, mode="a") as store:
                store.save_model("m", new, {"v": "new"})
            return 0

        code = run_forked(save, kill_at=k)
        with FeatureStore(path) as reader:
            arrays, meta = reader.load_model("m")
        expected = old if meta["v"] == "old" else new
        assert arrays.keys() == expected.keys() and all(np.array_equal(arrays[n], expected[n]) for n in expected), k
        if code == 0:
            break
        assert code == KILLED
        killed += 1
    assert killed >= 5 and meta["v"] == "new"


def test_verify_reports_damage_and_repairs_a_killed_writers_mark(tmp_path):
    from featurestore.store.verify import verify_store

    path = make_feature_store(tmp_path / "s.h5", {"train": np.arange(4096 * 4, dtype=np.float32).reshape(-1, 4)})
    report = verify_store(path)
    assert report.ok and report.datasets > 5, report.problems
    _kill_in_non_swmr_phase(path)
    report = verify_store(path)
    assert report.ok and any("killed writer" in note for note in report.notes)
    assert verify_store(path, repair=True).ok and consistency_flags(path) == 0
    with h5py.File(path, "r", locking=False) as f:
        offset = f["encoders/test|enc/images/train"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 100)
        byte = f.read(1)[0]
        f.seek(offset + 100)
        f.write(bytes([byte ^ 0x10]))
    report = verify_store(path)
    assert not report.ok and "images/train" in report.problems[0]
    from featurestore.errors import StoreDamagedError

    with FeatureStore(path) as reader, pytest.raises(StoreDamagedError, match="checksum"):
        reader.features("test/enc", "train")


@pytest.mark.slow
def test_readers_polling_during_writes_see_committed_rows_only(tmp_path):
    """A reader polls while a writer appends checksummed feature chunks (rewriting partial
    chunks) and replaces a saved model now and then (leaving SWMR mode): every poll returns
    the committed rows with their exact values, no checksum race surfaces as an error."""
    from featurestore.store.feature_store import _checked_read

    path = tmp_path / "s.h5"
    n, d = 3000, 32
    X = (np.arange(n)[:, None] + np.zeros((1, d))).astype(np.float32)
    with FeatureStore(path, mode="a") as store:
        store.add_rows("train", [f"r{i}" for i in range(n)], [f"p{i}" for i in range(n)], [0] * n)
        store.ensure_encoder("e/w", {"model": "m", "weights": "w", "embed_dim": d})
        store.prepare_features("e/w", "train", d)
    code = f"""
import numpy as np
from featurestore.store.feature_store import FeatureStore
n, d = {n}, {d}
X = (np.arange(n)[:, None] + np.zeros((1, d))).astype(np.float32)
with FeatureStore({str(path)!r}, mode="a") as s:
    for start in range(0, n, 16):
        r = np.arange(start, min(n, start + 16))
        s.write_features("e/w", "train", r, X[r], np.ones(len(r), bool), [""] * len(r))
        if start % 400 == 0:
            s.save_model("m", {{"w": np.full(100, start, dtype=float)}}, {{"at": start}})
"""
    writer = subprocess.Popen([sys.executable, "-c", code])
    polls = 0
    with FeatureStore(path) as reader:
        while writer.poll() is None or polls == 0:
            done = reader.done("e/w", "train")
            features = _checked_read(reader._get(reader._image_paths("e/w", "train")[0]), slice(0, n))
            rows = np.flatnonzero(done)
            np.testing.assert_array_equal(features[rows, 0], rows.astype(np.float32))
            polls += 1
    assert writer.wait() == 0 and polls > 1
    with FeatureStore(path) as reader:
        np.testing.assert_array_equal(reader.features("e/w", "train"), X)
        assert reader.load_model("m")[1] == {"at": 2800}
