"""Kills at every pwrite of the switch that saves a model, a text bank, imported logits or a seed
group (issue 28, items 7 and 10).

The red team killed `fs solve --save` and `fs text --name` just before the K-th pwrite64 to the
store, inside HDF5's own flushes, and lost every saved model or every bank: HDF5 rewrites the
metadata that lists /models (or a bank's texts group) in place and does not journal it. Here the
LD_PRELOAD shim tests/killwrite.c kills before the K-th write()/pwrite() to the store. A driver
process runs with the shim loaded (disarmed) and forks one child per kill point and per check
(tests/fault_injection.py), so a kill point costs a fork, not a fresh interpreter.

Which K are tried (:func:`kill_plan`; FEATURESTORE_SWEEP_ALL=1 tries every one): the uninterrupted
run logs each write's offset and whether the switch journal exists. A write is classed by its phase
(before the journal, while it exists, after the commit removed it) and by where it lands (offset 0:
the superblock; inside the store's original size: an overwrite in place, the writes the journal
exists for; past it: growth, which the rollback cuts off). **Every** in-place overwrite is tried,
and the first and the last write of each run of consecutive writes of one class. After each kill:

- a reader opens at once and every object other than the one written is exactly as before,
  the written one is its old or its new version (a seed group: all seeds old or all new);
- `fs info` and `fs verify` exit 0 (fs verify is the first to open the killed store on every
  other kill point tried, a reader on the rest: each rolls a killed switch back), and `fs eval
  --models g` scores the group (or refuses a mixed group in one line, exit 2, never averages it);
- rerunning the command succeeds and gives the store of an uninterrupted run.

A kill point whose kill lands after the command's last write to the store (a write elsewhere)
leaves the command finished: that is "new". Prints "switch sweep <scenario>: tried T of N write()
kill points, held H".
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
C, D = 4, 16
CLASSES = [f"c{i}" for i in range(C)]
SOLVE = ["solve", "gda", "--encoder", "test/enc", "--train", "train", "--val", "val", "--bank", "bank", "-q"]


def _commands(store: str) -> dict[str, tuple[list[str] | None, set[str]]]:
    """scenario -> (fs arguments, or None for an API call; the snapshot keys it writes)."""
    return {
        "model": ([*SOLVE, "--store", store, "--shots", "4", "--save", "newmodel"], {"model:newmodel"}),
        "model-overwrite": ([*SOLVE, "--store", store, "--shots", "4", "--save", "m1"], {"model:m1"}),
        "text-bank": (None, {"text:test/enc:newbank"}),
        "logits": (None, {"logits:newlogits:train"}),
        "derived-encoder": (None, {"features:test/enc+new:train"}),
        "seed-group": ([*SOLVE, "--store", store, "--shots", "4", "--seeds", "1,2,3", "--save", "g"],
                       {f"model:g-seed{s}" for s in (1, 2, 3)}),
    }


def _api(scenario: str, store: str) -> Callable[[], int]:
    def go() -> int:
        from featurestore.store.feature_store import FeatureStore

        with FeatureStore(store, mode="a") as s:
            if scenario == "text-bank":
                s.put_text_bank("test/enc", "newbank", np.full((C, D), 0.5), CLASSES, kind="classes", classes=CLASSES)
            elif scenario == "derived-encoder":
                derived = 2 * s.features("test/enc", "train")
                s.put_features("test/enc+new", "train", derived, {"model": "m", "weights": "w"})
            else:
                s.put_logits("newlogits", "train", np.full((s.n_rows("train"), C), 3.0))
        return 0
    return go


def build_base(path: Path) -> None:
    """A labelled store with 4 saved models, a seed group g (3 seeds), 10 banks, 9 imported logits and
    9 derived encoders."""
    from cli.main import main
    from featurestore.store.feature_store import FeatureStore
    from tests.store_fixtures import make_feature_store

    rng = np.random.default_rng(0)
    means = rng.normal(size=(C, D))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % C
        X = means[y] + 0.8 * rng.normal(size=(n, D))
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y

    (Xt, yt), (Xv, yv) = draw(80), draw(40)
    make_feature_store(path, {"train": Xt, "val": Xv}, labels={"train": yt.tolist(), "val": yv.tolist()},
                       classes={"train": CLASSES, "val": CLASSES})
    W = (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)
    with FeatureStore(path, mode="a") as s:
        s.put_text_bank("test/enc", "bank", W, CLASSES, kind="classes", classes=CLASSES)
        for i in range(9):
            s.put_text_bank("test/enc", f"b{i}", W + i, CLASSES, kind="classes", classes=CLASSES)
        for i in range(4):
            s.save_model(f"m{i}", {"a": np.full((5, 3), float(i))}, {"v": i})
        for i in range(9):
            s.put_logits(f"l{i}", "train", np.full((80, C), float(i)))
            s.put_features(f"test/enc+d{i}", "train", Xt + i, {"model": "m", "weights": "w"})
    try:
        main([*SOLVE, "--store", str(path), "--shots", "2", "--seeds", "1,2,3", "--save", "g"])
    except SystemExit as exc:
        assert not exc.code, f"fs solve failed building the base store (exit {exc.code})"


def _plain(value: Any) -> Any:
    """A snapshot without the one part two runs of a save never share: a seed group's generation."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "generation"}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


