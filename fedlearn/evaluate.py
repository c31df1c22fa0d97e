"""Held-out evaluation of the IDS: FedQ's Table I metrics and a few more, pure numpy.

The attack class (label 1) is the positive class.  From the confusion matrix
``[[tn, fp], [fn, tp]]``: precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``,
F1 their harmonic mean, FPR ``fp / (fp + tn)``; macro-F1 averages the F1 of the attack
class and of the normal class.  A ratio whose denominator is 0 is reported as 0.

ROC AUC is the Mann-Whitney statistic (Hanley and McNeil, 1982):
``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with ``R_pos`` the sum of the
attack rows' ranks among all scores, ties given their average rank.

``detection_time_ms`` is the mean time to classify one flow: the wall time of one
batched forward pass over all test rows (numpy, the thread that calls), divided by
the number of rows.  It is a throughput figure for this machine, not a latency bound.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iomt.fedlearn.model import Weights, check_weights, layer_shapes, logits


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one labelled table."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    macro_f1: float
    fpr: float
    roc_auc: float
    loss: float
    detection_time_ms: float
    confusion: tuple[tuple[int, int], tuple[int, int]]
    """``((tn, fp), (fn, tp))``."""
    n: int
    threshold: float = 0.5
    """A flow is an attack when its attack probability reaches this."""

    def as_dict(self) -> dict[str, float | int | list[list[int]]]:
        """Plain values for JSON and metrics sinks."""
        out: dict[str, float | int | list[list[int]]] = {
            name: getattr(self, name)
            for name in (
                "accuracy", "precision", "recall", "f1", "macro_f1",
                "fpr", "roc_auc", "loss", "detection_time_ms", "n", "threshold",
            )
        }  # fmt: skip
        out["confusion"] = [list(row) for row in self.confusion]
        return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def rank_average(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``scores``, tied values sharing the mean of their ranks."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # start of each run of equal values, and the run each sorted position belongs to
    new_run = np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1]))
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], len(scores))  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = mean_rank[run]
    return ranks


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for labels ``y``; NaN if a class is absent."""
    y = np.asarray(y) == 1
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r_pos = rank_average(scores)[y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(
    y: np.ndarray, predicted: np.ndarray
) -> tuple[dict[str, float], tuple[tuple[int, int], tuple[int, int]]]:
    """Accuracy, precision, recall, f1, macro_f1, fpr and the confusion matrix."""
    y = np.asarray(y) == 1
    p = np.asarray(predicted) == 1
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    tp = int((y & p).sum())
    tn = int((~y & ~p).sum())
    fp = int((~y & p).sum())
    fn = int((y & ~p).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _f1(precision, recall)
    f1_normal = _f1(_ratio(tn, tn + fn), _ratio(tn, tn + fp))
    metrics = {
        "accuracy": _ratio(tp + tn, len(y)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": (f1 + f1_normal) / 2.0,
        "fpr": _ratio(fp, fp + tn),
    }
    return metrics, ((tn, fp), (fn, tp))


def log_loss(y: np.ndarray, logit: np.ndarray) -> float:
    """Mean binary cross-entropy of logits, computed stably as softplus terms."""
    y = (np.asarray(y) == 1).astype(np.float64)
    z = np.asarray(logit, dtype=np.float64)
    # -log sigmoid(z) = softplus(-z); -log(1 - sigmoid(z)) = softplus(z)
    return float(np.mean(y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z)))


def evaluate(
    weights: Weights,
    X: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int],
    threshold: float = 0.5,
) -> Evaluation:
    """Score ``weights`` on rows ``X`` (already scaled) with labels ``y``.

    A flow is called an attack when ``sigmoid(logit) >= threshold``.  Raises
    ``ValueError`` if ``weights`` is not an MLP with these ``hidden`` sizes.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) == 0 or y.shape != (len(X),):
        raise ValueError(f"need non-empty X (n, d) and y (n,), got {X.shape} and {y.shape}")
    check_weights(weights, layer_shapes(X.shape[1], hidden))
    started = time.perf_counter()
    z = logits(weights, X)
    seconds = time.perf_counter() - started
    cut = np.log(threshold / (1.0 - threshold)) if 0.0 < threshold < 1.0 else None
    if cut is None:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    metrics, confusion = binary_metrics(y, (z >= cut).astype(np.int64))
    return Evaluation(
        **metrics,
        roc_auc=roc_auc(y, z),
        loss=log_loss(y, z),
        detection_time_ms=1000.0 * seconds / len(X),
        confusion=confusion,
        n=len(X),
        threshold=threshold,
    )


def best_threshold(weights: Weights, X: np.ndarray, y: np.ndarray, hidden: Sequence[int]) -> float:
    """The alarm threshold with the highest macro-F1 on ``(X, y)`` (a validation split).

    Candidates are the midpoints between consecutive distinct attack probabilities of
    the rows, so every distinct split of the rows is tried once; ties go to the
    threshold closest to 0.5. Vectorised: one sort and cumulative counts.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    check_weights(weights, layer_shapes(X.shape[1], hidden))
    p = 1.0 / (1.0 + np.exp(-logits(weights, X).astype(np.float64)))
    order = np.argsort(-p, kind="mergesort")
    p, attack = p[order], (np.asarray(y)[order] == 1)
    last = np.flatnonzero(np.append(p[1:] != p[:-1], True))  # calling rows 0..i attacks
    tp = np.cumsum(attack)[last]
    fp = (last + 1) - tp
    fn, tn = attack.sum() - tp, (~attack).sum() - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_attack = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        f1_normal = np.nan_to_num(2 * tn / (2 * tn + fn + fp))
    macro = (f1_attack + f1_normal) / 2
    below = np.append(p[last[1:]], 0.0)  # the next distinct probability down
    cuts = np.clip((p[last] + below) / 2, 1e-6, 1 - 1e-6)
    best = np.flatnonzero(macro >= macro.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])
