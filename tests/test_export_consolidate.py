"""fs export (clip-retrieval's img_emb/ + metadata/ layout) and fs consolidate (a --cluster split's
shard files copied into the store), with a store copied without its .shards/ folder refused by
name. Shards are linked as fs extract --cluster links them (featurestore.store.virtual_split)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from featurestore.extract.sharded import shard_dir
from featurestore.store.feature_store import SPLIT_COLUMNS, FeatureStore
from featurestore.store.virtual_split import link_shards
from tests.cli_runner import run
from tests.store_fixtures import default_ids, make_feature_store

CLASSES = ["cat", "dog", "emu"]
ROOT = Path(__file__).resolve().parent.parent


def _sharded_store(root, rng):
    """A main store whose split 'pool' links 3 shard stores of 4, 3 and 5 rows (row 1 of the
    second unreadable), as fs extract --cluster leaves it; returns (path, features, labels, ids)."""
    root.mkdir()
    store = root / "main.h5"
    make_feature_store(store, {"other": rng.standard_normal((2, 6))})
    folder = shard_dir(store, "pool")
    folder.mkdir(parents=True)
    feats, labels, ids, paths = [], [], [], []
    for i, n in enumerate((4, 3, 5)):
        x = rng.standard_normal((n, 6)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y = rng.integers(0, 3, n)
        shard_ids = [f"s{i}-{j}" for j in range(n)]
        make_feature_store(folder / f"{i:05d}.h5", {"pool": x}, labels={"pool": y}, ids={"pool": shard_ids},
                           classes={"pool": CLASSES}, invalid={"pool": [1]} if i == 1 else None)
        paths.append(folder / f"{i:05d}.h5")
        feats.append(x)
        labels.append(y)
        ids += shard_ids
    with FeatureStore(store, mode="a") as writer:
        link_shards(writer, "pool", paths)
    return store, np.concatenate(feats), np.concatenate(labels), ids


def test_export_writes_clip_retrievals_layout(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 3)
    captions_store = make_feature_store(tmp_path / "s.h5", {"train": rng.standard_normal((9, 5))},
                                        labels={"train": labels}, classes={"train": CLASSES},
                                        invalid={"train": [4]})
    code, out, err = run(["export", "--store", captions_store, "--split", "train", "--output", tmp_path / "emb",
                          "--rows-per-file", "3", "--json", "-q"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 8 and summary["partitions"] == 3
    with FeatureStore(captions_store) as reader:
        X, ids, paths = reader.features("test/enc", "train"), reader.ids("train"), reader.paths("train")
        y = reader.labels("train")
    # clip-retrieval's names: one digit for fewer than 10 partitions, float16 unit rows
    assert sorted(p.name for p in (tmp_path / "emb" / "img_emb").iterdir()) == [f"img_emb_{i}.npy" for i in range(3)]
    emb = np.concatenate([np.load(tmp_path / "emb" / "img_emb" / f"img_emb_{i}.npy") for i in range(3)])
    assert emb.dtype == np.float16
    np.testing.assert_allclose(emb, X, atol=1e-3)
    meta = [pq.read_table(tmp_path / "emb" / "metadata" / f"metadata_{i}.parquet").to_pydict() for i in range(3)]
    assert list(meta[0]) == ["image_path", "id", "label", "class"]
    assert [p for m in meta for p in m["image_path"]] == list(paths)
    assert [i for m in meta for i in m["id"]] == list(ids) and default_ids("train", 9)[4] not in ids
    assert [c for m in meta for c in m["class"]] == [CLASSES[v] for v in y]
    # an existing, non-empty folder is refused in one line
    code, _, err = run(["export", "--store", captions_store, "--split", "train", "--output", tmp_path / "emb"], capsys)
    assert code == 2 and "not an empty folder" in err and err.count("\n") == 1


def test_export_partition_numbers_are_zero_padded():
    from featurestore.io.export import partition_names

    assert partition_names(1) == ["0"] and partition_names(10)[:2] == ["00", "01"]
    assert partition_names(9)[-1] == "8" and partition_names(100)[-1] == "099"  # int(log10(count)) + 1 digits


def test_store_copied_without_shards_names_what_is_missing(tmp_path, capsys):
    store, _, _, _ = _sharded_store(tmp_path / "a", np.random.default_rng(1))
    (tmp_path / "b").mkdir()
    shutil.copy(store, tmp_path / "b" / "main.h5")
    code, out, err = run(["eval", "--store", tmp_path / "b" / "main.h5", "--models", "zero-shot", "--split", "pool"],
                         capsys)
    assert code == 2 and err.count("\n") == 1
    assert "split 'pool' was extracted with --cluster" in err and "main.h5.shards/pool/00000.h5" in err
    assert "3 shard file(s)" in err
    # fs info still shows the store, and says what is missing
    code, out, err = run(["info", "--store", tmp_path / "b" / "main.h5"], capsys)
    assert code == 0, err
    assert "pool: unreadable: 3 shard file(s) of fs extract --cluster are missing (main.h5.shards/pool/00000.h5" in out
    assert "other: 2 rows" in out
    # the other split still reads
    with FeatureStore(tmp_path / "b" / "main.h5") as reader:
        assert len(reader.ids("other")) == 2


def test_consolidate_copies_the_shards_into_the_store(tmp_path, capsys):
    store, X, y, ids = _sharded_store(tmp_path / "a", np.random.default_rng(2))
    code, out, err = run(["consolidate", "--store", store, "-q"], capsys)
    assert code == 0, err
    assert "split 'pool': " in out and "12 rows" in out
    copied = tmp_path / "b" / "main.h5"
    copied.parent.mkdir()
    shutil.copy(store, copied)  # without the .shards/ folder
    keep = np.ones(12, bool)
    keep[5] = False  # the second shard's row 1
    with FeatureStore(copied) as reader:
        np.testing.assert_array_equal(reader.features("test/enc", "pool"), X[keep])
        np.testing.assert_array_equal(reader.labels("pool"), y[keep])
        assert list(reader.ids("pool")) == [i for i, k in zip(ids, keep) if k]
        assert reader.classes("pool") == CLASSES
        assert [e["id"] for e in reader.errors("pool")] == ["s1-1"]
    with h5py.File(copied, "r") as f:
        assert not any(f[f"splits/pool/{c}"].is_virtual for c in ("ids", "paths", "labels", "valid", "errors"))
        assert not f["encoders/test|enc/images/pool"].is_virtual
        # the checksums the format promises (and opening a store requires of feature arrays)
        assert all(f[p].fletcher32 for p in ("encoders/test|enc/images/pool",
                                             "splits/pool/labels", "splits/pool/valid"))
    code, out, err = run(["verify", "--store", copied], capsys)
    assert code == 0, err + out
    code, out, _ = run(["consolidate", "--store", store], capsys)
    assert code == 0 and "nothing to consolidate" in out


@pytest.mark.slow
def test_consolidate_killed_at_its_write_points_reads_the_same_and_resumes(tmp_path):
    """SIGKILL before the K-th store write of fs consolidate (tests/fault_injection.py): a reader
    sees the same split as before, and a rerun consolidates it (about 8 kill points; all with
    FEATURESTORE_SWEEP_ALL=1)."""
    from tests.fault_injection import KILLED, cli, count_write_points, kill_points, run_forked, same, snapshot_forked

    rng_seed = 4
    reference_store, _, _, _ = _sharded_store(tmp_path / "reference", np.random.default_rng(rng_seed))
    status, before = snapshot_forked(reference_store)
    assert status == "ok", before
    log = str(tmp_path / "child.log")
    total = count_write_points(cli(["consolidate", "--store", reference_store, "-q"]), log=log)
    assert total > 10
    for k in kill_points(total, 8):
        store, _, _, _ = _sharded_store(tmp_path / f"k{k}", np.random.default_rng(rng_seed))
        code = run_forked(cli(["consolidate", "--store", store, "-q"]), kill_at=k, log=log)
        assert code in (KILLED, 0), f"kill point {k}: exit {code}"
        status, seen = snapshot_forked(store)
        assert status == "ok" and same(seen, before), f"kill point {k}: {status} {seen if status != 'ok' else ''}"
        assert run_forked(cli(["consolidate", "--store", store, "-q"]), log=log) == 0, f"kill point {k}: rerun failed"
        shutil.rmtree(store.parent / "main.h5.shards")  # the consolidated store needs no shard files
        status, seen = snapshot_forked(store)
        assert status == "ok" and same(seen, before), f"kill point {k} then rerun: {status}"



_CONSOLIDATE = "import sys; from cli.main import main; main(['consolidate', '--store', sys.argv[1], '-q'])"


def _consolidate_under(shim, store, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KILLWRITE_")}
    environ.update(PYTHONPATH=str(ROOT), LD_PRELOAD=str(shim), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, "-c", _CONSOLIDATE, str(store)], env=environ, capture_output=True,
                          text=True, timeout=300)


def _split_state(store) -> str:
    """"linked" (every column of split pool and every array of its encoder virtual), "copied"
    (none) or "mixed"."""
    with h5py.File(store, "r", locking=False, swmr=True, libver="latest") as f:  # as a reader: a killed writer's mark
        virtual = {f[f"splits/pool/{c}"].is_virtual for c in SPLIT_COLUMNS}
        virtual |= {f[f"encoders/test|enc/{kind}/pool"].is_virtual for kind in ("images", "done", "norms")
                    if f"encoders/test|enc/{kind}/pool" in f}
    return "mixed" if len(virtual) == 2 else ("linked" if virtual == {True} else "copied")


@pytest.mark.slow
def test_consolidate_killed_at_its_file_writes_keeps_the_split_and_resumes(tmp_path, killwrite_shim):
    """SIGKILL just before the K-th write()/pwrite() to a .h5 file (tests/killwrite_shim.c), inside HDF5's
    own flushes: the split and its arrays are all old (linked) or all new (copied) and read the same,
    no shard file is left marked open for write, and a rerun consolidates (about 12 kill points;
    all with FEATURESTORE_SWEEP_ALL=1). Before: 57 of 170 kill points left the split unreadable (shards
    marked open for write, or the split or its labels column gone) and most reruns failed."""
    from featurestore.store.superblock import consistency_flags
    from tests.fault_injection import cli, kill_points, run_forked, same, snapshot_forked

    rng_seed = 4
    reference, _, _, _ = _sharded_store(tmp_path / "reference", np.random.default_rng(rng_seed))
    status, before = snapshot_forked(reference)
    assert status == "ok", before
    count = tmp_path / "count"
    done = _consolidate_under(killwrite_shim, reference, KILLWRITE_COUNT=str(count))
    assert done.returncode == 0, done.stderr
    total = int(count.read_text())
    assert total > 10
    log = str(tmp_path / "child.log")
    failures = []
    for k in kill_points(total, 12):
        store, _, _, _ = _sharded_store(tmp_path / f"k{k}", np.random.default_rng(rng_seed))
        shards = sorted((store.parent / "main.h5.shards" / "pool").glob("*.h5"))
        killed = _consolidate_under(killwrite_shim, store, KILLWRITE_AT=str(k))
        if killed.returncode != -9:
            failures.append(f"K={k}: not killed (exit {killed.returncode}) {killed.stderr[-200:]}")
            continue
        marked = [s.name for s in shards if consistency_flags(s)]
        if marked:
            failures.append(f"K={k}: shard files left marked open for write: {marked}")
        status, seen = snapshot_forked(store)  # a reader first: it clears the store's own mark of the killed writer
        state = _split_state(store)
        if state == "mixed" or status != "ok" or not same(seen, before):
            failures.append(f"K={k}: split {state}, read {status} {seen if status != 'ok' else ''}")
        if run_forked(cli(["consolidate", "--store", store, "-q"]), log=log) != 0:
            failures.append(f"K={k}: the rerun failed")
            continue
        shutil.rmtree(store.parent / "main.h5.shards")  # the consolidated store needs no shard files
        status, seen = snapshot_forked(store)
        if _split_state(store) != "copied" or status != "ok" or not same(seen, before):
            failures.append(f"K={k}: after the rerun: {status}")
        shutil.rmtree(store.parent)
    assert not failures, "\n".join(failures)


def _mark_open_for_write(path) -> None:
    """Set the superblock's "open for write" flags as a writer killed with the file open leaves them
    (HDF5 superblock v2/v3: flags at byte 11, lookup3 checksum after the four addresses)."""
    from featurestore.store.superblock import lookup3

    with open(path, "r+b") as f:
        block = bytearray(f.read(12))
        body = 12 + 4 * block[9]
        f.seek(0)
        block = bytearray(f.read(body + 4))
        assert block[8] >= 2  # superblock version
        block[11] = 0x05  # write access | SWMR write access
        block[body:] = lookup3(bytes(block[:body])).to_bytes(4, "little")
        f.seek(0)
        f.write(bytes(block))


def test_a_shard_left_marked_open_for_write_is_repaired_by_verify(tmp_path, capsys):
    """A shard file a killed writer left marked: the split reads as damaged; fs verify names the
    file and --repair clears it (before: --repair left it, and every reread and rerun failed)."""
    from featurestore.store.superblock import consistency_flags

    store, X, _, _ = _sharded_store(tmp_path / "a", np.random.default_rng(5))
    shard = store.parent / "main.h5.shards" / "pool" / "00001.h5"
    _mark_open_for_write(shard)
    code, out, err = run(["verify", "--store", store], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"shard file {shard.resolve()} is marked open for write" in err and "--repair" in err
    code, out, err = run(["verify", "--store", store, "--repair"], capsys)
    assert code == 0, err + out
    assert f"cleared the open-for-write mark a killed writer left on shard file {shard.resolve()}" in out
    assert consistency_flags(shard) == 0
    keep = np.ones(12, bool)
    keep[5] = False
    with FeatureStore(store) as reader:
        np.testing.assert_array_equal(reader.features("test/enc", "pool"), X[keep])


def test_consolidate_clears_a_dead_writers_mark_on_a_shard(tmp_path, capsys):
    """A rerun after a kill that (under the previous code) left a shard marked open for write
    succeeds: the shard is read through a read-only handle that clears a dead writer's mark."""
    store, X, y, _ = _sharded_store(tmp_path / "a", np.random.default_rng(6))
    _mark_open_for_write(store.parent / "main.h5.shards" / "pool" / "00002.h5")
    code, out, err = run(["consolidate", "--store", store, "-q"], capsys)
    assert code == 0, err
    shutil.rmtree(store.parent / "main.h5.shards")
    keep = np.ones(12, bool)
    keep[5] = False
    with FeatureStore(store) as reader:
        np.testing.assert_array_equal(reader.features("test/enc", "pool"), X[keep])
        np.testing.assert_array_equal(reader.labels("pool"), y[keep])


