"""When each packet of a flow is sent: inter-packet times that reproduce Argus's timing.

Pure core (no I/O).  Argus's timing columns, as the WUSTL-EHMS-2020 rows show them
(checked numerically on the 16,318 rows, see ``iomt.traffic.features``):

* ``Dur`` (s) spans the first to the last packet of the flow;
* ``SIntPkt`` (ms) is the mean of the source side's ``n_s - 1`` inter-packet times, so
  ``SIntPkt * (n_s - 1)`` is the source span, which equals ``Dur`` on 99.7 % of rows;
  the destination span equals ``Dur`` on almost all the rest;
* ``SrcJitter`` (ms) is the population standard deviation of the same intervals
  (``DstJitter`` 99th percentile / ``DIntPkt`` is 1.000 on two intervals, the bound of
  a population deviation, where a sample deviation could reach 1.414).

``spread`` draws ``k`` non-negative intervals with a given mean and population
deviation: one long interval and ``k - 1`` equal short ones, which reaches every
feasible deviation (up to ``mean * sqrt(k - 1)``).  ``arrange`` places both sides on
one time line so the union spans ``Dur``, choosing which interval is the long one and
where the gateway's train starts so the TCP exchange stays causal (SYN-ACK after SYN,
CONNACK after the data, ...) wherever the numbers allow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """Soft order between two packets: ``dst[j]`` after (or before) ``src[i]``."""

    src: int
    dst: int
    dst_after: bool
    weight: int = 1


def spread(
    k: int, mean: float, std: float, long_at: int = -1, fixed: dict[int, float] | None = None
) -> list[float]:
    """``k`` intervals ``>= 0`` with mean ``mean`` and population deviation ``std``.

    Positions in ``fixed`` take their given value; the free ones share what is left of
    the sum and sum of squares, one long interval at ``long_at`` (among the free ones)
    and the others equal.  A deviation beyond the feasible bound is clamped to it.
    """
    if k <= 0:
        return []
    fixed = {i: v for i, v in fixed.items() if 0 <= i < k} if fixed else None
    if not fixed:  # the common case, without the bookkeeping below
        if k == 1:
            return [max(0.0, mean)]
        mean = max(0.0, mean)
        var = min(max(std * std, 0.0), mean * mean * (k - 1))
        root = math.sqrt(k - 1)
        dev = math.sqrt(var)
        short = max(0.0, mean - dev / root)
        out = [short] * k
        out[long_at % k] = mean + dev * root
        return out
    free = [i for i in range(k) if i not in fixed]
    out = [0.0] * k
    for i, v in fixed.items():
        out[i] = max(0.0, v)
    if not free:
        return out
    mean = max(0.0, mean)
    total = max(0.0, k * mean - sum(out[i] for i in fixed))
    squares = k * (std * std + mean * mean) - sum(out[i] ** 2 for i in fixed)
    m = len(free)
    free_mean = total / m
    if m == 1:
        out[free[0]] = total
        return out
    var = squares / m - free_mean * free_mean
    var = min(max(var, 0.0), free_mean * free_mean * (m - 1))
    dev = math.sqrt(var)
    long_value = free_mean + dev * math.sqrt(m - 1)
    short_value = max(0.0, free_mean - dev / math.sqrt(m - 1))
    long_index = free[long_at % m]
    for i in free:
        out[i] = long_value if i == long_index else short_value
    return out


def _cumulative(intervals: Sequence[float]) -> list[float]:
    t, out = 0.0, [0.0]
    for x in intervals:
        t += x
        out.append(t)
    return out


def _scale_to(intervals: list[float], span: float) -> list[float]:
    have = sum(intervals)
    if have <= 0:
        return intervals
    f = span / have
    return [x * f for x in intervals]


def _offset_window(src_span: float, dst_span: float, dur: float) -> tuple[float, float]:
    """Range of the destination train's start (source starts at 0) whose union is ``dur``."""
    if src_span >= dst_span:
        if dur - src_span <= 1e-9 * max(dur, 1.0):
            return 0.0, src_span - dst_span
        return dur - dst_span, dur - dst_span
    if dur - dst_span <= 1e-9 * max(dur, 1.0):
        return src_span - dst_span, 0.0
    return dur - dst_span, dur - dst_span


