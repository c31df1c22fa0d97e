"""Membership inference: was this record in the training data of that model?

Threat model: the attacker queries a model it holds (the global model every HMU and the
server hold, or one HMU's model as the server reads it from the HMU's update) with a
record and its label, and sees the logit.  Evaluation is balanced: as many members
(records of the HMU's share) as non-members (held-out records of the same
distribution), so chance is 0.5.

* **Loss threshold** (Yeom et al. 2018): a record is a member when its loss is below
  the model's mean training loss, which the attacker is assumed to know.
* **Shadow models** (Shokri et al. 2017): the attacker trains shadow models like the
  target on data of its own from the same distribution, half of it in each shadow's
  training set and half out, and learns from them, per class, how the true-label
  log-confidence of members and non-members differ (a one-feature logistic regression).

Figures: balanced accuracy, ROC AUC of the membership score, and TPR at 1 % FPR (the
low-error regime the MIA literature reports since Carlini et al. 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from iomt.fedlearn.evaluate import roc_auc
from iomt.fedlearn.model import Weights, logits


def record_losses(weights: Weights, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of each record under ``weights``."""
    z = logits(weights, x).astype(np.float64)
    return np.logaddexp(0.0, z) - np.asarray(y, dtype=np.float64) * z


def _log_confidence(weights: Weights, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -record_losses(weights, x, y)  # log p(true label)


def tpr_at_fpr(scores: np.ndarray, members: np.ndarray, fpr: float = 0.01) -> float:
    """The share of members scored above the threshold that lets ``fpr`` of non-members
    through."""
    scores, members = np.asarray(scores, float), np.asarray(members, bool)
    threshold = np.quantile(scores[~members], 1 - fpr, method="higher")
    return float(np.mean(scores[members] > threshold))


@dataclass(frozen=True)
class AttackResult:
    """One attack's figures on a balanced member / non-member set."""

    balanced_accuracy: float
    auc: float
    tpr_at_1pct_fpr: float
    members: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "auc": round(self.auc, 4),
            "tpr_at_1pct_fpr": round(self.tpr_at_1pct_fpr, 4),
            "members": self.members,
        }


def _result(scores: np.ndarray, guesses: np.ndarray, members: np.ndarray) -> AttackResult:
    members = members.astype(bool)
    tpr = float(np.mean(guesses[members]))
    tnr = float(np.mean(~guesses[~members]))
    return AttackResult(
        (tpr + tnr) / 2, roc_auc(members.astype(int), scores), tpr_at_fpr(scores, members),
        int(members.sum()),
    )  # fmt: skip


def balanced(
    member: tuple[np.ndarray, np.ndarray],
    outside: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As many members as non-members (the smaller count of each): rows, labels, and
    which are members."""
    n = min(len(member[0]), len(outside[0]))
    a = rng.choice(len(member[0]), n, replace=False)
    b = rng.choice(len(outside[0]), n, replace=False)
    x = np.concatenate([member[0][a], outside[0][b]])
    y = np.concatenate([member[1][a], outside[1][b]])
    return x, y, np.concatenate([np.ones(n, bool), np.zeros(n, bool)])


def loss_threshold(
    weights: Weights, x: np.ndarray, y: np.ndarray, members: np.ndarray, train_loss: float
) -> AttackResult:
    """Yeom et al.: member when the record's loss is below ``train_loss``."""
    loss = record_losses(weights, x, y)
    return _result(-loss, loss < train_loss, members)


Trainer = Callable[[np.ndarray, np.ndarray, int], Weights]


def shadow_attack(
    weights: Weights,
    x: np.ndarray,
    y: np.ndarray,
    members: np.ndarray,
    shadow_data: tuple[np.ndarray, np.ndarray],
    train: Trainer,
    shadows: int = 4,
    seed: int = 0,
) -> AttackResult:
    """Shokri et al.: ``train(x, y, seed)`` builds each shadow model as the target was
    built; each trains on a random half of ``shadow_data``, the other half is out."""
    rng = np.random.default_rng(seed)
    sx, sy = shadow_data
    feats, labels, inside = [], [], []
    for s in range(shadows):
        chosen = np.zeros(len(sx), bool)
        chosen[rng.choice(len(sx), len(sx) // 2, replace=False)] = True
        shadow = train(sx[chosen], sy[chosen], seed * 1000 + s)
        feats.append(_log_confidence(shadow, sx, sy))
        labels.append(sy)
        inside.append(chosen)
    f, c, m = np.concatenate(feats), np.concatenate(labels), np.concatenate(inside)
    target = _log_confidence(weights, x, y)
    scores = np.zeros(len(x))
    for cls in np.unique(y):
        fit = c == cls
        if not fit.any():
            continue
        a, b = _logistic(f[fit], m[fit])
        scores[y == cls] = expit(a * target[y == cls] + b)
    return _result(scores, scores > 0.5, members)


def _logistic(f: np.ndarray, m: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """One-feature logistic regression by Newton's method (standardised feature)."""
    mu, sd = float(f.mean()), float(f.std()) or 1.0
    z = (f - mu) / sd
    t = m.astype(float)
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(steps):
        p = expit(design @ w)
        hess = design.T @ (design * (p * (1 - p) + 1e-9)[:, None]) + 1e-6 * np.eye(2)
        w -= np.linalg.solve(hess, design.T @ (p - t))
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)
