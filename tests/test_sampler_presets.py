"""The papers' samplers and Tip-Adapter's search-scale presets through the solve path: `--sampler
gda-iclr24 / tip-adapter` fit on the rows of the official draws, a sweep over named datasets uses
each dataset's official search scale (Tip-Adapter's configs/*.yaml) and says so per record."""
from __future__ import annotations

import json

import numpy as np
import pytest

from featurestore.datasets import FEWSHOT_ELEVEN
from solvers.few_shot.gda import GDA
from solvers.few_shot.tip_adapter import SEARCH_SCALE_PRESETS, TipAdapter
from solvers.model_selection.fewshot import fewshot_split
from tests.cli_runner import run as fs
from tests.test_benchmark import ENCODER, _store
from workflows.solve import SAMPLERS, Dataset, load_dataset, run, tip_adapter_preset


def _data(source_dataset: str | None, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    C, D = 4, 8
    means = rng.standard_normal((C, D))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.repeat(np.arange(C), n))
        return means[y] + rng.standard_normal((y.size, D)), y

    (Xtr, ytr), (Xv, yv), (Xte, yte) = draw(20), draw(6), draw(10)
    T = means + rng.standard_normal(means.shape)
    return Dataset(name=source_dataset or "toy", store="unused.h5", encoder="e", bank=None,
                   classes=[f"c{i}" for i in range(C)], text_weights=T, train="train", X_train=Xtr, y_train=ytr,
                   val="val", X_val=Xv, y_val=yv, test="test", X_test=Xte, y_test=yte, source_dataset=source_dataset)


def test_every_fewshot_dataset_has_its_official_preset():
    expected = {"imagenet": (7, 3), "caltech101": (12, 5), "oxford_pets": (7, 3), "stanford_cars": (20, 10),
                "oxford_flowers": (50, 50), "food101": (10, 10), "fgvc_aircraft": (30, 30), "sun397": (12, 10),
                "dtd": (13, 13), "eurosat": (12, 10), "ucf101": (7, 3)}  # configs/<name>.yaml search_scale
    assert set(expected) == set(FEWSHOT_ELEVEN)
    for name, scale in expected.items():
        preset = tip_adapter_preset(_data(name))
        assert preset is not None and SEARCH_SCALE_PRESETS[preset] == scale
    assert tip_adapter_preset(_data("fgvc_aircraft")) == "fgvc"
    assert tip_adapter_preset(_data("cifar10")) is None and tip_adapter_preset(_data(None)) is None


@pytest.mark.parametrize("dataset", ["oxford_flowers", "dtd"])
def test_a_named_dataset_searches_its_preset_and_says_so(dataset):
    data = _data(dataset)
    record = run("tip-adapter", data, shots=4, seed=1, sampler="numpy")
    rows = fewshot_split(data.y_train, 4, 1)
    expected = TipAdapter(text_weights=data.text_weights, search_scale=dataset).fit(
        data.X_train[rows], data.y_train[rows], data.X_val, data.y_val)
    default = TipAdapter(text_weights=data.text_weights).fit(data.X_train[rows], data.y_train[rows],
                                                             data.X_val, data.y_val)
    assert (record.chosen["beta_"], record.chosen["alpha_"]) == (expected.beta_, expected.alpha_)
    assert (expected.beta_, expected.alpha_) != (default.beta_, default.alpha_)  # the preset matters here
    scale = SEARCH_SCALE_PRESETS[dataset]
    assert (record.chosen["search_scale_beta"], record.chosen["search_scale_alpha"]) == scale
    assert any(f"configs/{dataset}.yaml" in note for note in record.warnings)


def test_no_preset_without_a_named_dataset_or_with_a_given_scale():
    plain = run("tip-adapter", _data(None), shots=4, seed=1)
    assert "search_scale_beta" not in plain.chosen and not any("configs/" in n for n in plain.warnings)
    given = run("tip-adapter", _data("oxford_flowers"), shots=4, seed=1, params={"search_scale": "imagenet"})
    assert "search_scale_beta" not in given.chosen and not any("configs/" in n for n in given.warnings)


