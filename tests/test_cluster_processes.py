"""A real Dask cluster of separate processes, started from the command line as on several hosts
(on 127.0.0.1): `dask scheduler` and two `dask worker --nthreads 1` processes, each in its own
process group and killed at the end whatever happens. Against it: `fs extract --scheduler` of tar
shards equals the one-process extraction; a worker SIGKILLed while it is inside an extraction task
(held at a gate, so the kill is not a race) is survived with every row exactly once; `fs index
--scheduler` answers `fs search` as the one-process index does; `fs real frequency` and `fs curate
--captions ... --scheduler` equal the one-process commands on the extracted pool split."""
from __future__ import annotations

import contextlib
import csv
import faulthandler
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from featurestore.extract.sharded import EncoderSpec, extract_distributed
from featurestore.sources import open_source
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.gated_source import GatedSource
from tests.images import random_image_bytes

pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60
WATCHDOG_S = 300  # the cluster is killed this long after it started, whatever the test is waiting on
WORDS = ["a", "photo", "of", "dog", "puppy", "red", "car", "sea", "lion", "cat", "on", "the", "beach", "Dog."]


def write_caption_shards(folder: Path, shards: int, per_shard: int) -> None:
    """img2dataset-style tar shards: "<key>.jpg" and a "<key>.txt" caption of 2-7 random words."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{s:02d}{i:03d}"
                caption = " ".join(rng.choice(WORDS, size=rng.integers(2, 8)).tolist())
                for name, data in ((f"{key}.jpg", random_image_bytes("jpg", (40, 36), s * 100 + i)),
                                   (f"{key}.txt", caption.encode())):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even by SIGKILL or a timeout
    (Linux's PR_SET_PDEATHSIG); a nanny's worker process exits when its nanny goes."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _start(args: list[str], log: Path) -> subprocess.Popen:
    """A `dask ...` process in its own process group (so a nanny's worker child goes with it),
    one BLAS thread, the repository importable, output to ``log``; killed if this process dies."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "FS_BLAS_THREADS": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / "dask"), *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a `dask scheduler` with two `dask worker` processes attached. The scheduler
    takes a free port (--port 0) and writes it to a scheduler file. Cleanup: the process groups
    are SIGKILLed at the end, by a watchdog after WATCHDOG_S (a hung Dask call then fails), and by
    the kernel if this process dies (PR_SET_PDEATHSIG); the scheduler's idle timeout and the
    workers' death timeout are a last resort."""
    folder = tmp_path_factory.mktemp("cluster")
    info = folder / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def watchdog() -> None:  # a hang becomes a failure: stacks on stderr, the cluster gone
        faulthandler.dump_traceback(all_threads=True)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(WATCHDOG_S, watchdog)
    timer.daemon = True
    timer.start()
    try:
        procs.append(_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(info), "--idle-timeout", "300s"], folder / "scheduler.log"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info.exists() and time.monotonic() < deadline:
            assert procs[0].poll() is None, (folder / "scheduler.log").read_text()
            time.sleep(0.05)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(_start(["worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                 "--name", f"w{i}", "--death-timeout", "60s"], folder / f"worker{i}.log"))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        timer.cancel()
        for proc in reversed(procs):
            _stop(proc)


def _ids_and_features(store: Path, key: str) -> tuple[list[str], np.ndarray]:
    with FeatureStore(store) as reader:
        return reader.ids("pool", valid_only=False).tolist(), reader.features(key, "pool")


def test_a_cluster_of_processes_extracts_survives_a_kill_and_counts(scheduler, tmp_path, capsys, tiny_checkpoint,
                                                                   tiny_encoder, fs_args):
    shards = tmp_path / "shards"
    write_caption_shards(shards, 3, 6)
    spec = str(shards / "shard-{0..2}.tar")
    key = tiny_encoder.key
    # The oracle: one process, no Dask.
    single = tmp_path / "single.h5"
    code, _, err = run(["extract", spec, "--store", single, "--split", "pool", *fs_args, "--device", "cpu", "-q"],
                       capsys)
    assert code == 0, err
    ids, features = _ids_and_features(single, key)
    assert len(ids) == 18 == len(set(ids))

    # fs extract on the cluster: shards of 4 rows spread over both workers, linked in order.
    dist = tmp_path / "dist.h5"
    code, out, err = run(["extract", spec, "--store", dist, "--split", "pool", *fs_args, "--device", "cpu",
                          "--scheduler", scheduler, "--shard-rows", "4", "-q"], capsys)
    assert code == 0, err
    assert "18 rows in 5 shards" in out
    got_ids, got = _ids_and_features(dist, key)
    assert got_ids == ids
    assert np.abs(got - features).max() < 1e-5

    # A worker killed inside a task: every read waits at a gate until "go"; the first worker
    # to arrive is SIGKILLed there, then the gate opens. Its task runs again (Dask reschedules
    # it); the split must hold every row exactly once, with the one-process features.
    from featurestore.cluster import dask_client

    gate = tmp_path / "gate"
    gate.mkdir()
    killed = tmp_path / "killed.h5"
    result: dict = {}
    with dask_client(scheduler=scheduler) as client:
        def extract_in_thread() -> None:
            try:
                result["report"] = extract_distributed(
                    GatedSource(open_source(spec), gate), killed,
                    EncoderSpec(TINY_MODEL, str(tiny_checkpoint), str(TINY_CONFIG), device="cpu"), client,
                    encoder_key=key, split="pool", shard_rows=6, batch_size=2, quiet=True)
            except Exception as exc:  # surfaced by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=extract_in_thread)
        thread.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            busy: list[Path] = []
            while not busy and time.monotonic() < deadline and thread.is_alive():
                busy = [p for p in gate.glob("busy-*") if "." not in p.name]
                time.sleep(0.02)
            assert busy, result.get("error", "no worker reached the gate")
            victim = int(busy[0].name.split("-")[1])
            assert victim in client.run(os.getpid).values()  # a worker process, not this one
            os.kill(victim, signal.SIGKILL)
        finally:
            (gate / "go").touch()
            thread.join(timeout=120)
        assert not thread.is_alive() and "error" not in result, result.get("error")
        assert victim not in client.run(os.getpid).values()  # the nanny started a new worker
    assert result["report"].extracted == 18
    got_ids, got = _ids_and_features(killed, key)
    assert got_ids == ids and len(set(got_ids)) == 18
    assert np.abs(got - features).max() < 1e-5

    # fs index on the cluster (a worker reads the linked shard stores and writes its part of the
    # inverted lists): the same neighbours as the same factory built in this process.
    factory = ["--factory", "IVF2,Flat", "--recall", "0.5"]
    for store, cluster in ((dist, ["--scheduler", scheduler]), (single, [])):
        code, out, err = run(["index", "--store", store, "--split", "pool", *factory, *cluster, "-q"], capsys)
        assert code == 0, err
        assert ("on disk (memory-mapped)" in out) == bool(cluster), out
    hits = []
    for store in (dist, single):
        code, out, err = run(["search", "--store", store, "--split", "pool", "--id", ids[3], "--factory", "IVF2,Flat",
                              "-k", "5", "--json"], capsys)
        assert code == 0, err
        hits.append([(h["id"], round(h["score"], 5)) for h in json.loads(out)[0]["hits"]])
    assert hits[0] == hits[1] and hits[0][0][0] == ids[3] and len(hits[0]) == 5

    # Caption statistics: the shards counted and curated on the cluster equal the one-process
    # commands on the extracted pool split (same rows, same order, so the same kept rows).
    synonyms = tmp_path / "syn.json"
    synonyms.write_text(json.dumps({"dog": ["dog", "puppy"], "car": ["red car"], "lion": ["sea lion"]}))
    code, out, err = run(["real", "frequency", "--captions", spec, "--scheduler", scheduler, "--synonyms", synonyms,
                          "--json"], capsys)
    assert code == 0, err
    code, expected, err = run(["real", "frequency", "--store", single, "--pool", "pool", "--synonyms", synonyms,
                               "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(expected) and json.loads(out)["captions"] == 18
    meta = tmp_path / "entries.txt"
    meta.write_text("dog\npuppy\nred car\ncat\nsea lion\nbeach\n")
    manifests: list[list[list[str]]] = []
    for source in (["--captions", spec, "--scheduler", scheduler], ["--store", single, "--pool", "pool"]):
        out_csv = tmp_path / f"kept{len(manifests)}.csv"
        code, _, err = run(["curate", *source, "--metadata", meta, "--t", "3", "--output", out_csv, "-q"], capsys)
        assert code == 0, err
        with open(out_csv, newline="", encoding="utf-8") as handle:
            manifests.append(list(csv.reader(handle)))
    assert manifests[0] == manifests[1] and 1 < len(manifests[0]) - 1 < 18
