"""Pictures of cached features and of what solvers made of them: arrays in, a matplotlib Figure out.

Figures are built without pyplot (no global figure registry, no backend choice): a notebook shows
the returned Figure, the CLI writes it with :func:`save_png` through the Agg canvas. The math
(metrics, the ROC curve's points, OOD scores, calibration bins) stays in ``solvers/``
(``solvers.metrics``, imported when a figure needs it); here it is only drawn.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PALETTE = "tab10"


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG through the Agg canvas (no GUI backend needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=dpi)


def bar_chart(names: Sequence[str], values: Sequence[float], *, errors: Sequence[float] | None = None,
              ylabel: str = "accuracy (%)", title: str = "", reference: float | None = None,
              reference_label: str = "chance", value_format: str = "{:.1f}",
              figsize: tuple[float, float] | None = None) -> Figure:
    """Vertical bars with their values written on top, optional error bars and a dashed reference
    line (e.g. chance accuracy)."""
    heights = np.asarray(values, dtype=float)
    fig = Figure(figsize=figsize or (min(8.0, max(4.0, 0.9 * len(heights) + 2.0)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(heights))
    bars = ax.bar(x, heights, yerr=None if errors is None else np.asarray(errors, float),
                  color=_colors(len(heights)), capsize=4, edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[value_format.format(v) for v in heights], padding=2, fontsize=9)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"{reference_label}\n{value_format.format(reference)}", xy=(1.0, reference),
                    xycoords=("axes fraction", "data"), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=8, color="dimgrey")
    ax.set_xticks(x, list(names), rotation=30 if max(map(len, names), default=0) > 8 else 0, ha="right"
                  if max(map(len, names), default=0) > 8 else "center")
    top = float(np.nanmax(heights + (0 if errors is None else np.asarray(errors, float)))) if len(heights) else 1.0
    ax.set_ylim(0, max(top, reference or 0) * 1.15 or 1.0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def embedding_map(image_xy: np.ndarray, image_labels: np.ndarray, text_xy: np.ndarray,
                  text_labels: np.ndarray, class_names: Sequence[str], *, title: str = "",
                  xlabel: str = "component 1", ylabel: str = "component 2", show_gap: bool = True) -> Figure:
    """2-D map of image (dots) and text (large stars) embeddings, coloured by class; with
    ``show_gap`` a grey arrow joins the image centroid to the text centroid (the modality gap)."""
    image_xy, text_xy = np.asarray(image_xy, float), np.asarray(text_xy, float)
    image_labels, text_labels = np.asarray(image_labels), np.asarray(text_labels)
    colors = _colors(len(class_names))
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        rows = image_labels == c
        ax.scatter(image_xy[rows, 0], image_xy[rows, 1], s=10, alpha=0.6, color=colors[c], label=str(name),
                   linewidths=0)
        rows = text_labels == c
        ax.scatter(text_xy[rows, 0], text_xy[rows, 1], s=220, marker="*", color=colors[c],
                   edgecolors="black", linewidths=0.8)
    if show_gap:
        a, b = image_xy.mean(axis=0), text_xy.mean(axis=0)
        ax.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": "dimgrey", "lw": 1.5})
        ax.scatter(a[0], a[1], marker="o", s=60, color="white", edgecolors="black", zorder=3)
        ax.scatter(b[0], b[1], marker="*", s=120, color="white", edgecolors="black", zorder=3)
        ax.annotate("modality gap", xy=(a + b) / 2, textcoords="offset points", xytext=(0, -14), ha="center",
                    color="dimgrey", fontsize=9)
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", color="grey", linestyle="", markersize=5),
                Line2D([], [], marker="*", color="grey", markeredgecolor="black", linestyle="", markersize=12)]
    labels += ["image", "text (class prompt)"]
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              markerscale=1.5 if len(class_names) else 1, title="class / modality", title_fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def image_grid(images: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]] | None = None, *,
               row_labels: Sequence[str] | None = None, title: str = "", cell: float = 1.4,
               highlight: Sequence[Sequence[bool]] | None = None) -> Figure:
    """Rows of thumbnails (H, W) or (H, W, 3) arrays, e.g. a query followed by its nearest
    neighbours; ``highlight[r][c]`` draws a red frame (e.g. a neighbour of another class)."""
    n_rows = len(images)
    n_cols = max((len(row) for row in images), default=1)
    fig = Figure(figsize=(cell * n_cols + (0.8 if row_labels else 0.2), cell * n_rows + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images[r]):
                ax.axis("off")
                continue
            image = np.asarray(images[r][c])
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[r][c], fontsize=8)
            bad = highlight is not None and highlight[r][c]
            for spine in ax.spines.values():
                spine.set_edgecolor("red" if bad else "lightgrey")
                spine.set_linewidth(2.5 if bad else 0.5)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    fig.suptitle(title)
    return fig


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], *, normalize: bool = True,
                     title: str = "") -> Figure:
    """Heat map of a (C, C) confusion matrix (rows = true class, columns = predicted); rows are
    shown as fractions when ``normalize``, with the counts or percentages written in each cell."""
    counts = np.asarray(matrix, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        shown = counts / counts.sum(axis=1, keepdims=True) if normalize else counts
    shown = np.nan_to_num(shown)
    c = len(class_names)
    size = max(4.0, 0.45 * c + 2.0)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "rows", shrink=0.8)
    ticks = np.arange(c)
    long_names = max(map(len, map(str, class_names)), default=0) > 3
    ax.set_xticks(ticks, list(class_names), rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(ticks, list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if c <= 20:
        limit = shown.max() / 2 if shown.size else 0
        for i in range(c):
            for j in range(c):
                text = f"{100 * shown[i, j]:.0f}" if normalize else f"{int(counts[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > limit else "black")
    ax.set_title(title)
    return fig


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "ROC (ID = positive)",
               ax=None) -> Figure:
    """ROC curves of OOD scores, one per ``name -> (scores_id, scores_ood)``, AUROC in the legend."""
    fig = Figure(figsize=(5.0, 4.6), layout="constrained") if ax is None else ax.figure
    ax = fig.add_subplot() if ax is None else ax
    from solvers.metrics.ood import auroc, roc_points

    for color, (name, (s_id, s_ood)) in zip(_colors(len(curves)), curves.items()):
        fpr, tpr = roc_points(s_id, s_ood)
        ax.plot(fpr, tpr, color=color, linewidth=1.6, label=f"{name} (AUROC {100 * auroc(s_id, s_ood):.1f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.axhline(0.95, color="lightgrey", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (OOD accepted)")
    ax.set_ylabel("true positive rate (ID accepted)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def score_histograms(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, bins: int = 30,
                     ncols: int = 3, title: str = "", axes=None) -> Figure:
    """One panel per ``name -> (scores_id, scores_ood)``: overlaid ID and OOD score histograms."""
    n = len(curves)
    if axes is None:
        ncols = max(1, min(ncols, n))
        nrows = -(-n // ncols)
        fig = Figure(figsize=(3.4 * ncols, 2.7 * nrows), layout="constrained")
        axes = list(np.ravel(fig.subplots(nrows, ncols, squeeze=False)))
    else:
        fig = axes[0].figure
    for ax, (name, (s_id, s_ood)) in zip(axes, curves.items()):
        s_id, s_ood = np.asarray(s_id, float), np.asarray(s_ood, float)
        edges = np.histogram_bin_edges(np.concatenate([s_id, s_ood]), bins=bins)
        ax.hist(s_id, bins=edges, alpha=0.6, color="tab:blue", label=f"ID ({len(s_id)})", density=True)
        ax.hist(s_ood, bins=edges, alpha=0.6, color="tab:orange", label=f"OOD ({len(s_ood)})", density=True)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("score (higher = more ID)", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def ood_summary(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "") -> Figure:
    """ROC curves (left) beside the ID/OOD score histograms of the same scores (right)."""
    n = len(curves)
    ncols = 2 if n > 1 else 1
    nrows = -(-n // ncols)
    fig = Figure(figsize=(5.0 + 3.2 * ncols, max(4.4, 2.5 * nrows)), layout="constrained")
    halves: Any = fig.subfigures(1, 2, width_ratios=[5.0, 3.2 * ncols])  # an array of 2 SubFigures
    left, right = halves
    roc_curves(curves, ax=left.add_subplot())
    axes = list(np.ravel(right.subplots(nrows, ncols, squeeze=False)))
    score_histograms(curves, axes=axes)
    if title:
        fig.suptitle(title)
    return fig


def reliability_diagram(panels: Mapping[str, Mapping[str, np.ndarray]], *, title: str = "") -> Figure:
    """One panel per ``name -> bins``, bins as from ``solvers.metrics.classification.reliability_bins`` (edges,
    confidence, accuracy, count): accuracy per confidence bin against the diagonal, the gap to it
    shaded, and the share of rows per bin below."""
    n = len(panels)
    fig = Figure(figsize=(3.8 * n, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, n, height_ratios=[3, 1])
    for k, (name, bins) in enumerate(panels.items()):
        edges = np.asarray(bins["edges"], float)
        centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        acc, conf = np.asarray(bins["accuracy"], float), np.asarray(bins["confidence"], float)
        count = np.asarray(bins["count"], float)
        filled = count > 0
        ax = fig.add_subplot(grid[0, k])
        ax.bar(centers[filled], acc[filled], width=width[filled], color="tab:blue", edgecolor="black",
               linewidth=0.5, label="accuracy")
        ax.bar(centers[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width[filled],
               facecolor="none", edgecolor="tab:red", hatch="///", linewidth=0.8, label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("accuracy" if k == 0 else "")
        ax.tick_params(labelbottom=False)
        if k == 0:
            ax.legend(loc="upper left", fontsize=7, frameon=False)
        share = fig.add_subplot(grid[1, k], sharex=ax)
        share.bar(centers, count / max(count.sum(), 1), width=width, color="grey", edgecolor="black", linewidth=0.5)
        share.set_xlabel("confidence (max probability)")
        share.set_ylabel("share of rows" if k == 0 else "")
    if title:
        fig.suptitle(title)
    return fig


def long_tail(counts: Sequence[int], names: Sequence[str], *, tail: int = 0, title: str = "",
              ylabel: str = "captions mentioning the class") -> Figure:
    """Classes sorted by frequency (most frequent first) on a log scale; the ``tail`` rarest
    classes in a second colour."""
    heights = np.asarray(counts, dtype=float)
    order = np.argsort(-heights, kind="stable")
    n = len(heights)
    fig = Figure(figsize=(max(5.0, 0.35 * n + 2.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    colors = ["tab:orange" if i >= n - tail else "tab:blue" for i in range(n)]
    ax.bar(np.arange(n), np.maximum(heights[order], 0.8), color=colors, edgecolor="black", linewidth=0.5)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(n), [str(names[i]) for i in order], rotation=45 if n > 8 else 0,
                  ha="right" if n > 8 else "center")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("class (most frequent first)")
    if tail:
        from matplotlib.patches import Patch

        ax.legend([Patch(color="tab:blue"), Patch(color="tab:orange")], ["head", f"tail ({tail} rarest)"],
                  fontsize=8, frameon=False)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def eigen_spectra(spectra: Mapping[str, np.ndarray], *, top: int = 30, title: str = "",
                  ylabel: str = "normalized eigenvalue") -> Figure:
    """Sorted, sum-normalized eigenvalues of several matrices (e.g. Schur complements), log scale."""
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for color, (name, values) in zip(_colors(len(spectra)), spectra.items()):
        v = np.sort(np.clip(np.asarray(values, float), 0, None))[::-1]
        v = v / v.sum() if v.sum() > 0 else v
        ax.plot(np.arange(1, min(top, len(v)) + 1), v[:top], marker="o", markersize=3, color=color, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return fig


def accuracy_vs_shots(panels: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]]], *,
                      ylabel: str = "top-1 accuracy (%)", columns: int = 4) -> Figure:
    """The few-shot papers' figure: one panel per dataset, a line per method of (shots, mean,
    std) with a shaded +- std band; a method whose only point is at 0 shots (zero-shot) is a
    dashed horizontal line. Shots are on a log2 axis."""
    names = list(panels)
    methods = list(dict.fromkeys(m for lines in panels.values() for m in lines))
    colors = dict(zip(methods, _colors(len(methods))))
    columns = max(1, min(columns, len(names)))
    rows = -(-len(names) // columns) if names else 1
    fig = Figure(figsize=(3.2 * columns, 2.6 * rows + 0.4), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, i + 1)
        for method, line in panels[name].items():
            shots, mean, std = (np.asarray(part, float) for part in line)
            few = shots > 0
            if few.any():
                ax.plot(shots[few], mean[few], marker="o", markersize=3, color=colors[method], label=method)
                ax.fill_between(shots[few], (mean - std)[few], (mean + std)[few], color=colors[method], alpha=0.15)
            if (~few).any():
                ax.axhline(mean[~few][0], linestyle="--", linewidth=1, color=colors[method], label=method)
        ticks = sorted({int(k) for shots, _, _ in panels[name].values() for k in shots if k > 0})
        if ticks:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("shots per class", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    if methods:
        handles: dict[str, Any] = {}
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        fig.legend(handles=list(handles.values()), labels=list(handles), loc="outside lower center",
                   ncols=min(len(handles), 6), fontsize=8, frameon=False)
    return fig
