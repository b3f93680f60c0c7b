"""`fs extract` end to end on hostile sources: bad files become error rows whose reasons
`fs info` shows; refusals (labels, split names, '::' in a shard path, a looping source) are
one stderr line and exit 2, before the model loads and without touching the store."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.cli_runner import run
from tests.images import write_manifest, write_random_image, write_webdataset_tar


def _extract(args: list, fs_args: list[str], capsys) -> tuple[int, str, str]:
    return run(["extract", *args, *fs_args, "--workers", "0", "--quiet"], capsys)


def test_bad_files_in_a_folder_are_error_rows_that_fs_info_explains(tmp_path: Path, fs_args, capsys) -> None:
    root = tmp_path / "pets"
    write_random_image(root / "cat" / "a.jpg", seed=1)
    write_random_image(root / "dog" / "b.jpg", seed=2)
    (root / "cat" / "up").symlink_to("..")  # a loop: followed, it would list cat/up/cat/up/... forever
    (root / "dog" / "gone.jpg").symlink_to(root / "dog" / "missing.jpg")
    os.mkfifo(root / "dog" / "pipe.jpg")  # reading it would block for ever
    store = tmp_path / "s.h5"

    code, out, err = _extract([root, "--store", store], fs_args, capsys)
    assert code == 0, err
    assert "5 rows" in out and "3 unreadable" in out

    code, out, err = run(["info", "--store", store], capsys)
    assert code == 0, err
    assert "pets: 5 rows, 3 unreadable, 2 classes" in out
    assert "1 unreadable: directory symlink loop: it leads back to" in out and "(e.g. cat/up)" in out
    assert "1 unreadable: dangling symlink (its target" in out and "(e.g. dog/gone.jpg)" in out
    assert "1 unreadable: not a regular file (a FIFO) (e.g. dog/pipe.jpg)" in out
    code, out, _ = run(["info", "--store", store, "--json"], capsys)
    (split,) = json.loads(out)["splits"]
    assert sorted(e["example"] for e in split["error_reasons"]) == ["cat/up", "dog/gone.jpg", "dog/pipe.jpg"]


def test_truncated_shard_is_recorded_in_the_store(tmp_path: Path, fs_args, capsys) -> None:
    intact = tmp_path / "intact.tar"
    write_webdataset_tar(intact, 3, labels=[2, 0, 1])
    with tarfile.open(intact) as tar:
        cut = next(m.offset for m in tar if m.name == "00002.cls")  # the last label is cut off
    shard = tmp_path / "00000.tar"
    shard.write_bytes(intact.read_bytes()[:cut])
    store = tmp_path / "s.h5"

    code, out, err = _extract([shard, "--store", store], fs_args, capsys)
    assert code == 0, err
    assert "4 rows" in out and "2 unreadable" in out
    code, out, err = run(["info", "--store", store], capsys)
    assert "1 unreadable: truncated tar shard (" in out and "(e.g. 00000.tar)" in out
    assert "1 unreadable: the last sample of a truncated tar shard" in out and "(e.g. 00000.tar/00002)" in out


def _refused(args: list, fs_args: list[str], capsys, words: str) -> None:
    code, out, err = _extract(args, fs_args, capsys)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err


def test_refusals_are_one_line_exit_2_and_leave_no_store(tmp_path: Path, fs_args, capsys) -> None:
    store = tmp_path / "s.h5"
    write_random_image(tmp_path / "imgs" / "a.jpg")
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "imgs/a.jpg", "label": -5}])
    _refused([manifest, "--store", store], fs_args, capsys, "label -5")

    for name in ("a|b", ".", ".."):
        _refused([tmp_path / "imgs", "--store", store, "--split", name], fs_args, capsys, f"split name {name!r}")
    _refused([tmp_path / "imgs", "--store", store, "--split", "..", "--cluster", "local:1"], fs_args, capsys,
             "split name '..'")
    bad = tmp_path / "a|b"  # the source's own name is the default split name
    write_random_image(bad / "x.jpg")
    _refused([bad, "--store", store], fs_args, capsys, "split name 'a|b'")

    write_webdataset_tar(tmp_path / "x::y" / "00000.tar", 1)
    _refused([tmp_path / "x::y" / "00000.tar", "--store", store], fs_args, capsys, "contains '::'")

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    _refused([tmp_path / "loop", "--store", store], fs_args, capsys, "symlink loop")

    assert not store.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a|b", "imgs", "loop", "m.csv", "x::y"]
    _refused([tmp_path / "imgs", "--store", tmp_path / "loop"], fs_args, capsys,
             "for writing: Too many levels of symbolic links")


@pytest.mark.parametrize("cls", ["-7"])
def test_negative_cls_label_is_refused(tmp_path: Path, fs_args, capsys, cls: str) -> None:
    import io

    shard = tmp_path / "00000.tar"
    image = (tmp_path / "a.jpg")
    write_random_image(image)
    with tarfile.open(shard, "w") as tar:
        for name, data in (("k.jpg", image.read_bytes()), ("k.cls", cls.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _refused([shard, "--store", tmp_path / "s.h5"], fs_args, capsys, "not a class index")
