"""The extraction pipeline's parts: the overlapped writer, the decode-mode choice, the worker
count, the GPU batch-size fit, `fs extract --decode`, and a kill mid-run with tensor decoding."""
from __future__ import annotations

import signal
import time
from types import SimpleNamespace

import numpy as np
import pytest

from featurestore.errors import EncoderError
from featurestore.extract.chunk_writer import ChunkWriter
from featurestore.extract.device_batch import batch_size_for_memory, largest_that_runs
from featurestore.extract.pipeline import default_workers, extract, resolve_decode
from featurestore.sources import open_source
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree, write_corrupt_jpeg, write_random_image
from tests.test_extract import _done_count, kill_when, start_slow_extract


def _store_arrays(path, key, split):
    with FeatureStore(path) as store:
        return {"ids": store.ids(split, False).tolist(), "valid": store.valid(split).tolist(),
                "errors": store.errors(split), "features": store.features(key, split, valid_only=False),
                "norms": store.norms(key, split, valid_only=False), "done": store.done(key, split).tolist()}


def test_overlapped_writer_gives_the_store_the_serial_one_gives(tmp_path, tiny_encoder):
    root = tmp_path / "pets"
    write_class_tree(root, {"cat": 9, "dog": 8})
    write_corrupt_jpeg(root / "dog" / "broken.jpg")
    for overlap in (False, True):
        report = extract(open_source(root), tmp_path / f"{overlap}.h5", tiny_encoder, batch_size=4, workers=0,
                         overlap_writes=overlap, quiet=True)
        assert (report.extracted, report.failed) == (17, 1)
    serial = _store_arrays(tmp_path / "False.h5", tiny_encoder.key, "pets")
    overlapped = _store_arrays(tmp_path / "True.h5", tiny_encoder.key, "pets")
    for name in ("ids", "valid", "errors", "done"):
        assert serial[name] == overlapped[name], name
    np.testing.assert_array_equal(serial["features"], overlapped["features"])  # bit for bit
    np.testing.assert_array_equal(serial["norms"], overlapped["norms"])
    assert all(serial["done"]) and len(serial["errors"]) == 1


