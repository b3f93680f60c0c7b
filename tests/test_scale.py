"""Scale past one process: Dask-distributed extraction into linked shard stores, worker
deaths and killed runs, and out-of-core GDA equal to the in-memory fit."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from featurestore.extract.pipeline import extract
from featurestore.extract.sharded import EncoderSpec, extract_distributed, shard_dir
from featurestore.sources import open_source
from featurestore.store.feature_store import FeatureStore
from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.images import write_class_tree, write_corrupt_jpeg
from tests.slow_source import SlowSource
from tests.store_fixtures import make_feature_store

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from featurestore.cluster import dask_client

    with dask_client("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def pets(tmp_path_factory, tiny_encoder):
    """A 3-class folder with one broken image, and its single-process store as the oracle."""
    root = tmp_path_factory.mktemp("scale") / "pets"
    write_class_tree(root, {"cat": 14, "dog": 12, "emu": 9})
    write_corrupt_jpeg(root / "dog" / "broken.jpg")
    single = root.parent / "single.h5"
    extract(open_source(root), single, tiny_encoder, workers=0, quiet=True)
    return root, single


def _spec(checkpoint) -> EncoderSpec:
    return EncoderSpec(TINY_MODEL, str(checkpoint), str(TINY_CONFIG), device="cpu")


def _assert_same(store_path, single, key):
    with FeatureStore(store_path) as a, FeatureStore(single) as b:
        assert a.ids("pets", valid_only=False).tolist() == b.ids("pets", valid_only=False).tolist()
        assert len(set(a.ids("pets", valid_only=False))) == a.n_rows("pets")
        np.testing.assert_array_equal(a.labels("pets"), b.labels("pets"))
        assert a.errors("pets") == b.errors("pets") and len(a.errors("pets")) == 1
        assert a.classes("pets") == b.classes("pets")
        assert np.abs(a.features(key, "pets") - b.features(key, "pets")).max() < 1e-6
        assert a.file["splits/pets/ids"].is_virtual


def test_distributed_equals_single_process(tmp_path, client, pets, tiny_checkpoint, tiny_encoder):
    root, single = pets
    store = tmp_path / "dist.h5"
    report = extract_distributed(open_source(root), store, _spec(tiny_checkpoint), client,
                                 encoder_key=tiny_encoder.key, shard_rows=8, quiet=True)
    assert (report.shards, report.extracted, report.failed) == (5, 35, 1)
    assert set(report.per_worker) <= {"0", "1"} and sum(w["rows"] for w in report.per_worker.values()) == 36
    _assert_same(store, single, tiny_encoder.key)
    again = extract_distributed(open_source(root), store, _spec(tiny_checkpoint), client,
                                encoder_key=tiny_encoder.key, shard_rows=8, quiet=True)
    assert again.skipped_shards == 5 and again.extracted == 0
    _assert_same(store, single, tiny_encoder.key)
    with pytest.raises(Exception, match="extracted in shards"):
        extract(open_source(root), store, tiny_encoder, workers=0, quiet=True)


def _killable_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def test_worker_killed_mid_shard_is_retried(tmp_path, client, pets, tiny_checkpoint, tiny_encoder):
    root, single = pets
    store = tmp_path / "killed-worker.h5"
    result: dict = {}

    def run():
        try:
            result["report"] = extract_distributed(SlowSource(open_source(root), 0.05), store,
                                                   _spec(tiny_checkpoint), client, encoder_key=tiny_encoder.key,
                                                   shard_rows=6, batch_size=2, quiet=True)
        except Exception as exc:  # surfaced by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    folder = shard_dir(store, "pets")
    deadline = time.time() + 60
    while time.time() < deadline and _committed(folder, tiny_encoder.key) < 4:
        time.sleep(0.05)  # wait until shards are part-way
    victim = next(iter(_killable_pids(client).values()))
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    _assert_same(store, single, tiny_encoder.key)


KILLED_RUN = """
from featurestore.cluster import dask_client
from featurestore.extract.sharded import EncoderSpec, extract_distributed
from featurestore.sources import open_source
from tests.slow_source import SlowSource
with dask_client("local:2") as client:
    extract_distributed(SlowSource(open_source({root!r}), 0.05), {store!r},
                        EncoderSpec({model!r}, {ckpt!r}, {cfg!r}, device="cpu"), client,
                        encoder_key={key!r}, shard_rows=6, batch_size=2, quiet=True)
