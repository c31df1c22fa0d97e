"""numpy's BLAS and torch's threads, held to one where the cores belong to training."""

from __future__ import annotations

import contextlib
import sys
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


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """torch's intra-op threads held to one in this process for the duration, if it has
    loaded torch (a server decoding neural ciphertext while the workers train).

    A 128-block decode takes 0.5 ms alone; on two threads fighting the training workers
    for two cores it took 25 ms, 20 of them a round (0.19 s of a 1.12 s round).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
