"""B92 over a range of one setting: simulated sessions beside the link's exact law.

Each point runs one whole session (``simulation.simulate``: Alice, the channel with
its eavesdropper, Bob, sifting and the disclosed sample) and reports

* the conclusive rate over every qubit sent, with its two-sided 95 % Clopper-Pearson
  interval (conclusive outcomes of ``qubits`` trials);
* the QBER the server estimates from the disclosed sample, with its interval (errors
  of the sample), or None when no sample was disclosed;
* the theory: ``channel.expected_rates`` of the same link and eavesdropper, the exact
  per-qubit law the sampler draws from.  On an ideal link it is B92's textbook figures:
  a conclusive rate of 1/4 and no errors without Eve; 3/8 and a QBER of 1/3 under
  intercept-resend on every qubit (tested in ``tests/qkd_channel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from scipy.stats import beta

from iomt.errors import UsageError
from iomt.qkd_channel.channel import expected_rates
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.eve import make_eavesdropper
from iomt.qkd_channel.simulation import simulated_session

Axis = Literal["fraction", "length_km"]
LEVEL = 0.95
MAX_POINTS = 200


@dataclass(frozen=True)
class SweepPoint:
    x: float
    conclusive_rate: float
    conclusive_low: float
    conclusive_high: float
    qber: float | None
    qber_low: float | None
    qber_high: float | None
    theory_conclusive: float
    theory_qber: float
    aborted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_range(text: str, option: str) -> list[float]:
    """``start:stop:step`` (both ends included) or one value, as a list of floats."""
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"{option} {text}: expected START:STOP:STEP or one number") from None
    if len(numbers) == 1:
        return numbers
    if len(numbers) != 3 or numbers[2] <= 0 or numbers[1] < numbers[0]:
        raise UsageError(f"{option} {text}: expected START:STOP:STEP with STEP > 0, STOP >= START")
    start, stop, step = numbers
    count = int(round((stop - start) / step, 9)) + 1
    if count > MAX_POINTS:
        raise UsageError(f"{option} {text}: {count} points; at most {MAX_POINTS}")
    return [round(start + i * step, 12) for i in range(count)]


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Two-sided exact binomial interval for ``successes`` of ``trials``."""
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = (
        1.0
        if successes >= trials
        else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    )
    return low, high


def sweep(
    config: QkdConfig,
    axis: Axis,
    values: Sequence[float],
    *,
    eve_model: str | None,
    eve_fraction: float,
    qubits: int,
    seed: int,
) -> list[SweepPoint]:
    """One session per value of ``axis`` (Eve's fraction, or the fibre's length)."""
    if axis == "fraction" and eve_model is None:
        raise UsageError("a sweep over --fraction needs --eve")
    points = []
    for i, x in enumerate(values):
        fraction = x if axis == "fraction" else eve_fraction
        length = x if axis == "length_km" else config.fibre_km
        cfg = config.model_copy(update={"fibre_km": length})
        eve = make_eavesdropper(eve_model, fraction) if eve_model else None
        theory = expected_rates(cfg.link(), eve)
        session = simulated_session(qubits, eve_model, fraction, length, seed=seed + i, config=cfg)
        stats, aborted = session.bob.stats, session.bob.aborted
        conclusive = clopper_pearson(stats.conclusive, stats.qubits)
        sampled = stats.sample_size or 0
        qber = clopper_pearson(stats.sample_errors or 0, sampled) if sampled else (None, None)
        points.append(
            SweepPoint(
                x=x,
                conclusive_rate=stats.conclusive / stats.qubits,
                conclusive_low=conclusive[0],
                conclusive_high=conclusive[1],
                qber=stats.qber if sampled else None,
                qber_low=qber[0],
                qber_high=qber[1],
                theory_conclusive=float(theory.conclusive),
                theory_qber=float(theory.qber),
                aborted=aborted,
            )
        )
    return points