# --------------------------------------------------------------------------- the driver (runs with the shim)
def kill_plan(log: list[str], original_size: int) -> list[int]:
    """The kill points to try, from the shim's KILLWRITE_LOG lines ("K OFFSET LENGTH JOURNAL") of
    the uninterrupted run over a store of ``original_size`` bytes: every in-place overwrite made
    while the journal exists, and the first and last K of each run of consecutive writes of one
    (phase, region) class. FEATURESTORE_SWEEP_ALL=1: every K."""
    rows = [tuple(int(v) for v in line.split()) for line in log if line.strip()]
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1)), "the shim's write log is not 1..N"
    if os.environ.get("FEATURESTORE_SWEEP_ALL"):
        return [row[0] for row in rows]
    plan: set[int] = set()
    journal_seen = False
    previous: tuple[str, str] | None = None
    for k, offset, _, journaled in rows:
        journal_seen = journal_seen or bool(journaled)
        phase = "journaled" if journaled else "after commit" if journal_seen else "before journal"
        region = ("unknown" if offset < 0 else "superblock" if offset == 0 else
                  "in place" if offset < original_size else "growth")
        if (phase, region) == ("journaled", "in place") or (phase, region) != previous:
            plan.update((k, k - 1) if previous is not None else (k,))  # a run's first K and the last of the one before
        previous = (phase, region)
    plan.add(len(rows))
    return sorted(k for k in plan if k >= 1)


