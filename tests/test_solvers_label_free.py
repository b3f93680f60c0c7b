"""Label-free adaptation: pseudo-label selection against a brute-force loop, the first round's
head equal to GDA fitted by hand on the zero-shot pseudo-labels, a gain over zero-shot where the
auxiliary encoder separates the classes, none on noise, transductive and inductive use, save/load."""
import numpy as np
import pytest

from solvers.few_shot.gda import GDA
from solvers.persistence import load_npz, save_npz
from solvers.unlabelled import LabelFree, UnsupervisedGDA, pseudo_label_rows


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def task(seed=0, C=4, D=8, A=6, n=600, signal=3.0, text=0.3):
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((C, D))
    centres = signal * rng.standard_normal((C, A))

    def draw(m):
        y = rng.integers(0, C, m)
        return np.hstack([text * T[y] + rng.standard_normal((m, D)), centres[y] + rng.standard_normal((m, A))]), y

    return (T, *draw(n), *draw(n))


def zero_shot_accuracy(T, X, y):
    return np.mean((unit(X[:, :T.shape[1]]) @ unit(T).T).argmax(1) == y)


def test_pseudo_label_rows_brute_force():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), 50)
    probs[:, 3] *= 0.01  # class 3 is nobody's argmax
    probs /= probs.sum(1, keepdims=True)
    rows, labels, filled = pseudo_label_rows(probs, 5)
    expected = set()
    for c in range(3):
        mine = [i for i in range(50) if probs[i].argmax() == c]
        mine.sort(key=lambda i: -probs[i].max())
        expected |= {(i, c) for i in mine[:5]}
    kept = {i for i, _ in expected}
    free = [i for i in np.argsort(-probs[:, 3], kind="stable").tolist() if i not in kept]
    expected |= {(i, 3) for i in free[:5]}
    assert set(zip(rows.tolist(), labels.tolist())) == expected and filled == [3]


def _row_taken_by_two_classes():
    """Class 2 is nobody's argmax; the row most probable for it (row 0) is class 0's most
    confident row. Taking class 2's top rows from all rows gave row 0 both labels."""
    return np.array([[0.60, 0.01, 0.39],
                     [0.50, 0.30, 0.20],
                     [0.10, 0.80, 0.10],
                     [0.20, 0.70, 0.10],
                     [0.45, 0.40, 0.15]])


def test_a_row_never_has_two_labels():
    probs = _row_taken_by_two_classes()
    rows, labels, filled = pseudo_label_rows(probs, 2)
    assert rows.size == np.unique(rows).size
    assert filled == [2]
    # by hand: class 0 keeps rows 0, 1 (0.60, 0.50), class 1 rows 2, 3; class 2 the free row 4
    assert sorted(zip(rows.tolist(), labels.tolist())) == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)]


def test_a_class_with_no_free_row_is_refused():
    from solvers.errors import InputError

    with pytest.raises(InputError, match="too few"):
        pseudo_label_rows(_row_taken_by_two_classes()[:4], 2)


def test_min_confidence_leaves_a_class_to_its_free_rows():
    probs = _row_taken_by_two_classes()
    rows, labels, filled = pseudo_label_rows(probs, 2, min_confidence=0.55)
    # kept: row 0 (class 0), rows 2, 3 (class 1); nothing else reaches 0.55; class 2 takes free 1, 4
    assert sorted(zip(rows.tolist(), labels.tolist())) == [(0, 0), (1, 2), (2, 1), (3, 1), (4, 2)]
    assert filled == [2]


def _three_class_task_with_an_empty_class(seed=8):
    """The rows come from classes 0 and 1; class 2's text vector points away from both, so no
    row's zero-shot argmax is 2."""
    rng = np.random.default_rng(seed)
    D = 6
    centres = np.eye(D)[:3] * 3
    T = np.vstack([centres[0], centres[1], -centres[0] - centres[1] + centres[2]])
    y = rng.integers(0, 2, 120)
    X = centres[y] + 0.6 * rng.standard_normal((120, D))
    return T, X