class _Recorder:
    """A stand-in store recording the write order; fails on the chunk starting at ``fail_at``."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def write_features(self, encoder, split, rows, features, ok, reasons, norms=None, views=None):
        if self.fail_at is not None and rows[0] == self.fail_at:
            raise OSError("disk full")
        time.sleep(0.01)
        self.calls.append((rows.tolist(), features.dtype, views))


def _chunk(start, b=3, d=4):
    rows = np.arange(start, start + b)
    flat = np.ones((b, 1, d), dtype=np.float32)
    return rows, flat, np.ones((b, 1), dtype=np.float32), np.ones(b, dtype=bool), [""] * b


def test_writer_commits_in_order_and_raises_the_writers_error():
    store = _Recorder()
    with ChunkWriter(store, "enc", "split", "float16", 0, depth=1) as writer:
        for start in range(0, 30, 3):
            writer.put(*_chunk(start))
    assert [c[0][0] for c in store.calls] == list(range(0, 30, 3))
    assert all(c[1] == np.float16 and c[2] is None for c in store.calls)

    failing = _Recorder(fail_at=6)
    with pytest.raises(OSError, match="disk full"), \
            ChunkWriter(failing, "enc", "split", "float32", 0, depth=1) as writer:
        for start in range(0, 300, 3):
            writer.put(*_chunk(start))
    assert [c[0][0] for c in failing.calls] == [0, 3]  # nothing written after the failed chunk


def test_decode_mode_choice():
    jpegs = [SimpleNamespace(path=f"a/{i}.JPG") for i in range(3)] + [SimpleNamespace(path="b.png")]
    pngs = [SimpleNamespace(path=f"a/{i}.png") for i in range(3)] + [SimpleNamespace(path="b.jpeg")]
    clip = {"size": [224, 224], "resize": 224, "mean": [0.5] * 3, "std": [0.5] * 3}
    lanczos = {**clip, "interpolation": "lanczos"}
    cuda, cpu = SimpleNamespace(type="cuda"), SimpleNamespace(type="cpu")
    assert resolve_decode("auto", cuda, jpegs, clip) == "tensor"
    assert resolve_decode("auto", cpu, jpegs, clip) == "pil"
    assert resolve_decode("auto", cuda, pngs, clip) == "pil"
    assert resolve_decode("auto", cuda, jpegs, clip, views=2) == "pil"
    assert resolve_decode("auto", cuda, jpegs, lanczos) == "pil"
    assert resolve_decode("pil", cuda, jpegs, clip) == "pil"
    assert resolve_decode("tensor", cpu, pngs, clip) == "tensor"
    with pytest.raises(EncoderError, match="--views"):
        resolve_decode("tensor", cuda, jpegs, clip, views=1)
    with pytest.raises(EncoderError, match="lanczos"):
        resolve_decode("tensor", cuda, jpegs, lanczos)
    with pytest.raises(EncoderError, match="decode must be"):
        resolve_decode("nvjpeg", cuda, jpegs, clip)


def test_workers_follow_the_cores():
    assert [default_workers("pil", c) for c in (1, 2, 16, 128)] == [1, 1, 15, 32]
    assert [default_workers("tensor", c) for c in (1, 2, 16, 128)] == [1, 1, 4, 8]


def test_batch_size_for_memory_by_hand():
    gib = 1 << 30
    # 0.6 * 40 GiB / 30 MiB = 819 rows -> 512; two images per row -> 409 -> 256
    assert batch_size_for_memory(40 * gib, 30 * (1 << 20)) == 512
    assert batch_size_for_memory(40 * gib, 30 * (1 << 20), images_per_row=2) == 256
    assert batch_size_for_memory(400 * gib, 1 << 20) == 1024  # capped
    assert batch_size_for_memory(1 << 20, 1 << 30) == 1  # never below one


def test_largest_that_runs_halves_on_out_of_memory():
    class OOM(RuntimeError):
        pass

    tried, released = [], []

    def run_batch(size):
        tried.append(size)
        if size > 100:
            raise OOM("out of memory")

    size = largest_that_runs(run_batch, 512, lambda e: isinstance(e, OOM), lambda: released.append(1))
    assert (size, tried, len(released)) == (64, [512, 256, 128, 64], 3)
    with pytest.raises(ValueError):  # not an out-of-memory error: raised at once
        largest_that_runs(lambda s: (_ for _ in ()).throw(ValueError("bad")), 8, lambda e: isinstance(e, OOM))
    with pytest.raises(OOM):  # not even one image fits
        largest_that_runs(lambda s: (_ for _ in ()).throw(OOM("oom")), 4, lambda e: isinstance(e, OOM))


def test_cli_decode_option(tmp_path, fs_args, capsys):
    write_random_image(tmp_path / "imgs" / "a" / "x.jpg")
    write_random_image(tmp_path / "imgs" / "a" / "y.png", seed=1)
    store = tmp_path / "s.h5"
    code, out, err = run(["extract", tmp_path / "imgs", "--store", store, *fs_args, "--device", "cpu",
                          "--decode", "gpu", "--quiet"], capsys)
    assert code == 2 and "--decode gpu needs a CUDA device" in err and len(err.strip().splitlines()) == 1
    assert not store.exists()
    code, out, err = run(["extract", tmp_path / "imgs", "--store", store, *fs_args, "--device", "cpu",
                          "--decode", "cpu", "--quiet"], capsys)
    assert code == 0 and "2 extracted" in out


@pytest.mark.slow
def test_sigkill_mid_tensor_decoding_run_then_resume_equals_uninterrupted(tmp_path, tiny_checkpoint,
                                                                          tiny_encoder):
    root = tmp_path / "pets"
    write_class_tree(root, {"cat": 20, "dog": 16})
    write_corrupt_jpeg(root / "dog" / "broken.jpg")
    killed = tmp_path / "killed.h5"
    pid = start_slow_extract(root, killed, tiny_encoder, decode="tensor")
    code = kill_when(pid, lambda: _done_count(killed, tiny_encoder.key) >= 10)
    assert code == -signal.SIGKILL, "extraction finished before it could be killed"
    assert 10 <= _done_count(killed, tiny_encoder.key) < 37
    extract(open_source(root), killed, tiny_encoder, batch_size=3, workers=0, decode="tensor", quiet=True)

    straight = tmp_path / "straight.h5"
    extract(open_source(root), straight, tiny_encoder, batch_size=5, workers=0, decode="tensor",
            overlap_writes=False, quiet=True)
    a = _store_arrays(killed, tiny_encoder.key, "pets")
    b = _store_arrays(straight, tiny_encoder.key, "pets")
    for name in ("ids", "valid", "errors", "done"):
        assert a[name] == b[name], name
    assert len(set(a["ids"])) == len(a["ids"]) == 37 and all(a["done"])
    assert np.abs(a["features"] - b["features"]).max() < 1e-6
