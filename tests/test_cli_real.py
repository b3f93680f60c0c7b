"""`fs real frequency|prompts`, `fs captions` and `fs solve real-*/tip-x/caps-adapter` end to end
on the tiny model, against brute force, and their one-line errors."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from cli.main import main
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree, write_random_image
from tests.store_fixtures import make_feature_store

POOL_CAPTIONS = ["a Dromaius in the field", "dromaius!", "DROMAIUS chick", "an emu", "a kitty", "my cat",
                 "a dog", "a puppy", "hot-dog stand", "a Puppy and a cat", "nothing at all", "kitty-cat"]
SYNONYMS = {"cat": ["kitty", "house cat"], "dog": ["puppy", "hot dog"], "emu": ["Dromaius"]}




def mentions(caption, phrase):
    words = re.findall(r"\w+", phrase.lower())
    return re.search(r"(?<!\w)" + r"\W+".join(map(re.escape, words)) + r"(?!\w)", caption, re.IGNORECASE) is not None


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, tiny_checkpoint):
    from tests.conftest import TINY_CONFIG, TINY_MODEL

    root = tmp_path_factory.mktemp("real")
    store = root / "pets.h5"
    fs_args = ["--model", TINY_MODEL, "--model-config", str(TINY_CONFIG), "--pretrained", str(tiny_checkpoint),
               "--workers", "0", "-q"]
    for split, n, seed in (("train", 2, 0), ("val", 2, 100), ("test", 2, 200)):
        write_class_tree(root / split, {"cat": n, "dog": n, "emu": n}, seed=seed)
        main(["extract", str(root / split), "--store", str(store), *fs_args])
    manifest = root / "pool.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption"])
        for i, caption in enumerate(POOL_CAPTIONS):
            write_random_image(root / "pool" / f"{i}.jpg", seed=1000 + i)
            writer.writerow([f"pool/{i}.jpg", caption])
    main(["extract", str(manifest), "--store", str(store), *fs_args])
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
        dim = reader.features(key, "train").shape[1]
    make_feature_store(store, {"alien": np.ones((3, dim), np.float32)}, encoder="other/enc")
    main(["text", "--store", str(store), "--encoder", key, "--classes", "train", "--templates", "simple"])
    synonyms = root / "synonyms.json"
    synonyms.write_text(json.dumps(SYNONYMS))
    return store, key, synonyms, root


def test_frequency_equals_brute_force(real_store, capsys):
    store, _, synonyms, _ = real_store
    code, out, err = run(["real", "frequency", "--store", store, "--pool", "pool", "--synonyms", synonyms,
                          "--classes", "train", "--tail", "1", "--json", "-q"], capsys)
    assert code == 0, err
    report = json.loads(out)
    for row in report["classes"]:
        for synonym, count in row["synonyms"].items():
            assert count == sum(mentions(c, synonym) for c in POOL_CAPTIONS)
        assert row["count"] == sum(any(mentions(c, s) for s in row["synonyms"]) for c in POOL_CAPTIONS)
    counts = {row["class"]: row["count"] for row in report["classes"]}
    assert report["tail"] == [min(counts, key=counts.get)]


def test_real_prompts_rename_a_tail_class_and_solve(real_store, tiny_encoder, capsys):
    store, key, synonyms, _ = real_store
    code, out, err = run(["real", "prompts", "--store", store, "--encoder", key, "--pool", "pool", "--synonyms",
                          synonyms, "--classes", "train", "--templates", "simple", "-q"], capsys)
    assert code == 0, err
    assert "emu -> Dromaius" in out
    with FeatureStore(store) as reader:
        bank = reader.text_bank(key, "train/real")
        Xt, yt = reader.features(key, "test"), reader.labels("test")
    assert bank["names"] == ["cat", "dog", "Dromaius"]  # dog ties puppy (2 each): the first listed wins
    assert "a photo of a Dromaius." in bank["strings"]
    emb = tiny_encoder.encode_texts([s for s in bank["strings"]]).reshape(3, -1, Xt.shape[1]).mean(axis=1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(bank["weights"], emb, atol=1e-5)
    code, out, err = run(["solve", "real-prompt", "--store", store, "--encoder", key, "--test", "test", "--json"],
                         capsys)
    assert code == 0, err
    Xn = Xt / np.linalg.norm(Xt, axis=1, keepdims=True)
    assert json.loads(out)["runs"][0]["accuracy"] == pytest.approx(np.mean((Xn @ emb.T).argmax(1) == yt))

    code, out, err = run(["solve", "real-linear", "--store", store, "--encoder", key, "--val", "val", "--test", "test",
                          "--input", "pool=pool", "--input", f"synonyms={synonyms}", "--input", "cap=2",
                          "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["runs"][0]["accuracy"] is not None


def test_tipx_and_caps_adapter_from_a_pool(real_store, capsys):
    store, key, _, root = real_store
    code, out, err = run(["solve", "tip-x", "--store", store, "--encoder", key, "--val", "val", "--test", "test",
                          "--input", "pool=pool", "--input", "shots=2", "--param", "search_steps=[2,3,2]", "--json"],
                         capsys)
    assert code == 0, err
    class_caps = root / "class_captions.json"
    class_caps.write_text(json.dumps({"cat": ["a photo of a kitty"], "dog": ["a puppy playing"],
                                      "emu": ["a dromaius bird"]}))
    assert run(["captions", "--store", store, "--encoder", key, "--split", "pool"], capsys)[0] == 0
    made = run(["text", "--store", store, "--encoder", key, "--file", class_caps, "--name", "classcaps"], capsys)
    assert made[0] == 0
    code, out, err = run(["solve", "caps-adapter", "--store", store, "--encoder", key, "--val", "val", "--test", "test",
                          "--input", "pool=pool", "--input", "class_captions=classcaps", "--input", "shots=2",
                          "--param", "search_steps=[2,2,2]", "--param", "deltas=[0,0.5]", "--json"], capsys)
    assert code == 0, err
    assert "delta_" in json.loads(out)["runs"][0]["chosen"]


@pytest.mark.parametrize("args, message", [
    (["real", "frequency", "--store", "STORE", "--pool", "pool", "--synonyms", "UNKNOWN", "--classes", "train"],
     "not in the class list: 'zebra'"),
    (["real", "frequency", "--store", "STORE", "--pool", "pool", "--synonyms", "EMPTY", "--classes", "train"],
     "empty synonym list"),
    (["real", "frequency", "--store", "STORE", "--pool", "train", "--synonyms", "SYN"], "has no captions"),
    (["solve", "tip-x", "--store", "STORE", "--encoder", "KEY", "--input", "pool=alien"], "encoded by 'other/enc'"),
    (["solve", "real-linear", "--store", "STORE", "--encoder", "KEY", "--input", "pool=train",
      "--input", "synonyms=SYN", "--input", "real_bank=train/real"], "has no captions"),
])
def test_user_errors_are_one_line(real_store, capsys, args, message):
    store, key, synonyms, root = real_store
    (root / "unknown.json").write_text(json.dumps({"cat": ["kitty"], "zebra": ["zebra"]}))
    (root / "empty.json").write_text(json.dumps({"cat": []}))
    subst = {"STORE": str(store), "KEY": key, "SYN": str(synonyms), "UNKNOWN": str(root / "unknown.json"),
             "EMPTY": str(root / "empty.json"), "synonyms=SYN": f"synonyms={synonyms}"}
    code, _, err = run([subst.get(a, a) for a in args], capsys)
    assert code == 2, err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
