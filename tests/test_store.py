"""The HDF5 store's rules: commit markers, one writer, provenance checks, crash recovery."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from featurestore.errors import NotFoundError, ProvenanceError, StoreFormatError, StoreLockedError
from featurestore.store.feature_store import FeatureStore
from featurestore.store.superblock import clear_consistency_flags, consistency_flags, lookup3

INFO = {"model": "m", "weights": "w", "embed_dim": 4}


def _store_with_rows(path, n=5, dim=4):
    store = FeatureStore(path, mode="a")
    store.add_rows("train", [f"id{i}" for i in range(n)], [f"/p{i}" for i in range(n)], list(range(n)),
                   classes=[f"c{i}" for i in range(n)])
    store.ensure_encoder("m/w", {**INFO, "embed_dim": dim})
    store.prepare_features("m/w", "train", dim)
    return store


def test_rows_are_data_only_once_committed(tmp_path):
    path = tmp_path / "s.h5"
    with _store_with_rows(path) as store:
        store.begin_appending()
        store.write_features("m/w", "train", np.array([0, 1, 3]), np.arange(12.0).reshape(3, 4),
                             np.array([True, True, False]), ["", "", "cannot identify image file"])
        reader = FeatureStore(path)
        assert reader.done("m/w", "train").tolist() == [True, True, False, True, False]
        with pytest.raises(NotFoundError, match="3 of 5 rows"):
            reader.features("m/w", "train")
        store.write_features("m/w", "train", np.array([2, 4]), np.ones((2, 4)), np.ones(2, bool), ["", ""])
        feats = reader.features("m/w", "train")  # the reader sees the new chunk without reopening
        assert feats.shape == (4, 4)
        np.testing.assert_array_equal(reader.ids("train"), ["id0", "id1", "id2", "id4"])
        np.testing.assert_array_equal(reader.labels("train"), [0, 1, 2, 4])
        np.testing.assert_array_equal(feats[:2], np.arange(8.0).reshape(2, 4))
        assert reader.errors("train") == [{"id": "id3", "path": "/p3", "reason": "cannot identify image file"}]
        assert len(reader.ids("train", valid_only=False)) == 5
        reader.close()


def test_add_rows_keeps_existing_ids_and_appends_new(tmp_path):
    with _store_with_rows(tmp_path / "s.h5", n=3) as store:
        rows = store.add_rows("train", ["id9", "id1", "id8"], ["/9", "/1", "/8"], [0, 1, 2])
        assert rows.tolist() == [3, 1, 4]
        assert store.n_rows("train") == 5
        with pytest.raises(ValueError, match="duplicate id 'x'"):
            store.add_rows("train", ["x", "y", "x"], ["a", "b", "c"], [0, 0, 0])
        assert store.n_rows("train") == 5


def test_second_writer_is_refused_and_readers_are_not(tmp_path):
    path = tmp_path / "s.h5"
    with _store_with_rows(path):
        code = ("from featurestore.store.feature_store import FeatureStore\n"
                f"FeatureStore({str(path)!r}, mode='a')\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0 and "StoreLockedError" in out.stderr and "one writer" in out.stderr
        with pytest.raises(StoreLockedError):
            FeatureStore(path, mode="a")
        with FeatureStore(path) as reader:
            assert reader.splits() == ["train"]
    FeatureStore(path, mode="a").close()  # released on close


def test_a_failed_open_releases_the_writer_lock(tmp_path, monkeypatch):
    """A writer whose open fails after taking the lock (here: HDF5 refusing to enter SWMR mode, as
    a Dask shard task met it once) closes the file and releases the lock, so the same process can
    open the store again: a worker retrying its task was otherwise refused by its own lock."""
    path = tmp_path / "s.h5"
    _store_with_rows(path).close()
    failures = iter([RuntimeError("Unable to start swmr writing (named datatypes and/or attributes opened)")])
    enter_swmr = FeatureStore._idle

    def idle_failing_once(self):
        error = next(failures, None)
        if error is not None:
            raise error
        enter_swmr(self)

    monkeypatch.setattr(FeatureStore, "_idle", idle_failing_once)
    with pytest.raises(RuntimeError, match="swmr"):
        FeatureStore(path, mode="a")
    code = f"from featurestore.store.feature_store import FeatureStore\nFeatureStore({str(path)!r}, mode='a').close()\n"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    with FeatureStore(path, mode="a") as store:
        assert store.n_rows("train") == 5


def test_a_killed_writers_forked_child_does_not_keep_the_lock(tmp_path):
    """A DataLoader worker forked by a writer outlives a SIGKILLed parent for a while; it must
    not hold the writer lock (flock is shared by forked children), or the resume is refused."""
    path = tmp_path / "s.h5"
    code = ("import os, sys, time\n"
            "from featurestore.store.feature_store import FeatureStore\n"
            f"store = FeatureStore({str(path)!r}, mode='a')\n"
            "ready_r, ready_w = os.pipe()\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    os.write(ready_w, b'x')\n"
            "    time.sleep(60)\n"
            "    os._exit(0)\n"
            "os.read(ready_r, 1)\n"
            "print(child, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(writer.stdout.readline())
    try:
        assert writer.wait(timeout=60) == -signal.SIGKILL
        with FeatureStore(path, mode="a") as store:
            assert store.splits() == []
    finally:
        os.kill(child, signal.SIGKILL)
        writer.stdout.close()


def test_dimension_and_weights_mismatch_are_refused(tmp_path):
    with _store_with_rows(tmp_path / "s.h5", dim=4) as store:
        with pytest.raises(ProvenanceError, match="refusing to append"):
            store.prepare_features("m/w", "train", 8)
        with pytest.raises(ProvenanceError, match="weights"):
            store.ensure_encoder("m/w", {**INFO, "weights": "other"})
        store.begin_appending()
        with pytest.raises(ProvenanceError, match="do not fit"):
            store.write_features("m/w", "train", np.array([0]), np.ones((1, 8)), np.ones(1, bool), [""])


def test_killed_writer_leaves_a_readable_resumable_store(tmp_path):
    path = tmp_path / "s.h5"
    _store_with_rows(path, n=200).close()
    code = f"""
