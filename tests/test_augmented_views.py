"""Few-shot training sets from augmented views, checked by hand against the official recipes."""
import numpy as np
import pytest

from solvers.few_shot.gda import GDA, shrinkage_precision
from solvers.model_selection.augmented_views import augmented_training_set, mean_of_views, views_as_samples


def test_samples_make_every_view_a_row_without_the_centre_crop():
    views = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # 2 images, 3 views, D = 2
    X, y = views_as_samples(views, np.array([4, 7]))
    np.testing.assert_array_equal(X, [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]])
    np.testing.assert_array_equal(y, [4, 4, 4, 7, 7, 7])


def test_mean_averages_the_views_then_normalizes():
    views = np.array([[[0.0, 2.0], [1.0, 0.0]]])
    # mean (0.5, 1.0), normalized; the centre-crop feature plays no part
    np.testing.assert_allclose(mean_of_views(views), [[0.5, 1.0] / np.hypot(0.5, 1.0)], atol=1e-6)
    X, y = augmented_training_set(views, np.array([3]), "mean")
    np.testing.assert_allclose(X, mean_of_views(views))
    np.testing.assert_array_equal(y, [3])
    with pytest.raises(ValueError, match="views_as must be one of"):
        augmented_training_set(views, np.array([3]), "average")
    with pytest.raises(ValueError, match=r"views must be an \(2, V, D\) array"):
        augmented_training_set(np.ones((1, 2, 2)), np.array([0, 1]), "samples")


def test_gda_on_view_samples_counts_every_view_in_its_shrinkage():
    """N = views x shots x classes enters the official KS precision D pinv((N-1) S + tr(S) I)."""
    rng = np.random.default_rng(0)
    C, shots, V, D = 3, 2, 4, 5
    y = np.repeat(np.arange(C), shots)
    views = rng.normal(size=(y.size, V, D))
    X, y_rows = augmented_training_set(views, y, "samples")
    assert X.shape == (C * shots * V, D)
    model = GDA().fit(X, y_rows)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    centred = Xn - np.stack([Xn[y_rows == k].mean(0) for k in range(C)])[y_rows]
    scatter = centred.T @ centred
    S = scatter / (len(X) - 1)
    expected = D * np.linalg.pinv((len(X) - 1) * S + np.trace(S) * np.eye(D))
    np.testing.assert_allclose(model.precision_, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(shrinkage_precision(scatter, C * shots * V), expected, rtol=1e-8, atol=1e-10)


def test_mean_with_raw_norms_is_the_mean_of_the_raw_views():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(3, 4, 5)) * rng.uniform(0.5, 20, size=(3, 4, 1))
    norms = np.linalg.norm(raw, axis=2)
    unit = raw / norms[:, :, None]
    mean = raw.mean(axis=1)
    np.testing.assert_allclose(mean_of_views(unit, norms), mean / np.linalg.norm(mean, axis=1, keepdims=True),
                               atol=1e-6)
    assert np.abs(mean_of_views(unit) - mean_of_views(unit, norms)).max() > 1e-3  # the norms matter
    with pytest.raises(ValueError, match="norms must be a finite"):
        mean_of_views(unit, norms[:, :2])
