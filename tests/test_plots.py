"""workflows.reports.plots: every helper renders a PNG of the figure's size that is not blank, and
the ROC points agree with scikit-learn's roc_curve."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from tests.png_checks import png_summary
from workflows.reports import plots

RNG = np.random.default_rng(0)
NAMES = [str(i) for i in range(5)]
CURVES = {"msp": (RNG.normal(1, 1, 80), RNG.normal(0, 1, 60)), "energy": (RNG.normal(2, 1, 80), RNG.normal(0, 1, 60))}


def _bins(n_bins: int = 10) -> dict[str, np.ndarray]:
    edges = np.linspace(0, 1, n_bins + 1)
    count = RNG.integers(0, 30, n_bins)
    return {"edges": edges, "confidence": (edges[:-1] + edges[1:]) / 2, "accuracy": RNG.random(n_bins), "count": count}


FIGURES = {
    "bar_chart": lambda: plots.bar_chart(["zero-shot", "GDA", "Tip-Adapter"], [10.0, 80.0, 75.0], reference=10.0),
    "embedding_map": lambda: plots.embedding_map(RNG.normal(size=(50, 2)), RNG.integers(0, 5, 50),
                                                 RNG.normal(size=(5, 2)) + 4, np.arange(5), NAMES, title="PCA"),
    "image_grid": lambda: plots.image_grid([[RNG.random((16, 16)) for _ in range(4)] for _ in range(2)],
                                           [["q", "a", "b", "c"]] * 2, highlight=[[False, True, False, False]] * 2),
    "confusion_matrix": lambda: plots.confusion_matrix(RNG.integers(0, 9, (5, 5)) + 20 * np.eye(5), NAMES),
    "roc_curves": lambda: plots.roc_curves(CURVES),
    "score_histograms": lambda: plots.score_histograms(CURVES),
    "ood_summary": lambda: plots.ood_summary(CURVES, title="OOD"),
    "reliability_diagram": lambda: plots.reliability_diagram({"before": _bins(), "after": _bins()}),
    "long_tail": lambda: plots.long_tail([500, 3, 40, 0, 7], NAMES, tail=2),
    "eigen_spectra": lambda: plots.eigen_spectra({"a": RNG.random(20), "b": RNG.random(20) ** 4}),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_helper_renders_a_non_blank_png_of_the_figure_size(name, tmp_path):
    fig = FIGURES[name]()
    path = tmp_path / f"{name}.png"
    plots.save_png(fig, path, dpi=80)
    size, n_colours, ink = png_summary(path)
    width, height = fig.get_size_inches() * 80
    assert size == (round(width), round(height))
    assert size[0] >= 240 and size[1] >= 200
    assert n_colours > 16 and ink > 0.02


def test_roc_curves_draw_sklearns_curve_and_auroc():
    s_id = np.r_[RNG.normal(1, 1, 40), [0.5, 0.5]]
    s_ood = np.r_[RNG.normal(0, 1, 30), [0.5]]
    fig = plots.roc_curves({"m": (s_id, s_ood)})
    line = fig.axes[0].get_lines()[0]
    labels = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    ref_fpr, ref_tpr, _ = roc_curve(labels, np.r_[s_id, s_ood], drop_intermediate=False)
    np.testing.assert_allclose(line.get_xdata(), ref_fpr)
    np.testing.assert_allclose(line.get_ydata(), ref_tpr)
    assert f"AUROC {100 * roc_auc_score(labels, np.r_[s_id, s_ood]):.1f}" in line.get_label()


def test_plots_import_neither_solvers_nor_pyplot():
    code = ("import sys, workflows.reports.plots\n"
            "print(sorted(m for m in ('solvers', 'matplotlib.pyplot', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