import os, signal, numpy as np
from featurestore.store.feature_store import FeatureStore
s = FeatureStore({str(path)!r}, mode="a")
s.begin_appending()
for start in range(0, 120, 10):
    rows = np.arange(start, start + 10)
    s.write_features("m/w", "train", rows, np.tile(rows[:, None], (1, 4)).astype(float), np.ones(10, bool), [""] * 10)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    assert consistency_flags(path) != 0  # the dead writer's "open for write" mark
    with FeatureStore(path) as reader:
        assert reader.done("m/w", "train").sum() == 120
    with FeatureStore(path, mode="a") as store:  # recovers the mark under the lock
        assert store.pending_rows("m/w", "train", np.arange(200)).tolist() == list(range(120, 200))


def test_lookup3_matches_a_superblock_written_by_hdf5(tmp_path):
    path = tmp_path / "plain.h5"
    h5py.File(path, "w", libver="latest").close()
    raw = path.read_bytes()
    size_of_offsets = raw[9]
    body = 12 + 4 * size_of_offsets
    assert lookup3(raw[:body]) == int.from_bytes(raw[body:body + 4], "little")
    assert lookup3(b"") == 0xDEADBEEF
    assert clear_consistency_flags(path) is False


def test_not_a_store_and_missing_store_are_clear(tmp_path):
    with pytest.raises(NotFoundError, match="no store"):
        FeatureStore(tmp_path / "none.h5")
    h5py.File(tmp_path / "x.h5", "w").close()
    with pytest.raises(StoreFormatError, match="not a featurestore store"):
        FeatureStore(tmp_path / "x.h5")
    (tmp_path / "t.h5").write_text("hello")
    with pytest.raises(StoreFormatError):
        FeatureStore(tmp_path / "t.h5")


def test_models_and_text_banks_round_trip(tmp_path):
    with _store_with_rows(tmp_path / "s.h5") as store:
        store.put_text_bank("m/w", "train/simple", np.eye(5, 4), [f"a photo of a c{i}." for i in range(5)],
                            kind="classes", classes=[f"c{i}" for i in range(5)], per_template=np.ones((5, 1, 4)))
        store.save_model("gda", {"W": np.eye(3)}, {"alpha": 0.1, "encoder": "m/w"})
        with pytest.raises(ProvenanceError, match="dim"):
            store.put_text_bank("m/w", "bad", np.ones((2, 3)), ["a", "b"])
    with FeatureStore(tmp_path / "s.h5") as reader:
        np.testing.assert_array_equal(reader.text("m/w", "train/simple"), np.eye(5, 4))
        bank = reader.text_bank("m/w", "train/simple")
        assert bank["classes"][2] == "c2" and bank["per_template"].shape == (5, 1, 4)
        arrays, meta = reader.load_model("gda")
        np.testing.assert_array_equal(arrays["W"], np.eye(3))
        assert meta == {"alpha": 0.1, "encoder": "m/w"}
        with pytest.raises(NotFoundError, match="no model 'x'"):
            reader.load_model("x")


def test_features_of_another_precision_are_not_appended_under_the_same_key(tmp_path):
    """fp32 rows and bf16 rows in one encoder key would mix two encoders' outputs under one
    provenance record (the store says fp32 for all of them)."""
    path = tmp_path / "s.h5"
    with FeatureStore(path, mode="a") as store:
        store.ensure_encoder("m/w", {**INFO, "precision": "fp32"})
        with pytest.raises(ProvenanceError, match="precision='fp32', not 'bf16'.*--precision fp32"):
            store.ensure_encoder("m/w", {**INFO, "precision": "bf16"})
        store.ensure_encoder("m/w", {**INFO, "precision": "fp32"})
