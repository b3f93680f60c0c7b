"""fewshot_split groups rows by class with a 16-bit radix sort when the labels fit: the draws
equal those of the general path (labels too large for it) and a per-class brute force."""
import numpy as np
import pytest

from solvers.model_selection.fewshot import _rows_by_class, fewshot_split


@pytest.mark.parametrize("sampler", ["numpy", "coop", "gda-iclr24"])
def test_small_labels_draw_what_large_labels_draw(sampler):
    rng = np.random.default_rng(3)
    y = rng.choice([0, 2, 3, 7, 40], size=600)  # absent classes between the present ones
    y[rng.integers(0, 600, 50)] = -1  # unlabelled rows are skipped
    wide = np.where(y >= 0, y * 100_000 + 5, -1)  # the same classes in the same order, beyond 16 bits
    for shots, seed in ((1, 1), (4, 2), (16, 3)):
        assert np.array_equal(fewshot_split(y, shots, seed, sampler=sampler),
                              fewshot_split(wide, shots, seed, sampler=sampler))


def test_rows_by_class_against_a_mask_per_class():
    rng = np.random.default_rng(4)
    y = rng.integers(-1, 300, 20_000)
    labelled = np.flatnonzero(y != -1)
    classes, groups = _rows_by_class(y, labelled)
    assert classes.tolist() == sorted(set(y[labelled].tolist()))
    for c, rows in zip(classes, groups):
        assert np.array_equal(rows, np.flatnonzero(y == c))
