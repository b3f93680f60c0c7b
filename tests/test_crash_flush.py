"""Kills in the middle of HDF5 flushes: an LD_PRELOAD shim (tests/killwrite.c) SIGKILLs the
writer just before its K-th write()/pwrite() to the store file, so a kill can land between
two metadata blocks of one flush, which the API-level write points never reach. After each
kill a reader opens at once and sees committed data only (a saved object old or new, rows
once), and rerunning the write finishes it exactly as an uninterrupted run.

Each scenario runs in one driver process started with the shim preloaded (disarmed): it forks a
child for every write, kill, reader and rerun (the child execs the scenario's code with the
store and data as ``sys.argv[1:]``, its output in files, and ends through the C library's exit()
as a real process does), so a step costs a fork instead of a fresh interpreter's imports. The
shim counts per process: each child starts from zero.

Skipped where no C compiler is available. Prints "flush sweep <scenario>: tried T of N, held H".
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.fault_injection import kill_points, run_forked
from tests.store_fixtures import make_feature_store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BUDGET = 8

READER = """
import json, sys
import numpy as np
from featurestore.store.feature_store import FeatureStore
from featurestore.errors import FeatureStoreError
try:
    with FeatureStore(sys.argv[1]) as s:
        out = {}
        if "train" not in s.splits() or "test/enc" not in s.encoders() or not s.has_features("test/enc", "train"):
            print(json.dumps({"splits": s.splits(), "encoders": s.encoders()}))
            sys.exit(0)
        if "m" in s.models():
            arrays, meta = s.load_model("m")
            out["model"] = [meta["v"], arrays["a"].tolist()]
        if "test/enc+x" in s.encoders():
            try:
                out["derived"] = s.features("test/enc+x", "train").tolist()
            except FeatureStoreError as exc:  # e.g. rows appended after it was derived
                out["derived"] = str(exc)
        if "bank" in s.text_banks("test/enc"):
            bank = s.text_bank("test/enc", "bank")
            out["bank"] = [bank["weights"].tolist(), bank["strings"]]
        ids = [str(i) for i in s.ids("train", valid_only=False)]
        done = s.done("test/enc", "train")
        stored = s.file["encoders/test|enc/images/train"]
        rows = np.flatnonzero(done[: stored.shape[0]])
        out["ids"] = ids
        out["rows"] = {ids[i]: stored[i].tolist() for i in rows}
        out["errors"] = s.errors("train")
        print(json.dumps(out))
except FeatureStoreError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""

SCENARIOS = {
    "model-save": """
import sys, numpy as np
from featurestore.store.feature_store import FeatureStore
with FeatureStore(sys.argv[1], mode="a") as s:
    s.save_model("m", {"a": np.full((60, 8), 2.0), "b": np.full(7, 2.0)}, {"v": "new"})
""",
    "text-bank": """
import sys, numpy as np
from featurestore.store.feature_store import FeatureStore
with FeatureStore(sys.argv[1], mode="a") as s:
    s.put_text_bank("test/enc", "bank", np.full((4, 8), 2.0), ["d", "e", "f", "g"])
""",
    "derived-features": """
import sys, numpy as np
from featurestore.store.feature_store import FeatureStore
with FeatureStore(sys.argv[1], mode="a") as s:
    s.put_features("test/enc+x", "train", np.full((100, 8), 2.0, dtype=np.float32), {"model": "m", "weights": "w"})
""",
    "new-store": """
import sys, numpy as np
from tests.store_fixtures import make_feature_store
make_feature_store(sys.argv[1], {"train": np.load(sys.argv[2])[:50]})
""",
    "append-rows": """
import sys, numpy as np
from tests.store_fixtures import make_feature_store
make_feature_store(sys.argv[1], {"train": np.load(sys.argv[2])})
""",
    "write-features": """
import sys, numpy as np
from featurestore.store.feature_store import FeatureStore
X = np.load(sys.argv[2])
with FeatureStore(sys.argv[1], mode="a") as s:
    rows = s.pending_rows("test/enc", "train", np.arange(len(X)))
    for start in range(0, len(rows), 50):
        r = rows[start:start + 50]
        ok = r % 7 != 0
        s.write_features("test/enc", "train", r, X[r] * ok[:, None], ok, [f"bad {i}" for i in r])
""",
}



def _base(path: Path, scenario: str, X: np.ndarray) -> None:
    if scenario == "new-store":
        return
    if scenario == "write-features":
        with FeatureStore(path, mode="a") as s:
            s.add_rows("train", [f"r{i}" for i in range(len(X))], [f"p{i}" for i in range(len(X))], [0] * len(X))
            s.ensure_encoder("test/enc", {"model": "m", "weights": "w", "embed_dim": X.shape[1]})
            s.prepare_features("test/enc", "train", X.shape[1])
        return
    make_feature_store(path, {"train": X[:100]})
    with FeatureStore(path, mode="a") as s:
        s.save_model("m", {"a": np.full((40, 8), 1.0), "b": np.full(5, 1.0)}, {"v": "old"})
        s.put_text_bank("test/enc", "bank", np.full((3, 8), 1.0), ["a", "b", "c"])
        s.put_features("test/enc+x", "train", np.full((100, 8), 1.0, dtype=np.float32), {"model": "m", "weights": "w"})


