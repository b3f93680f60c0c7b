"""`fs benchmark` / workflows.benchmark on small synthetic stores: a GDA cell equals `fs solve gda`
with the same shots and seed, a SIGKILLed sweep resumes with every cell exactly once, reruns skip
finished cells, published numbers and deltas, class-subset scoring, held-out validation."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run as fs
from tests.store_fixtures import make_feature_store

ENCODER = "test/enc"
CLASSES = [f"class{i}" for i in range(6)]


def _store(path: Path, *, val: bool = True, dataset: str | None = None, n_train: int = 24, seed: int = 0) -> Path:
    """Six Gaussian classes in 24-d with a class bank; train/val/test (val optional)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(CLASSES), 24))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(len(CLASSES)), n)
        return (means[y] + 1.2 * rng.normal(size=(y.size, 24))).astype(np.float32), y

    parts = {"train": draw(n_train), "test": draw(10)}
    if val:
        parts["val"] = draw(5)
    make_feature_store(path, {k: v[0] for k, v in parts.items()}, ENCODER,
                       labels={k: v[1] for k, v in parts.items()}, classes={k: CLASSES for k in parts})
    with FeatureStore(path, mode="a") as store:
        if dataset is not None:  # as fs extract --dataset records it
            ids = list(store.ids("train", valid_only=False))
            store.add_rows("train", ids, list(store.paths("train", valid_only=False)),
                           list(store.labels("train", valid_only=False)), source=f"dataset:{dataset}:/data/{dataset}")
        text = means + 0.8 * rng.normal(size=means.shape)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        store.put_text_bank(ENCODER, "train/simple", text.astype(np.float32), CLASSES, kind="classes",
                            classes=CLASSES, templates=["{}"], per_template=text[:, None].astype(np.float32))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_gda_cell_equals_fs_solve(tmp_path, capsys):
    store = _store(tmp_path / "toy.h5")
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", "gda", "--shots", "2,4",
                         "--seeds", "1,3", "--output", tmp_path / "res", "-q", "--no-plot"], capsys)
    assert code == 0, err
    rows = {(r["shots"], r["seed"]): r for r in _rows(tmp_path / "res" / "results.csv")}
    assert len(rows) == 4
    for shots, seed in ((2, 1), (4, 3)):
        code, out, err = fs(["solve", "gda", "--store", store, "--encoder", ENCODER, "--train", "train", "--val", "val",
                             "--test", "test", "--shots", shots, "--seeds", seed, "--json", "-q"], capsys)
        assert code == 0, err
        solved = json.loads(out)["runs"][0]
        row = rows[(str(shots), str(seed))]
        assert float(row["top1"]) == pytest.approx(solved["accuracy"], abs=1e-12)
        assert json.loads(row["hyperparameters"])["alpha_"] == solved["chosen"]["alpha_"]