def _best_offset(
    src_t: list[float], dst_t: list[float], lo: float, hi: float, rules: Sequence[Rule]
) -> tuple[float, int]:
    """Offset in ``[lo, hi]`` satisfying the most rule weight (and that weight)."""
    if not dst_t:
        return lo, 0
    bounds = sorted(
        {src_t[r.src] - dst_t[r.dst] for r in rules if lo < src_t[r.src] - dst_t[r.dst] < hi}
    )
    points = [lo, *bounds, hi]
    candidates = [lo, hi] + [(a + b) / 2 for a, b in zip(points, points[1:], strict=False)]
    best, best_rank = lo, (-1, False, False)
    for o in candidates:
        score = 0
        for r in rules:
            gap = dst_t[r.dst] + o - src_t[r.src]
            if (gap >= 0) if r.dst_after else (gap < 0):
                score += r.weight
        # ties: the source's first packet first (it names the flow), then away from edges
        rank = (score, o >= 0, lo < o < hi)
        if rank > best_rank:
            best, best_rank = o, rank
    best_score = best_rank[0]
    return best, best_score


def arrange(
    n_src: int,
    n_dst: int,
    dur: float,
    src_mean: float,
    src_std: float,
    dst_mean: float,
    dst_std: float,
    rules: Sequence[Rule] = (),
    src_fixed: dict[int, float] | None = None,
) -> tuple[list[float], list[float]]:
    """Send times of the source and destination packets, the first source one at 0.

    All quantities share one unit (the synthesiser uses milliseconds).  Where the
    record is inconsistent (a side's span exceeds ``dur``) that side is shrunk to fit,
    so ``dur`` is always kept.
    """
    k_s, k_d = max(n_src - 1, 0), max(n_dst - 1, 0)
    dur = max(dur, 0.0)
    src_fixed = src_fixed or {}
    total_weight = sum(r.weight for r in rules)
    free_s = [i for i in range(k_s) if i not in src_fixed] or [0]
    # Try the long source interval from the last position back, the long destination
    # one from the first forward: the usual shape (wait for the close, fast replies).
    best: tuple[int, list[float], list[float]] | None = None
    for ls in reversed(range(len(free_s))):
        for ld in range(max(k_d, 1)):
            s_iv = spread(k_s, src_mean, src_std, ls, src_fixed)
            d_iv = spread(k_d, dst_mean, dst_std, ld)
            s_span, d_span = sum(s_iv), sum(d_iv)
            if s_span > dur:
                s_iv, s_span = _scale_to(s_iv, dur), dur
            if d_span > dur:
                d_iv, d_span = _scale_to(d_iv, dur), dur
            # A span within rounding of dur is stretched to it, so Dur comes out exact.
            if s_span >= d_span and dur - s_span <= 1e-6 * dur:
                s_iv, s_span = _scale_to(s_iv, dur), dur
            elif d_span > s_span and dur - d_span <= 1e-6 * dur:
                d_iv, d_span = _scale_to(d_iv, dur), dur
            src_t, dst_t = _cumulative(s_iv), _cumulative(d_iv) if n_dst else []
            lo, hi = _offset_window(s_span, d_span, dur)
            offset, score = _best_offset(src_t, dst_t, lo, hi, rules)
            if best is None or score > best[0]:
                best = (score, src_t, [t + offset for t in dst_t])
            if score == total_weight:
                break
        if best is not None and best[0] == total_weight:
            break
    assert best is not None
    return best[1][: max(n_src, 0)], best[2]
