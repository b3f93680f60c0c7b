"""Readers of a store that a writer is creating (issue 28, item 2).

While a writer creates a new store, until its first rows and arrays are committed, a reader
(the FeatureStore API, `fs info`) waits a bounded time (FEATURESTORE_CREATION_WAIT_SECONDS) and
then says in one line that the store is being created (exit 2 from the CLI); it never shows a
raw HDF5 error, a false "empty store" or a half-made store. Once the writer appends, every read
is correct: each committed row once, with the features the writer wrote.
"""
from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fault_injection import cli, rows_consistent, run_forked, same, snapshot, snapshot_forked
from tests.images import write_class_tree

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CREATING = re.compile(r"^(error: )?(?P<path>\S+) is being created by pid (?P<pid>\d+): its first rows are not "
                      r"committed")
N_ROWS, DIM = 24, 8

WRITER = """
import os, sys, time
import numpy as np
from featurestore.store.feature_store import FeatureStore
path, events, n, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
features = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
with FeatureStore(path, mode="a") as store:
    store.add_rows("train", [f"r{i:03d}" for i in range(n)], [f"r{i:03d}.jpg" for i in range(n)],
                   [i % 3 for i in range(n)], classes=["a", "b", "c"])
    open(events + ".paused", "w").close()          # the store exists, its creation is not finished
    while not os.path.exists(events + ".go"):
        time.sleep(0.01)
    store.ensure_encoder("test/enc", {"model": "m", "weights": "w", "embed_dim": dim})
    store.prepare_features("test/enc", "train", dim)
    store.begin_appending()
    for start in range(0, n, 4):
        rows = np.arange(start, min(n, start + 4))
        store.write_features("test/enc", "train", rows, features[rows], np.ones(len(rows), bool), [""] * len(rows))
        time.sleep(0.02)
"""


# A reader process (the red team's polling readers): reads the whole store as fast as it can
# until the stop file appears, then pickles every outcome.
READER = """
import os, pickle, sys
import numpy as np
from featurestore.errors import FeatureStoreError
from featurestore.store.feature_store import FeatureStore, _checked_read

def snapshot(path):
    # as tests/fault_injection.snapshot, but the features through the store's refreshed handle
    # (a raw `store.file[...]` handle of a SWMR reader can show a chunk index older than `done`)
    out = {}
    with FeatureStore(path) as store:
        for split in store.splits():
            ids = [str(i) for i in store.ids(split, valid_only=False)]
            out["ids:" + split] = ids
            out["errors:" + split] = store.errors(split)
            for encoder in store.encoders():
                if store.has_features(encoder, split):
                    done = store.done(encoder, split)
                    # a chunk being written fails its checksum: retried as the store's own reads do
                    stored = _checked_read(store._get(store._image_paths(encoder, split)[0]), np.s_[: len(done)])
                    done = done[: len(stored)]
                    rows = dict(zip(np.asarray(ids)[: len(done)][done].tolist(), stored[done]))
                    out["features:" + encoder + ":" + split] = rows
    return out

store, out, stop = sys.argv[1:4]
outcomes = []
while not os.path.exists(stop):
    try:
        outcomes.append(("ok", snapshot(store)))
    except FeatureStoreError as exc:
        outcomes.append(("error", str(exc)))
    except Exception as exc:
        outcomes.append(("failed", f"{type(exc).__name__}: {exc}"))
    if len(outcomes) == 1:
        open(out + ".ready", "w").close()
with open(out, "wb") as f:
    pickle.dump(outcomes, f)
"""


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until ``path`` exists (the writer's event), failing if the writer died first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the writer exited ({process.returncode}) before {path.name}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.01)


def _info(store: Path, log: Path) -> tuple[int, list[str]]:
    """`fs info --store STORE` in a forked child: exit code and output lines."""
    log.unlink(missing_ok=True)

    def go() -> int:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the log is on descriptors 1 and 2)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            return cli(["info", "--store", store])()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    code = run_forked(go, log=str(log), timeout=60)
    return code, [line for line in log.read_text(errors="replace").splitlines() if line.strip()]


