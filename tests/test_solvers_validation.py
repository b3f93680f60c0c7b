"""Hyper-parameters are chosen from the validation split alone.

The test split is held in guard objects that raise on any access made while a fit (or a
temperature fit) is running: `fs solve` loads the test split before it fits, so a fit that read
it would fail here rather than pass quietly. A deliberately leaky solver shows the guard works.
The validation split, on the other hand, must drive the choice.
"""
import sys

import numpy as np
import pytest

from solvers import Solver
from solvers.few_shot.gda import GDA
from solvers.few_shot.linear_probe import LinearProbe
from solvers.few_shot.tip_adapter import TipAdapter
from tests.cli_runner import run
from tests.store_fixtures import make_feature_store

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning",
                                        "ignore::solvers.SolverWarning")

#: Functions during which test data must not be read (the fits and the temperature fit).
FITTING = {"fit", "fit_logits", "from_statistics", "_fit_statistics", "_search", "calibrate", "fit_temperature"}


class LeakedTestData(AssertionError):
    """A fit read test data."""


def _inside_fit() -> str | None:
    """The name of a fitting function on the call stack (a solvers.* module or a Solver method)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_name
        module = frame.f_globals.get("__name__", "")
        if name in FITTING and (module.startswith("solvers.") or isinstance(frame.f_locals.get("self"), Solver)):
            return f"{module}.{name}"
        frame = frame.f_back
    return None


class Guard:
    """An array stand-in that raises on any access made inside a fit and counts the others."""

    __array_priority__ = 1000

    def __init__(self, array: np.ndarray, name: str) -> None:
        object.__setattr__(self, "_array", np.asarray(array))
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "reads", 0)

    def _open(self) -> np.ndarray:
        where = _inside_fit()
        if where is not None:
            raise LeakedTestData(f"{where} read the test split's {self._name}")
        object.__setattr__(self, "reads", self.reads + 1)
        return self._array

    def __array__(self, dtype=None, copy=None):
        array = self._open()
        return array if dtype is None else array.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x._open() if isinstance(x, Guard) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        args = tuple(x._open() if isinstance(x, Guard) else x for x in args)
        return func(*args, **kwargs)

    def __getitem__(self, key):
        return self._open()[key]

    def __len__(self):
        return len(self._open())

    def __iter__(self):
        return iter(self._open())

    def __eq__(self, other):
        return self._open() == other

    def __getattr__(self, name):
        return getattr(self._open(), name)


def gaussian_split(rng, centres, n, labels=None):
    y = rng.integers(0, len(centres), n) if labels is None else labels
    return (centres[y] + 1.3 * rng.standard_normal((n, centres.shape[1]))).astype(np.float32), y


def test_a_leaky_fit_is_caught_by_the_guard():
    rng = np.random.default_rng(0)
    X_test = Guard(rng.normal(size=(5, 3)), "features")

    class Leaky(Solver):
        def fit(self, X, y, X_val=None, y_val=None):
            self.peek_ = float(np.mean(X_test))  # what a leak looks like
            self._set_classes(2, 3)
            return self

        def decision_function(self, X):
            return np.zeros((len(X), 2))

    with pytest.raises(LeakedTestData, match="fit read the test split's features"):
        Leaky().fit(np.zeros((2, 3)), np.array([0, 1]))
    assert float(np.mean(X_test)) == pytest.approx(float(np.mean(X_test._array)))  # outside a fit: allowed
    with pytest.raises(LeakedTestData):
        GDA(text_weights=np.eye(3)).fit(np.eye(3), np.arange(3), X_val=X_test, y_val=np.arange(5) % 3)


@pytest.fixture(scope="module")
def three_splits(tmp_path_factory):
    rng = np.random.default_rng(0)
    C, D = 4, 12
    centres = rng.standard_normal((C, D))
    X, y = gaussian_split(rng, centres, 40, np.arange(40) % C)
    X_val, y_val = gaussian_split(rng, centres, 60)
    X_test, y_test = gaussian_split(rng, centres, 80)
    classes = [f"c{k}" for k in range(C)]
    path = make_feature_store(tmp_path_factory.mktemp("leak") / "s.h5",
                              {"train": X, "val": X_val, "test": X_test},
                              labels={"train": y, "val": y_val, "test": y_test},
                              classes={"train": classes, "val": classes, "test": classes})
    from featurestore.store.feature_store import FeatureStore

    T = (centres + 1.5 * rng.standard_normal((C, D))).astype(np.float32)
    with FeatureStore(path, mode="a") as writer:
        writer.put_text_bank("test/enc", "train/simple", T, classes, kind="classes", classes=classes)
    return path, (X_test, y_test)


@pytest.mark.parametrize("name, params", [
    ("gda", []), ("tip-adapter", ["--param", "search_steps=[10, 5]"]),
    ("linear-probe", ["--param", "max_iter=100"]), ("knn", ["--param", "k=3"]),
])
def test_fs_solve_fits_without_reading_the_test_split(three_splits, monkeypatch, capsys, name, params):
    import json

    import workflows.inputs.solver_inputs as inputs

    path, (X_test, y_test) = three_splits
    original = inputs.labelled
    guards = []

    def guarded(store, encoder, split, *args, **kwargs):
        X, y = original(store, encoder, split, *args, **kwargs)
        if split != "test":
            return X, y
        guards.extend([Guard(X, "features"), Guard(y, "labels")])
        return guards[-2], guards[-1]

    monkeypatch.setattr(inputs, "labelled", guarded)
    import workflows.inputs.streamed_split as streamed  # fs solve reads the test split as it scores it

    original_streamed = streamed.streamed_labelled

    def guarded_streamed(store, encoder, split, *args, **kwargs):
        X, y = original_streamed(store, encoder, split, *args, **kwargs)
        blocks = X.blocks

        def guarded_blocks(*a, **k):
            for block in blocks(*a, **k):
                guards.append(Guard(block, "features"))
                yield guards[-1]

        X.blocks = guarded_blocks
        guards.append(Guard(y, "labels"))
        return X, guards[-1]

    monkeypatch.setattr(streamed, "streamed_labelled", guarded_streamed)
    code, out, err = run(["solve", name, "--store", path, "--train", "train", "--val", "val", "--test", "test",
                          "--calibrate", "--json", "-q", *params], capsys)
    assert code == 0, err
    assert guards and all(g.reads > 0 for g in guards)  # the test split was read, after the fits
    accuracy = json.loads(out)["runs"][0]["accuracy"]
    assert 0.0 <= accuracy <= 1.0


FACTORIES = [
    lambda T: GDA(text_weights=T),
    lambda T: TipAdapter(text_weights=T, search_steps=(10, 5)),
    lambda T: LinearProbe(max_iter=100),
]


def chosen(model):
    return tuple(getattr(model, a, None) for a in ("alpha_", "beta_", "C_"))


@pytest.mark.parametrize("make", FACTORIES)
def test_the_choice_is_a_function_of_the_validation_split_only(make):
    rng = np.random.default_rng(2)
    C, D = 5, 12
    centres = rng.standard_normal((C, D))
    T = centres + 1.5 * rng.standard_normal((C, D))
    X, y = gaussian_split(rng, centres, 40, np.arange(40) % C)
    X_val, y_val = gaussian_split(rng, centres, 120)
    base = make(T).fit(X, y, X_val, y_val)
    shuffled_rows = np.random.default_rng(3).permutation(y_val.size)
    same = make(T).fit(X, y, X_val[shuffled_rows], y_val[shuffled_rows])
    assert chosen(base) == chosen(same)
    noisy = [chosen(make(T).fit(X, y, X_val, np.random.default_rng(s).permutation(y_val))) for s in range(6)]
    assert any(c != chosen(base) for c in noisy)
