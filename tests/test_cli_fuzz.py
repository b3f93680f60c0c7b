"""Every `fs` command with each of its options set to an empty, zero, negative and nonsense value:
the command either runs (exit 0) or refuses with exactly one line on stderr and exit code 2;
never a traceback. In-process (CliRunner-style through cli.main.main), on small synthetic stores."""
from __future__ import annotations

import json

import click
import numpy as np
import pytest

from cli.main import COMMANDS, fs
from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

FUZZ_VALUES = ("", "0", "-1", "nonsense")
CLASSES = ["cat", "dog", "emu"]
SKIPPED = {"serve"}  # starts a web server: covered by its own tests


def _leaf_commands() -> list[tuple[str, ...]]:
    ctx = click.Context(fs)
    paths = []
    for name in sorted(COMMANDS):
        if name in SKIPPED:
            continue
        command = fs.get_command(ctx, name)
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in sorted(command.commands)]
        else:
            paths.append((name,))
    return paths


def _command(path: tuple[str, ...]) -> click.Command:
    command = fs.get_command(click.Context(fs), path[0])
    return command.commands[path[1]] if len(path) > 1 else command


def _base_args(path: tuple[str, ...], store, files) -> list[str]:
    """Arguments under which each command runs (or fails cleanly) on the synthetic store."""
    s = str(store)
    return {
        ("info",): ["--store", s],
        ("extract",): [files["images"], "--store", s, "--model", "tiny", "--pretrained", "random", "-q"],
        ("solve",): ["gda", "--store", s, "--train", "train", "--val", "val", "--test", "test"],
        ("predict",): ["--store", s, "--models", "zero-shot", "--split", "val"],
        ("eval",): ["--store", s, "--models", "zero-shot", "--split", "val"],
        ("ensemble",): ["--store", s, "--models", "zero-shot", "--val", "val", "--save", "ens"],
        ("ood",): ["--store", s, "--models", "zero-shot", "--id-split", "val", "--ood-split", "test"],
        ("schur", "score"): ["--store", s, "--split", "train", "--bank", "train/simple"],
        ("schur", "remove"): ["--store", s, "--split", "train", "--bank", "train/simple", "--prompt", "cat"],
        ("retrieval",): ["--store", s, "--split", "train", "--bank", "train/simple"],
        ("index",): ["--store", s, "--split", "train", "-q"],
        ("search",): ["--store", s, "--split", "train", "--id", "train-00000", "-k", "2"],
        ("import-logits",): ["--store", s, "--split", "val", "--name", "r", "--ids", files["ids"], files["npy"]],
        ("export",): ["--store", s, "--split", "train", "--output", "exported", "-q"],
        ("results",): [files["result"]],
        ("text",): ["--store", s, "--classes", "train"],
        ("captions",): ["--store", s, "--split", "train"],
        ("descriptors",): [files["descriptors"], "--store", s, "--classes", "train"],
        ("real", "prompts"): ["--store", s, "--pool", "train", "--synonyms", files["synonyms"]],
        ("real", "frequency"): ["--store", s, "--pool", "train", "--synonyms", files["synonyms"]],
    }.get(path, ["--store", s])


def _cases():
    cases = []
    for path in _leaf_commands():
        for param in _command(path).params:
            if not isinstance(param, click.Option) or param.is_flag or param.name in ("help",):
                continue
            if path == ("extract",) and param.name in ("store", "model", "pretrained", "model_config"):
                continue  # another store or model would load a checkpoint (tests/test_encoders.py covers them)
            cases.append((path, param.opts[0], param.nargs))
    return cases


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-files")
    np.save(root / "logits.npy", np.zeros((6, 3), np.float32))
    (root / "ids.txt").write_text("\n".join(f"val-{i:05d}" for i in range(6)) + "\n")
    (root / "descriptors.json").write_text(json.dumps({c: ["has fur"] for c in CLASSES}))
    (root / "synonyms.json").write_text(json.dumps({c: [c] for c in CLASSES}))
    (root / "result.json").write_text(json.dumps({"dataset": "d", "model": "m", "pretrained": "p",
                                                  "task": "zeroshot_classification", "metrics": {"acc1": 0.5}}))
    (root / "images" / "cat").mkdir(parents=True)
    (root / "images" / "cat" / "a.png").write_bytes(b"not decoded: the store is locked")
    return {"images": str(root / "images"), "npy": str(root / "logits.npy"), "ids": str(root / "ids.txt"),
            "descriptors": str(root / "descriptors.json"), "synonyms": str(root / "synonyms.json"),
            "result": str(root / "result.json")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One small store per command (commands that write must not change another's store)."""
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    built = {}
    for path in _leaf_commands():
        store = root / f"{'-'.join(path)}.h5"
        labels = {split: np.repeat([0, 1, 2], n) for split, n in (("train", 4), ("val", 2), ("test", 2))}
        make_feature_store(store, {split: np.eye(3, 8)[y] * 3 + rng.standard_normal((len(y), 8))
                                   for split, y in labels.items()},
                           labels=labels, classes={split: CLASSES for split in labels})
        with FeatureStore(store, mode="a") as writer:
            weights = np.eye(3, 8, dtype=np.float32)
            writer.put_text_bank("test/enc", "train/simple", weights, [f"a {c}" for c in CLASSES], kind="classes",
                                 classes=CLASSES, templates=["a {}"], per_template=weights[:, None, :])
        built[path] = store
    return built


@pytest.mark.parametrize("path, option, nargs", _cases(), ids=lambda v: v if isinstance(v, str) else
                         "-".join(v) if isinstance(v, tuple) else str(v))
def test_every_option_value_is_a_result_or_one_line(stores, files, capsys, tmp_path, monkeypatch, path, option, nargs):
    monkeypatch.chdir(tmp_path)  # values such as "0" become file names (--out 0, --plot 0)
    base = _base_args(path, stores[path], files)
    for value in FUZZ_VALUES:
        args = [*path, *base, option, *([value] * nargs)]
        if path == ("extract",):  # extraction would load a model: hold the store so it stops there
            with FeatureStore(stores[path], mode="a"):
                code, _, err = run(args, capsys)
        else:
            code, _, err = run(args, capsys)
        assert code in (0, 2), f"fs {' '.join(args)} -> exit {code}: {err[-2000:]}"
        if code == 2:
            assert err.startswith("error: ") and err.count("\n") == 1, f"fs {' '.join(args)}: {err[-2000:]}"


def _solver_params():
    from solvers.registry import describe

    return [(name, key) for name, entry in describe().items() for key in entry["params"]]


@pytest.mark.parametrize("solver, key", _solver_params())
def test_every_param_of_the_wrong_type_is_one_line(stores, capsys, solver, key):
    """--param values of the wrong type (an object, an infinite number, text where numbers go)
    are refused naming the parameter, before any fitting."""
    import inspect

    from solvers.registry import solver_class

    annotation = str(inspect.signature(solver_class(solver).__init__).parameters[key].annotation)
    wrong = ["{}", "1e400"] + ([] if "str" in annotation else ["nonsense"])
    for value in wrong:
        args = ["solve", solver, "--store", stores[("solve",)], "--train", "train", "--param", f"{key}={value}"]
        code, _, err = run(args, capsys)
        assert code == 2 and f"--param {key}=" in err and err.count("\n") == 1, (args, err)
