"""Evaluation figures as PNG files: precision-coverage, reliability, confusion matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: evaluation runs on machines without a display

import matplotlib.pyplot as plt
import numpy as np

from labelgen.evaluation.thresholds import Sweep


def _axes() -> tuple[plt.Figure, plt.Axes]:
    """A 5 x 4 inch figure whose labels are fixed, so its margins can be: the ones
    `tight_layout` picks for them, without its extra pass over every text (a third of these
    plots' time; an evaluation draws a dozen, the quality benchmark a few hundred)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    fig.subplots_adjust(left=0.14, right=0.95, bottom=0.15, top=0.91)
    return fig, ax


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def precision_coverage(
    curve: Sweep,
    path: str | Path,
    human_precision: float | None = None,
    threshold: float | None = None,
    title: str = "",
) -> Path:
    """The model's precision against coverage as the threshold drops; the human labels
    everything once, so the human is one point at coverage 1."""
    fig, ax = _axes()
    ax.plot(curve.coverage, curve.precision, label="model", color="tab:blue")
    if human_precision is not None:
        ax.axhline(human_precision, color="tab:orange", lw=0.8, ls="--")
        ax.scatter([1.0], [human_precision], color="tab:orange", zorder=3, label="single annotator")
    if threshold is not None and curve.thresholds.size:
        i = np.flatnonzero(curve.thresholds >= threshold)
        if i.size:
            j = i[-1]
            ax.scatter(
                [curve.coverage[j]],
                [curve.precision[j]],
                marker="x",
                color="black",
                zorder=3,
                label=f"threshold {threshold:.3f}",
            )
    ax.set(xlabel="coverage (share labeled)", ylabel="precision of kept labels", xlim=(0, 1.02))
    ax.set_title(title)
    ax.legend(loc="lower left")
    return _save(fig, path)


def reliability(
    confidence: Sequence[float],
    correct: Sequence[bool],
    path: str | Path,
    bins: int = 10,
    title: str = "",
) -> Path:
    """Accuracy per confidence bin against the diagonal; bar width shows nothing, the count
    per bin is printed, since an empty-looking bin with three items means little."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    acc = np.divide(
        np.bincount(which, weights=hit, minlength=bins),
        count,
        out=np.full(bins, np.nan),
        where=count > 0,
    )
    centers = (edges[:-1] + edges[1:]) / 2
    fig, ax = _axes()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.bar(centers, np.nan_to_num(acc), width=1.0 / bins, edgecolor="black", alpha=0.7)
    for x, a, c in zip(centers, acc, count, strict=True):
        if c:
            ax.text(x, min(a, 0.95) + 0.02, str(c), ha="center", fontsize=7)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.05))
    ax.set_title(title)
    return _save(fig, path)


def confusion(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    path: str | Path,
    top_k: int = 15,
    title: str = "",
) -> Path:
    """Row-normalized confusion over the `top_k` most frequent gold classes; everything else,
    including predictions outside them, is pooled as "other"."""
    top = [label for label, _ in Counter(y_true).most_common(top_k)]
    names = [str(label) for label in top]
    index = {label: i for i, label in enumerate(top)}
    size = len(top) + (1 if len(Counter(y_true)) > len(top) or set(y_pred) - set(top) else 0)
    if size > len(top):
        names.append("other")
    counts = np.zeros((size, size))
    for t, p in zip(y_true, y_pred, strict=True):
        counts[index.get(t, size - 1), index.get(p, size - 1)] += 1
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * size, 1.0 + 0.45 * size))
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(size), names, rotation=90, fontsize=7)
    ax.set_yticks(range(size), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="gold")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()  # its size and tick labels follow the classes: no fixed margins
    return _save(fig, path)