@pytest.mark.slow
def test_sigkilled_sweep_resumes_with_every_cell_once(tmp_path):
    store = _store(tmp_path / "toy.h5", n_train=40)
    out = tmp_path / "res"
    args = [sys.executable, "-c", "from cli.main import main; main()", "benchmark", "--store", str(store),
            "--encoder", ENCODER, "--methods", "gda,linear-probe", "--shots", "1,2,4", "--seeds", "1,2,3",
            "--output", str(out), "-q", "--no-plot"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.csv"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 1 + 10:  # all gda + 1 probe cell
            break
        time.sleep(0.05)
    assert process.poll() is None, "the sweep finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(results)
    assert 10 <= len(before) < 18
    assert all(r["top1"] != "" and r["warnings"].startswith("[") for r in before)  # whole rows only
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _rows(results)
    keys = [(r["method"], r["shots"], r["seed"]) for r in after]
    expected = {(m, str(k), str(s)) for m in ("gda", "linear-probe") for k in (1, 2, 4) for s in (1, 2, 3)}
    assert len(keys) == len(set(keys)) == 18 and set(keys) == expected
    assert after[:len(before)] == before  # finished cells were kept, not recomputed


def test_rerun_skips_finished_cells_and_extends(tmp_path, monkeypatch):
    from workflows import benchmark

    store = _store(tmp_path / "toy.h5")
    benchmark.run([str(store)], ENCODER, methods=["zero-shot", "gda"], shots=[1, 2], seeds=[1], output=tmp_path / "r",
                  quiet=True, plot=False)
    calls = []
    original = benchmark.fit_cell
    monkeypatch.setattr(benchmark, "fit_cell", lambda *a, **k: calls.append(a[1:4]) or original(*a, **k))
    frame = benchmark.run([str(store)], ENCODER, methods=["zero-shot", "gda"], shots=[1, 2], seeds=[1, 2],
                          output=tmp_path / "r", quiet=True, plot=False)
    assert sorted(calls) == [("gda", 1, 2), ("gda", 2, 2)]
    assert len(frame) == 5 and len(_rows(tmp_path / "r" / "results.csv")) == 5
    assert frame.loc[frame["method"] == "zero-shot", ["shots", "seed"]].values.tolist() == [[0, 0]]


def test_outputs_summary_plot_and_param(tmp_path, capsys):
    store = _store(tmp_path / "toy.h5")
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", "zero-shot,gda,knn",
                         "--shots", "1,2", "--seeds", "1,2", "--param", "knn.k=3", "--output", tmp_path / "res", "-q"],
                        capsys)
    assert code == 0, err
    rows = _rows(tmp_path / "res" / "results.csv")
    assert all(json.loads(r["hyperparameters"])["k"] == 3 for r in rows if r["method"] == "knn")
    data = json.loads((tmp_path / "res" / "results.json").read_text())
    assert len(data["rows"]) == len(rows) == 9
    gda = [100 * float(r["top1"]) for r in rows if r["method"] == "gda" and r["shots"] == "2"]
    summary = (tmp_path / "res" / "summary.md").read_text()
    assert f"| gda | 2 | {np.mean(gda):.2f} +- {np.std(gda):.2f} (n=2) | {np.mean(gda):.2f} |" in summary
    png = (tmp_path / "res" / "accuracy_vs_shots.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", "gda", "--param",
                         "gda.nonsense=1", "--output", tmp_path / "bad", "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_reference_columns_and_delta(tmp_path):
    from workflows.benchmark import run

    store = _store(tmp_path / "pets.h5", dataset="oxford_pets")
    frame = run([str(store)], ENCODER, methods=["zero-shot", "gda"], shots=[1, 16], seeds=[1], output=tmp_path / "r",
                reference="gda-rn50", quiet=True, plot=False)
    assert set(frame["dataset"]) == {"oxford_pets"} and set(frame["sampler"]) == {"coop"}
    published = {("zero-shot", 0): 85.77, ("gda", 1): 85.49, ("gda", 16): 88.81}  # GDA's exp.log, Oxford Pets
    for _, row in frame.iterrows():
        assert row["reference_top1"] == published[(row["method"], row["shots"])]
        assert row["delta_top1"] == pytest.approx(100 * row["top1"] - published[(row["method"], row["shots"])])
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "| gda published | 16 | 88.81 |" in summary and "mrflogs/ICLR24 exp.log" in summary


def test_coop_sampler_used_for_named_datasets(tmp_path):
    from solvers.model_selection.fewshot import fewshot_split
    from workflows.benchmark import fit_cell, load_dataset

    store = _store(tmp_path / "pets.h5", dataset="oxford_pets")
    from workflows.solve import resolve_sampler

    data = load_dataset(str(store), ENCODER, ["gda"])
    assert resolve_sampler("auto", data) == "coop" and data.name == "oxford_pets"
    row = fit_cell(data, "gda", 4, 2, {})[0]
    assert row["sampler"] == "coop"
    from solvers.few_shot.gda import GDA

    rows = fewshot_split(data.y_train, 4, 2, sampler="coop")
    expected = GDA(text_weights=data.text_weights).fit(data.X_train[rows], data.y_train[rows], data.X_val, data.y_val)
    assert row["top1"] == pytest.approx(expected.score(data.X_test, data.y_test))


def test_subset_scoring_restricts_logits_to_covered_classes():
    from workflows.solve import score as _metrics

    class Fixed:
        temperature = 1.0

        def class_logits(self, X):
            return X

    logits = np.array([[5.0, 1.0, 2.0], [0.0, 3.0, 1.0], [9.0, 0.0, 4.0]])
    y = np.array([2, 1, 1])  # labels in the full 3-class space
    full = _metrics(Fixed(), logits, y, None)
    assert full["top1"] == pytest.approx(1 / 3)  # only row 1 is right among all classes
    sub = _metrics(Fixed(), logits, y, np.array([1, 2]))
    # among classes {1, 2}: row 0 -> 2 (right), row 1 -> 1 (right), row 2 -> 2 (wrong, label 1)
    assert sub["top1"] == pytest.approx(2 / 3)
    p = np.exp([2.0, 3.0, 0.0]) / np.exp([[1.0, 2.0], [3.0, 1.0], [0.0, 4.0]]).sum(axis=1)
    assert sub["nll"] == pytest.approx(-np.mean(np.log(p)))


def test_without_val_split_validation_is_held_out_of_train(tmp_path, capsys):
    from workflows.benchmark import load_dataset
    from workflows.solve import holdout_rows

    store = _store(tmp_path / "noval.h5", val=False)
    data = load_dataset(str(store), ENCODER, ["gda"])
    assert data.X_val is None and data.val is None
    taken = np.array([0, 1, 30, 31])
    rows = holdout_rows(data.y_train, taken, 4, 1, data.name)
    assert not set(rows.tolist()) & set(taken.tolist()) and np.bincount(data.y_train[rows]).tolist() == [4] * 6
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", "gda", "--shots", "2",
                         "--seeds", "1", "--output", tmp_path / "r", "-q", "--no-plot"], capsys)
    assert code == 0 and "note: noval: no 'val' split" in err
    assert _rows(tmp_path / "r" / "results.csv")[0]["val"] == "train-holdout (4/class)"


