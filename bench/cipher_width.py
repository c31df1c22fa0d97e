"""The keyed neural cipher's hidden layers: what the server's decoder keeps against what
a fresh insider attacker recovers.

For each ``update_encryption.neural.hidden`` the cipher is trained as at enrolment
(``iomt.fedlearn.neural_cipher.train_cipher``, keyed, 20,000 random blocks); the
insider, who holds the encoder but not the victims' keys, trains a fresh attacker
(``train_attacker``) on 20,000 blocks it encodes under keys of its own; both are
scored on 2,000 fresh blocks of 20 victims, each under a key of its own, as the share
of variance recovered (``leakage``).  Random blocks stand in for real updates: the
run's ``results.json → leakage`` scores real ones.  About 1.5 min per setting.

Run: ``.venv/bin/python -m bench.cipher_width [--seed 1] [--hidden 256,128,64 256,256]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.updates import leakage

SETTINGS = ("256,128,64", "256,128,96", "256,128", "256,256")


def measure(hidden: tuple[int, ...], seed: int) -> tuple[float, float, int, float]:
    """(decoder %, fresh attacker %, cipher epochs, seconds) for one setting."""
    started = time.perf_counter()
    cfg = NeuralCipherConfig(keyed=True, hidden=hidden)
    rng = np.random.default_rng(seed)
    nets, training = nc.train_cipher(cfg, nc.random_blocks(cfg.train_blocks, rng), seed)
    own = nc.random_blocks(cfg.train_blocks, rng)
    attacker = nc.train_attacker(
        cfg, nets.encode(own, nc.random_keys(len(own), cfg.key_bits, rng)), own, seed
    )
    victims = nc.random_blocks(2000, rng)
    keys = np.repeat(nc.random_keys(20, cfg.key_bits, rng), 100, axis=0)
    cipher = nets.encode(victims, keys)
    return (
        leakage(nets.decode(cipher, keys), victims),
        leakage(nc.attack(attacker, cipher), victims),
        training.epochs,
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hidden", nargs="+", default=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"keyed cipher, 64 key bits, random blocks, seed {args.seed}")
    print("| hidden | server's decoder | fresh insider attacker | cipher epochs | seconds |")
    print("|---|---|---|---|---|")
    for text in args.hidden:
        hidden = tuple(int(h) for h in text.split(","))
        decoder, attacker, epochs, took = measure(hidden, args.seed)
        print(f"| {text} | {decoder:.1f} % | {attacker:.1f} % | {epochs} | {took:.0f} |")


if __name__ == "__main__":
    main()
