"""`fs extract` with other encoders (timm image-only, preprocessing options), several encoders
in one store, refusal to mix preprocessing or architecture under one key, classifier heads as
class banks (`fs text --weights`), recorded norms, and `fs models`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.conftest import TINY_CONFIG, TINY_MODEL
from tests.images import write_class_tree

CLASSES = {"cat": 4, "dog": 4, "fox": 4}


@pytest.fixture(scope="module")
def timm_model(tmp_path_factory):
    """timm's tiny test_efficientnet with seeded random weights (classifier of 1000 classes) and
    its checkpoint file."""
    import timm
    import torch

    torch.manual_seed(2)
    model = timm.create_model("test_efficientnet").eval()
    path = tmp_path_factory.mktemp("timm") / "test_eff.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def images(tmp_path):
    write_class_tree(tmp_path / "imgs", CLASSES, seed=7)
    return tmp_path / "imgs"


def _key(store, prefix: str) -> str:
    with FeatureStore(store) as s:
        return next(k for k in s.encoders() if k.startswith(prefix))


def test_two_encoders_over_one_split_and_fs_info_lists_them(tmp_path, images, fs_args, timm_model, capsys):
    """CLIP-like (open_clip) + an image-only timm encoder over the same rows of one store."""
    store = tmp_path / "s.h5"
    _, ckpt = timm_model
    assert run(["extract", images, "--store", store, *fs_args, "--quiet"], capsys)[0] == 0
    code, out, err = run(["extract", images, "--store", store, "--model", "timm:test_efficientnet",
                          "--pretrained", ckpt, "--resize", 180, "--crop", 160, "--quiet"], capsys)
    assert code == 0, err
    clip_key, timm_key = _key(store, TINY_MODEL), _key(store, "timm:")
    with FeatureStore(store) as s:
        assert s.features(clip_key, "imgs").shape == (12, 32)
        X = s.features(timm_key, "imgs")
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
        assert s.encoder_info(timm_key)["preprocess"]["resize"] == 180
    code, out, _ = run(["info", "--store", store], capsys)
    assert code == 0
    assert f"{timm_key}: dim {X.shape[1]}" in out and "image-only" in out
    assert "preprocess: resize 180 (shortest) -> crop 160x160, bicubic, mean 0.485,0.456,0.406" in out
    assert "preprocess: resize 32 (shortest) -> crop 32x32, bicubic, mean 0.4815,0.4578,0.4082" in out
    summary = json.loads(run(["info", "--store", store, "--json"], capsys)[1])
    assert {e["family"] for e in summary["encoders"]} == {"open_clip", "timm"}


def test_other_preprocessing_or_model_config_under_one_key_is_refused(tmp_path, images, fs_args, capsys):
    store = tmp_path / "s.h5"
    assert run(["extract", images, "--store", store, *fs_args, "--quiet"], capsys)[0] == 0
    with FeatureStore(store) as s:
        before = s.features(_key(store, TINY_MODEL), "imgs")
    code, _, err = run(["extract", images, "--store", store, *fs_args, "--split", "more", "--image-mean", "0.5",
                        "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "another preprocessing (mean: [0.48145466, 0.4578275, 0.40821073] stored, [0.5, 0.5, 0.5] now)" in err
    # The same checkpoint under another architecture config of the same name (quick_gelu: same
    # tensors, other features) is refused too.
    config = json.loads(TINY_CONFIG.read_text())
    config["quick_gelu"] = True
    other = tmp_path / "other" / f"{TINY_MODEL}.json"
    other.parent.mkdir()
    other.write_text(json.dumps(config))
    args = [a if a != str(TINY_CONFIG) else str(other) for a in fs_args]
    code, _, err = run(["extract", images, "--store", store, *args, "--split", "more", "--quiet"], capsys)
    assert code == 2 and "another model config (quick_gelu: null stored, true now)" in err
    with FeatureStore(store) as s:
        assert not s.has_features(_key(store, TINY_MODEL), "more")
        np.testing.assert_array_equal(s.features(_key(store, TINY_MODEL), "imgs"), before)


def test_image_only_encoder_text_error_and_head_as_class_bank(tmp_path, images, timm_model, capsys):
    """fs text on an image-only encoder: one line. fs text --weights: W (C, D) + b as a class
    bank; with the recorded norms, W x_raw + b is the timm model's own classifier output."""
    import torch
    from timm.data import create_transform, resolve_data_config

    model, ckpt = timm_model
    store = tmp_path / "s.h5"
    assert run(["extract", images, "--store", store, "--model", "timm:test_efficientnet", "--pretrained", ckpt,
                "--quiet"], capsys)[0] == 0
    key = _key(store, "timm:")
    code, _, err = run(["text", "--store", store, "--classes", "imgs"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is image-only (no text tower)" in err

    W = model.get_classifier().weight.detach().numpy()
    b = model.get_classifier().bias.detach().numpy()
    np.savez(tmp_path / "head.npz", W=W, b=b)
    names = [f"imagenet-{i}" for i in range(W.shape[0])]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    code, out, err = run(["text", "--store", store, "--weights", tmp_path / "head.npz", "--classes",
                          tmp_path / "classes.txt", "--name", "head"], capsys)
    assert code == 0, err
    with FeatureStore(store) as s:
        bank = s.text_bank(key, "head")
        X, norms = s.features(key, "imgs"), s.norms(key, "imgs")
        paths = s.paths("imgs")
    assert bank["kind"] == "classes" and bank["classes"] == names
    np.testing.assert_array_equal(bank["weights"], W)
    np.testing.assert_array_equal(bank["bias"], b)
    # oracle: timm's full model (classifier included) on timm's own transform of the same files
    from PIL import Image

    transform = create_transform(**resolve_data_config({}, model=model))
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        logits = model(batch).numpy()
        raw = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(norms, np.linalg.norm(raw, axis=1), rtol=1e-5)
    np.testing.assert_allclose((X * norms[:, None]) @ bank["weights"].T + bank["bias"], logits, rtol=1e-4, atol=1e-4)

    # a head that does not fit is one line
    np.savez(tmp_path / "bad.npz", W=W[:, :-1])
    code, _, err = run(["text", "--store", store, "--weights", tmp_path / "bad.npz", "--classes",
                        tmp_path / "classes.txt"], capsys)
    assert code == 2 and err.count("\n") == 1 and "columns do not match" in err
    (tmp_path / "few.txt").write_text("a\nb\n")
    code, _, err = run(["text", "--store", store, "--weights", tmp_path / "head.npz", "--classes",
                        tmp_path / "few.txt"], capsys)
    assert code == 2 and f"the head has {W.shape[0]} classes" in err


def test_solvers_that_need_no_text_run_on_an_image_only_encoder(tmp_path, images, timm_model, capsys):
    _, ckpt = timm_model
    store = tmp_path / "s.h5"
    assert run(["extract", images, "--store", store, "--model", "timm:test_efficientnet", "--pretrained", ckpt,
                "--quiet"], capsys)[0] == 0
    for solver in ("knn", "gda", "tip-adapter", "linear-probe"):
        code, out, err = run(["solve", solver, "--store", store, "--train", "imgs", "--test", "imgs", "--json",
                              "--quiet"], capsys)
        assert code == 0, (solver, err)


def test_extract_refuses_a_locked_store_before_loading_the_model(tmp_path, images, fs_args, capsys):
    """The second writer is refused before the checkpoint is read (a missing one is not even noticed)."""
    from featurestore.store.writer_lock import WriterLock

    store = tmp_path / "s.h5"
    assert run(["extract", images, "--store", store, *fs_args, "--quiet"], capsys)[0] == 0
    lock = WriterLock(store)
    lock.acquire()
    try:
        code, _, err = run(["extract", images, "--store", store, "--model", TINY_MODEL, "--model-config",
                            TINY_CONFIG, "--pretrained", tmp_path / "missing.pt", "--quiet"], capsys)
    finally:
        lock.release()
    assert code == 2 and "missing.pt" not in err and "writ" in err


def test_pretrained_required_and_fs_models(tmp_path, images, capsys):
    code, _, err = run(["extract", images, "--store", tmp_path / "s.h5", "--model", TINY_MODEL, "--model-config",
                        TINY_CONFIG, "--quiet"], capsys)
    assert code == 2 and "give --pretrained" in err and "'random'" in err
    code, out, _ = run(["models", "test_efficientnet", "--library", "timm"], capsys)
    assert code == 0 and "timm:test_efficientnet  [tags: r160_in1k]" in out and "timm:test_efficientnet_gn" in out
    code, out, _ = run(["models", "ViT-B-32", "--library", "open_clip", "--json"], capsys)
    entries = {e["model"]: e["pretrained"] for e in json.loads(out)["open_clip"]}
    import open_clip

    assert entries["ViT-B-32"] == open_clip.list_pretrained_tags_by_model("ViT-B-32")


def test_model_config_with_preprocess_cfg_extracts(tmp_path, images, tiny_checkpoint, capsys):
    """open_clip's preprocess_cfg key in a --model-config file (a TypeError traceback before):
    it sets the preprocessing, recorded with the encoder and shown by fs info."""
    config = json.loads(TINY_CONFIG.read_text())
    config["preprocess_cfg"] = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize_mode": "squash"}
    path = tmp_path / "tiny-pp.json"
    path.write_text(json.dumps(config))
    store = tmp_path / "s.h5"
    code, _, err = run(["extract", images, "--store", store, "--model", "tiny-pp", "--model-config", path,
                        "--pretrained", tiny_checkpoint, "--quiet"], capsys)
    assert code == 0, err
    code, out, _ = run(["info", "--store", store], capsys)
    assert "preprocess: resize 32 (squash) -> crop 32x32, bicubic, mean 0.5,0.5,0.5, std 0.5,0.5,0.5" in out