CHILD_TIMEOUT = 120  # seconds: a child still running after this is hung (the driver fails)


def _run(code: str, store: Path, data: Path, **env: str) -> SimpleNamespace:
    """In the driver: fork a child that runs ``code`` as a script with ``sys.argv[1:] = [store,
    data]`` and the shim's variables ``env`` (none: the shim stays disarmed). Returns its
    returncode (-signal when killed), stdout and stderr, as subprocess.run would."""
    out, err = store.parent / "child.out", store.parent / "child.err"

    def arm() -> None:
        for key in ("KILLWRITE_AT", "KILLWRITE_COUNT"):
            os.environ.pop(key, None)
        os.environ.update(env)

    def script() -> int:
        sys.argv = ["-c", str(store), str(data)]
        exec(compile(code, "<scenario>", "exec"), {"__name__": "__main__"})
        return 0

    status = run_forked(script, setup=arm, stdout=out, stderr=err, timeout=CHILD_TIMEOUT, hang="wall", libc_exit=True)
    if status == -signal.SIGALRM:
        raise AssertionError(f"a child still ran after {CHILD_TIMEOUT} s: {err.read_text(errors='replace')[-500:]}")
    return SimpleNamespace(returncode=status, stdout=out.read_text(errors="replace"),
                           stderr=err.read_text(errors="replace"))


NEW_STORE_LIMIT = (
    "known limit: a kill inside a flush while a new store's splits, encoders and arrays are being created (HDF5 "
    "writes those outside SWMR mode and does not journal metadata) can leave the new structure unreadable; "
    "API-level kills of a new store all hold (test_crash_sweep.py extract-new)")


@pytest.mark.parametrize("scenario", [pytest.param(name, marks=pytest.mark.xfail(reason=NEW_STORE_LIMIT, strict=False))
                                      if name == "new-store" else name for name in SCENARIOS])
def test_a_kill_inside_a_flush_leaves_committed_data_and_resumes(scenario, killwrite_shim, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), LD_PRELOAD=str(killwrite_shim))
    for key in ("KILLWRITE_AT", "KILLWRITE_COUNT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "tests.test_crash_flush", scenario, str(tmp_path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    print(f"flush sweep {scenario}: tried {report['tried']} of {report['total']} write() kill points, "
          f"held {report['held']}")
    assert not report["failures"], "\n".join(report["failures"])


def sweep(scenario: str, tmp_path: Path) -> dict:
    """The sweep, in the driver (the shim preloaded): returns the report."""
    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    data = tmp_path / "X.npy"
    np.save(data, X)
    base = tmp_path / "base.h5"
    _base(base, scenario, X)
    action = SCENARIOS[scenario]
    old = json.loads(_run(READER, base, data).stdout) if base.exists() else {}
    counted = tmp_path / "count.h5"
    if base.exists():
        shutil.copy(base, counted)
    count_file = tmp_path / "count"
    done = _run(action, counted, data, KILLWRITE_COUNT=str(count_file))
    assert done.returncode == 0, done.stderr
    total = int(count_file.read_text())
    new = json.loads(_run(READER, counted, data).stdout)
    failures = []
    points = kill_points(total, BUDGET)
    for k in points:
        store = tmp_path / f"k{k}.h5"
        if base.exists():
            shutil.copy(base, store)
        killed = _run(action, store, data, KILLWRITE_AT=str(k))
        if killed.returncode != -9:
            failures.append(f"K={k}: not killed (exit {killed.returncode}) {killed.stderr[-200:]}")
            continue
        after = _run(READER, store, data)
        if not base.exists() and after.returncode == 2 and "empty store" in after.stderr:
            pass  # killed before the new store's first commit: said in one line
        elif after.returncode != 0:
            failures.append(f"K={k}: reader after the kill: {after.stderr.strip()[-300:]}")
        else:
            seen = json.loads(after.stdout)
            seen.setdefault("ids", [])
            seen.setdefault("rows", {})
            for key in ("model", "bank", "derived"):
                if key in new and seen.get(key) not in (old.get(key), new[key]):
                    failures.append(f"K={k}: {key} is neither old nor new")
            if len(set(seen["ids"])) != len(seen["ids"]) or not set(seen["ids"]) <= set(new["ids"]):
                failures.append(f"K={k}: ids repeated or unknown")
            if any(new["rows"].get(i) != row for i, row in seen["rows"].items()):
                failures.append(f"K={k}: a committed row differs from an uninterrupted run")
        rerun = _run(action, store, data)
        final = _run(READER, store, data)
        if rerun.returncode != 0 or final.returncode != 0 or json.loads(final.stdout) != new:
            failures.append(f"K={k}: the rerun did not finish as an uninterrupted run: {rerun.stderr.strip()[-300:]}")
        store.unlink()
        Path(f"{store}.lock").unlink(missing_ok=True)
    held = len(points) - len({f.split(':')[0] for f in failures})
    return {"total": total, "tried": len(points), "held": held, "failures": failures}


if __name__ == "__main__":
    name, work = sys.argv[1], Path(sys.argv[2])
    result = sweep(name, work)
    (work / "report.json").write_text(json.dumps(result))
