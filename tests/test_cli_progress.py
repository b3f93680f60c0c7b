"""Long `fs` commands show a progress bar on stderr, and `--quiet` silences it."""
from __future__ import annotations

import json

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree


def test_text_encoding_shows_progress_unless_quiet(tmp_path, fs_args, capsys):
    write_class_tree(tmp_path / "pets", {"cat": 2, "dog": 2, "emu": 2})
    store = tmp_path / "pets.h5"
    code, _, err = run(["extract", tmp_path / "pets", "--store", store, *fs_args, "--workers", "0", "-q"], capsys)
    assert code == 0, err
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
    args = ["text", "--store", store, "--encoder", key, "--classes", "pets", "--templates", "imagenet"]
    code, out, err = run(args, capsys)
    assert code == 0 and "3 classes x 80 templates" in out
    assert "encode texts" in err and "240/240" in err
    code, out, err = run([*args, "--quiet"], capsys)
    assert code == 0 and err == ""
    words = tmp_path / "words.json"
    words.write_text(json.dumps(["a", "b", "c"]))
    code, out, err = run(["text", "--store", store, "--encoder", key, "--file", words, "-q"], capsys)
    assert code == 0 and err == "" and "3 strings" in out
