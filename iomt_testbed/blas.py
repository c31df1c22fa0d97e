"""numpy's BLAS threads, held to one where the cores belong to training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS on one thread in this process for the duration.

    The agents' own numpy work (evaluation, aggregation, codecs) is small, and the cores
    belong to the training workers: OpenBLAS's spinning threads took 64 ms of CPU per
    round of 20 HMUs from them (bench/round_overhead.py, 1.46 -> 1.18 at K = 20, E = 2).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
