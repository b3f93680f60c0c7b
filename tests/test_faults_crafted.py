"""Damaged index sidecars, ensembles that name themselves and stores whose features reach out of
the store file: each refused in one line (FeatureStoreError / InputError, exit 2 in the CLI)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from featurestore.errors import FeatureStoreError
from featurestore.index.store_index import build_index, index_paths, load_index
from tests.store_fixtures import make_feature_store

ENC = "test/enc"


def _hnsw_store(tmp_path: Path) -> tuple[Path, Path]:
    feats = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    path = make_feature_store(tmp_path / "s.h5", {"train": feats})
    build_index(path, ENC, "train", "HNSW8", quiet=True)
    return path, index_paths(path, ENC, "train", "HNSW8")[1]


@pytest.mark.parametrize(("field", "value", "named"), [
    ("efSearch", "fast", "search_params.efSearch"),      # ValueError in int() before
    ("efSearch", 10**30, "search_params.efSearch"),      # OverflowError in FAISS before
    ("efSearch", 0, "search_params.efSearch"),
    ("ntotal", "300", "ntotal"),
    ("request", {"recall": "high"}, "request.recall"),
])
def test_damaged_sidecar_is_refused_in_one_line(tmp_path: Path, field: str, value: object, named: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, json_path = _hnsw_store(tmp_path)
    meta = json.loads(json_path.read_text())
    if field == "efSearch":
        meta["search_params"]["efSearch"] = value
    else:
        meta[field] = value
    json_path.write_text(json.dumps(meta))
    with pytest.raises(FeatureStoreError, match=rf"{json_path.name}.*damaged.*'{named}'"):
        load_index(path, ENC, "train", "HNSW8", rebuild_stale=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--store", str(path), "--split", "train", "--factory", "HNSW8", "--id", "train-00000"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(json_path) in err and named in err


def test_sound_sidecar_still_loads(tmp_path: Path) -> None:
    path, json_path = _hnsw_store(tmp_path)
    ef = json.loads(json_path.read_text())["search_params"]["efSearch"]
    index = load_index(path, ENC, "train", "HNSW8", rebuild_stale=False)
    import faiss

    id_map: Any = faiss.downcast_index(index.index)
    hnsw: Any = faiss.downcast_index(id_map.index)
    assert int(hnsw.hnsw.efSearch) == ef


def _nested_ensemble_store(tmp_path: Path, depth: int) -> Path:
    """A store with model ``e``: an ensemble whose member is (a copy of) itself, ``depth`` levels
    deep, as a crafted store holds it, around one fitted GDA."""
    from featurestore.store.feature_store import FeatureStore
    from solvers.ensembles.ensemble import Ensemble
    from solvers.few_shot.gda import GDA
    from solvers.persistence import save_to_store

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    feats = (rng.normal(size=(60, 8)) + 3 * np.eye(8)[labels]).astype(np.float32)
    path = make_feature_store(tmp_path / "m.h5", {"train": feats}, labels={"train": labels.tolist()},
                              classes={"train": ["a", "b", "c"]})
    ensemble = Ensemble(members=[GDA().fit(feats, labels)]).fit(feats, labels)
    with FeatureStore(path, mode="a") as writer:
        save_to_store(writer, "e", ensemble, ENC)
        arrays, meta = writer.load_model("e")
        state, crafted_arrays = meta["state"], dict(arrays)
        for _ in range(depth):
            state = {**meta["state"], "members": [state]}
            crafted_arrays = {**{f"member0.{k}": v for k, v in crafted_arrays.items()}, **arrays}
        writer.save_model("e", crafted_arrays, {**meta, "state": state})
    return path


@pytest.mark.parametrize("depth", [3, 400])
def test_ensemble_that_contains_itself_is_refused_in_one_line(tmp_path: Path, depth: int,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _nested_ensemble_store(tmp_path, depth)
    code = ["predict", "--store", str(path), "--models", "e", "--split", "train"]
    if depth == 3:  # an ensemble of ensembles a few levels deep is a legitimate model
        main(code)
        assert len(capsys.readouterr().out.splitlines()) == 61
        return
    with pytest.raises(SystemExit) as exit_info:
        main(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "'e'" in err and "itself" in err


def test_ensemble_state_with_a_member_cycle_is_refused() -> None:
    from solvers.ensembles.ensemble import Ensemble
    from solvers.errors import InputError

    state: dict[str, object] = {"class": "Ensemble", "params": {}, "fitted": {"n_features_in_": 2}}
    other: dict[str, object] = {**state, "members": [state]}
    state["members"] = [other]
    with pytest.raises(InputError, match="cycle"):
        Ensemble.from_state({}, state)


def _store_reaching_out(tmp_path: Path, how: str) -> tuple[Path, Path]:
    """A store whose train features are an external link, or a virtual dataset over an absolute
    path, to ``other.h5`` beside it."""
    import h5py

    feats = np.ones((5, 4), dtype=np.float32)
    path = make_feature_store(tmp_path / "s.h5", {"train": feats})
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.full((5, 4), 7.0, dtype=np.float32)
    with h5py.File(path, "r+") as f:
        group = f["encoders/test|enc/images"]
        del group["train"]
        if how == "external":
            group["train"] = h5py.ExternalLink(str(other), "x")
        else:
            layout = h5py.VirtualLayout(shape=(5, 4), dtype=np.float32)
            layout[:] = h5py.VirtualSource(str(other.resolve()) if how == "absolute" else "../x/other.h5", "x",
                                           shape=(5, 4))
            group.create_virtual_dataset("train", layout)
    return path, other


@pytest.mark.parametrize("how", ["external", "absolute", "climbing"])
def test_store_reaching_outside_its_file_is_refused_on_open(tmp_path: Path, how: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from featurestore.errors import StoreFormatError
    from featurestore.store.feature_store import FeatureStore

    path, other = _store_reaching_out(tmp_path, how)
    before = other.read_bytes()
    for mode in ("r", "a"):
        with pytest.raises(StoreFormatError, match=r"reaches outside its file: /encoders/test\|enc/images/train"):
            FeatureStore(path, mode=mode)
    with FeatureStore(tmp_path / "fresh.h5", mode="a"):  # the lock was released on the refusal
        pass
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--store", str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "outside" in err
    assert other.read_bytes() == before


def test_extract_append_to_a_store_reaching_out_is_refused(tmp_path: Path, fs_args: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    path, other = _store_reaching_out(tmp_path, "external")
    before = other.read_bytes()
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(photos / "a.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(photos), "--store", str(path), *fs_args, "-q"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "outside" in err
    assert other.read_bytes() == before


def _replace_with_external_storage(path: Path, dataset: str, target: Path) -> None:
    """Replace ``dataset`` of the store by one of the same shape and type whose data HDF5 keeps in
    ``target`` (external storage, set with the low-level API as a crafted file would)."""
    import h5py

    with h5py.File(path, "r+", locking=False) as f:
        old = f[dataset]
        shape, dtype, parent, leaf = old.shape, old.dtype, old.parent, dataset.rpartition("/")[2]
        del f[dataset]
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_external(os.fsencode(str(target)), 0, h5py.h5f.UNLIMITED)
        space = h5py.h5s.create_simple(shape, (h5py.h5s.UNLIMITED, *shape[1:]))
        h5py.h5d.create(parent.id, leaf.encode(), h5py.h5t.py_create(dtype), space, dcpl=dcpl).close()


@pytest.mark.parametrize("dataset", ["encoders/test|enc/done/train", "encoders/test|enc/images/train"])
def test_external_storage_beside_the_store_is_refused_and_never_written(
        tmp_path: Path, dataset: str, fs_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: fs verify said ok, and fs extract (append) wrote features into the file beside."""
    from PIL import Image

    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((3, 4), dtype=np.float32)})
    victim = tmp_path / "notes.txt"
    victim.write_bytes(b"my notes, not features\n" * 4)
    before = victim.read_bytes()
    _replace_with_external_storage(path, dataset, victim)
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--store", str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"/{dataset} keeps its data in {victim} (HDF5 external storage)" in err
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (10 * i, 20, 30)).save(photos / f"a{i}.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", str(photos), "--store", str(path), "--split", "train", *fs_args, "-q"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "external storage" in err
    assert victim.read_bytes() == before


def test_external_storage_on_a_system_file_is_refused_on_open(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Before: /etc/passwd's bytes became the train features (read only here: never written)."""
    from featurestore.errors import StoreFormatError
    from featurestore.store.feature_store import FeatureStore

    system_file = Path("/etc/passwd")
    if not system_file.is_file():
        pytest.skip("no /etc/passwd on this system")
    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((3, 4), dtype=np.float32)})
    _replace_with_external_storage(path, "encoders/test|enc/images/train", system_file)
    with pytest.raises(StoreFormatError, match=r"images/train keeps its data in /etc/passwd \(HDF5 external"):
        FeatureStore(path)
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--store", str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "/etc/passwd" in err