def test_jobs_give_the_same_rows(tmp_path):
    from workflows.benchmark import run

    store = _store(tmp_path / "toy.h5")
    one = run([str(store)], ENCODER, methods=["gda", "tip-adapter"], shots=[1, 2], seeds=[1, 2], quiet=True)
    two = run([str(store)], ENCODER, methods=["gda", "tip-adapter"], shots=[1, 2], seeds=[1, 2], jobs=2, quiet=True)
    columns = ["dataset", "method", "shots", "seed", "top1", "nll", "hyperparameters"]
    assert one[columns].equals(two[columns])


@pytest.mark.parametrize("args, message", [
    (["--methods", "gda,nope"], "unknown method 'nope'"),
    (["--val", "test"], "--val and --test are the same split"),
    (["--param", "gda=1"], "--param takes method.key=value"),
    (["--reference", "nope"], "unknown reference 'nope'"),
    (["--shots", "a"], "--shots takes comma-separated integers"),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, message):
    store = _store(tmp_path / "toy.h5")
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--output", tmp_path / "r", "-q", *args],
                        capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_imagenet_store_scores_its_shift_splits_on_their_class_subset(tmp_path, capsys, fs_args):
    from tests import dataset_trees as trees
    from workflows.benchmark import load_dataset

    trees.imagenet_trees(tmp_path)
    store = tmp_path / "imagenet.h5"
    for name in ("imagenet", "imagenet_a", "imagenetv2"):
        code, out, err = fs(["extract", "--dataset", name, "--root", tmp_path, "--store", store, "--workers", "0",
                             "-q", *fs_args], capsys)
        assert code == 0, err
    with FeatureStore(store) as reader:
        key = reader.encoders()[0]
        assert reader.splits() == ["imagenet_a", "imagenetv2", "test", "train"]
        assert reader.text_banks(key) == ["train/dataset"]  # the shift sets reuse ImageNet's bank
        assert reader.class_names("imagenet_a/subset") == ["airliner", "beach wagon"]
    code, out, err = fs(["benchmark", "--store", store, "--encoder", key, "--methods", "zero-shot,gda", "--shots", "1",
                         "--seeds", "1", "--output", tmp_path / "r", "-q", "--no-plot"], capsys)
    assert code == 0, err
    rows = _rows(tmp_path / "r" / "results.csv")
    assert sorted({r["dataset"] for r in rows}) == ["imagenet", "imagenet_a", "imagenetv2"]
    assert {r["val"] for r in rows if r["method"] == "gda"} == {"train-holdout (4/class)"}
    data = load_dataset(str(store), key, ["zero-shot"])
    X, y, subset = data.shifts["imagenet_a"]
    logits = 100 * X @ data.text_weights.T
    expected = np.mean(subset[logits[:, subset].argmax(axis=1)] == y)
    zeroshot_a = next(r for r in rows if r["dataset"] == "imagenet_a" and r["method"] == "zero-shot")
    assert float(zeroshot_a["top1"]) == pytest.approx(expected)


def test_no_rows_left_for_validation_is_one_line(tmp_path, capsys):
    store = _store(tmp_path / "tiny.h5", val=False, n_train=2)
    code, out, err = fs(["benchmark", "--store", store, "--encoder", ENCODER, "--methods", "gda", "--shots", "2",
                         "--seeds", "1", "--output", tmp_path / "r", "-q"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: tiny: no training rows are left")


def test_rerun_from_another_directory_finds_its_cells(tmp_path, monkeypatch):
    from workflows.benchmark import run

    _store(tmp_path / "toy.h5")
    monkeypatch.chdir(tmp_path)
    run(["toy.h5"], ENCODER, methods=["gda"], shots=[1], seeds=[1], output="r", quiet=True, plot=False)
    monkeypatch.chdir(tmp_path.parent)
    frame = run([str(tmp_path / "toy.h5")], ENCODER, methods=["gda"], shots=[1], seeds=[1], output=tmp_path / "r",
                quiet=True, plot=False)
    assert len(frame) == 1 and len(_rows(tmp_path / "r" / "results.csv")) == 1


@pytest.mark.parametrize("group_bytes", [1, 1 << 30])
def test_stores_read_while_others_run_give_the_rows_of_one_process(tmp_path, monkeypatch, group_bytes):
    """--jobs 2 over three stores (each read while the previous one's cells run, one without a
    val split; each store on its own workers, or all three on one set) gives every cell's
    metrics of the one-process sweep, float for float."""
    import workflows.benchmark as benchmark
    from workflows.benchmark import run

    monkeypatch.setattr(benchmark, "GROUP_BYTES", group_bytes)
    stores = [str(_store(tmp_path / "a.h5", seed=1)), str(_store(tmp_path / "b.h5", val=False, n_train=40, seed=2)),
              str(_store(tmp_path / "c.h5", seed=3))]
    kwargs = {"methods": ["zero-shot", "gda"], "shots": [1, 2, 4], "seeds": [1, 2], "quiet": True}
    one, two = run(stores, ENCODER, **kwargs), run(stores, ENCODER, jobs=2, **kwargs)
    columns = ["dataset", "method", "shots", "seed", "top1", "top5", "balanced_accuracy", "ece", "nll",
               "hyperparameters", "val", "warnings"]
    assert len(one) == 3 * (1 + 3 * 2) and one[columns].equals(two[columns])


def test_pool_groups_put_consecutive_small_datasets_on_one_set_of_workers(tmp_path):
    """Each toy store's arrays: test 60 + val 30 rows + the draws of shots 1 and 2 (18 rows) of
    24 float32 features = 10,368 bytes; groups of consecutive stores within the budget."""
    from workflows.benchmark import check_dataset, dataset_bytes, pool_groups

    data = [check_dataset(str(_store(tmp_path / f"{n}.h5", seed=i)), ENCODER, ["gda"]) for i, n in enumerate("abc")]
    batches = [(d, [(d.store, "gda", k, 1) for k in (1, 2)]) for d in data]
    assert [dataset_bytes(d, cells) for d, cells in batches] == [4 * (60 + 30 + 18) * 24] * 3
    assert pool_groups(batches, budget=2 * 10_368) == [[0, 1], [2]]
    assert pool_groups(batches, budget=3 * 10_368) == [[0, 1, 2]]
    assert pool_groups(batches, budget=10_367) == [[0], [1], [2]]  # larger than the budget: alone
    noval = check_dataset(str(_store(tmp_path / "noval.h5", val=False, n_train=40)), ENCODER, ["gda"])
    assert dataset_bytes(noval, [(noval.store, "gda", 2, 1)]) == 4 * (60 + (2 + 4) * 6) * 24  # 4 held out per class


def test_overlap_order_reads_the_largest_dataset_second(tmp_path):
    from workflows.benchmark import check_dataset, overlap_order

    data = [check_dataset(str(_store(tmp_path / f"{n}.h5", seed=i)), ENCODER, ["gda"]) for i, n in enumerate("abc")]
    cells = [[(d.store, "gda", 1, s) for s in range(k)] for d, k in zip(data, (2, 6, 4))]
    assert overlap_order(list(zip(data, cells))) == [2, 1, 0]  # 4 cells, then 6 (the largest), then 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_workers_keep_freed_memory_instead_of_faulting_in_fresh_pages():
    """A 64 MB array allocated, filled and freed four times: each time a fresh mmap (16,384
    page faults) by default, the same heap memory again after keep_freed_memory()."""
    code = ("import resource, sys, numpy as np\n"
            "np._core.multiarray._set_madvise_hugepage(False)  # count 4 KB pages\n"
            "from workflows.benchmark import keep_freed_memory\n"
            "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
            "np.ones(1 << 24, np.float32)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(4): np.ones(1 << 24, np.float32)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       check=True, cwd=Path(__file__).resolve().parents[1]).stdout)
              for mode in ("default", "keep")}
    assert faults["default"] > 4 * 16_000 and faults["keep"] < 1_000, faults
