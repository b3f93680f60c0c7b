"""Extraction end to end with the tiny model: sources, alignment, fidelity, bad rows, resume."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from PIL import Image

from featurestore.extract.pipeline import extract
from featurestore.sources import open_source
from featurestore.store.feature_store import FeatureStore
from tests.images import (
    write_class_tree,
    write_corrupt_jpeg,
    write_empty_file,
    write_manifest,
    write_random_image,
    write_text_as_image,
    write_webdataset_tar,
)


def _direct(encoder, paths):
    """Oracle: the model's own encode_image on the same preprocessed images, normalized."""
    import torch

    batch = torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return torch.nn.functional.normalize(encoder.model.encode_image(batch), dim=-1).numpy()


def test_folder_rows_align_and_match_direct_encoding(tmp_path, tiny_encoder):
    root = tmp_path / "pets"
    write_class_tree(root, {"cat": 5, "dog": 4, "emu": 3})
    report = extract(open_source(root), tmp_path / "s.h5", tiny_encoder, batch_size=4, workers=2, quiet=True)
    assert (report.rows, report.extracted, report.failed) == (12, 12, 0)
    with FeatureStore(tmp_path / "s.h5") as store:
        ids, labels, paths = store.ids("pets"), store.labels("pets"), store.paths("pets")
        feats = store.features(tiny_encoder.key, "pets")
        assert store.classes("pets") == ["cat", "dog", "emu"]
    assert list(ids) == sorted(ids) and len(set(ids)) == 12
    assert [store_id.split("/")[0] for store_id in ids] == [["cat", "dog", "emu"][y] for y in labels]
    assert np.abs(feats - _direct(tiny_encoder, paths)).max() < 1e-5