def test_consolidate_refuses_a_shard_keeping_its_data_in_another_file(tmp_path, capsys):
    """A crafted shard whose features are HDF5 external storage over another file: fs consolidate
    refuses it in one line instead of copying that file's bytes into the store as features."""
    from tests.test_faults_crafted import _replace_with_external_storage

    store, _, _, _ = _sharded_store(tmp_path / "a", np.random.default_rng(7))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(24, dtype=np.float32).tobytes())
    shard = store.parent / "main.h5.shards" / "pool" / "00000.h5"
    _replace_with_external_storage(shard, "encoders/test|enc/images/pool", secret)
    code, out, err = run(["consolidate", "--store", store, "-q"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{shard} reaches outside its file" in err and f"keeps its data in {secret}" in err
    assert _split_state(store) == "linked"


def test_export_of_a_captioned_split_has_clip_retrievals_caption_column(tmp_path, capsys):
    rng = np.random.default_rng(6)
    store = tmp_path / "c.h5"
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with FeatureStore(store, mode="a") as writer:
        rows = writer.add_rows("pool", ["a", "b", "c"], ["p/a.jpg", "p/b.jpg", "p/c.jpg"], [-1, -1, -1],
                               captions=["a red car", "two dogs", "a bowl"], source="test")
        writer.ensure_encoder("test/enc", {"model": "m", "weights": "w", "embed_dim": 4})
        writer.prepare_features("test/enc", "pool", 4)
        writer.begin_appending()
        writer.write_features("test/enc", "pool", rows, x, np.ones(3, bool), ["", "", ""])
    code, _, err = run(["export", "--store", store, "--split", "pool", "--output", tmp_path / "e", "--dtype", "float32",
                        "-q"], capsys)
    assert code == 0, err
    meta = pq.read_table(tmp_path / "e" / "metadata" / "metadata_0.parquet").to_pydict()
    assert list(meta) == ["image_path", "caption", "id", "label", "class"]
    assert meta["caption"] == ["a red car", "two dogs", "a bowl"] and meta["class"] == [None, None, None]
    np.testing.assert_array_equal(np.load(tmp_path / "e" / "img_emb" / "img_emb_0.npy"), x)
