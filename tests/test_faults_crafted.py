"""Damaged index sidecars, ensembles that name themselves and stores whose features reach out of
the store file: each refused in one line (FeatureStoreError / InputError, exit 2 in the CLI)."""
from __future__ import annotations

import json
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
