"""Scores with 95% bootstrap confidence intervals, for every task the evaluation reports.

Every metric here is a function of sums over items (correct answers, true positives, window
errors...). Each scorer builds one row of such counts per item, and the bootstrap resamples
items by drawing a count matrix of shape (resamples, items) and multiplying it with the rows:
a thousand resamples of twelve thousand items cost one matrix product, not a Python loop.
The interval is the percentile interval of the resampled statistic.

Given `groups` (one key per item, e.g. its dialogue), the bootstrap resamples whole groups
instead: the turns of one dialogue share a user, a system and a topic, so their errors are
not independent, and drawing turns one by one would make the intervals too narrow. The rows
of a group are summed first, and resampling runs on the group sums; so a statistic divides
by a summed count column, never by a fixed number of items (a resample of groups holds more
or fewer items than the sample).

Undefined ratios (precision with no positive predictions, a class absent from a resample)
follow scikit-learn: 0 for precision/recall/F1, and macro averages run over the classes that
occur, in gold or prediction, in that sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 1000
_CELLS = 4_000_000
"""Resample x item counts drawn at once (~32 MB of int64): bounds memory on large logs."""

Statistic = Callable[[np.ndarray], np.ndarray]
"""Summed count rows, shape (samples, columns) -> one value per sample."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int
    """Items the estimate is over (the resampled units are these, or their groups)."""

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {"value": self.value, "ci95": [self.low, self.high], "n": self.n}


def resample_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = 0):
    """How often each of `n` items is drawn in each bootstrap resample: (start, counts) with
    counts of shape (resamples in this chunk, n), chunked to bound memory. A given seed and
    item count always draw the same resamples, whichever statistic they feed."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield start, np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)


def resample_sums(rows: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Column sums of `rows` (items x columns) over bootstrap resamples of the items."""
    rows = np.asarray(rows, dtype=np.float64)
    out = np.empty((n_resamples, rows.shape[1]))
    for start, counts in resample_counts(rows.shape[0], n_resamples, seed):
        out[start : start + len(counts)] = counts @ rows
    return out


Groups = Sequence[Hashable] | None
"""One key per item: the bootstrap resamples the groups of items sharing a key; None: items."""


def group_index(groups: Sequence[Hashable], n: int) -> tuple[np.ndarray, int]:
    """(group number of each item, in order of first appearance; number of groups)."""
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group keys for {n} items")
    numbers: dict[Hashable, int] = {}
    index = np.fromiter((numbers.setdefault(g, len(numbers)) for g in groups), np.int64, n)
    return index, len(numbers)


def group_sums(rows: np.ndarray, groups: Groups) -> np.ndarray:
    """The rows summed per group (groups x columns); the rows themselves without groups."""
    if groups is None:
        return rows
    index, _ = group_index(groups, rows.shape[0])
    order = np.argsort(index, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(index[order]) != 0])
    return np.add.reduceat(rows[order], starts, axis=0)