def _in_process(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1


def sweep(base: Path, work: Path, scenario: str) -> dict[str, Any]:
    """Run inside a process with tests/killwrite.c preloaded (disarmed): count the command's
    writes, kill it before each one in turn and check the store. Returns the sweep's report."""
    from featurestore.store.switch_journal import journal_path
    from tests.fault_injection import KILLED, cli, run_forked, same, snapshot_forked

    log = str(work / "child.log")

    def fresh(tag: str) -> Path:
        store = work / f"{tag}.h5"
        for leftover in work.glob(f"{tag}.h5*"):
            leftover.unlink()
        shutil.copy(base, store)
        return store

    def command(store: Path) -> Callable[[], int]:
        args, _ = _commands(str(store))[scenario]
        return cli(args) if args is not None else _api(scenario, str(store))

    def arm(**env: str) -> Callable[[], None]:
        return lambda: os.environ.update(env)

    targets = _commands("")[scenario][1]
    reference = fresh("reference")
    status, old = snapshot_forked(reference)
    assert status == "ok", old
    # The uninterrupted run and the checks run here first, in this process: the forked children
    # then find every module imported (the shim counts per process, so they start from zero).
    count, write_log = work / "count", work / "writes"
    original_size = reference.stat().st_size
    os.environ.update(KILLWRITE_COUNT=str(count), KILLWRITE_LOG=str(write_log))
    try:
        assert _in_process(command(reference)) == 0, "the uninterrupted run failed"
    finally:
        del os.environ["KILLWRITE_COUNT"], os.environ["KILLWRITE_LOG"]
    total = int(count.read_text())
    plan = kill_plan(write_log.read_text().splitlines(), original_size)
    assert plan[-1] == total
    for args in (["info", "--store", str(reference)], ["verify", "--store", str(reference)],
                 ["eval", "--store", str(reference), "--models", "g", "--split", "val"]):
        assert _in_process(cli(args)) == 0, f"fs {args[0]} failed on the uninterrupted run's store"
    status, new = snapshot_forked(reference)
    assert status == "ok", new
    old, new = _plain(old), _plain(new)
    assert set(new) - set(old) <= targets and all(same(old[k], new[k]) for k in old if k not in targets)
    assert all(k in new and not same(old.get(k), new[k]) for k in targets), "the command changes nothing"
    failures: list[str] = []
    for tried, k in enumerate(plan):
        store = fresh(f"k{k}")
        code = run_forked(command(store), log=log, setup=arm(KILLWRITE_AT=str(k)))
        if code != KILLED:
            failures.append(f"K={k}: not killed (exit {code})")
            continue
        # the first to open after the kill finds a killed switch: fs verify on every other K tried, a reader on the rest
        verify_first = tried % 2 == 0
        if verify_first:
            code = run_forked(cli(["verify", "--store", str(store)]), log=log)
            if code != 0:
                failures.append(f"K={k}: fs verify exit {code} after the kill")
        status, seen = snapshot_forked(store)
        if status != "ok":
            failures.append(f"K={k}: reader after the kill: {status}: {seen}")
        else:
            seen = _plain(seen)
            others = (set(seen) | set(old)) - targets
            torn = sorted(key for key in others if key not in seen or key not in old or not same(seen[key], old[key]))
            if torn:
                failures.append(f"K={k}: other objects changed or lost: {', '.join(torn[:4])}")
            versions = {"old" if same(seen.get(t), old.get(t)) else "new" if same(seen.get(t), new[t]) else "torn"
                        for t in targets}
            if len(versions) != 1 or "torn" in versions:
                failures.append(f"K={k}: {', '.join(sorted(targets))} are {'/'.join(sorted(versions))}, "
                                "not all old or all new")
        if journal_path(store).exists():
            failures.append(f"K={k}: the killed switch's journal is still there after the first opener")
        for args in [["info", "--store", str(store)]] + ([] if verify_first else [["verify", "--store", str(store)]]):
            code = run_forked(cli(args), log=log)
            if code != 0:
                failures.append(f"K={k}: fs {args[0]} exit {code} after the kill")
        if scenario == "seed-group":
            code = run_forked(cli(["eval", "--store", str(store), "--models", "g", "--split", "val"]), log=log)
            if code not in (0, 2):
                failures.append(f"K={k}: fs eval --models g exit {code}")
        code = run_forked(command(store), log=log)
        status, final = snapshot_forked(store)
        if code != 0 or status != "ok" or not same(_plain(final), new):
            failures.append(f"K={k}: the rerun (exit {code}) did not give the uninterrupted run's store ({status})")
        for leftover in work.glob(f"k{k}.h5*"):
            leftover.unlink()
    held = len(plan) - len({f.split(":")[0] for f in failures})
    return {"total": total, "tried": len(plan), "held": held, "failures": failures}



@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("switch") / "base.h5"
    build_base(path)
    return path


def _drive(shim: Path, base: Path, work: Path, scenario: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LD_PRELOAD=str(shim), OMP_NUM_THREADS="1")
    for key in ("KILLWRITE_AT", "KILLWRITE_COUNT"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-m", "tests.test_faults_switch", str(base), str(work), scenario],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "report.json").read_text())


@pytest.mark.parametrize("scenario", list(_commands("")))
def test_a_kill_at_any_write_of_a_switch_leaves_old_or_new_and_nothing_else_touched(scenario, killwrite_shim, base,
                                                                                     tmp_path):
    report = _drive(killwrite_shim, base, tmp_path, scenario)
    print(f"switch sweep {scenario}: tried {report['tried']} of {report['total']} write() kill points, "
          f"held {report['held']}")
    assert not report["failures"], "\n".join(report["failures"])


def test_the_kill_plan_tries_every_overwrite_in_place_and_the_ends_of_each_run(monkeypatch):
    """A model save's write log (as the shim wrote it, offsets shortened): 3 superblock writes before
    the journal, its mark, growth, 2 overwrites in place, more growth, the last superblock write
    of the switch, 2 after the commit. Written out by hand: the K kept."""
    monkeypatch.delenv("FEATURESTORE_SWEEP_ALL", raising=False)
    size = 1000
    writes = [(0, 0)] * 3 + [(0, 1)] + [(1000 + i, 1) for i in range(4)] + [(48, 1), (700, 1)] + \
        [(1100 + i, 1) for i in range(5)] + [(0, 1)] + [(0, 0)] * 2 + [(-1, 0)]
    log = [f"{k} {offset} 8 {journaled}" for k, (offset, journaled) in enumerate(writes, 1)]
    assert kill_plan(log, size) == [1, 3, 4, 5, 8, 9, 10, 11, 15, 16, 17, 18, 19]
    monkeypatch.setenv("FEATURESTORE_SWEEP_ALL", "1")
    assert kill_plan(log, size) == list(range(1, 20))
    with pytest.raises(AssertionError, match="not 1..N"):
        kill_plan(log[1:], size)


def test_an_unfinished_switch_is_rolled_back_by_the_next_reader(killwrite_shim, base, tmp_path):
    """A writer killed late in its switch leaves a journal; the next reader rolls it back (as
    fs verify and the next writer would), and a reader killed half-way through that rollback
    leaves it to the next opener, which finishes it: the store is the old one."""
    from featurestore.store.switch_journal import journal_path
    from tests.fault_injection import same, snapshot

    old = snapshot(base)
    code = """
import sys, numpy as np
from featurestore.store.feature_store import FeatureStore
with FeatureStore(sys.argv[1], mode="a") as s:
    s.save_model("m0", {"a": np.ones((50, 50))}, {"v": "new"})
"""
    store = tmp_path / "s.h5"
    env = dict(os.environ, PYTHONPATH=str(ROOT), LD_PRELOAD=str(killwrite_shim))
    shutil.copy(base, store)
    subprocess.run([sys.executable, "-c", code, str(store)], check=True, timeout=300,
                   env={**env, "KILLWRITE_COUNT": str(tmp_path / "n"), "KILLWRITE_LOG": str(tmp_path / "writes")})
    # the last write before the commit: the last one the shim logged while the journal existed
    k = max(int(line.split()[0]) for line in (tmp_path / "writes").read_text().splitlines() if line.endswith(" 1"))
    shutil.copy(base, store)
    killed = subprocess.run([sys.executable, "-c", code, str(store)], env={**env, "KILLWRITE_AT": str(k)}, timeout=300)
    assert killed.returncode == -9
    assert journal_path(store).exists()
    reader = "import sys; from featurestore.store.feature_store import FeatureStore; FeatureStore(sys.argv[1]).close()"
    env = dict(os.environ, PYTHONPATH=str(ROOT), FEATURESTORE_KILL_AT_WRITE="3")
    assert subprocess.run([sys.executable, "-c", reader, str(store)], env=env, timeout=300).returncode == -9
    assert journal_path(store).exists()  # killed after writing back two blocks
    assert same(snapshot(store), old)
    assert not journal_path(store).exists()


def test_a_group_save_replaces_the_whole_group_and_eval_refuses_a_mixed_one(base, tmp_path, capsys):
    """A seed group is saved as one set: fewer seeds than before delete the older extra member;
    a member replaced by another save (here a single-model save under a member's name) makes the
    group mixed, which fs eval refuses in one line (exit 2) instead of averaging it."""
    from featurestore.store.feature_store import FeatureStore
    from tests.cli_runner import run

    store = tmp_path / "s.h5"
    shutil.copy(base, store)
    assert run(["eval", "--store", store, "--models", "g", "--split", "val"], capsys)[0] == 0
    code, _, err = run([*SOLVE, "--store", store, "--shots", "3", "--seeds", "1,2", "--save", "g"], capsys)
    assert code == 0, err
    with FeatureStore(store) as s:
        assert [m for m in s.models() if m.startswith("g")] == ["g-seed1", "g-seed2"]
        metas = [s.load_model(f"g-seed{i}")[1]["group"] for i in (1, 2)]
    assert metas[0] == metas[1] and metas[0]["members"] == ["g-seed1", "g-seed2"]
    code, out, err = run(["eval", "--store", store, "--models", "g", "--split", "val"], capsys)
    assert code == 0 and "over 2 seeds" in out, err
    code, _, err = run([*SOLVE, "--store", store, "--shots", "2", "--seeds", "2", "--save", "g-seed2"], capsys)
    assert code == 0, err
    code, out, err = run(["eval", "--store", store, "--models", "g", "--split", "val"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert "seed group 'g' mixes models of different saves (g-seed1; g-seed2)" in err


def test_the_journal_restores_every_byte_it_logged_and_ignores_a_cut_entry(tmp_path):
    """JournaledFile on a plain file: overwrites (twice at one place), growth and a cut below the
    original size, then no commit (a kill); roll_back gives the original bytes back. An entry cut
    short by the kill is skipped, and its write, which never started, needs nothing undone."""
    from featurestore.store.switch_journal import JournaledFile, journal_path, roll_back

    path = tmp_path / "s.h5"
    original = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(original)
    f = JournaledFile(path)
    for offset, data in ((100, b"x" * 300), (250, b"y" * 100), (4990, b"z" * 50), (7000, b"w" * 10)):
        f.seek(offset)
        f.write(data)
    f.truncate(3000)
    f.seek(0)
    f.write(b"superblock?")
    f.close()
    assert path.read_bytes() != original
    with open(journal_path(path), "ab") as journal:
        journal.write(b"\x10\x00\x00\x00\x00\x00\x00\x00\x05\x00")  # a header cut short: ignored
    assert roll_back(path) is True
    assert path.read_bytes() == original and not journal_path(path).exists()
    assert roll_back(path) is False

    f = JournaledFile(path)
    f.seek(10)
    f.write(b"new")
    f.commit()  # committed: nothing to roll back
    f.close()
    assert not journal_path(path).exists() and path.read_bytes()[10:13] == b"new"


def test_a_journal_that_is_not_this_stores_is_refused_in_one_line(tmp_path):
    from featurestore.errors import FeatureStoreError, StoreFormatError
    from featurestore.store.switch_journal import JournaledFile, journal_path, roll_back

    path = tmp_path / "s.h5"
    path.write_bytes(bytes(1000))
    f = JournaledFile(path)
    f.write(b"x" * 10)
    f.close()
    other = tmp_path / "other"
    other.write_bytes(b"x" * 10 + bytes(990))
    os.replace(other, path)  # another file (inode) under the store's name
    with pytest.raises(StoreFormatError, match="another file") as exc:
        roll_back(path)
    assert "\n" not in str(exc.value) and path.read_bytes()[:10] == b"x" * 10
    journal_path(path).write_bytes(b"something else entirely")
    with pytest.raises(StoreFormatError, match="not a switch journal"):
        roll_back(path)
    with pytest.raises(FeatureStoreError, match="cannot start the switch journal"):
        JournaledFile(path)  # one is there already


def test_readers_opening_during_journaled_saves_see_old_or_new(tmp_path):
    """A writer saves a seed group and a bank over and over; a reader opens the store afresh each
    time (while a switch runs the superblock says "open for write", so it waits) and always finds
    every model and bank whole, the group's seeds from one save."""
    from featurestore.store.feature_store import FeatureStore
    from tests.store_fixtures import make_feature_store

    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((4, D))})
    code = f"""
import numpy as np
from featurestore.store.feature_store import FeatureStore
with FeatureStore({str(path)!r}, mode="a") as s:
    for v in range(40):
        s.save_models({{f"g-seed{{i}}": ({{"w": np.full((64, 64), v)}}, {{"v": v}}) for i in (1, 2, 3)}})
        s.put_text_bank("test/enc", "bank", np.full((3, {D}), v), ["a", "b", "c"])
"""
    writer = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    polls = 0
    while writer.poll() is None or polls == 0:
        with FeatureStore(path) as reader:
            models = reader.models()
            if models:
                values = {float(reader.load_model(m)[0]["w"][0, 0]) for m in models}
                metas = {reader.load_model(m)[1]["v"] for m in models}
                assert models == ["g-seed1", "g-seed2", "g-seed3"] and len(values) == 1 and values == metas
            if reader.text_banks("test/enc"):
                bank = reader.text("test/enc", "bank")
                assert bank.shape == (3, D) and len(np.unique(bank)) == 1
        polls += 1
    assert writer.wait() == 0 and polls > 1


if __name__ == "__main__":
    base_path, work_path, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    result = sweep(base_path, work_path, name)
    (work_path / "report.json").write_text(json.dumps(result))