def test_sweep_over_two_datasets_uses_each_preset(tmp_path):
    from workflows.benchmark import run as sweep

    stores = [str(_store(tmp_path / "flowers.h5", dataset="oxford_flowers")),
              str(_store(tmp_path / "dtd.h5", dataset="dtd", seed=1))]
    table = sweep(stores, ENCODER, methods=["tip-adapter"], shots=[2], seeds=[1], plot=False, quiet=True)
    scales = {row["dataset"]: json.loads(row["hyperparameters"]) for _, row in table.iterrows()}
    assert {k: (v["search_scale_beta"], v["search_scale_alpha"]) for k, v in scales.items()} == \
        {"oxford_flowers": (50.0, 50.0), "dtd": (13.0, 13.0)}


@pytest.mark.parametrize("sampler,shots,seed", [("gda-iclr24", 2, 3), ("tip-adapter", 4, 1)])
def test_the_solve_path_fits_on_the_papers_draws(sampler, shots, seed):
    data = _data("oxford_pets", seed=2)
    record = run("gda", data, shots=shots, seed=seed, sampler=sampler)
    rows = fewshot_split(data.y_train, shots, seed, sampler=sampler)
    if sampler == "gda-iclr24":  # the stream: not CoOp's fresh draw with the same seed
        assert rows.tolist() != fewshot_split(data.y_train, shots, seed, sampler="coop").tolist()
    expected = GDA(text_weights=data.text_weights).fit(data.X_train[rows], data.y_train[rows], data.X_val, data.y_val)
    np.testing.assert_allclose(record.solver.decision_function(data.X_test), expected.decision_function(data.X_test),
                               rtol=1e-9, atol=1e-9)
    assert record.sampler == sampler


def test_cli_offers_the_samplers_and_refuses_tip_adapter_seeds_but_1(tmp_path, capsys):
    from cli.solve_options import SAMPLER_CHOICES

    assert SAMPLER_CHOICES == SAMPLERS
    store = _store(tmp_path / "pets.h5", dataset="oxford_pets")
    code, out, err = fs(["solve", "gda", "--store", store, "--encoder", ENCODER, "--train", "train", "--val", "val",
                         "--test", "test", "--shots", "2", "--seeds", "3", "--sampler", "gda-iclr24", "--json"], capsys)
    assert code == 0, err
    data = load_dataset(store, train="train", val="val", test="test", encoder=ENCODER)
    rows = fewshot_split(data.y_train, 2, 3, sampler="gda-iclr24")
    expected = GDA(text_weights=data.text_weights).fit(data.X_train[rows], data.y_train[rows], data.X_val, data.y_val)
    solved = json.loads(out)["runs"][0]
    assert solved["sampler"] == "gda-iclr24" and solved["accuracy"] == pytest.approx(expected.score(data.X_test,
                                                                                                   data.y_test))
    code, _, err = fs(["solve", "gda", "--store", store, "--encoder", ENCODER, "--train", "train", "--val", "val",
                       "--shots", "2", "--seeds", "2", "--sampler", "tip-adapter"], capsys)
    assert code == 2 and "always seeds 1" in err and err.count("\n") == 1


def test_a_sweep_refuses_draws_the_papers_samplers_never_make_before_any_cell(tmp_path):
    from solvers.errors import InputError
    from workflows.benchmark import run as sweep

    store = str(_store(tmp_path / "pets.h5", dataset="oxford_pets"))
    with pytest.raises(InputError, match="always seeds 1"):
        sweep([store], ENCODER, methods=["gda"], shots=[1, 2], seeds=[1, 2], sampler="tip-adapter",
              output=tmp_path / "res", plot=False, quiet=True)
    with pytest.raises(InputError, match="1, 2, 4, 8, 16"):
        sweep([store], ENCODER, methods=["gda"], shots=[1, 3], seeds=[1], sampler="gda-iclr24",
              output=tmp_path / "res", plot=False, quiet=True)
    assert not (tmp_path / "res" / "results.csv").exists()
