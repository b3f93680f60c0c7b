"""Few-shot sampling: reproducible per seed, K per class, -1 ignored, refusal names the class."""
import numpy as np
import pytest

from solvers.model_selection.fewshot import fewshot_split


def labels():
    return np.array([0] * 10 + [1] * 5 + [-1] * 7 + [2] * 8)


def test_reproducible_sorted_and_k_per_class():
    a = fewshot_split(labels(), 4, seed=3)
    assert np.array_equal(a, fewshot_split(labels(), 4, seed=3))
    assert np.array_equal(a, np.sort(a))
    assert np.array_equal(np.bincount(labels()[a]), [4, 4, 4])
    assert not np.any(labels()[a] == -1)
    draws = {tuple(fewshot_split(labels(), 4, seed=s)) for s in range(10)}
    assert len(draws) > 1


def test_refuses_when_a_class_is_too_small():
    with pytest.raises(ValueError, match="class 1 has only 5"):
        fewshot_split(labels(), 6, seed=0)


def test_allow_fewer_takes_the_whole_class():
    idx = fewshot_split(labels(), 6, seed=0, allow_fewer=True)
    assert np.array_equal(np.bincount(labels()[idx]), [6, 5, 6])
    assert set(np.flatnonzero(labels() == 1)) <= set(idx)


@pytest.mark.parametrize("shots", [1, 3, 5, 16])  # class 3 has exactly 5 rows
def test_numpy_sampler_is_its_documented_algorithm(shots):
    """Re-derived: one NumPy generator seeded with the seed, classes in sorted label order, each
    class's rows in row order drawn with ``choice(..., replace=False)`` (all of them when too few)."""
    rng = np.random.default_rng(7)
    y = rng.choice([3, 11, 5, 40, 2], size=400)  # shuffled, non-contiguous class ids
    y[rng.random(y.size) < 0.2] = -1
    y[np.flatnonzero(y == 3)[5:]] = -1  # class 3 keeps 5 rows, and draws before classes 5, 11, 40
    oracle, draw = [], np.random.default_rng(12)
    for cls in sorted(set(y.tolist()) - {-1}):
        rows = np.flatnonzero(y == cls)
        oracle.append(rows if rows.size <= shots else draw.choice(rows, size=shots, replace=False))
    expected = np.sort(np.concatenate(oracle))
    assert np.array_equal(fewshot_split(y, shots, 12, allow_fewer=True), expected)


def test_one_labelled_row_and_refusals_name_the_problem():
    labels = np.array([-1, -1, 4, -1])
    assert fewshot_split(labels, 1, seed=0).tolist() == [2]
    with pytest.raises(ValueError, match=r"labels must be >= 0 \(or -1 for unlabelled\), got -2"):
        fewshot_split(np.array([0, 1, -2, 1]), 1, seed=0)
    with pytest.raises(ValueError, match=r"no labelled rows \(all labels are -1\)"):
        fewshot_split(np.array([-1, -1]), 1, seed=0)
    with pytest.raises(ValueError, match="labels must be 1-D, got shape"):
        fewshot_split(np.zeros((2, 2), int), 1, seed=0)
    with pytest.raises(ValueError, match="shots must be >= 1, got 0"):
        fewshot_split(labels, 0, seed=0)
    with pytest.raises(ValueError,
                       match="unknown few-shot sampler 'dassl'; choose numpy, coop, gda-iclr24, tip-adapter"):
        fewshot_split(labels, 1, seed=0, sampler="dassl")
