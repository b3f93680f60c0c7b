"""Test helpers for `fs serve`: a small store of real image files and tar members extracted with
the tiny model, and a real `fs serve` process on a free loopback port.

``make_served_store`` returns what it wrote (ids, classes, image bytes, the unreadable files) so
tests compare the server's answers with what went in, not with the server's own output.
"""
from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli.main import main
from tests.images import (
    write_class_tree,
    write_corrupt_jpeg,
    write_random_image,
    write_text_as_image,
    write_webdataset_tar,
)

REPO = Path(__file__).resolve().parent.parent
CLASSES = {"cat": 4, "dog": 4, "emu": 3}
BIG_IMAGE = "emu/big.jpg"
UNREADABLE = {"cat/9.jpg": "corrupt", "dog/fake.png": "text"}
TAR_LABELS = [0, 1, 0, 1, 0]


def make_served_store(root: Path, checkpoint: Path) -> dict[str, Any]:
    """A store with split ``train`` (class folders, one 400x300 image, two unreadable files) and
    split ``shards`` (a labelled WebDataset tar, no class names), both extracted with the tiny model."""
    from featurestore.store.feature_store import FeatureStore
    from tests.conftest import TINY_CONFIG, TINY_MODEL

    train = root / "train"
    written = write_class_tree(train, CLASSES, seed=7)
    write_random_image(train / BIG_IMAGE, size=(400, 300), seed=99)
    written.append(BIG_IMAGE)
    write_corrupt_jpeg(train / "cat/9.jpg")
    write_text_as_image(train / "dog/fake.png")
    samples = write_webdataset_tar(root / "shards.tar", len(TAR_LABELS), labels=TAR_LABELS, seed=50)
    store = root / "served.h5"
    common = ["--store", str(store), "--model", TINY_MODEL, "--model-config", str(TINY_CONFIG),
              "--pretrained", str(checkpoint), "--workers", "0", "-q"]
    for source, split in ((train, "train"), (root / "shards.tar", "shards")):
        try:
            main(["extract", str(source), "--split", split, *common])
        except SystemExit as exc:
            assert exc.code == 0, f"fs extract {source} failed"
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
    return {"store": store, "encoder": key, "train_root": train, "train_ids": sorted(written),
            "samples": samples, "classes": sorted(CLASSES)}


@contextlib.contextmanager
def running_server(store: Path, encoder: str, *extra: str, timeout: float = 180.0,
                   one_thread: bool = True) -> Iterator[str]:
    """`fs serve` in a subprocess on 127.0.0.1 and a free port; yields its base URL, then stops it.

    Waits (at most ``timeout`` seconds) for the line naming the URL; the server's stderr goes to
    a file whose tail is shown when it does not start. ``one_thread`` caps the server's math
    libraries at one thread (tests share the machine); benchmarks pass False.
    """
    with tempfile.TemporaryFile("w+") as log:
        command = [sys.executable, "-m", "cli.main", "serve", "--store", str(store), "--encoder", encoder,
                   "--host", "127.0.0.1", "--port", "0", "--quiet", *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if one_thread:
            env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            yield _wait_for_url(proc, log, timeout)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()


def _wait_for_url(proc: subprocess.Popen, log: Any, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                line = proc.stdout.readline()
                if line.startswith("fs serve: http://"):
                    return line.split()[2]
                if line == "" and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
    log.seek(0)
    tail = log.read()[-3000:]
    proc.kill()
    raise RuntimeError(f"fs serve did not start (exit code {proc.poll()}):\n{tail}")
