"""What runs leave behind: result files, the benchmark report, figures."""
from __future__ import annotations

from workflows.reports.benchmark_report import references, load_reference, to_frame, summary_table, summary_markdown, accuracy_figure, write_outputs
from workflows.reports.plots import save_png, bar_chart, embedding_map, image_grid, confusion_matrix, roc_curves, score_histograms, ood_summary, reliability_diagram, long_tail, eigen_spectra, accuracy_vs_shots
from workflows.reports.result_files import classification_metrics, mean_and_std, split_encoder_key, record, output_path, has_placeholder, write_result, read_results, results_table

__all__ = ["accuracy_figure", "accuracy_vs_shots", "bar_chart", "classification_metrics", "confusion_matrix", "eigen_spectra", "embedding_map", "has_placeholder", "image_grid", "load_reference", "long_tail", "mean_and_std", "ood_summary", "output_path", "read_results", "record", "references", "reliability_diagram", "results_table", "roc_curves", "save_png", "score_histograms", "split_encoder_key", "summary_markdown", "summary_table", "to_frame", "write_outputs", "write_result"]
