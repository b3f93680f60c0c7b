"""Test helper: run `fs` commands (or any callable) in a forked child that SIGKILLs itself just
before its K-th store write point (featurestore/store/write_points.py), and snapshot a store's
contents in a child with a timeout (a blocked or hanging reader fails the check instead of
hanging the suite).

Forking keeps torch and the tiny model imported once in the test process, so one kill point
costs a fraction of a second instead of a fresh interpreter.
"""
from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import pickle
import select
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from featurestore.store import write_points

KILLED = -signal.SIGKILL


INHERIT = "<inherit>"  # as run_forked's stdout/stderr: the child keeps the parent's stream


def run_forked(fn: Callable[[], int], *, kill_at: int | None = None, count_file: str | None = None,
               timeout: float = 120.0, log: str | None = None, setup: Callable[[], None] | None = None,
               stdout: str | os.PathLike[str] | None = None, stderr: str | os.PathLike[str] | None = None,
               hang: Literal["idle", "wall"] = "idle", wait: bool = True, libc_exit: bool = False) -> int:
    """Run ``fn()`` in a forked child; return its exit code, or -signal when it was killed.

    ``kill_at`` arms the injector in the child; ``count_file`` records its write points;
    ``setup`` runs in the child first (e.g. :func:`file_write_points`, or setting variables a
    preloaded shim reads).

    Output: ``log`` is appended to by both streams; ``stdout`` and ``stderr`` name files written
    anew (the same path twice: one file), or :data:`INHERIT` to keep the parent's stream; a
    stream named by neither goes to /dev/null. ``libc_exit`` ends the child through the C
    library's exit(), so C exit handlers (HDF5's) run as at the end of a real process.

    Hang rule (``hang``): "idle", a child that used less than ``HANG_CPU_SHARE`` of a core (with
    its descendants) over ``timeout`` seconds is hung, while a slow child on a loaded machine is
    waited for; "wall", a child still running ``timeout`` seconds after the fork is hung (a
    busy loop too). A hung child is killed and reported as -SIGALRM.

    ``wait=False`` returns the child's pid at once; the caller reaps it (``os.waitpid``).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            _redirect(log, stdout, stderr)
            faulthandler.dump_traceback_later(max(1.0, timeout - 5), file=2)  # stacks of a hang, on stderr
            if "torch" in sys.modules:
                # GNU OpenMP's thread team does not survive fork: once the parent ran a parallel
                # torch op, the child's next one waits forever for threads it does not have.
                sys.modules["torch"].set_num_threads(1)
            for key in (write_points.KILL_ENV, write_points.COUNT_ENV):
                os.environ.pop(key, None)
            if kill_at is not None:
                os.environ[write_points.KILL_ENV] = str(kill_at)
            if count_file is not None:
                os.environ[write_points.COUNT_ENV] = count_file
            write_points.reset()
            if setup is not None:
                setup()
            code = int(fn())
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            if libc_exit:
                ctypes.CDLL(None).exit(code)
            os._exit(code)
    return wait_forked(pid, timeout, hang) if wait else pid


def _redirect(log: str | None, stdout: str | os.PathLike[str] | None, stderr: str | os.PathLike[str] | None) -> None:
    """In a forked child: point fds 1 and 2 (and sys.stdout/sys.stderr, which pytest may have
    replaced) at ``run_forked``'s targets."""
    opened: dict[str, int] = {}
    for fd, target in ((1, stdout), (2, stderr)):
        if target == INHERIT:
            continue
        if target is not None:
            path, flags = os.fspath(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        else:
            path, flags = log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if path not in opened:
            opened[path] = os.open(path, flags, 0o644)
        os.dup2(opened[path], fd)
        setattr(sys, "stdout" if fd == 1 else "stderr", open(fd, "w", closefd=False))  # noqa: SIM115
    for handle in opened.values():
        os.close(handle)


def wait_forked(pid: int, timeout: float, hang: Literal["idle", "wall"] = "idle") -> int:
    """Reap child ``pid`` under ``run_forked``'s hang rule: its exit code, -signal when killed,
    -SIGALRM when it hung (it is killed)."""
    # With "idle", wait for the child's exit, not for the clock: on a loaded machine a working child
    # may take many times `timeout`. It counts as hung only when `timeout` seconds pass in which
    # neither it nor its descendants used CPU time (blocked on a FIFO, a lock, a lost wakeup).
    deadline = time.monotonic() + timeout
    used = _tree_cpu_seconds(pid) if hang == "idle" else None
    exited = _exit_notice(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                now_used = _tree_cpu_seconds(pid) if hang == "idle" else None
                if now_used is not None and used is not None and now_used - used >= HANG_CPU_SHARE * timeout:
                    used, deadline = now_used, time.monotonic() + timeout  # still working: wait on
                    continue
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return -signal.SIGALRM
            if exited is None:
                time.sleep(0.01)
            else:  # woken the moment the child exits
                select.select([exited], [], [], max(0.0, min(1.0, deadline - time.monotonic())))
    finally:
        if exited is not None:
            os.close(exited)


def _exit_notice(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once it exits), or None where the system has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


# Share of one core a child (with its descendants) must use over `timeout` wall seconds not to
# count as hung: a blocked process uses none and a 50 ms polling loop about a tenth of it, while
# a working one gets about ten times it even at load 20 on two cores.
HANG_CPU_SHARE = 0.01


def _tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live descendants (None without /proc)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command name: state, ppid, ..., utime (field 14), stime (15), cutime, cstime
        stats[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / ticks)
    if pid not in stats:
        return None
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in stats.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[p][1] for p in tree)


def file_write_points() -> None:
    """Make file writes outside HDF5 write points too (FAISS index files and their sidecars):
    ``faiss.write_index``, ``Path.write_text``, ``os.chmod``, ``os.replace``, ``Path.unlink``.
    Only for a forked child: it patches those functions for the rest of the process."""
    import pathlib

    import faiss

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            write_points.write_point(f"{name} {args[0] if args else ''}")
            return original(*args, **kwargs)
        setattr(owner, name, hooked)

    for owner, name in ((faiss, "write_index"), (pathlib.Path, "write_text"), (os, "chmod"), (os, "replace"),
                        (pathlib.Path, "unlink")):
        wrap(owner, name)


def cli(args: list[str]) -> Callable[[], int]:
    """A callable running `fs ARGS` in-process (for :func:`run_forked`)."""
    def go() -> int:
        from cli.main import main

        main([str(a) for a in args])
        return 0
    return go


def count_write_points(fn: Callable[[], int], log: str | None = None,
                       setup: Callable[[], None] | None = None) -> int:
    """How many write points ``fn`` passes (it must succeed)."""
    with tempfile.NamedTemporaryFile(suffix=".points", delete=False) as f:
        path = f.name
    try:
        code = run_forked(fn, count_file=path, log=log, setup=setup)
        assert code == 0, f"the command failed while counting write points (exit {code}); see {log}"
        return len(Path(path).read_text().splitlines())
    finally:
        os.unlink(path)


def snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """Everything a reader sees in a store, as plain arrays: split ids, each encoder's features
    of committed rows by id (and views), text banks, saved models, imported logits."""
    from featurestore.errors import NotFoundError
    from featurestore.store.feature_store import FeatureStore

    out: dict[str, Any] = {}
    with FeatureStore(path) as store:
        for split in store.splits():
            ids = [str(i) for i in store.ids(split, valid_only=False)]
            out[f"ids:{split}"] = ids
            out[f"errors:{split}"] = store.errors(split)
        for encoder in store.encoders():
            for split in store.splits():
                if not store.has_features(encoder, split):
                    continue
                done = store.done(encoder, split)
                row_ids = np.asarray(store.ids(split, valid_only=False))
                data_path, _ = store._image_paths(encoder, split)
                stored = np.asarray(store.file[data_path][: len(done)])
                done = done[: len(stored)]  # rows past a not yet grown array are not done
                out[f"features:{encoder}:{split}"] = dict(zip(row_ids[: len(done)][done].tolist(), stored[done]))
                if f"views/{split.replace('/', '|')}" in store.file[f"encoders/{encoder.replace('/', '|')}"]:
                    with contextlib.suppress(NotFoundError):
                        out[f"views:{encoder}:{split}"] = store.views(encoder, split, valid_only=False)
            for bank in store.text_banks(encoder):
                out[f"text:{encoder}:{bank}"] = store.text_bank(encoder, bank)
        for model in store.models():
            out[f"model:{model}"] = store.load_model(model)
        for name in store.logits_names():
            for split in store.splits():
                with contextlib.suppress(NotFoundError):
                    out[f"logits:{name}:{split}"] = store.logits(name, split, valid_only=False)
    return out


def snapshot_forked(path: str | os.PathLike, timeout: float = 30.0) -> tuple[str, Any]:
    """``("ok", snapshot)``, ``("error", one-line message)`` for a FeatureStoreError, or
    ``("failed", why)`` for anything else: a traceback, a crash, or a reader blocked past
    ``timeout``."""
    with tempfile.NamedTemporaryFile(suffix=".snap", delete=False) as f:
        result = f.name

    def go() -> int:
        from featurestore.errors import FeatureStoreError

        try:
            value: tuple[str, Any] = ("ok", snapshot(path))
        except FeatureStoreError as exc:
            value = ("error", str(exc))
        except BaseException as exc:
            value = ("failed", f"{type(exc).__name__}: {exc}")
        with open(result, "wb") as out:
            pickle.dump(value, out)
        return 0

    try:
        code = run_forked(go, timeout=timeout)
        if code != 0:
            return "failed", f"reader exit {code}" + (" (blocked past the timeout)" if code == -signal.SIGALRM else "")
        with open(result, "rb") as saved:
            return pickle.load(saved)
    finally:
        os.unlink(result)


def same(a: Any, b: Any) -> bool:
    """Deep equality of snapshots (arrays compared exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b))
    return a == b


def rows_consistent(partial: dict[str, Any], final: dict[str, Any]) -> str | None:
    """Check a snapshot taken after a kill against the finished store: every split's ids are
    unique and a prefix-compatible subset of the final ones, and every committed feature row
    equals the final one for its id. Returns what is wrong, or None."""
    for key, value in partial.items():
        if key.startswith("ids:"):
            if len(set(value)) != len(value):
                return f"{key}: an id appears twice"
            if key not in final or not set(value) <= set(final[key]):
                return f"{key}: ids that the finished store does not have"
        elif key.startswith("features:"):
            reference = final.get(key, {})
            for rid, row in value.items():
                if rid not in reference or not np.array_equal(row, reference[rid]):
                    return f"{key}: committed row {rid!r} differs from the finished store"
    return None


def kill_points(total: int, budget: int) -> list[int]:
    """Kill points 1..total on a stride that tries about ``budget`` of them (always the last);
    FEATURESTORE_SWEEP_ALL=1 tries every one."""
    if os.environ.get("FEATURESTORE_SWEEP_ALL") or total <= budget:
        return list(range(1, total + 1))
    stride = -(-total // budget)
    points = list(range(1, total + 1, stride))
    if points[-1] != total:
        points.append(total)
    return points