def _expected(n: int, dim: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def test_readers_wait_for_a_store_being_created_then_say_so(tmp_path, monkeypatch):
    store, events, log = tmp_path / "s.h5", tmp_path / "ev", tmp_path / "info.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(events), str(N_ROWS), str(DIM)],
                              env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(Path(f"{events}.paused"), writer)
        monkeypatch.setenv("FEATURESTORE_CREATION_WAIT_SECONDS", "0.3")
        outcomes = []
        for _ in range(3):  # the writer waits for us: every read now meets a store in creation
            status, seen = snapshot_forked(store)
            outcomes.append(("api", status, seen))
            code, lines = _info(store, log)
            outcomes.append(("info", code, lines))
        for kind, status, seen in outcomes:
            message = seen if kind == "api" else (seen[0] if len(seen) == 1 else seen)
            ok = (status == "error" if kind == "api" else status == 2 and len(seen) == 1)
            match = CREATING.match(message) if ok and isinstance(message, str) else None
            assert match and match["pid"] == str(writer.pid) and match["path"] == str(store), (kind, status, seen)
        # a reader that may wait long enough reads the store once the writer has committed it
        monkeypatch.setenv("FEATURESTORE_CREATION_WAIT_SECONDS", "60")
        patient: dict[str, object] = {}
        reader = threading.Thread(target=lambda: patient.update(result=snapshot_forked(store, timeout=90)))
        reader.start()
        Path(f"{events}.go").touch()
        reader.join()
        status, seen = patient["result"]
        assert status == "ok", seen
        assert seen["ids:train"] == [f"r{i:03d}" for i in range(N_ROWS)]
        expected = dict(zip(seen["ids:train"], _expected(N_ROWS, DIM)))
        for rid, row in seen.get("features:test/enc:train", {}).items():
            assert np.array_equal(row, expected[rid])
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    final = snapshot(store)
    assert final["features:test/enc:train"].keys() == set(final["ids:train"])
    assert all(np.array_equal(row, dict(zip(final["ids:train"], _expected(N_ROWS, DIM)))[rid])
               for rid, row in final["features:test/enc:train"].items())


def test_polling_readers_during_fs_extract_of_a_new_store(tmp_path, tiny_encoder, monkeypatch):
    """A writer process extracts a new store from a slow source; readers (the API and fs info)
    poll it from before its file exists until the writer exits. Every outcome is a correct read,
    "no store" before the file exists, or the one line of a store being created."""
    from featurestore.extract.pipeline import extract
    from featurestore.sources import open_source
    from tests.slow_source import SlowSource

    write_class_tree(tmp_path / "imgs", {"cat": 10, "dog": 10}, seed=0)
    store, log = tmp_path / "s.h5", tmp_path / "info.log"
    monkeypatch.setenv("FEATURESTORE_CREATION_WAIT_SECONDS", "2")

    def write() -> int:
        extract(SlowSource(open_source(str(tmp_path / "imgs")), 0.1), store, tiny_encoder, split="train",
                batch_size=2, workers=0, quiet=True)
        return 0

    outcomes: list[tuple[str, object, object]] = []
    result: dict[str, int] = {}
    writer = threading.Thread(target=lambda: result.update(code=run_forked(write, log=str(tmp_path / "w.log"))))

    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store), str(tmp_path / f"reads{i}.pickle"),
                                 str(tmp_path / "stop")], env={**os.environ, "PYTHONPATH": str(ROOT)})
               for i in range(2)]
    try:
        for i, reader in enumerate(readers):  # polling before the writer starts
            _wait_for(tmp_path / f"reads{i}.pickle.ready", reader)
        writer.start()
        deadline = time.monotonic() + 300
        while writer.is_alive() and time.monotonic() < deadline:
            outcomes.append(("info", *_info(store, log)))
        writer.join()
    finally:
        (tmp_path / "stop").touch()
    for i, reader in enumerate(readers):
        assert reader.wait(timeout=120) == 0
        with open(tmp_path / f"reads{i}.pickle", "rb") as f:
            outcomes += [("api", status, seen) for status, seen in pickle.load(f)]
    assert result.get("code") == 0, (tmp_path / "w.log").read_text()
    final = snapshot(store)
    assert len(final["ids:train"]) == 20
    bad, reads = [], 0
    for kind, status, seen in outcomes:
        text = seen if kind == "api" else (seen[0] if isinstance(seen, list) and len(seen) == 1 else seen)
        if kind == "api" and status == "ok":
            reads += 1
            problem = rows_consistent(seen, final)
            if problem or not same({k: v for k, v in seen.items() if not k.startswith("features")},
                                   {k: v for k, v in final.items() if not k.startswith("features")}):
                bad.append(f"api read: {problem or 'splits differ from the finished store'}")
        elif kind == "info" and status == 0:
            reads += 1
        elif isinstance(text, str) and (CREATING.match(text) or re.match(r"^(error: )?no store at ", text)):
            continue
        else:
            bad.append(f"{kind}: {status}: {str(seen)[:300]}")
    print(f"polling readers: {len(outcomes)} reads, {reads} read the store, {len(bad)} wrong; "
          f"{sum(1 for o in outcomes if isinstance(o[2], str) and CREATING.match(o[2]))} said it is being created")
    assert reads > 0, "no read overlapped the extraction; the test would prove nothing"
    assert not bad, "\n".join(bad[:10])