def test_both_unlabelled_solvers_take_the_same_rows():
    """One rule for the family: unsupervised GDA (CLIP space) and label-free with a GDA head on the
    same features fit GDA on the rows of ``pseudo_label_rows`` (no text embedding as a sample)."""
    T, X = _three_class_task_with_an_empty_class()
    probs = _softmax(100 * unit(X) @ unit(T).T)
    rows, labels, filled = pseudo_label_rows(probs, 10)
    assert filled == [2] and rows.size == np.unique(rows).size
    unsupervised = UnsupervisedGDA(text_weights=T, k_per_class=10, alpha=1.0).fit(X)
    expected = GDA(text_weights=T, alpha=1.0).fit(X[rows], labels)
    np.testing.assert_allclose(unsupervised.decision_function(X), expected.decision_function(X), atol=1e-9)
    label_free = LabelFree(text_weights=T, k_per_class=10, rounds=1).fit(X)
    head = GDA(n_classes=3).fit(unit(X)[rows], labels)
    np.testing.assert_allclose(label_free.decision_function(X), head.decision_function(unit(X)), atol=1e-9)
    assert unsupervised.filled_classes_ == label_free.filled_classes_ == [2]
    assert unsupervised.n_pseudo_ == label_free.n_pseudo_ == rows.size


@pytest.mark.parametrize("solver", [LabelFree, UnsupervisedGDA])
def test_rounds_is_the_one_name(solver):
    from solvers.errors import InputError

    assert "rounds" in solver._get_param_names() and "n_iter" not in solver._get_param_names()
    T, X = _three_class_task_with_an_empty_class()
    model = solver(text_weights=T, k_per_class=10, rounds=3).fit(X)
    assert len(model.pseudo_changed_) == 2
    with pytest.raises(InputError, match="rounds"):
        solver(text_weights=T, rounds=0).fit(X)


