"""What the server does when a round closes: aggregate, evaluate, and write the round down.

``close_round`` is plain computation (it runs in a worker thread, off the network
loop); the record it returns is one entry of ``results.json``'s ``rounds``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from iomt.fedlearn.evaluate import Evaluation
from iomt.fedlearn.model import Weights
from iomt.fedlearn.strategy import AggregationResult, Aggregator
from iomt.monitoring import measurements
from iomt.monitoring.point import Point
from iomt.server_agent.coordinator import Aggregate
from iomt.wire.messages import ModelUpdate

Evaluate = Callable[[Weights], Evaluation]


@dataclass(frozen=True)
class ClosedRound:
    """The new global model, what the defence concluded and how the model scores."""

    weights: Weights
    result: AggregationResult
    evaluation: Evaluation


class ModelHistory:
    """The latest global models by version.  An asynchronous update is decoded against
    the model it was trained from and rebased from it; ``depth`` versions back are kept
    (the staleness bound), and one more for an update buffered while the model moved."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._by_version: dict[int, Weights] = {}

    def add(self, version: int, weights: Weights) -> None:
        self._by_version[version] = weights
        for old in [v for v in self._by_version if v < version - self.depth - 1]:
            del self._by_version[old]

    def get(self, version: int, default: Weights) -> Weights:
        return self._by_version.get(version, default)


def rebase(local: Weights, trained_from: Weights, current: Weights) -> Weights:
    """``local``'s change from the model it was trained from, applied to ``current``."""
    return {k: current[k] + (local[k] - trained_from[k]) for k in current}


def close_round(
    aggregator: Aggregator,
    previous: Weights,
    agg: Aggregate,
    evaluate: Evaluate,
    history: ModelHistory | None = None,
    server_lr: float = 1.0,
) -> ClosedRound:
    """Aggregate ``agg``'s updates (``HMU -> (weights, ModelUpdate)``) onto ``previous``.

    An asynchronous update trained from an older version is rebased onto ``previous``
    (``history`` holds the model it started from) and weighs its samples times its
    staleness weight; the model then moves ``server_lr`` of the way to the aggregate."""
    updates = {}
    for hmu, (local, message) in sorted(agg.updates.items()):
        base = agg.bases.get(hmu, agg.version)
        if base != agg.version:
            assert history is not None, "an asynchronous aggregation needs the model history"
            local = rebase(local, history.get(base, previous), previous)
        updates[hmu] = (local, message.num_samples * agg.scale.get(hmu, 1.0))
    result = aggregator.aggregate(previous, updates, agg.round)
    if server_lr != 1.0:  # a step of server_lr along the aggregate's change
        stepped = {k: previous[k] + server_lr * (result.weights[k] - previous[k]) for k in previous}
        result = dataclasses.replace(result, weights=stepped)
    return ClosedRound(result.weights, result, evaluate(result.weights))


def decrypted_round(weights: Weights, evaluate: Evaluate) -> ClosedRound:
    """A round of encrypted updates, its aggregate decrypted: no defence could read them."""
    return ClosedRound(weights, AggregationResult(weights), evaluate(weights))


def round_record(
    agg: Aggregate, closed: ClosedRound, *, duration_s: float, bytes_up: int, bytes_down: int
) -> dict[str, Any]:
    """The round's entry in ``results.json``."""
    ev = closed.evaluation
    return {
        "round": agg.round,
        "version": agg.version + 1,
        "selected": list(agg.selected),
        "received": sorted(agg.updates),
        "timed_out": agg.timed_out,
        "accuracy": ev.accuracy,
        "precision": ev.precision,
        "recall": ev.recall,
        "f1": ev.f1,
        "loss": ev.loss,
        "duration_s": round(duration_s, 4),
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "flagged": sorted(closed.result.flagged),
        "trust": closed.result.trust,
        **({"staleness": {h: agg.version - v for h, v in agg.bases.items()}} if agg.bases else {}),
    }


def training_points(agg: Aggregate, closed: ClosedRound, previous: Weights) -> list[Point]:
    """One ``hmu_training`` measurement per update received this round."""
    points = []
    for hmu, (local, message) in sorted(agg.updates.items()):
        assert isinstance(message, ModelUpdate)
        encrypted = not isinstance(local, dict)  # ciphertexts: the server cannot measure it
        points.append(
            measurements.hmu_training(
                hmu,
                agg.round,
                loss=message.loss,
                samples=message.num_samples,
                train_s=message.train_seconds,
                update_norm=None if encrypted else _distance(local, previous),
                trust=closed.result.trust.get(hmu),
                flagged=hmu in closed.result.flagged,
            )
        )
    return points


def _distance(local: Weights, reference: Weights) -> float:
    """L2 norm of ``local - reference`` over every tensor."""
    return float(np.sqrt(sum(float(np.sum((local[k] - reference[k]) ** 2)) for k in reference)))
