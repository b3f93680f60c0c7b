"""Tip-Adapter against its formula on a hand-made cache, and its search against a brute force."""
import math

import numpy as np
import pytest

from solvers.few_shot.tip_adapter import AlphaScorer, TipAdapter, linear_grid


def test_hand_made_cache():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = np.array([0, 1, 1])
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[0.8, 0.6]])
    model = TipAdapter(text_weights=text, alpha=0.5, beta=2.0).fit(keys, labels)
    # affinities x.F = 0.8, 0.6, 0.96; A = exp(-2 (1 - a))
    cache0 = math.exp(-2 * 0.2)
    cache1 = math.exp(-2 * 0.4) + math.exp(-2 * 0.04)
    expected = np.array([[80 + 0.5 * cache0, 60 + 0.5 * cache1]])
    np.testing.assert_allclose(model.class_logits(x), expected, rtol=1e-12)
    no_text = TipAdapter(alpha=0.5, beta=2.0).fit(keys, labels)
    np.testing.assert_allclose(no_text.class_logits(x), [[0.5 * cache0, 0.5 * cache1]], rtol=1e-12)


def test_defaults_without_validation_are_the_papers_init():
    keys = np.eye(3)
    model = TipAdapter(text_weights=np.eye(3)).fit(keys, np.arange(3))
    assert (model.alpha_, model.beta_) == (1.0, 1.0)


def test_official_grid():
    assert linear_grid(7, 200)[:2] == [0.1, 0.1 + 6.9 / 200]
    assert len(linear_grid(3, 20)) == 20


@pytest.mark.parametrize("shots, dtype", [(4, np.float64), (4, np.float32), ((2, 5, 3, 4), np.float64)])
def test_search_equals_brute_force_on_validation(shots, dtype):
    """Equal shots take the shot-major class sums, unequal ones the per-class reduceat; float32
    features score alphas in float32. The brute force: every (beta, alpha) in float64."""
    rng = np.random.default_rng(0)
    C, D = 4, 8
    centres = rng.standard_normal((C, D))
    T = centres + 1.2 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), shots)
    X = centres[y] + rng.standard_normal((y.size, D))
    y_val = rng.integers(0, C, 80)
    X_val = centres[y_val] + rng.standard_normal((80, D))
    X, X_val, T = X.astype(dtype), X_val.astype(dtype), T.astype(dtype)
    # a logit scale of 3 lets the cache and the text disagree, so the search has a choice to make
    model = TipAdapter(text_weights=T, search_steps=(15, 6), logit_scale=3.0).fit(X, y, X_val, y_val)
    F, xv, Tn = (unit(A.astype(np.float64)) for A in (X, X_val, T))
    best, accuracies = (-1, None, None), []
    for beta in [0.1 + i * 6.9 / 15 for i in range(15)]:
        for alpha in [0.1 + i * 2.9 / 6 for i in range(6)]:
            logits = 3 * xv @ Tn.T + alpha * np.exp(-beta * (1 - xv @ F.T)) @ np.eye(C)[y]
            acc = np.mean(logits.argmax(1) == y_val)
            accuracies.append(acc)
            if acc > best[0]:
                best = (acc, alpha, beta)
    assert len(set(accuracies)) > 3  # the grid's choice matters
    assert model.val_accuracy_ == best[0]
    assert np.isclose(model.alpha_, best[1]) and np.isclose(model.beta_, best[2])


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def test_search_reports_progress_and_quiet_silences_it(monkeypatch):
    import solvers.few_shot.tip_adapter as module
    from solvers import progress, quiet

    items = [1, 2]
    assert progress(items, "x") is not items  # a tqdm bar (hidden when not on a terminal)
    with quiet():
        assert progress(items, "x") is items
    assert progress(items, "x") is not items

    seen = []
    monkeypatch.setattr(module, "progress", lambda grid, desc, total=None: seen.append(desc) or grid)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 6)), np.arange(30) % 3
    TipAdapter(text_weights=rng.normal(size=(3, 6)), search_steps=(3, 2)).fit(X, y, X_val=X, y_val=y)
    assert seen == ["Tip-Adapter search"]


