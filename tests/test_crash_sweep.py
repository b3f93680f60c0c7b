"""Kill every writing command at its store write points (SIGKILL just before the K-th HDF5
write, resize, object creation, move, deletion or flush; tests/fault_injection.py) and check,
after each kill:

- a reader opens the store at once (no "open for write" block, no traceback, no hang),
- every saved object (model, text bank, imported logits, ensemble, derived encoder) is either
  the old or the new version, never a mix,
- committed rows are each present once with the features of an uninterrupted run,
- rerunning the command finishes and gives exactly the store of an uninterrupted run.

Long commands are sampled on a stride (about SWEEP_BUDGET kill points each; set
FEATURESTORE_SWEEP_ALL=1 to try every one). Each test prints "crash sweep <command>: tried
T of N kill points, held H".
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.fault_injection import (
    KILLED,
    cli,
    count_write_points,
    kill_points,
    rows_consistent,
    run_forked,
    same,
    snapshot,
    snapshot_forked,
)
from tests.images import write_class_tree

pytestmark = pytest.mark.slow
SWEEP_BUDGET = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint):
    """Image folders, a base store with rows, a class bank, two saved models and imported logits."""
    from cli.main import main

    root = tmp_path_factory.mktemp("crash")
    write_class_tree(root / "a", {"cat": 2, "dog": 2}, seed=0)
    write_class_tree(root / "b", {"cat": 3, "dog": 3}, seed=0)  # a's images and two more
    (root / "b" / "dog" / "broken.jpg").write_bytes(b"not an image")  # an error row (its reason is data)
    model = ["--model", TINY_MODEL, "--model-config", str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint),
             "--workers", "0", "--batch-size", "2", "-q"]
    base = root / "base.h5"
    main(["extract", str(root / "a"), "--store", str(base), "--split", "train", *model])
    main(["extract", str(root / "a"), "--store", str(base), "--split", "val", *model])
    with open(root / "two.txt", "w") as f:
        f.write("a photo of a {}.\nart of the {}.\n")
    main(["text", "--store", str(base), "--classes", "train", "--templates", "simple", "--name", "bank", "-q"])
    main(["solve", "zero-shot", "--store", str(base), "--train", "train", "--bank", "bank", "--save", "zs", "-q"])
    main(["solve", "gda", "--store", str(base), "--train", "train", "--bank", "bank", "--save", "model", "-q"])
    main(["ensemble", "--store", str(base), "--models", "zs,model", "--weights", "0.5,0.5", "--save", "ens"])
    rng = np.random.default_rng(0)
    for name in ("old", "new"):
        np.save(root / f"{name}.npy", rng.normal(size=(4, 2)).astype(np.float32))
    with open(root / "ids.txt", "w") as f:
        f.write("\n".join(f"{c}/{i}.jpg" for c in ("cat", "dog") for i in range(2)) + "\n")
    key = snapshot_key(base)
    main(["import-logits", str(root / "old.npy"), "--ids", str(root / "ids.txt"), "--store", str(base),
          "--split", "train", "--name", "ext"])
    main(["schur", "remove", "--store", str(base), "--split", "train", "--bank", "bank", "--prompt", "cat",
          "--method", "project", "--name", "x", "--encoder", key])
    return root, model, base, key


def snapshot_key(path: Path) -> str:
    from featurestore.store.feature_store import FeatureStore

    with FeatureStore(path) as store:
        return store.encoders()[0]


def _empty(dst: Path, world) -> None:
    pass


def _base(dst: Path, world) -> None:
    shutil.copy(world[2], dst)


def _train_from_a(dst: Path, world) -> None:
    root, model = world[:2]
    from cli.main import main

    main(["extract", str(root / "a"), "--store", str(dst), "--split", "train", *model])


COMMANDS = {
    # name: (prepare the store before the command, the command's arguments, "rows" | "object")
    "extract-new": (_empty, lambda s, r, m, k: ["extract", r / "b", "--store", s, "--split", "train", *m], "rows"),
    "extract-append": (_train_from_a, lambda s, r, m, k: ["extract", r / "b", "--store", s, "--split", "train", *m],
                       "rows"),
    "extract-views": (_empty, lambda s, r, m, k: ["extract", r / "a", "--store", s, "--split", "train", "--views", "2",
                                               "--seeds", "3", *m], "rows"),
    "text": (_base, lambda s, r, m, k: ["text", "--store", s, "--encoder", k, "--classes", "train",
                                     "--templates", r / "two.txt", "--name", "bank", "-q"], "object"),
    "solve-save": (_base, lambda s, r, m, k: ["solve", "gda", "--store", s, "--encoder", k, "--train", "train",
                                           "--bank", "bank", "--param", "alpha=0.5", "--save", "model", "-q"],
                   "object"),
    "import-logits": (_base, lambda s, r, m, k: ["import-logits", r / "new.npy", "--ids", r / "ids.txt", "--store", s,
                                              "--split", "train", "--name", "ext"], "object"),
    "ensemble": (_base, lambda s, r, m, k: ["ensemble", "--store", s, "--models", "zs,model", "--weights", "0.25,0.75",
                                         "--save", "ens"], "object"),
    "schur-remove": (_base, lambda s, r, m, k: ["schur", "remove", "--store", s, "--encoder", k, "--split", "train",
                                             "--bank", "bank", "--prompt", "dog", "--method", "project", "--name", "x"],
                     "object"),
}


def _sweep(name: str, world, tmp_path: Path, prepare, make_args, kind: str, budget: int = SWEEP_BUDGET) -> None:
    root, model, _, key = world
    log = str(tmp_path / "child.log")

    def fresh(tag: str) -> Path:
        folder = tmp_path / tag
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        store = folder / "s.h5"
        prepare(store, world)
        return store

    reference = fresh("reference")
    old = snapshot(reference) if reference.exists() else {}
    total = count_write_points(cli(make_args(reference, root, model, key)), log=log)
    new = snapshot(reference)
    assert not same(old, new), "the command changes nothing; the sweep would prove nothing"
    points = kill_points(total, budget)
    failures = []
    for k in points:
        store = fresh(f"k{k}")
        code = run_forked(cli(make_args(store, root, model, key)), kill_at=k, log=log)
        if code != KILLED:
            failures.append(f"K={k}: the command was not killed (exit {code})")
            continue
        status, seen = snapshot_forked(store)
        if kind == "object":
            if status != "ok":
                failures.append(f"K={k}: reader after the kill: {status}: {seen}")
            elif not (same(seen, old) or same(seen, new)):
                changed = [key for key in new if key not in seen or not same(seen[key], new[key])]
                failures.append(f"K={k}: the store is neither the old nor the new one ({', '.join(changed[:3])})")
        else:
            if status == "error" and "empty store" in seen:
                pass  # killed before the new store's first commit: an empty store, said in one line
            elif status != "ok":
                failures.append(f"K={k}: reader after the kill: {status}: {seen}")
            else:
                problem = rows_consistent(seen, new)
                if problem:
                    failures.append(f"K={k}: {problem}")
        code = run_forked(cli(make_args(store, root, model, key)), log=log)
        if code != 0:
            failures.append(f"K={k}: the rerun failed (exit {code}; see {log})")
            continue
        status, final = snapshot_forked(store)
        if status != "ok" or not same(final, new):
            failures.append(f"K={k}: after the rerun the store differs from an uninterrupted run ({status})")
    held = len(points) - len({f.split(':')[0] for f in failures})
    print(f"crash sweep {name}: tried {len(points)} of {total} kill points, held {held}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_kill_point_leaves_old_or_new_and_resumes(name, world, tmp_path):
    prepare, make_args, kind = COMMANDS[name]
    _sweep(name, world, tmp_path, prepare, make_args, kind)


def test_cluster_extraction_resumes_from_every_kill_point(world, tmp_path):
    """fs extract --cluster; the kill points are the main process's (opening the store, checking
    finished shards, linking them), with the shards done by an earlier run on a 2-worker
    LocalCluster, as after a run killed while linking. The swept runs find every shard done, so
    they start a 1-worker LocalCluster (each run starts its own: one worker process fewer)."""
    root, model = world[:2]
    from cli.main import main

    shards_from = tmp_path / "shards-run"
    shards_from.mkdir()
    main(["extract", str(root / "b"), "--store", str(shards_from / "s.h5"), "--split", "train", "--cluster", "local:2",
          "--shard-rows", "2", *model])

    def prepare(dst: Path, world) -> None:
        shutil.copytree(shards_from / "s.h5.shards", Path(f"{dst}.shards"))

    _sweep("extract-cluster", world, tmp_path, prepare,
           lambda s, r, m, k: ["extract", r / "b", "--store", s, "--split", "train", "--cluster", "local:1",
                            "--shard-rows", "2", *m], "rows", budget=4)


def test_index_build_killed_anywhere_leaves_searchable_store_and_resumes(world, tmp_path):
    """fs index at every file write point (FAISS file, sidecar, chmod, rename, unlink): after a
    kill, fs search answers exactly (rebuilding what is missing); the rerun leaves no
    temporary file and the same answers."""
    from tests.fault_injection import file_write_points

    root, _, base, key = world
    log = str(tmp_path / "child.log")
    build = lambda s: ["index", "--store", s, "--encoder", key, "--split", "train", "--factory", "Flat", "-q"]  # noqa: E731

    def search_output(store: Path) -> tuple[int, str]:
        out = tmp_path / "search.json"

        def go() -> int:
            import contextlib
            import io

            from cli.main import main

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                main(["search", "--store", str(store), "--encoder", key, "--split", "train", "--id", "cat/0.jpg",
                      "-k", "4", "--factory", "Flat", "--json", "-q"])
            out.write_text(buffer.getvalue())
            return 0
        code = run_forked(go, log=log, timeout=60)
        return code, out.read_text() if code == 0 else ""

    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    shutil.copy(base, reference_dir / "s.h5")
    total = count_write_points(cli(build(reference_dir / "s.h5")), log=log, setup=file_write_points)
    code, expected = search_output(reference_dir / "s.h5")
    assert code == 0 and expected
    points = kill_points(total, SWEEP_BUDGET)
    failures = []
    for k in points:
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        store = folder / "s.h5"
        shutil.copy(base, store)
        code = run_forked(cli(build(store)), kill_at=k, log=log, setup=file_write_points)
        if code != KILLED:
            failures.append(f"K={k}: not killed (exit {code})")
            continue
        code, seen = search_output(store)
        if code != 0 or seen != expected:
            failures.append(f"K={k}: fs search after the kill: exit {code}")
        if run_forked(cli(build(store)), log=log) != 0:
            failures.append(f"K={k}: the rerun failed")
            continue
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        code, seen = search_output(store)
        if leftovers or code != 0 or seen != expected:
            failures.append(f"K={k}: after the rerun: leftovers {leftovers}, search exit {code}")
    held = len(points) - len({f.split(':')[0] for f in failures})
    print(f"crash sweep index: tried {len(points)} of {total} kill points, held {held}")
    assert not failures, "\n".join(failures)
