"""Damaged stores: truncated copies and random byte flips. Every outcome is the correct result
or a one-line error with exit code 2; no reader hangs (each runs in a child process with a
timeout), no traceback, and no silently wrong features or labels (they carry checksums).

The reader and `fs verify` run in a child forked from the test process (its output to files,
ended by the C library's exit() so HDF5's own exit handler runs as at the end of a real process):
a crash, a traceback or a hang of one damaged store is that child's, and no case pays for a fresh
interpreter's imports.
"""
from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.fault_injection import run_forked
from tests.store_fixtures import make_feature_store

pytestmark = pytest.mark.slow
HANG = 30  # seconds: a reader still running after this is hung (it answers in well under one)


def _forked(fn: Callable[[], int], folder: Path) -> SimpleNamespace:
    """Run ``fn()`` in a forked child with stdout and stderr in files; its returncode (-signal when
    killed), stdout and stderr. A child still running after HANG seconds is killed: AssertionError."""
    out, err = folder / "child.out", folder / "child.err"
    code = run_forked(fn, stdout=out, stderr=err, timeout=HANG, hang="wall", libc_exit=True)
    if code == -signal.SIGALRM:
        raise AssertionError(f"a child still ran after {HANG} s (hung): {err.read_text(errors='replace')[-300:]}")
    return SimpleNamespace(returncode=code, stdout=out.read_text(errors="replace"),
                           stderr=err.read_text(errors="replace"))


def _reader(store: Path, out: Path) -> Callable[[], int]:
    def go() -> int:
        from featurestore.errors import FeatureStoreError
        from featurestore.store.feature_store import FeatureStore

        try:
            with FeatureStore(store) as opened:
                X = opened.features("test/enc", "train")
                y = opened.labels("train")
                names = opened.models()
                w = opened.load_model("m")[0]["w"] if names else None
        except FeatureStoreError as exc:
            print(exc, file=sys.stderr)
            return 2
        if w is None:
            raise RuntimeError("the store lists no model")  # a traceback, exit 1: a wrong outcome
        np.save(out, np.concatenate([X.ravel(), y.astype(np.float32), w.astype(np.float32).ravel()]))
        return 0
    return go


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 32)).astype(np.float32)
    y = rng.integers(0, 3, size=3000)
    path = make_feature_store(root / "s.h5", {"train": X}, labels={"train": y},
                              classes={"train": ["a", "b", "c"]})
    from featurestore.store.feature_store import FeatureStore

    w = rng.normal(size=(3, 32))
    with FeatureStore(path, mode="a") as store:
        store.save_model("m", {"w": w}, {"kind": "test"})
    expected = np.concatenate([X.ravel(), y.astype(np.float32), w.astype(np.float32).ravel()])
    return path, expected


def _read(copy, tmp_path):
    out = tmp_path / "out.npy"
    if out.exists():
        out.unlink()
    proc = _forked(_reader(copy, out), tmp_path)
    return proc, (np.load(out) if proc.returncode == 0 else None)


def _verify(copy):
    from tests.fault_injection import cli

    return _forked(cli(["verify", "--store", str(copy)]), copy.parent)


def _outcome_is_right_or_one_line(proc, got, expected):
    if proc.returncode == 0:
        return got is not None and got.shape == expected.shape and np.array_equal(got, expected)
    return proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_the_intact_store_reads_and_verifies(intact, tmp_path):
    path, expected = intact
    proc, got = _read(path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(got, expected)
    check = _verify(path)
    assert check.returncode == 0 and "ok" in check.stdout, check.stdout + check.stderr


@pytest.mark.parametrize("fraction", [0.001, 0.03, 0.1, 0.3, 0.6, 0.9, 0.999])
def test_a_truncated_store_is_one_line_exit_2(intact, tmp_path, fraction):
    path, expected = intact
    copy = tmp_path / "cut.h5"
    shutil.copy(path, copy)
    size = copy.stat().st_size
    with open(copy, "r+b") as f:
        f.truncate(max(1, int(size * fraction)))
    proc, got = _read(copy, tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    check = _verify(copy)
    assert check.returncode == 2 and len(check.stderr.strip().splitlines()) == 1, check.stderr


def test_random_byte_flips_give_the_right_result_or_one_line(intact, tmp_path):
    path, expected = intact
    rng = np.random.default_rng(17)
    size = path.stat().st_size
    outcomes = {"right": 0, "one-line error": 0}
    bad = []
    for trial in range(30):
        copy = tmp_path / f"flip{trial}.h5"
        shutil.copy(path, copy)
        with open(copy, "r+b") as f:
            for offset in rng.integers(0, size, size=4):
                f.seek(int(offset))
                byte = f.read(1)[0]
                f.seek(int(offset))
                f.write(bytes([byte ^ (1 << int(rng.integers(0, 8)))]))
        proc, got = _read(copy, tmp_path)
        if not _outcome_is_right_or_one_line(proc, got, expected):
            bad.append(f"trial {trial}: exit {proc.returncode}, stderr {proc.stderr.strip()[-300:]!r}")
        else:
            outcomes["right" if proc.returncode == 0 else "one-line error"] += 1
        check = _verify(copy)
        if check.returncode not in (0, 2) or (check.returncode == 2 and len(check.stderr.strip().splitlines()) != 1):
            bad.append(f"trial {trial}: fs verify exit {check.returncode}: {check.stderr.strip()[-300:]!r}")
        copy.unlink()
    print(f"byte flips: {outcomes}")
    assert not bad, "\n".join(bad)