def test_official_per_dataset_search_scales_are_presets():
    """Scales read from github.com/gaopengcuhk/Tip-Adapter configs/*.yaml."""
    from solvers.few_shot.tip_adapter import SEARCH_SCALE_PRESETS, resolve_search_scale

    assert SEARCH_SCALE_PRESETS["oxford_flowers"] == (50.0, 50.0)
    assert SEARCH_SCALE_PRESETS["fgvc"] == (30.0, 30.0)
    assert SEARCH_SCALE_PRESETS["imagenet"] == (7.0, 3.0)
    assert resolve_search_scale("dtd") == (13.0, 13.0) and resolve_search_scale([20, 10]) == (20.0, 10.0)
    import pytest

    with pytest.raises(ValueError, match="unknown Tip-Adapter search_scale preset 'flowers'"):
        resolve_search_scale("flowers")
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(12, 5)), np.arange(12) % 3
    T = rng.normal(size=(3, 5))
    by_name = TipAdapter(text_weights=T, search_scale="fgvc", search_steps=(8, 4)).fit(X, y, X, y)
    by_pair = TipAdapter(text_weights=T, search_scale=(30, 30), search_steps=(8, 4)).fit(X, y, X, y)
    assert (by_name.alpha_, by_name.beta_) == (by_pair.alpha_, by_pair.beta_)


def _wrong_text_problem(seed):
    rng = np.random.default_rng(seed)
    C, D = 5, 16
    centres = rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), 3)
    X = centres[y] + 0.8 * rng.standard_normal((y.size, D))
    y_val = np.arange(60) % C
    X_val = centres[y_val] + 0.8 * rng.standard_normal((60, D))
    return X, y, X_val, y_val, np.roll(centres, 1, axis=0)


def test_a_search_ending_on_the_grid_edge_warns():
    """Text weights of the wrong classes: the more cache the better, so the grid's largest alpha
    wins (found by brute force here) and the fit must say so; an interior choice says nothing."""
    import warnings

    import pytest

    from solvers import SolverWarning

    X, y, X_val, y_val, T = _wrong_text_problem(0)
    F, xv = X / np.linalg.norm(X, axis=1, keepdims=True), X_val / np.linalg.norm(X_val, axis=1, keepdims=True)
    Tn = T / np.linalg.norm(T, axis=1, keepdims=True)
    grid = linear_grid(3, 20)
    cache = np.exp(-(1 - xv @ F.T)) @ np.eye(5)[y]
    accs = [np.mean((3 * xv @ Tn.T + a * cache).argmax(1) == y_val) for a in grid]
    assert int(np.argmax(accs)) == len(grid) - 1
    with pytest.warns(SolverWarning, match="alpha = 2.855 is the upper edge"):
        model = TipAdapter(text_weights=T, beta=1.0, logit_scale=3.0).fit(X, y, X_val, y_val)
    assert model.alpha_ == grid[-1] and model.fit_warnings_[0].startswith("alpha = 2.855 is the upper edge")
    X, y, X_val, y_val, T = _wrong_text_problem(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        interior = TipAdapter(text_weights=T, beta=1.0, logit_scale=3.0).fit(X, y, X_val, y_val)
        assert grid[0] < interior.alpha_ < grid[-1] and interior.fit_warnings_ == []
        assert TipAdapter(text_weights=T, alpha=1.0, beta=1.0).fit(X, y, X_val, y_val).fit_warnings_ == []


def test_without_text_weights_only_beta_is_searched():
    """alpha only scales the logits when there is no zero-shot term: every alpha ties, and the
    first (the grid's lower edge) used to be chosen with nothing to warn about."""
    import warnings

    from solvers import SolverWarning

    X, y, X_val, y_val, _ = _wrong_text_problem(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SolverWarning)
        model = TipAdapter(search_steps=(10, 20)).fit(X, y, X_val, y_val)
    assert model.alpha_ == 1.0 and not any("alpha" in w for w in model.fit_warnings_)
    assert all("alpha" not in str(w.message) for w in caught)
    F, xv = X / np.linalg.norm(X, axis=1, keepdims=True), X_val / np.linalg.norm(X_val, axis=1, keepdims=True)
    accs = [np.mean((np.exp(-b * (1 - xv @ F.T)) @ np.eye(5)[y]).argmax(1) == y_val) for b in linear_grid(7, 10)]
    assert model.beta_ == linear_grid(7, 10)[int(np.argmax(accs))] and model.val_accuracy_ == max(accs)


def test_search_over_several_validation_blocks_equals_brute_force():
    """A cache of 6,000 keys puts 87 validation rows in a block: 300 rows take four blocks, whose
    correct counts must add up. Alpha fixed, beta searched (and the reverse)."""
    rng = np.random.default_rng(3)
    C, D = 4, 6
    centres = rng.standard_normal((C, D))
    T = centres + 1.2 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), 1500)
    X = centres[y] + 1.5 * rng.standard_normal((y.size, D))
    y_val = rng.integers(0, C, 300)
    X_val = centres[y_val] + 1.5 * rng.standard_normal((300, D))
    F, xv, Tn = unit(X), unit(X_val), unit(T)
    zero_shot, onehot, cosine = 3 * xv @ Tn.T, np.eye(C)[y], xv @ F.T
    betas, alphas = linear_grid(7, 6), linear_grid(3, 4)

    def accuracy(alpha, beta):
        return np.mean((zero_shot + alpha * np.exp(-beta * (1 - cosine)) @ onehot).argmax(1) == y_val)

    grid = np.array([[accuracy(a, b) for a in alphas] for b in betas])
    assert len(np.unique(grid)) > 3
    model = TipAdapter(text_weights=T, search_steps=(6, 4), logit_scale=3.0).fit(X, y, X_val, y_val)
    bi, bj = np.unravel_index(np.argmax(grid), grid.shape)
    assert model.val_accuracy_ == grid[bi, bj]
    assert (model.beta_, model.alpha_) == pytest.approx((betas[bi], alphas[bj]))
    fixed_alpha = TipAdapter(text_weights=T, alpha=0.5, search_steps=(6, 4), logit_scale=3.0).fit(X, y, X_val, y_val)
    by_beta = [accuracy(0.5, b) for b in betas]
    assert fixed_alpha.alpha_ == 0.5 and fixed_alpha.beta_ == pytest.approx(betas[int(np.argmax(by_beta))])
    assert fixed_alpha.val_accuracy_ == max(by_beta)
    fixed_beta = TipAdapter(text_weights=T, beta=2.0, search_steps=(6, 4), logit_scale=3.0).fit(X, y, X_val, y_val)
    by_alpha = [accuracy(a, 2.0) for a in alphas]
    assert fixed_beta.beta_ == 2.0 and fixed_beta.alpha_ == pytest.approx(alphas[int(np.argmax(by_alpha))])


