"""Few-shot sampling: reproducible per seed, K per class, -1 ignored, refusal names the class."""
import numpy as np
import pytest

from solvers.fewshot import fewshot_split


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
