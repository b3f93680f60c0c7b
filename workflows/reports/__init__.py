"""What runs leave behind: result files, the benchmark report, figures."""
from __future__ import annotations

from typing import Any

from workflows.reports.benchmark_report import (
    accuracy_figure,
    load_reference,
    references,
    summary_markdown,
    summary_table,
    to_frame,
    write_outputs,
)
from workflows.reports.result_files import (
    has_placeholder,
    mean_and_std,
    output_path,
    read_results,
    record,
    results_table,
    split_encoder_key,
    write_result,
)

__all__ = [
    "accuracy_figure", "accuracy_vs_shots", "bar_chart", "confusion_matrix", "eigen_spectra",
    "embedding_map", "has_placeholder", "image_grid", "load_reference", "long_tail", "mean_and_std", "ood_summary",
    "output_path", "read_results", "record", "references", "reliability_diagram", "results_table", "roc_curves",
    "save_png", "score_histograms", "split_encoder_key", "summary_markdown", "summary_table", "to_frame",
    "write_outputs", "write_result"
]

#: The figures of ``workflows.reports.plots``: matplotlib is imported on their first use, not
#: with this package (a sweep or a result file needs no figure).
PLOTS = ("accuracy_vs_shots", "bar_chart", "confusion_matrix", "eigen_spectra", "embedding_map", "image_grid",
         "long_tail", "ood_summary", "reliability_diagram", "roc_curves", "save_png", "score_histograms")


def __getattr__(name: str) -> Any:
    if name in PLOTS:
        from workflows.reports import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