def test_logits_in_batches_equal_the_formula_and_probabilities_their_softmax():
    rng = np.random.default_rng(4)
    names = np.array(["a", "b", "c"])
    T = rng.standard_normal((3, 5))
    y = np.repeat(np.arange(3), [2, 4, 3])
    X = T[y] + rng.standard_normal((9, 5))
    Q = rng.standard_normal((50, 5))
    model = TipAdapter(text_weights=T, classes=names, alpha=0.7, beta=3.0).fit(X, names[y])
    model.batch_size = 7  # a class attribute: 50 rows in 8 batches
    expected = 100 * unit(Q) @ unit(T).T + 0.7 * np.exp(-3.0 * (1 - unit(Q) @ unit(X).T)) @ np.eye(3)[y]
    np.testing.assert_allclose(model.decision_function(Q), expected, rtol=1e-10)
    assert model.predict(Q).tolist() == names[expected.argmax(1)].tolist()
    assert model.temperature == 1.0
    p = np.exp(expected - expected.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(Q), p / p.sum(1, keepdims=True), atol=1e-10)
    with pytest.raises(ValueError, match="5 features"):
        model.predict(Q[:, :4])
    with pytest.raises(ValueError, match="5"):
        TipAdapter(text_weights=T).fit(X[:, :4], y)


def test_search_scales_must_be_a_pair_above_0_1():
    from solvers.few_shot.tip_adapter import resolve_search_scale

    assert resolve_search_scale((0.11, 1.0)) == (0.11, 1.0)
    for bad in [(0.1, 5.0), (5.0, 0.1), (7.0, 3.0, 1.0), (7.0,)]:
        with pytest.raises(ValueError, match="two scales > 0.1"):
            resolve_search_scale(bad)