def test_one_round_is_gda_on_zero_shot_pseudo_labels():
    T, X, y, *_ = task()
    D = T.shape[1]
    model = LabelFree(text_weights=T, rounds=1, k_per_class=10).fit(X)
    zs = 100 * unit(X[:, :D]) @ unit(T).T
    p = np.exp(zs - zs.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    rows, labels, _ = pseudo_label_rows(p, 10)
    gda = GDA(n_classes=len(T)).fit(unit(X[rows, D:]), labels)
    np.testing.assert_allclose(model.decision_function(X), gda.decision_function(unit(X[:, D:])), atol=1e-9)
    assert model.head_features_ == "aux"


def test_gain_over_zero_shot_transductive_and_inductive():
    T, X, y, Xt, yt = task(2)
    zs = zero_shot_accuracy(T, X, y)
    model = LabelFree(text_weights=T, rounds=3, k_per_class=30).fit(X)
    transductive = model.score(X, y)
    inductive = model.score(Xt, yt)
    assert transductive > zs + 0.15 and inductive > zero_shot_accuracy(T, Xt, yt) + 0.15
    assert len(model.pseudo_changed_) == 2


def test_no_gain_on_noise():
    """Features unrelated to the labels: neither zero-shot nor the head is better than chance."""
    rng = np.random.default_rng(3)
    T = rng.standard_normal((4, 8))
    X, y = rng.standard_normal((2000, 14)), rng.integers(0, 4, 2000)
    model = LabelFree(text_weights=T, k_per_class=30).fit(X)
    gain = model.score(X, y) - zero_shot_accuracy(T, X, y)
    assert abs(gain) < 4 * np.sqrt(2 * 0.25 * 0.75 / 2000) + 0.02
    assert abs(model.score(X, y) - 0.25) < 0.06


def test_clip_head_and_linear_probe(tmp_path):
    T, X, y, Xt, yt = task(4)
    D = T.shape[1]
    clip_only = LabelFree(text_weights=T, rounds=2, head="linear_probe").fit(X[:, :D])
    assert clip_only.head_features_ == "clip" and clip_only.decision_function(Xt[:, :D]).shape == (len(yt), 4)
    save_npz(clip_only, tmp_path / "lf")
    loaded = load_npz(tmp_path / "lf")
    np.testing.assert_array_equal(loaded.decision_function(Xt[:, :D]), clip_only.decision_function(Xt[:, :D]))
    assert loaded.pseudo_changed_ == clip_only.pseudo_changed_


def test_needs_text_weights():
    from solvers.errors import InputError

    with pytest.raises(InputError, match="text_weights"):
        LabelFree().fit(np.ones((3, 2)))


def test_gain_and_its_paired_standard_error():
    from scipy.stats import sem

    from solvers.zero_shot.zero_shot_gain import gain_over_zero_shot

    rng = np.random.default_rng(5)
    T = rng.standard_normal((3, 4))
    X, y = rng.standard_normal((200, 4)), rng.integers(0, 3, 200)
    predicted = rng.integers(0, 3, 200)
    zero = (unit(X) @ unit(T).T).argmax(1) == y
    out = gain_over_zero_shot(predicted, X, y, T)
    d = (predicted == y).astype(float) - zero
    assert out["zero_shot_accuracy"] == pytest.approx(zero.mean())
    assert out["gain"] == pytest.approx(d.mean()) and out["gain_se"] == pytest.approx(sem(d))
    assert out["gain_significant"] == (d.mean() > 2 * sem(d))
    assert gain_over_zero_shot(y, X, y, T)["gain_significant"]  # perfect predictions beat zero-shot


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("rounds", [2, 3])
def test_each_round_refits_on_the_previous_heads_pseudo_labels(rounds):
    """The rounds re-derived by hand: round 1 from zero-shot probabilities, each later round from
    the previous GDA head's. The pseudo-labels change between rounds on this task, so a model that
    skipped a refresh (kept round 1's labels, or stopped early) would have another head."""
    T, X, y, *_ = task(7, signal=1.2, text=0.5)
    D = T.shape[1]
    H = unit(X[:, D:])
    probs = _softmax(100 * unit(X[:, :D]) @ unit(T).T)
    heads, changed, previous = [], [], None
    for _ in range(rounds):
        labels_all = probs.argmax(1)
        if previous is not None:
            changed.append(float(np.mean(labels_all != previous)))
        previous = labels_all
        rows, labels, _ = pseudo_label_rows(probs, 20)
        head = GDA(n_classes=len(T)).fit(H[rows], labels)
        heads.append(head.decision_function(H))
        probs = _softmax(heads[-1])
    assert min(changed) > 0.01  # every refresh moves pseudo-labels
    assert np.abs(heads[-1] - heads[-2]).max() > 1e-3
    model = LabelFree(text_weights=T, rounds=rounds, k_per_class=20).fit(X)
    np.testing.assert_allclose(model.decision_function(X), heads[-1], atol=1e-9)
    np.testing.assert_allclose(model.pseudo_changed_, changed)


def test_fs_solve_rounds_reaches_unsupervised_gda(tmp_path, capsys):
    """`fs solve unsupervised-gda --rounds R` fits R rounds (the CLI's one name for both solvers)."""
    import json

    from featurestore.store.feature_store import FeatureStore
    from tests.cli_runner import run
    from tests.store_fixtures import make_feature_store

    T, X = _three_class_task_with_an_empty_class()
    classes = ["a", "b", "c"]
    y = (unit(X) @ unit(T).T).argmax(1)
    path = make_feature_store(tmp_path / "u.h5", {"pool": X.astype(np.float32)}, labels={"pool": y},
                              classes={"pool": classes})
    with FeatureStore(path, mode="a") as writer:
        w = T.astype(np.float32)
        writer.put_text_bank("test/enc", "pool/simple", w, classes, kind="classes", classes=classes,
                             templates=["a {}"], per_template=w[:, None, :])
    code, out, err = run(["solve", "unsupervised-gda", "--store", path, "--unlabelled", "pool", "--test", "pool",
                          "--rounds", "3", "--param", "k_per_class=10", "--json"], capsys)
    assert code == 0, err
    expected = UnsupervisedGDA(text_weights=T.astype(np.float32), k_per_class=10, rounds=3).fit(X.astype(np.float32))
    run_ = json.loads(out)["runs"][0]
    assert run_["metrics"]["top1"] == pytest.approx(expected.score(X.astype(np.float32), y))
    assert run_["params"]["rounds"] == 3 and run_["chosen"]["n_pseudo_"] == expected.n_pseudo_