def estimates(
    rows: np.ndarray,
    statistics: dict[str, Statistic],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """Each statistic of the summed rows, with its percentile bootstrap interval.

    All statistics share one set of resamples, and a given seed and item (or group) count
    always draw the same resamples: two systems scored on the same items are compared on
    paired resamples.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[0]
    if n == 0:
        nan = float("nan")
        return {name: Estimate(nan, nan, nan, 0) for name in statistics}
    total = rows.sum(axis=0, keepdims=True)
    boot = resample_sums(group_sums(rows, groups), n_resamples, seed)
    out = {}
    for name, statistic in statistics.items():
        out[name] = _interval(float(statistic(total)[0]), statistic(boot), n)
    return out


def estimate(
    rows: np.ndarray,
    statistic: Statistic,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> Estimate:
    """One statistic of the summed rows, with its percentile bootstrap interval."""
    return estimates(rows, {"value": statistic}, n_resamples, seed, groups)["value"]


def _interval(value: float, sample: np.ndarray, n: int) -> Estimate:
    finite = np.isfinite(sample)
    low, high = np.percentile(sample[finite], [2.5, 97.5]) if finite.any() else (value, value)
    return Estimate(value, float(low), float(high), n)


RANKING = ("average_precision", "roc_auc", "prevalence")


def ranking_scores(
    scores: Sequence[float],
    positive: Sequence[bool],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """How well a score ranks the positive items, whatever cutoff is later put on it: average
    precision (as scikit-learn computes it: precision at each distinct score, weighted by the
    recall it adds; a random ranking scores the prevalence), ROC AUC (ties count half) and the
    prevalence. A cutoff chosen on other data can miss on a new domain while the ranking
    holds; these say which of the two moved.

    The bootstrap weights each item by how often a resample draws it (or its group), on the
    resamples `estimates` draws for the same seed and item or group count (paired with the
    other metrics).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} gold labels")
    n = len(s)
    if n == 0:
        nan = float("nan")
        return {name: Estimate(nan, nan, nan, 0) for name in RANKING}
    index, units = group_index(groups, n) if groups is not None else (np.arange(n), n)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order].astype(np.float64)
    # tied scores share one threshold: sum each tie group, highest score first
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])

    def statistics(weights: np.ndarray) -> dict[str, np.ndarray]:
        """Each statistic for rows of per-item weights (resamples x items)."""
        pos = np.add.reduceat(weights * y, starts, axis=1)
        neg = np.add.reduceat(weights * (1.0 - y), starts, axis=1)
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        n_pos, n_neg = tp[:, -1], fp[:, -1]
        precision = ratio(tp, tp + fp)
        # undefined (NaN, left out of the interval) without positives, or for AUC negatives
        return {
            "average_precision": np.where(
                n_pos > 0, ratio((pos * precision).sum(axis=1), n_pos), np.nan
            ),
            "roc_auc": np.where(
                (n_pos > 0) & (n_neg > 0),
                ratio((pos * (n_neg[:, None] - fp + 0.5 * neg)).sum(axis=1), n_pos * n_neg),
                np.nan,
            ),
            "prevalence": n_pos / weights.sum(axis=1),
        }

    values = statistics(np.ones((1, n)))
    boot = {name: np.empty(n_resamples) for name in RANKING}
    for start, counts in resample_counts(units, n_resamples, seed):
        for name, sample in statistics(counts[:, index[order]].astype(np.float64)).items():
            boot[name][start : start + len(counts)] = sample
    return {name: _interval(float(values[name][0]), boot[name], n) for name in RANKING}


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(
        num, den, out=np.zeros(np.broadcast_shapes(num.shape, den.shape)), where=den > 0
    )


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def _share(flags: Sequence[bool], n_resamples: int, seed: int, groups: Groups) -> Estimate:
    """The share of items flagged, with its interval."""
    rows = np.stack([np.asarray(flags, dtype=np.float64), np.ones(len(flags))], axis=1)
    return estimate(rows, lambda s: ratio(s[:, 0], s[:, 1]), n_resamples, seed, groups)


def accuracy(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> Estimate:
    correct = [t == p for t, p in zip(y_true, y_pred, strict=True)]
    return _share(correct, n_resamples, seed, groups)


BINARY = ("accuracy", "precision", "recall", "f1")


def _binary_rows(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], positive: Hashable
) -> np.ndarray:
    """Per item: true positive, false positive, false negative, correct, 1 (items x 5)."""
    # dtype=bool: an empty list would otherwise be float, and & undefined on it
    t = np.array([y == positive for y in y_true], dtype=bool)
    p = np.array([y == positive for y in y_pred], dtype=bool)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} gold labels but {len(p)} predictions")
    correct = np.array([a == b for a, b in zip(y_true, y_pred, strict=True)], dtype=bool)
    ones = np.ones_like(correct)
    return np.stack([t & p, ~t & p, t & ~p, correct, ones], axis=1).astype(np.float64)


_BINARY_COLUMNS = 5


def _binary_statistic(name: str, first: int = 0) -> Statistic:
    """One of `BINARY` from the count columns of `_binary_rows` starting at `first`."""
    if name == "accuracy":
        return lambda s: ratio(s[:, first + 3], s[:, first + 4])
    return lambda s: _prf(s[:, first], s[:, first + 1], s[:, first + 2])[name]


