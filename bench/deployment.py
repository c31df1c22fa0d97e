"""SAFE-MED's deployment benchmark (its section 5.2, table T5): latency and peak memory
per module, on one core.

Each module is the function the agents call: the neural cipher (``encrypt_update`` at
the HMU, ``decrypt_update`` at the server), z-score screening (``screen``, the server,
over a round's updates), trust-weighted aggregation (``TrustAggregator.aggregate``)
and top-k compression with k = 0.1 (``Compressor.compress`` at the HMU,
``decompress`` at the server).  Two update sizes: one 128-value update (SAFE-MED's
setting: a 128-parameter model, one cipher block) and the real IDS update (6,465
parameters, 51 blocks).  Screening and trust work on a round of K updates (K = 10:
SAFE-MED's 10 % of 100 clients); their cost per update is the round's cost / K.

Latency: median of repeated calls (torch and BLAS on one thread).  Memory: peak of
Python allocations during one call (``tracemalloc``, numpy's buffers included; torch's
own allocator is not seen by it, so the cipher's figure also gives the RSS growth of
the process over its first call).  SAFE-MED claims 0.42 / 0.18 / 0.05 / 0.37 ms per
module, 1.02 ms and 47.2 KB in all.

Run: ``.venv/bin/python -m bench.deployment [--repeats 300]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import psutil
import torch
from threadpoolctl import threadpool_limits

from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.compression import Compressor, decompress
from iomt.fedlearn.defence_config import CompressionConfig, NeuralCipherConfig, ScreeningConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.screening import screen
from iomt.fedlearn.strategy import TrustAggregator
from iomt.fedlearn.updates import delta, flatten

K = 10


def measure(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median latency (ms) and tracemalloc peak (KB) of ``call``."""
    call()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times) * 1e3, peak / 1024


def modules(global_w: dict, repeats: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(0)
    locals_ = [
        {k: v + rng.normal(0, 0.01, v.shape).astype(np.float32) for k, v in global_w.items()}
        for _ in range(K)
    ]
    nets = nc.CipherNets.build(NeuralCipherConfig(), seed=0)
    vectors = {f"h{i}": flatten(delta(global_w, w)) for i, w in enumerate(locals_)}
    updates = {f"h{i}": (w, 100) for i, w in enumerate(locals_)}
    screening = ScreeningConfig(enabled=True)
    compressor = Compressor(CompressionConfig(kind="topk", k=0.1))
    trust = TrustAggregator()
    return {
        "neural cipher (encode + decode)": measure(
            lambda: nc.decrypt_update(
                nets.decoder, nc.encrypt_update(nets.encoder, global_w, locals_[0]), global_w
            ),
            repeats,
        ),  # fmt: skip
        "z-score screening": measure(lambda: screen(vectors, screening), repeats),
        "trust-weighted aggregation": measure(
            lambda: trust.aggregate(global_w, updates, 1), repeats
        ),
        "top-k, k = 0.1 (compress + decompress)": measure(
            lambda: decompress(compressor.compress(global_w, locals_[0]), global_w), repeats
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rss = psutil.Process().memory_info().rss
    sizes = {
        "one 128-value update": {"w": np.zeros(nc.BLOCK, np.float32)},
        "one IDS update (6,465 parameters)": init_weights(34, (64, 64), 0),
    }
    with threadpool_limits(1):
        for label, global_w in sizes.items():
            figures = modules(global_w, args.repeats)
            print(f"\n{label}, one core; screening and trust over a round of K = {K}:")
            print("| module | ms per call | ms per update | peak KB (tracemalloc) |")
            print("|---|---|---|---|")
            total_ms = total_kb = 0.0
            for name, (ms, kb) in figures.items():
                per_update = ms / K if name in ("z-score screening",
                                               "trust-weighted aggregation") else ms  # fmt: skip
                total_ms += per_update
                total_kb = max(total_kb, kb)
                print(f"| {name} | {ms:.3f} | {per_update:.3f} | {kb:.1f} |")
            print(f"| total per update | | {total_ms:.3f} | {total_kb:.1f} (largest module) |")
    grown = (psutil.Process().memory_info().rss - rss) / 2**20
    print(f"\nprocess RSS grew {grown:.1f} MB over the benchmark (torch's allocator, caches)")
    print("SAFE-MED claims 0.42 / 0.18 / 0.05 / 0.37 ms, 1.02 ms and 47.2 KB in all")


if __name__ == "__main__":
    main()
