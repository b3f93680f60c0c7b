"""Averaging a feature with its augmented views, checked by hand."""
import numpy as np
import pytest

from solvers.augmented_views import average_views


def test_mean_of_normalized_views_renormalized():
    X = np.array([[3.0, 4.0]])
    views = np.array([[[0.0, 2.0], [1.0, 0.0]]])
    # unit vectors: (0.6, 0.8), (0, 1), (1, 0) -> mean (1.6/3, 1.8/3) -> normalized
    expected = np.array([[1.6, 1.8]]) / np.hypot(1.6, 1.8)
    np.testing.assert_allclose(average_views(X, views), expected, atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        average_views(X, np.ones((2, 1, 2)))
