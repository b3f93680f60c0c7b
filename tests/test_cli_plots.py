"""`fs eval --plot` and `fs ood --plot` write a PNG picture and leave the printed numbers as
they are without the option (numbers checked against solvers computed in the test)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.png_checks import png_summary
from tests.store_fixtures import make_feature_store

CLASSES = ["a", "b", "c"]


@pytest.fixture
def store(tmp_path):
    """3 Gaussian classes around text directions (train/test), an OOD split and a saved GDA."""
    from solvers import GDA, save_to_store

    rng = np.random.default_rng(0)
    T = np.eye(3, 8)
    y_train, y_test = np.repeat(np.arange(3), 12), np.repeat(np.arange(3), 10)
    X_train = T[y_train] * 3 + rng.normal(scale=0.7, size=(36, 8))
    X_test = T[y_test] * 3 + rng.normal(scale=0.7, size=(30, 8))
    X_ood = rng.normal(scale=1.0, size=(20, 8))
    path = make_feature_store(tmp_path / "s.h5", {"train": X_train, "test": X_test, "other": X_ood},
                              labels={"train": y_train, "test": y_test},
                              classes={"train": CLASSES, "test": CLASSES})
    gda = GDA(text_weights=T).fit(X_train, y_train)
    with FeatureStore(path, mode="a") as w:
        w.put_text_bank("test/enc", "test/simple", T.astype(np.float32), CLASSES, kind="classes",
                        classes=CLASSES, templates=["{}"])
        save_to_store(w, "gda", gda, "test/enc")
    return path, gda, X_test, y_test


def test_eval_plot_writes_a_bar_chart(store, tmp_path, capsys):
    path, gda, X_test, y_test = store
    out_png = tmp_path / "eval.png"
    code, out, err = run(["eval", "--store", path, "--models", "zero-shot,gda", "--split", "test", "--json",
                          "--plot", out_png], capsys)
    assert code == 0, err
    rows = {r["model"]: r for r in json.loads(out)}
    assert rows["gda"]["top1"] == pytest.approx(np.mean(gda.predict(X_test) == y_test))
    size, n_colours, ink = png_summary(out_png)
    assert size[0] >= 300 and size[1] >= 250 and n_colours > 16 and ink > 0.02


def test_ood_plot_writes_roc_and_histograms(store, tmp_path, capsys):
    path, *_ = store
    out_png = tmp_path / "ood.png"
    args = ["ood", "--store", path, "--encoder", "test/enc", "--models", "zero-shot,gda", "--id-split", "test",
            "--ood-split", "other", "--json"]
    code, plain, err = run(args, capsys)
    assert code == 0, err
    code, out, err = run(args + ["--plot", out_png, "--plot-score", "energy"], capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(plain)
    size, n_colours, ink = png_summary(out_png)
    assert size[0] > size[1] >= 300 and n_colours > 16 and ink > 0.02


def test_ood_plot_refuses_unknown_score(store, tmp_path, capsys):
    path, *_ = store
    code, _, err = run(["ood", "--store", path, "--encoder", "test/enc", "--models", "zero-shot", "--id-split", "test",
                        "--ood-split", "other", "--plot", tmp_path / "x.png", "--plot-score", "nope"], capsys)
    assert code == 2 and "nope" in err and "Traceback" not in err