def test_rerun_skips_everything_and_new_files_are_appended(tmp_path, tiny_encoder):
    root = tmp_path / "pets"
    write_class_tree(root, {"cat": 3, "dog": 3})
    extract(open_source(root), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    again = extract(open_source(root), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    assert (again.skipped, again.extracted) == (6, 0)
    write_random_image(root / "cat" / "zzz_new.jpg", seed=99)
    more = extract(open_source(root), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    assert (more.skipped, more.extracted) == (6, 1)
    with FeatureStore(tmp_path / "s.h5") as store:
        ids = store.ids("pets")
        assert ids[-1] == "cat/zzz_new.jpg" and len(ids) == 7
        np.testing.assert_allclose(store.features(tiny_encoder.key, "pets"),
                                   _direct(tiny_encoder, store.paths("pets")), atol=1e-5)


def test_bad_images_are_recorded_not_fatal(tmp_path, tiny_encoder):
    root = tmp_path / "mixed"
    write_random_image(root / "good.jpg")
    write_corrupt_jpeg(root / "corrupt.jpg")
    write_empty_file(root / "empty.jpg")
    write_text_as_image(root / "text.png")
    report = extract(open_source(root), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    assert (report.extracted, report.failed) == (1, 3)
    with FeatureStore(tmp_path / "s.h5") as store:
        errors = {e["id"]: e["reason"] for e in store.errors("mixed")}
        assert set(errors) == {"corrupt.jpg", "empty.jpg", "text.png"}
        assert all(errors.values())
        assert store.ids("mixed").tolist() == ["good.jpg"]
        assert store.features(tiny_encoder.key, "mixed").shape == (1, 32)
        assert len(store.ids("mixed", valid_only=False)) == 4


def test_manifest_and_tar_sources(tmp_path, tiny_encoder):
    for i in range(4):
        write_random_image(tmp_path / "img" / f"{i}.png", seed=i)
    write_manifest(tmp_path / "list.csv", [{"path": f"img/{i}.png", "label": "ab"[i % 2], "caption": f"cap {i}"}
                                           for i in range(4)])
    extract(open_source(tmp_path / "list.csv"), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    samples = write_webdataset_tar(tmp_path / "shards" / "00000.tar", 5)
    extract(open_source(tmp_path / "shards" / "00000.tar"), tmp_path / "s.h5", tiny_encoder, split="pool",
            workers=1, quiet=True)
    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.labels("list").tolist() == [0, 1, 0, 1] and store.classes("list") == ["a", "b"]
        assert store.captions("list").tolist() == [f"cap {i}" for i in range(4)]
        assert store.captions("pool").tolist() == [s["caption"] for s in samples]
        assert store.labels("pool").tolist() == [-1] * 5
        import io

        import torch
        images = torch.stack([tiny_encoder.preprocess(Image.open(io.BytesIO(s["image"])).convert("RGB"))
                              for s in samples])
        with torch.no_grad():
            direct = torch.nn.functional.normalize(tiny_encoder.model.encode_image(images), dim=-1).numpy()
        assert np.abs(store.features(tiny_encoder.key, "pool") - direct).max() < 1e-5


def test_augmented_views_are_stored_and_reproducible(tmp_path, tiny_encoder):
    write_class_tree(tmp_path / "v", {"a": 3})
    extract(open_source(tmp_path / "v"), tmp_path / "s1.h5", tiny_encoder, views=2, workers=0, quiet=True)
    extract(open_source(tmp_path / "v"), tmp_path / "s2.h5", tiny_encoder, views=2, workers=2, quiet=True)
    with FeatureStore(tmp_path / "s1.h5") as a, FeatureStore(tmp_path / "s2.h5") as b:
        va, vb = a.views(tiny_encoder.key, "v"), b.views(tiny_encoder.key, "v")
        plain = a.features(tiny_encoder.key, "v")
    assert va.shape == (3, 2, 32)
    np.testing.assert_allclose(va, vb, atol=1e-6)
    assert np.abs(va[:, 0] - plain).max() > 1e-3 and np.abs(va[:, 0] - va[:, 1]).max() > 1e-3


def start_slow_extract(root, store, encoder, **options) -> int:
    """Start ``extract()`` over ``root`` read through a source that sleeps 0.02 s per image, in a
    child forked from the test process (the encoder already loaded: no interpreter start), so a
    test can SIGKILL it mid-run. Returns the child's pid (see :func:`kill_when`)."""
    from tests.fault_injection import INHERIT, run_forked
    from tests.slow_source import SlowSource

    def go() -> int:
        extract(SlowSource(open_source(root), 0.02), store, encoder, batch_size=3, workers=0, quiet=True, **options)
        return 0

    return run_forked(go, stdout=INHERIT, stderr=INHERIT, wait=False)


def kill_when(pid: int, ready, timeout: float = 120) -> int:
    """SIGKILL child ``pid`` once ``ready()`` holds (or ``timeout`` seconds passed); its exit
    status: -SIGKILL when killed, its exit code when it ended first."""
    import os

    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _done_count(path, key):
    try:
        with FeatureStore(path) as store:
            return int(store.done(key, "pets").sum()) if store.has_features(key, "pets") else 0
    except Exception:  # the writer is still creating its arrays
        return 0


def test_sigkill_mid_extraction_then_resume_equals_uninterrupted(tmp_path, tiny_checkpoint, tiny_encoder):
    root = tmp_path / "pets"
    write_class_tree(root, {"cat": 40, "dog": 35})
    write_corrupt_jpeg(root / "dog" / "broken.jpg")
    killed = tmp_path / "killed.h5"
    key = tiny_encoder.key
    for threshold in (7, 40):  # kill twice, at different depths
        pid = start_slow_extract(root, killed, tiny_encoder)
        code = kill_when(pid, lambda: _done_count(killed, key) >= threshold)  # noqa: B023
        assert code == -signal.SIGKILL, "extraction finished before it could be killed"
        assert threshold <= _done_count(killed, key) < 76
    extract(open_source(root), killed, tiny_encoder, batch_size=3, workers=0, quiet=True)  # the resume

    straight = tmp_path / "straight.h5"
    extract(open_source(root), straight, tiny_encoder, batch_size=8, workers=0, quiet=True)
    with FeatureStore(killed) as a, FeatureStore(straight) as b:
        for valid_only in (True, False):
            assert a.ids("pets", valid_only).tolist() == b.ids("pets", valid_only).tolist()
        assert len(set(a.ids("pets", False))) == a.n_rows("pets") == 76
        assert a.errors("pets") == b.errors("pets") and len(a.errors("pets")) == 1
        np.testing.assert_array_equal(a.labels("pets"), b.labels("pets"))
        assert np.abs(a.features(key, "pets") - b.features(key, "pets")).max() < 1e-6


def test_an_empty_manifest_is_refused_and_writes_nothing(tmp_path, tiny_encoder):
    from featurestore.errors import SourceError

    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(SourceError, match="lists no images"):
        extract(open_source(tmp_path / "empty.csv"), tmp_path / "s.h5", tiny_encoder, workers=0, quiet=True)
    assert not (tmp_path / "s.h5").exists()
