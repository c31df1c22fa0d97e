"""SAFE-MED's neural cipher in runs: accuracy against plaintext, leakage, encode/decode time.

1. Time, on one core (torch on one thread), of the functions the agents call
   (``iomt.fedlearn.neural_cipher``): encoding and decoding one 128-value block, and a
   whole IDS update (6,465 parameters, 51 blocks). Targets: <= 0.42 ms per block,
   <= 2 ms per update.
2. ``scenarios/fedavg.yaml`` (20 HMUs, K = 20, 30 rounds, E = 2) over the launcher's
   Mosquitto with ``update_encryption.kind`` ``none`` and ``neural`` (keyless with and
   without adversarial training, and keyed by each HMU's QKD key, read as decoded and
   with the decoder's gain divided out), same seed:
   accuracy (target: within 1 point of plaintext) and ``results.json``'s ``leakage``:
   what a fresh attacker trained by an insider HMU, the co-trained adversary and the
   server's decoder recover of the other HMUs' real updates
   (``iomt.fedlearn.cipher_enrolment``). Target for the keyed cipher: <= 15 %.

Run: ``.venv/bin/python -m bench.neural_cipher [--seed 1] [--rounds 30] [--skip-runs]``
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.variants import fedq_variants, main
from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.model import init_weights


def timing(repeats: int = 200) -> None:
    torch.set_num_threads(1)
    nets = nc.CipherNets.build(NeuralCipherConfig(), seed=0)
    global_w = init_weights(34, (64, 64), 0)  # the IDS model: 34 features, 6,465 parameters
    local = {k: v + 0.01 for k, v in global_w.items()}
    block = np.random.default_rng(0).uniform(-1, 1, (1, nc.BLOCK)).astype(np.float32)
    nets.decode(nets.encode(block))
    t = time.perf_counter()
    for _ in range(repeats):
        nets.decode(nets.encode(block))
    per_block = (time.perf_counter() - t) / repeats
    t = time.perf_counter()
    for _ in range(repeats // 4):
        sent = nc.encrypt_update(nets.encoder, global_w, local)
        nc.decrypt_update(nets.decoder, sent, global_w)
    per_update = (time.perf_counter() - t) / (repeats // 4)
    print("encode + decode on one core (torch, 1 thread):")
    print(f"  one 128-value block: {per_block * 1e3:.3f} ms (target <= 0.42 ms)")
    params = sum(v.size for v in global_w.values())
    print(f"  one IDS update ({params:,} parameters, {len(sent['cipher'])} blocks): "
          f"{per_update * 1e3:.2f} ms (target <= 2 ms)")  # fmt: skip


def runs(seed: int, rounds: int) -> None:
    variants = {
        "plaintext": ["update_encryption.kind=none"],
        "neural, adversarial": ["update_encryption.kind=neural"],
        "NeuralCrypto-FL": ["update_encryption.kind=neural",
                            "update_encryption.neural.adversarial=false"],
        "neural, keyed by QKD": ["update_encryption.kind=neural",
                                 "update_encryption.neural.keyed=true", "qkd.enabled=true"],
        "keyed, gain out": ["update_encryption.kind=neural", "update_encryption.neural.keyed=true",
                            "update_encryption.neural.unbiased=true", "qkd.enabled=true"],
    }  # fmt: skip
    out = fedq_variants(seed, rounds, variants)
    print(f"fedavg.yaml over MQTT, K = 20, E = 2, {rounds} rounds, seed {seed}:")
    base = out["plaintext"]["final"]["accuracy"]
    for name, r in out.items():
        acc = r["final"]["accuracy"]
        line = f"  {name:20s} accuracy {acc:.4f} ({(acc - base) * 100:+.2f} points)"
        leak = r.get("leakage", {})
        if "fresh_attacker" in leak:  # a neural cipher's report
            fresh, adv = leak["fresh_attacker"], leak["co_trained_adversary"]
            line += (f"; leakage: fresh attacker {fresh:.1f} %, co-trained adversary {adv:.1f} %,"
                     f" decoder recovers {leak['decoder_recovers']:.1f} %"
                     f" (gain {leak['decoder_gain']:.2f};"
                     f" {leak['cipher_epochs']} epochs)")  # fmt: skip
        print(line + f"; wall {r['wall_time_s']:.1f} s")


if __name__ == "__main__":
    main(__doc__, timing, runs)