def test_two_betas_step_from_the_first_and_parameters_are_checked():
    from solvers.errors import InputError

    rng = np.random.default_rng(5)
    C, D = 3, 6
    centres = rng.standard_normal((C, D))
    T = centres + 1.5 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), 5)
    X = centres[y] + rng.standard_normal((15, D))
    y_val = rng.integers(0, C, 90)
    X_val = centres[y_val] + rng.standard_normal((90, D))
    betas, alphas = linear_grid(7, 2), linear_grid(3, 3)
    F, xv, Tn = unit(X), unit(X_val), unit(T)
    grid = np.array([[np.mean((2 * xv @ Tn.T + a * np.exp(-b * (1 - xv @ F.T)) @ np.eye(C)[y]).argmax(1) == y_val)
                      for a in alphas] for b in betas])
    model = TipAdapter(text_weights=T, search_steps=(2, 3), logit_scale=2.0).fit(X, y, X_val, y_val)
    assert model.val_accuracy_ == grid.max()
    bi, bj = np.unravel_index(np.argmax(grid), grid.shape)
    assert (model.beta_, model.alpha_) == pytest.approx((betas[bi], alphas[bj]))
    assert grid[1].max() > grid[0].max()  # the second beta wins: its affinities must be right
    assert TipAdapter(text_weights=T, alpha=1.0, beta=1.0).fit(X, y, X_val, y_val).val_accuracy_ is None
    assert TipAdapter(text_weights=T).fit(X, y).val_accuracy_ is None
    with pytest.raises(ValueError, match="X_val"):
        TipAdapter(text_weights=T).fit(X, y, X_val[:, :5], y_val)
    with pytest.raises(InputError, match="3"):
        TipAdapter(n_classes=4).fit(X, y)  # class 3 has no key: refused by name
    with pytest.raises(ValueError, match="label"):
        TipAdapter(text_weights=T[:2]).fit(X, y)


def every_alphas_argmax(sums, zero_shot, y, alphas):
    """The search's scoring before AlphaScorer, kept as the oracle: each alpha's logits written in
    the sums' dtype (alpha * sums, then + zero-shot), their argmax (first class on ties) vs y."""
    logits = alphas[:, None, None] * sums
    logits += zero_shot if zero_shot is not None else 0.0
    return np.count_nonzero(logits.argmax(axis=2) == y, axis=1)


