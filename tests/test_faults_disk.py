"""A disk that fills up under a writing command (issue 28, item 1).

Two ways of filling it:

- a real full disk: a small tmpfs (mounting needs root; skipped with the reason elsewhere) with
  a filler file leaving a given number of bytes free, so HDF5's own writes fail with ENOSPC
  wherever they are (in a flush, at close);
- the write-point injector (``FEATURESTORE_NO_SPACE_AT_WRITE=K``): the K-th write point raises
  ENOSPC, at every write point of a command.

Each time the command must exit 2 with the one line "no space left on DEVICE writing STORE: free
space and re-run to resume" (no traceback, no crash, no "damaged"); a reader then sees committed
data only, and the re-run after freeing space gives exactly the store of an uninterrupted run.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.fault_injection import (
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
ONE_LINE = "error: no space left on {device} writing {path}: free space and re-run to resume"
# The free space left, as fractions of what the command writes: half, and five sixths (its last flush and close).
FREE_FRACTIONS = ((1, 2), (5, 6))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint):
    """Two image folders (b holds a's images and more), a base store extracted from a with a
    class bank and a saved model."""
    from cli.main import main

    root = tmp_path_factory.mktemp("disk")
    write_class_tree(root / "a", {"cat": 6, "dog": 6}, seed=0)
    write_class_tree(root / "b", {"cat": 12, "dog": 12}, seed=0)
    (root / "b" / "dog" / "broken.jpg").write_bytes(b"not an image")
    model = ["--model", TINY_MODEL, "--model-config", str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint),
             "--workers", "0", "--batch-size", "4", "-q"]
    base = root / "base.h5"
    main(["extract", str(root / "a"), "--store", str(base), "--split", "train", *model])
    main(["text", "--store", str(base), "--classes", "train", "--templates", "simple", "--name", "bank", "-q"])
    main(["solve", "gda", "--store", str(base), "--train", "train", "--bank", "bank", "--save", "model", "-q"])
    (root / "two.txt").write_text("a photo of a {}.\nart of the {}.\n")
    return root, model, base


def _empty(store: Path, world) -> None:
    pass


def _base(store: Path, world) -> None:
    shutil.copy(world[2], store)


COMMANDS = {
    # name: (prepare the store, the command's arguments)
    "extract-new": (_empty, lambda s, r, m: ["extract", r / "b", "--store", s, "--split", "train", *m]),
    "extract-append": (_base, lambda s, r, m: ["extract", r / "b", "--store", s, "--split", "train", *m]),
    "extract-views": (_empty, lambda s, r, m: ["extract", r / "a", "--store", s, "--split", "train", "--views", "2",
                                             *m]),
    "text": (_base, lambda s, r, m: ["text", "--store", s, "--classes", "train", "--templates", r / "two.txt",
                                   "--name", "bank", "-q"]),
    "solve-save": (_base, lambda s, r, m: ["solve", "gda", "--store", s, "--train", "train", "--bank", "bank",
                                         "--param", "alpha=0.5", "--save", "model", "-q"]),
}


def cli_exit(args: list) -> Callable[[], int]:
    """`fs ARGS` in a forked child that ends through the C library's exit(), so HDF5's own exit
    handler runs as at the end of a real `fs` process (a file left open crashed it there)."""
    run = cli(args)

    def go() -> int:
        # the log is on descriptors 1 and 2 (pytest may have replaced sys.stdout/sys.stderr)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            code = run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        ctypes.CDLL(None).exit(int(code))
        return int(code)
    return go


def _lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []


def _check_after_no_space(store: Path, old: dict, new: dict, kind: str) -> str | None:
    """What a reader sees after the failed command: committed rows only (or the one line of an
    empty store) for row commands, the old or the new object for the others."""
    status, seen = snapshot_forked(store)
    if kind == "rows":
        if status == "error" and "empty store" in seen:
            return None
        if status != "ok":
            return f"reader: {status}: {seen}"
        return rows_consistent(seen, new)
    if status != "ok":
        return f"reader: {status}: {seen}"
    return None if same(seen, old) or same(seen, new) else "the store is neither the old nor the new one"


# ---------------------------------------------------------------------------------- a real full disk
@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A 16 MiB tmpfs mounted for this module (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (os.geteuid() != 0); the injector tests still run")
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small tmpfs")
    point = tmp_path_factory.mktemp("tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Write a filler file so that about ``leave`` bytes stay free on ``folder``'s filesystem."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    size = max(0, free - leave)
    with open(folder / "filler", "wb") as f:
        block = bytes(1 << 20)
        while size > 0:
            f.write(block[: min(size, len(block))])
            size -= min(size, len(block))


def _device(point: Path) -> str:
    return f"tmpfs (mounted at {point})"


@pytest.mark.parametrize("reserve", ["default", "none"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_full_tmpfs_gives_one_line_and_the_rerun_resumes(name, reserve, world, small_disk, tmp_path):
    """``reserve="default"``: the writer refuses a write when the free space runs below its
    reserve (nothing written by HDF5 fails); ``"none"`` (FEATURESTORE_MIN_FREE_BYTES=0): HDF5's
    own writes and flushes meet the full disk. Four fill levels, one of each kind (nothing free,
    one block, half and five sixths of what the command writes); they were seven (sixths 1 to 5):
    the four still fail when abandon() lets HDF5's close write to the full disk again."""
    from featurestore.store.disk_space import MIN_FREE_BYTES

    root, model, _ = world
    prepare, make_args = COMMANDS[name]
    kind = "rows" if name.startswith("extract") else "object"
    log = tmp_path / "child.log"
    reference = tmp_path / "reference.h5"
    prepare(reference, world)
    old = snapshot(reference) if reference.exists() else {}
    before = reference.stat().st_size if reference.exists() else 0
    assert run_forked(cli(make_args(reference, root, model)), log=str(log)) == 0, log.read_text()
    new = snapshot(reference)
    grown = reference.stat().st_size - before
    assert grown > 0 and not same(old, new)
    # Fill levels, one of each kind: nothing free (beyond the reserve), one block, half of what the
    # command writes, almost all of it (the space runs out in its last flush or at close).
    base = MIN_FREE_BYTES if reserve == "default" else 0
    leaves = sorted({base, base + 4096, *(base + grown * num // den for num, den in FREE_FRACTIONS)})

    def setup() -> None:
        if reserve == "none":
            os.environ["FEATURESTORE_MIN_FREE_BYTES"] = "0"
    failures, failed_runs = [], 0
    for leave in leaves:
        for entry in small_disk.iterdir():
            entry.unlink()
        store = small_disk / "s.h5"
        prepare(store, world)
        _fill(small_disk, leave)
        log.unlink(missing_ok=True)
        code = run_forked(cli_exit(make_args(store, root, model)), log=str(log), setup=setup)
        if code == 0:
            continue  # enough space after all (HDF5 reuses a few blocks)
        failed_runs += 1
        lines = _lines(log)
        expected = ONE_LINE.format(device=_device(small_disk), path=store)
        if code != 2 or lines != [expected]:
            failures.append(f"free {leave}: exit {code}, output {lines[:3]} ({len(lines)} lines)")
        problem = _check_after_no_space(store, old, new, kind)
        if problem:
            failures.append(f"free {leave}: {problem}")
        (small_disk / "filler").unlink()
        code = run_forked(cli(make_args(store, root, model)), log=str(log))
        if code != 0:
            failures.append(f"free {leave}: the rerun after freeing space failed (exit {code}): {_lines(log)[-3:]}")
            continue
        status, final = snapshot_forked(store)
        if status != "ok" or not same(final, new):
            failures.append(f"free {leave}: after the rerun the store differs from an uninterrupted run ({status})")
    print(f"full tmpfs {name}, reserve {reserve}: {len(leaves)} fill levels, {failed_runs} ran out of space, "
          f"{failed_runs - len({f.split(':')[0] for f in failures})} held")
    assert failed_runs >= len(leaves) // 2, "the disk never filled up; the test would prove nothing"
    assert not failures, "\n".join(failures)


def test_a_full_tmpfs_under_index_and_export_gives_one_line(world, small_disk, tmp_path):
    """Files written beside the store (a FAISS index and its sidecar) and an export folder."""
    root, model, base = world
    log = tmp_path / "child.log"
    for entry in small_disk.iterdir():
        entry.unlink()
    store = small_disk / "s.h5"
    shutil.copy(base, store)
    _fill(small_disk, 0)
    for args in (["index", "--store", store, "--split", "train", "--factory", "Flat", "-q"],
                 ["export", "--store", store, "--split", "train", "--output", small_disk / "out", "-q"]):
        log.unlink(missing_ok=True)
        code = run_forked(cli_exit(args), log=str(log))
        lines = _lines(log)
        assert code == 2 and len(lines) == 1, f"{args[0]}: exit {code}: {lines[:5]}"
        assert lines[0].startswith(f"error: no space left on {_device(small_disk)} writing {small_disk}/")
        assert lines[0].endswith(": free space and re-run to resume")
        assert not [p.name for p in small_disk.iterdir() if p.name not in ("s.h5", "s.h5.lock", "filler")]
    (small_disk / "filler").unlink()
    assert snapshot_forked(store)[0] == "ok"


# ---------------------------------------------------------------------------------- the injector
def _no_space_at(k: int):
    def setup() -> None:
        os.environ["FEATURESTORE_NO_SPACE_AT_WRITE"] = str(k)
    return setup


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_space_at_every_write_point_gives_one_line_and_resumes(name, world, tmp_path):
    root, model, _ = world
    prepare, make_args = COMMANDS[name]
    kind = "rows" if name.startswith("extract") else "object"
    log = tmp_path / "child.log"

    def fresh(tag: str) -> Path:
        folder = tmp_path / tag
        folder.mkdir()
        store = folder / "s.h5"
        prepare(store, world)
        return store

    reference = fresh("reference")
    old = snapshot(reference) if reference.exists() else {}
    total = count_write_points(cli(make_args(reference, root, model)), log=str(log))
    new = snapshot(reference)
    points = kill_points(total, 10)
    failures = []
    for k in points:
        store = fresh(f"k{k}")
        log.unlink(missing_ok=True)
        code = run_forked(cli_exit(make_args(store, root, model)), log=str(log), setup=_no_space_at(k))
        lines = _lines(log)
        if code != 2 or lines != [ONE_LINE.format(device=_device_of(store), path=store)]:
            failures.append(f"K={k}: exit {code}, output {lines[:3]} ({len(lines)} lines)")
        problem = _check_after_no_space(store, old, new, kind)
        if problem:
            failures.append(f"K={k}: {problem}")
        if run_forked(cli(make_args(store, root, model)), log=str(log)) != 0:
            failures.append(f"K={k}: the rerun failed: {_lines(log)[-3:]}")
            continue
        status, final = snapshot_forked(store)
        if status != "ok" or not same(final, new):
            failures.append(f"K={k}: after the rerun the store differs from an uninterrupted run ({status})")
    print(f"no space sweep {name}: tried {len(points)} of {total} write points, "
          f"held {len(points) - len({f.split(':')[0] for f in failures})}")
    assert not failures, "\n".join(failures)


def _device_of(path: Path) -> str:
    """The device and mount point of ``path``, read from /proc/mounts independently."""
    folder = Path(os.path.realpath(path.parent))
    mount = folder
    while not os.path.ismount(mount):
        mount = mount.parent
    source = ""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[1].replace("\\040", " ") == str(mount):
                source = fields[0]
    return f"{source} (mounted at {mount})" if source and source != str(mount) else str(mount)


def test_a_write_lost_in_an_h5py_destructor_stops_every_later_write(tmp_path):
    """h5py only prints a failed write of an object it closes in a destructor; the store's hook
    records it: the next write, or else the close, raises NoSpaceError, and the writer after it
    works again."""
    import types

    from featurestore.errors import NoSpaceError
    from featurestore.store.feature_store import FeatureStore
    from tests.store_fixtures import make_feature_store

    store = make_feature_store(tmp_path / "s.h5", {"train": np.eye(4, dtype=np.float32)})
    result = tmp_path / "result.txt"

    def lost() -> None:  # what Python does with the exception of a failing h5py destructor
        sys.unraisablehook(types.SimpleNamespace(exc_type=OSError, exc_value=OSError(28, "No space left on device"),
                                                 exc_traceback=None, err_msg=None, object=None))

    def go() -> int:
        seen = []
        writer = FeatureStore(store, mode="a")
        lost()
        try:
            writer.add_rows("train", ["new"], ["new.jpg"], [-1])
            seen.append("write went on")
        except NoSpaceError as exc:
            seen.append(f"write: {exc}")
        writer.close()
        writer = FeatureStore(store, mode="a")
        lost()
        try:
            writer.close()
            seen.append("close went on")
        except NoSpaceError as exc:
            seen.append(f"close: {exc}")
        with FeatureStore(store, mode="a") as writer:
            writer.add_rows("train", ["new"], ["new.jpg"], [-1])
        seen.append("third writer wrote")
        result.write_text("\n".join(seen))
        return 0

    assert run_forked(go) == 0
    lines = result.read_text().splitlines()
    message = f"no space left on {_device_of(store)} writing {store}: free space and re-run to resume"
    assert lines == [f"write: {message}", f"close: {message}", "third writer wrote"]
    assert snapshot(store)["ids:train"] == [*(f"train-{i:05d}" for i in range(4)), "new"]