def _strip_fletcher32(path: Path, dataset: str) -> None:
    """Rewrite ``dataset`` with the same values, chunks and maxshape but no fletcher32 filter."""
    import h5py

    with h5py.File(path, "r+", locking=False) as f:
        old = f[dataset]
        values, chunks, maxshape, attrs = old[()], old.chunks, old.maxshape, dict(old.attrs)
        del f[dataset]
        new = f.create_dataset(dataset, data=values, chunks=chunks, maxshape=maxshape)
        new.attrs.update(attrs)


@pytest.mark.parametrize("kind", ["images", "norms"])
def test_feature_array_without_its_checksum_is_refused(tmp_path: Path, kind: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: accepted (a flipped bit would then read as a wrong number, silently)."""
    from featurestore.errors import StoreFormatError
    from featurestore.store.feature_store import FeatureStore

    path = make_feature_store(tmp_path / "s.h5", {"train": np.ones((3, 4), dtype=np.float32)})
    with FeatureStore(path, mode="a") as writer:
        writer.prepare_features(ENC, "train", 4, norms=True)
    _strip_fletcher32(path, f"encoders/test|enc/{kind}/train")
    for mode in ("r", "a"):
        with pytest.raises(StoreFormatError, match=rf"the feature array /encoders/test\|enc/{kind}/train has no "
                                                   "fletcher32 checksum"):
            FeatureStore(path, mode=mode)
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--store", str(path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "fletcher32" in err


def test_a_version_1_store_without_feature_checksums_still_opens(tmp_path: Path) -> None:
    """Format 1 gave feature arrays no checksum: such stores are read as they are."""
    import h5py

    from featurestore.store.feature_store import FeatureStore

    path = make_feature_store(tmp_path / "s.h5", {"train": np.full((3, 4), 0.5, dtype=np.float32)})
    _strip_fletcher32(path, "encoders/test|enc/images/train")
    with h5py.File(path, "r+", locking=False) as f:
        f.attrs["format_version"] = 1
    with FeatureStore(path) as reader:
        np.testing.assert_array_equal(reader.features(ENC, "train"), np.full((3, 4), 0.5, dtype=np.float32))


def test_every_numeric_array_the_writers_make_carries_its_checksum(tmp_path: Path) -> None:
    """What the format promises (docs/store-format.md) and the open check relies on: feature arrays
    (images, views, norms, derived), numeric split columns, and the numeric arrays of text banks,
    saved models and imported logits all have fletcher32."""
    import h5py

    from featurestore.store.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    path = make_feature_store(tmp_path / "s.h5", {"train": rng.normal(size=(5, 4))}, labels={"train": [0, 1, 0, 1, 0]},
                              classes={"train": ["a", "b"]})
    with FeatureStore(path, mode="a") as writer:
        writer.prepare_features(ENC, "train", 4, views=2, seed=1, norms=True)
        writer.put_features("test/enc+x", "train", rng.normal(size=(5, 4)).astype(np.float32), {"model": "m"})
        writer.put_text_bank(ENC, "bank", rng.normal(size=(2, 4)), ["a", "b"], kind="classes",
                             classes=["a", "b"], per_template=rng.normal(size=(2, 3, 4)).astype(np.float32))
        writer.save_model("m", {"w": rng.normal(size=(2, 4)), "b": np.zeros(2)}, {"v": 1})
        writer.put_logits("head", "train", rng.normal(size=(5, 2)))
    checked: list[str] = []

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "biuf" or obj.shape == () or obj.size == 0:
            return
        parts = name.split("/")
        promised = (parts[0] == "splits" and parts[-1] in ("labels", "valid")) or parts[0] in ("models", "logits") \
            or (parts[0] == "encoders" and parts[2] in ("images", "views", "norms", "texts"))
        if promised:
            checked.append(name)
            assert obj.fletcher32, f"/{name} has no fletcher32 checksum"

    with h5py.File(path, "r", locking=False) as f:
        f.visititems(visit)
    assert {"encoders/test|enc/images/train", "encoders/test|enc/views/train", "encoders/test|enc/norms/train",
            "encoders/test|enc+x/images/train", "encoders/test|enc/texts/bank/weights", "models/m/w",
            "logits/head/train", "splits/train/labels"} <= set(checked), checked