"""


def _committed(folder: Path, key: str) -> int:
    total = 0
    for path in folder.glob("*.h5"):
        try:
            with FeatureStore(path) as shard:
                total += int(shard.done(key, "pets").sum()) if shard.has_features(key, "pets") else 0
        except Exception:
            pass
    return total


def test_killed_run_then_rerun_gives_every_row_once(tmp_path, client, pets, tiny_checkpoint, tiny_encoder):
    root, single = pets
    store = tmp_path / "killed-run.h5"
    code = KILLED_RUN.format(root=str(root), store=str(store), model=TINY_MODEL, ckpt=str(tiny_checkpoint),
                             cfg=str(TINY_CONFIG), key=tiny_encoder.key)
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    folder = shard_dir(store, "pets")
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and _committed(folder, tiny_encoder.key) < 10:
        time.sleep(0.1)
    import psutil

    parent = psutil.Process(proc.pid)
    family = parent.children(recursive=True)
    parent.kill()  # the whole run dies at once: client, scheduler, nannies and workers
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=30)
    proc.wait()
    assert 0 < _committed(folder, tiny_encoder.key) < 36, "the run finished before it could be killed"
    report = extract_distributed(open_source(root), store, _spec(tiny_checkpoint), client,
                                 encoder_key=tiny_encoder.key, shard_rows=6, quiet=True)
    assert report.skipped_shards < report.shards
    _assert_same(store, single, tiny_encoder.key)


def test_streamed_gda_equals_in_memory(tmp_path, client):
    from solvers.few_shot.gda import GDA
    from workflows.streaming import decision_in_chunks, fit_gda_streaming

    rng = np.random.default_rng(0)
    C, D, n = 5, 24, 700
    means = rng.normal(size=(C, D))
    y = rng.integers(0, C, n)
    X = (means[y] + 0.7 * rng.normal(size=(n, D))).astype(np.float32)
    y[::50] = -1  # unlabelled rows are not training data
    T = rng.normal(size=(C, D))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    path = make_feature_store(tmp_path / "g.h5", {"train": X}, labels={"train": y}, invalid={"train": [3, 99]})
    keep = (y >= 0) & ~np.isin(np.arange(n), [3, 99])
    reference = GDA(text_weights=T, alpha=0.5).fit(X[keep], y[keep])
    with FeatureStore(path) as store:
        for kwargs in ({"chunk_rows": 64}, {"chunk_rows": 97, "client": client}):
            streamed = fit_gda_streaming(store, "test/enc", "train", text_weights=T, alpha=0.5, **kwargs)
            np.testing.assert_allclose(streamed.coef_, reference.coef_, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(streamed.intercept_, reference.intercept_, rtol=1e-6, atol=1e-6)
        full = reference.decision_function(store.features("test/enc", "train"))
        logits = decision_in_chunks(streamed, store, "test/enc", "train", chunk_rows=50)
        np.testing.assert_allclose(logits, full, rtol=1e-5, atol=1e-5)
        from scipy.special import logsumexp, softmax

        from solvers.ood.scores import energy, msp
        for score, oracle in ((msp, softmax(full, axis=1).max(axis=1)), (energy, logsumexp(full, axis=1))):
            streamed_scores = decision_in_chunks(streamed, store, "test/enc", "train", chunk_rows=50, transform=score)
            assert streamed_scores.shape == (len(full),)
            np.testing.assert_allclose(streamed_scores, oracle, rtol=1e-5, atol=1e-5)


def test_cli_cluster_extraction_and_streamed_gda(tmp_path, pets, fs_args, tiny_encoder, capsys):
    from tests.cli_runner import run

    root, single = pets
    store = tmp_path / "cli.h5"
    code, out, err = run(["extract", root, "--store", store, *fs_args, "--cluster", "local:2", "--shard-rows", "10",
                          "-q"], capsys)
    assert code == 0, err
    assert "4 shards" in out and "worker" in out
    _assert_same(store, single, tiny_encoder.key)
    code, out, err = run(["solve", "gda", "--store", store, "--encoder", tiny_encoder.key, "--train", "pets",
                          "--test", "pets", "--chunk-rows", "7", "--cluster", "local:2", "--json"], capsys)
    assert code == 0, err
    from solvers import GDA

    with FeatureStore(store) as reader:
        X, y = reader.features(tiny_encoder.key, "pets"), reader.labels("pets")
    assert json.loads(out)["accuracy"] == pytest.approx(GDA().fit(X, y).score(X, y))
    code, _, err = run(["extract", root, "--store", store, *fs_args, "--cluster", "remote:2"], capsys)
    assert code == 2 and "local:N" in err