def scorer_fixture(dtype, text, rng):
    """Rows built to sit on the scorer's edges: exact logit ties at a grid alpha (an interval end)
    with the rival class before and after the label, ties at every alpha, rivals one unit of
    rounding below the label (tied at some alphas by the rounding only), sums that underflow to
    subnormals, negative zero-shot logits, rivals far below; and random rows."""
    n, C = 240, 30
    alphas = np.asarray(linear_grid(3, 20), dtype)
    y = rng.integers(0, C, n)
    sums = (rng.random((n, C)) * 3).astype(dtype)
    zero_shot = (rng.standard_normal((n, C)) * 2 - 40 * (rng.random((n, C)) < 0.8)).astype(dtype)
    for r in range(0, 120, 2):
        rival = (y[r] + rng.choice([-1, 1]) * (1 + r % 5)) % C
        a = alphas[(r // 2) % alphas.size]
        zero_shot[r] -= 1000  # every class far below but the label and its rival
        sums[r:r + 2] *= dtype(0.2)
        sums[r + 1, y[r + 1]] = 1
        sums[r, y[r]], sums[r, rival] = 1, 2
        # a * 1 + 0 == 2a + (-a) exactly: the rival ties the label at alpha = a, wins above it
        zero_shot[r, y[r]], zero_shot[r, rival] = 0, -a
        if not text:  # alpha only scales: a tie at every alpha
            sums[r, rival] = 1
        zero_shot[r + 1] = zero_shot[r] - rng.random(C).astype(dtype)  # ties at every alpha, both orders
        sums[r + 1, rival], zero_shot[r + 1, rival] = sums[r + 1, y[r + 1]], zero_shot[r + 1, y[r + 1]]
    for r in range(120, 180):  # a rival one unit of rounding below the label: tied or not by the rounding
        rival = (y[r] - 1 - r % 3) % C
        zero_shot[r] -= 1000
        sums[r] *= dtype(0.2)
        sums[r, y[r]] = sums[r, rival] = 1 + 2 * rng.random()
        zero_shot[r, y[r]] = 0.3 + 0.4 * rng.random()
        zero_shot[r, rival] = np.nextafter(zero_shot[r, y[r]], dtype(-np.inf))
        if not text:
            sums[r, rival] = np.nextafter(sums[r, y[r]], dtype(0))
    tiny = 1e-42 if dtype == np.float32 else 1e-310
    sums[200:210] *= dtype(tiny)
    if not text:
        zero_shot = None
    return sums, zero_shot, y, alphas


@pytest.mark.parametrize("text", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_scorer_counts_equal_every_alphas_argmax(dtype, text):
    from solvers.few_shot.tip_adapter import AlphaScorer

    rng = np.random.default_rng(7)
    sums, zero_shot, y, alphas = scorer_fixture(dtype, text, rng)
    if not text:
        alphas = alphas[3:4]  # without text weights alpha is one fixed value
    expected = every_alphas_argmax(sums, zero_shot, y, alphas)
    np.testing.assert_array_equal(AlphaScorer(zero_shot, y, alphas).correct_counts(sums), expected)
    # the fixture's ties decide: the label wins them where it comes first, and they move the counts
    logits = alphas[:, None, None] * sums + (zero_shot if text else 0.0)
    tied = (logits == logits.max(axis=2, keepdims=True)).sum(axis=2) > 1
    assert tied.sum() > 50 and np.any(tied & (logits.argmax(axis=2) == y))
    if text:
        assert len(set(expected.tolist())) > 3
    for single in (-0.5, 0.0, 2.0):  # a fixed alpha may be any value
        one = np.asarray([single], dtype)
        assert AlphaScorer(zero_shot, y, one).correct_counts(sums) == every_alphas_argmax(sums, zero_shot, y, one)


def test_alpha_scorer_with_many_rivals_and_random_sizes():
    """Blocks where most classes are near the label (every alpha's logits then cost less than the
    pairs), one row, one class, and grids of other lengths and scales."""
    from solvers.few_shot.tip_adapter import AlphaScorer

    rng = np.random.default_rng(8)
    for trial in range(300):
        dtype = (np.float32, np.float64)[trial % 2]
        n, C = int(rng.integers(1, 30)), int(rng.integers(1, 25))
        alphas = np.asarray(linear_grid(float(rng.uniform(0.2, 50)), int(rng.integers(1, 25))), dtype)
        sums = (rng.random((n, C)) * rng.uniform(0.01, 20)).astype(dtype)
        if trial % 3 == 0:
            sums = np.round(sums * 2) / 2  # ties between classes' sums
        zero_shot = None if trial % 5 == 0 else (rng.standard_normal((n, C)) * rng.uniform(0.01, 10)).astype(dtype)
        y = rng.integers(0, C, n)
        if zero_shot is None:
            alphas = alphas[:1]
        np.testing.assert_array_equal(AlphaScorer(zero_shot, y, alphas).correct_counts(sums),
                                      every_alphas_argmax(sums, zero_shot, y, alphas))


def test_alpha_scorer_refuses_a_grid_that_is_not_positive():
    from solvers.few_shot.tip_adapter import AlphaScorer

    with pytest.raises(ValueError, match="positive"):
        AlphaScorer(None, np.zeros(2, int), np.array([0.0, 1.0]))


def reference_search(X, y, X_val, y_val, T, betas, alphas, logit_scale):
    """The search as it was before AlphaScorer: float64 affinities stepped over the beta grid by
    their ratio, class sums cast to the features' dtype, every alpha's logits and their argmax."""
    F, xv = unit(X.astype(np.float64)).astype(X.dtype), unit(X_val.astype(np.float64)).astype(X.dtype)
    Tn = unit(T.astype(np.float64)).astype(X.dtype)
    zero_shot = (logit_scale * xv) @ Tn.T
    shifted = (xv @ F.T).astype(np.float64) - 1
    affinity, ratio = np.exp(betas[0] * shifted), np.exp((betas[1] - betas[0]) * shifted)
    onehot = np.eye(int(y.max()) + 1)[y]
    counts = []
    for i in range(len(betas)):
        if i:
            affinity *= ratio
        counts.append(every_alphas_argmax((affinity @ onehot).astype(X.dtype), zero_shot, y_val,
                                          np.asarray(alphas, X.dtype)))
    counts = np.array(counts)
    bi, bj = np.unravel_index(np.argmax(counts), counts.shape)
    return counts[bi, bj] / y_val.size, alphas[bj], betas[bi], counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_search_equals_the_every_alpha_search_with_negative_similarities_and_unequal_shots(dtype):
    rng = np.random.default_rng(9)
    C, D = 6, 10
    centres = rng.standard_normal((C, D))
    T = centres + 1.0 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), [1, 7, 2, 4, 3, 5])
    X = centres[y] + 1.3 * rng.standard_normal((y.size, D))
    y_val = np.repeat(np.arange(C), [30, 5, 20, 8, 40, 12])
    X_val = centres[y_val] + 1.3 * rng.standard_normal((y_val.size, D))
    X, X_val, T = X.astype(dtype), X_val.astype(dtype), T.astype(dtype)
    assert (unit(X_val) @ unit(X).T).min() < -0.5  # affinities of negative similarities
    betas, alphas = linear_grid(7, 40), linear_grid(3, 20)
    accuracy, alpha, beta, counts = reference_search(X, y, X_val, y_val, T, betas, alphas, 3.0)
    assert len(np.unique(counts)) > 10
    model = TipAdapter(text_weights=T, search_steps=(40, 20), logit_scale=3.0).fit(X, y, X_val, y_val)
    assert (model.val_accuracy_, model.alpha_, model.beta_) == (accuracy, alpha, beta)


@pytest.mark.parametrize("shots", [[4] * 6, [1, 7, 2, 4, 3, 5]])
def test_search_counts_in_small_blocks_equal_the_every_alpha_search(monkeypatch, shots):
    """Blocks sized so that every loop of the search ends on a partial piece: 115 validation rows in
    products of 21 rows (the last 10), scored 7 rows at a time (the last 3), stepped through the betas
    3 rows at a time (7 = 3 + 3 + 1) and 40 betas in runs of 7 (the last 5). Every (beta, alpha)
    count, as the scorer returns them block by block, equals the every-alpha search's."""
    rng = np.random.default_rng(11)
    C, D = 6, 10
    centres = rng.standard_normal((C, D))
    T = centres + 1.0 * rng.standard_normal((C, D))
    y = np.repeat(np.arange(C), shots)
    X = centres[y] + 1.3 * rng.standard_normal((y.size, D))
    y_val = rng.integers(0, C, 115)
    X_val = centres[y_val] + 1.3 * rng.standard_normal((y_val.size, D))
    betas, alphas = linear_grid(7, 40), linear_grid(3, 20)
    accuracy, alpha, beta, counts = reference_search(X, y, X_val, y_val, T, betas, alphas, 3.0)
    assert len(np.unique(counts)) > 5
    keys = y.size
    monkeypatch.setattr(TipAdapter, "BETA_ELEMENTS", 7 * keys)
    monkeypatch.setattr(TipAdapter, "PRODUCT_ELEMENTS", 21 * keys)
    monkeypatch.setattr(TipAdapter, "CACHED_ELEMENTS", 3 * keys + keys // 2)
    monkeypatch.setattr(TipAdapter, "SUMS_ELEMENTS", 7 * 7 * C + 3)
    returned = []
    scored = AlphaScorer.correct_counts
    monkeypatch.setattr(AlphaScorer, "correct_counts",
                        lambda scorer, sums: returned.append((sums.shape[0], scored(scorer, sums))) or returned[-1][1])
    model = TipAdapter(text_weights=T, search_steps=(40, 20), logit_scale=3.0).fit(X, y, X_val, y_val)
    assert (model.val_accuracy_, model.alpha_, model.beta_) == (accuracy, alpha, beta)
    block_rows = [rows for rows, _ in returned[::len(betas)]]
    assert block_rows == [7, 7, 7] * 5 + [7, 3] and len(returned) == len(block_rows) * len(betas)
    grid = np.sum([[c for _, c in returned[b * len(betas):(b + 1) * len(betas)]] for b in range(len(block_rows))],
                  axis=0)
    np.testing.assert_array_equal(grid, counts)