def binary_scores(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    positive: Hashable = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """Accuracy, and precision, recall and F1 of the `positive` class."""
    rows = _binary_rows(y_true, y_pred, positive)
    statistics = {name: _binary_statistic(name) for name in BINARY}
    return estimates(rows, statistics, n_resamples, seed, groups)


def binary_difference(
    y_true: Sequence[Hashable],
    a_pred: Sequence[Hashable],
    b_pred: Sequence[Hashable],
    positive: Hashable = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """`binary_scores` of `a_pred` minus those of `b_pred` on the same items, each with the
    interval of the difference over paired resamples (both systems scored on each resample):
    an interval above 0 says a beats b beyond resampling noise, which two overlapping
    intervals of their own cannot say."""
    rows = np.hstack(
        [_binary_rows(y_true, a_pred, positive), _binary_rows(y_true, b_pred, positive)]
    )

    def lead(name: str) -> Statistic:
        a, b = _binary_statistic(name), _binary_statistic(name, first=_BINARY_COLUMNS)
        return lambda s: a(s) - b(s)

    return estimates(rows, {name: lead(name) for name in BINARY}, n_resamples, seed, groups)


def macro_scores(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """Accuracy and macro-averaged precision, recall and F1.

    Args:
        labels: the classes to average over; default every label seen in gold or prediction.
            A prediction outside `labels` (e.g. None for "no prediction") is then simply wrong:
            a false negative for the gold class and a false positive for no class.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    classes = list(labels) if labels is not None else list(dict.fromkeys([*y_true, *y_pred]))
    index = {c: k for k, c in enumerate(classes)}
    n, m = len(y_true), len(classes)
    tp, fp, fn = (np.zeros((n, m)) for _ in range(3))
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if t == p and t in index:
            tp[i, index[t]] = 1
            continue
        if t in index:
            fn[i, index[t]] = 1
        if p in index:
            fp[i, index[p]] = 1
    correct = np.array([t == p for t, p in zip(y_true, y_pred, strict=True)], dtype=np.float64)
    rows = np.concatenate([tp, fp, fn, correct[:, None], np.ones((n, 1))], axis=1)

    def stat(name: str) -> Statistic:
        def macro(s: np.ndarray) -> np.ndarray:
            if name == "accuracy":
                return ratio(s[:, -2], s[:, -1])
            tps, fps, fns = s[:, :m], s[:, m : 2 * m], s[:, 2 * m : 3 * m]
            present = (tps + fps + fns) > 0
            per_class = np.where(present, _prf(tps, fps, fns)[name], 0.0)
            return ratio(per_class.sum(axis=1), present.sum(axis=1))

        return macro

    names = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
    stats = {name: stat(name.removeprefix("macro_")) for name in names}
    return estimates(rows, stats, n_resamples, seed, groups)


# ---- slots ------------------------------------------------------------------------------------


def span_scores(
    gold: Sequence[Collection[tuple[str, int, int]]],
    pred: Sequence[Collection[tuple[str, int, int]]],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """Exact-span precision, recall and F1, micro over turns: a span counts when its slot, start
    and end all match."""
    rows = np.array(
        [
            (len(set(g) & set(p)), len(set(p) - set(g)), len(set(g) - set(p)))
            for g, p in zip(gold, pred, strict=True)
        ],
        dtype=np.float64,
    ).reshape(-1, 3)
    stats: dict[str, Statistic] = {
        name: lambda s, name=name: _prf(s[:, 0], s[:, 1], s[:, 2])[name]
        for name in ("precision", "recall", "f1")
    }
    return estimates(rows, stats, n_resamples, seed, groups)


def normalize_value(value: str) -> str:
    # Values compare as people read them: case and spacing are not errors.
    return " ".join(value.casefold().split())


def value_accuracy(
    gold: Sequence[Collection[tuple[str, str]]],
    pred: Sequence[Collection[tuple[str, str]]],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> Estimate:
    """Share of turns whose (slot, value) pairs match exactly, offsets ignored: right values
    found in a different place still fill the request correctly."""

    def bag(pairs: Collection[tuple[str, str]]) -> Counter[tuple[str, str]]:
        return Counter((slot, normalize_value(value)) for slot, value in pairs)

    correct = [bag(g) == bag(p) for g, p in zip(gold, pred, strict=True)]
    return _share(correct, n_resamples, seed, groups)


# ---- goal segmentation --------------------------------------------------------------------


def segment_ids(tags: Sequence[str]) -> list[int]:
    """Segment number per turn from B/I/O tags.

    A goal starts at B, and also at an I that continues no goal (at the start or after O), read
    leniently as the decoder does. A run of O turns is a segment of its own, so that a turn
    leaving a goal is a boundary too.
    """
    ids, current, previous = [], -1, None
    for tag in tags:
        if tag not in ("B", "I", "O"):
            raise ValueError(f"segment tag {tag!r} is not B, I or O")
        starts_goal = tag == "B" or (tag == "I" and previous in (None, "O"))
        if starts_goal or (tag == "O" and previous != "O"):
            current += 1
        ids.append(current)
        previous = tag
    return ids


def goal_starts(tags: Sequence[str]) -> set[int]:
    """Turns that begin a goal: B, or an I that continues no goal."""
    return {
        i
        for i, tag in enumerate(tags)
        if tag == "B" or (tag == "I" and (i == 0 or tags[i - 1] == "O"))
    }


def window_size(references: Sequence[Sequence[str]]) -> int:
    """k = half the mean reference segment length (rounded, at least 1), over all dialogues.

    One k for the corpus keeps every dialogue's windows the same width, so that the per-dialogue
    error counts add up to one Pk."""
    lengths = [n for tags in references for n in Counter(segment_ids(tags)).values()]
    if not lengths:
        return 1
    return max(1, round(float(np.mean(lengths)) / 2))


def window_errors(
    reference: Sequence[str], hypothesis: Sequence[str], k: int
) -> tuple[int, int, int]:
    """(Pk errors, WindowDiff errors, windows) over windows (i, i + k), i = 0..N-k-1.

    Pk (Beeferman et al. 1999) counts windows whose ends are in one segment in one segmentation
    and not in the other; WindowDiff (Pevzner and Hearst 2002) counts windows holding a
    different number of boundaries. A dialogue of k turns or fewer has no window.
    """
    if len(reference) != len(hypothesis):
        raise ValueError(f"{len(reference)} reference tags but {len(hypothesis)} hypothesis tags")
    n = len(reference)
    if n <= k:
        return 0, 0, 0
    ref, hyp = np.array(segment_ids(reference)), np.array(segment_ids(hypothesis))
    # cumulative boundary counts: b[j] = boundaries between turns 0..j
    ref_b = np.concatenate([[0], np.cumsum(ref[1:] != ref[:-1])])
    hyp_b = np.concatenate([[0], np.cumsum(hyp[1:] != hyp[:-1])])
    ref_in = ref_b[k:] - ref_b[:-k]
    hyp_in = hyp_b[k:] - hyp_b[:-k]
    pk_err = int(np.sum((ref_in == 0) != (hyp_in == 0)))
    wd_err = int(np.sum(ref_in != hyp_in))
    return pk_err, wd_err, n - k


def pk(reference: Sequence[str], hypothesis: Sequence[str], k: int | None = None) -> float:
    """Pk of one dialogue's tags; k defaults to half the mean reference segment length."""
    k = window_size([reference]) if k is None else k
    errors, _, windows = window_errors(reference, hypothesis, k)
    return errors / windows if windows else 0.0


def window_diff(reference: Sequence[str], hypothesis: Sequence[str], k: int | None = None) -> float:
    """WindowDiff of one dialogue's tags; k as for `pk`."""
    k = window_size([reference]) if k is None else k
    _, errors, windows = window_errors(reference, hypothesis, k)
    return errors / windows if windows else 0.0


def segmentation_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    k: int | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Goal-start precision/recall/F1 (micro), Pk and WindowDiff (errors summed over all
    windows of all dialogues); dialogues are the resampling unit."""
    k = window_size(gold) if k is None else k
    rows = []
    for g, p in zip(gold, pred, strict=True):
        gs, ps = goal_starts(g), goal_starts(p)
        rows.append((len(gs & ps), len(ps - gs), len(gs - ps), *window_errors(g, p, k)))
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    stats: dict[str, Statistic] = {
        "boundary_precision": lambda s: _prf(s[:, 0], s[:, 1], s[:, 2])["precision"],
        "boundary_recall": lambda s: _prf(s[:, 0], s[:, 1], s[:, 2])["recall"],
        "boundary_f1": lambda s: _prf(s[:, 0], s[:, 1], s[:, 2])["f1"],
        "pk": lambda s: ratio(s[:, 3], s[:, 5]),
        "window_diff": lambda s: ratio(s[:, 4], s[:, 5]),
    }
    return estimates(table, stats, n_resamples, seed)
