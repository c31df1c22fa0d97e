"""FL + HE (CKKS) against plaintext FedAvg: per-round crypto time, bytes, accuracy, wall time.

1. Per round at FedQ's K = 20, with the IDS model (34 features, 64-64, 6,465
   parameters), the functions the agents call (``iomt.fedlearn.ckks``): 20 HMUs
   encrypting their update, the server's weighted sum of the 20 ciphertext sets, one
   HMU decrypting the aggregate; beside it the plaintext FedAvg aggregation the server
   runs otherwise (``iomt.fedlearn.strategy``). Ratio measured in this one run.
2. ``scenarios/fedavg.yaml`` (20 HMUs, K = 20, 30 rounds, E = 2 local epochs) over the
   launcher's Mosquitto with ``update_encryption.kind`` ``ckks`` and ``none``, same
   seed: accuracy of each (target: within 0.1 point), MB each HMU published and received
   per round (measured where the bytes leave and enter it), wall time and its ratio.

Run: ``.venv/bin/python -m bench.ckks_cost [--seed 1] [--rounds 30]``
"""

from __future__ import annotations

import time

import numpy as np

from bench.variants import fedq_variants, main
from iomt.fedlearn import ckks
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.strategy import FedAvgAggregator

K = 20


def per_round(repeats: int = 5) -> None:
    rng = np.random.default_rng(0)
    global_w = init_weights(34, (64, 64), 0)
    locals_ = [
        {k: v + rng.normal(0, 0.02, v.shape).astype(np.float32) for k, v in global_w.items()}
        for _ in range(K)
    ]
    context = ckks.new_context()
    hmu = ckks.load_context(ckks.secret_bytes(context))
    server = ckks.load_context(ckks.public_bytes(context))
    enc = agg = dec = plain = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        encrypted = [list(ckks.encrypt_update(hmu, global_w, w).values()) for w in locals_]
        enc += time.perf_counter() - t
        t = time.perf_counter()
        total = ckks.weighted_sum(server, [(parts, 1 / K) for parts in encrypted])
        agg += time.perf_counter() - t
        t = time.perf_counter()
        ckks.decrypt_delta(hmu, total, global_w)
        dec += time.perf_counter() - t
        t = time.perf_counter()
        FedAvgAggregator().aggregate(
            global_w, {f"h{i}": (w, 100) for i, w in enumerate(locals_)}, 1
        )
        plain += time.perf_counter() - t
    size = sum(map(len, encrypted[0]))
    crypto = (enc / K + agg + dec) / repeats
    params = sum(v.size for v in global_w.values())
    print(f"per round, K = {K}, {params:,} parameters ({repeats} repeats):")
    ms = 1e3 / repeats
    print(f"  encrypt one update {enc / K * ms:.1f} ms (each HMU); server weighted sum of {K}"
          f" {agg * ms:.1f} ms; decrypt {dec * ms:.1f} ms")  # fmt: skip
    ratio = crypto / (plain / repeats)
    print(f"  plaintext FedAvg of {K}: {plain * ms:.2f} ms; CKKS on the critical path"
          f" (one encrypt + sum + decrypt) / plaintext: {ratio:.0f}x")  # fmt: skip
    print(
        f"  one encrypted update: {size / 1e6:.3f} MB, {size / (params * 4):.1f}x its float32 size"
    )


def runs(seed: int, rounds: int) -> None:
    out = fedq_variants(
        seed, rounds, {k: [f"update_encryption.kind={k}"] for k in ("none", "ckks")}
    )
    print(f"fedavg.yaml over MQTT, K = 20, E = 2, {rounds} rounds, seed {seed}:")
    for kind, r in out.items():
        up, down = r["communication"].values()
        wall, acc = r["wall_time_s"], r["final"]["accuracy"]
        print(f"  {kind:5s} accuracy {acc:.4f}  up {up:.4f} MB/HMU/round  down {down:.4f}"
              f"  wall {wall:.1f} s  completed {r['completed']}")  # fmt: skip
    gap = abs(out["ckks"]["final"]["accuracy"] - out["none"]["final"]["accuracy"]) * 100
    ratio = out["ckks"]["wall_time_s"] / out["none"]["wall_time_s"]
    print(f"  accuracy gap {gap:.3f} points (target <= 0.1); wall time ratio {ratio:.2f}")


if __name__ == "__main__":
    main(__doc__, per_round, runs)
