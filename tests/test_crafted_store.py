"""A crafted store cannot make featurestore write outside its temp folder (issue 17 item 10):
the encoder's recorded ``model`` becomes a file name when the encoder is rebuilt from the
store; a name with path parts is refused in one line and no temp folder is left behind."""
from __future__ import annotations

import glob
import os
import tempfile

import h5py

from tests.cli_runner import run
from tests.images import write_class_tree


def test_a_crafted_model_attribute_cannot_escape_the_temp_folder(tmp_path, fs_args, capsys):
    write_class_tree(tmp_path / "imgs", {"cat": 1, "dog": 1})
    store = tmp_path / "s.h5"
    code, _, err = run(["extract", tmp_path / "imgs", "--store", store, "--workers", "0", "-q", *fs_args], capsys)
    assert code == 0, err
    target = tmp_path / "escaped"
    with h5py.File(store, "a", locking=False) as f:
        group = f["encoders"][next(iter(f["encoders"]))]
        key = group.attrs["key"]
        group.attrs["model"] = os.path.relpath(target, tempfile.gettempdir()) + "/x"
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "featurestore-cfg-*")))
    code, _, err = run(["text", "--store", store, "--encoder", key, "--classes", "imgs", "--templates", "simple"],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not target.exists() and not list(tmp_path.glob("**/x.json"))
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "featurestore-cfg-*"))) <= before
