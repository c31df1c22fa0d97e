"""Where SAFE-MED's neural cipher is trained, on what data, who holds which network, and
how much it leaks.

The threat model of ``update_encryption: {kind: neural}``:

* the *key authority* (the launcher, at enrolment) trains encoder, decoder and
  adversary (``iomt.fedlearn.neural_cipher``) on updates of the run's IDS model that it
  computes itself from synthetic rows: Gaussian features labelled by a random linear
  rule, never any HMU's data (``synthetic_updates``);
* every HMU gets the encoder, the same one (SAFE-MED's cipher has no key);
* the server gets the decoder: it reads every update, so screening and trust work;
* the link, the broker and a fog node see ciphertexts, and one number per update in
  clear: its largest absolute value;
* another HMU (an insider) holds the encoder: it can encode updates of its own and
  train a decoder on the pairs.  That is the *fresh attacker* whose leakage counts
  (``leakage_report``); the co-trained adversary is reported beside it.

With ``keyed: true`` encoder and decoder also take 64 key bits that the HMU and the
server derive per round from their QKD key (``LinkCipher.neural_key``, HKDF-SHA256).
The insider can still make pairs, under keys of its own choosing, but it does not
know the victim's key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.model import Weights, init_weights
from iomt.fedlearn.train import train_local
from iomt.fedlearn.updates import delta, flatten

ROWS_PER_UPDATE = 800


@dataclass
class EnrolledCipher:
    """The trained networks and how training went."""

    nets: nc.CipherNets
    training: nc.Training


def synthetic_updates(
    n_features: int, training: TrainingConfig, count: int, seed: int
) -> list[np.ndarray]:
    """``count`` local updates of the IDS model on synthetic rows, along a trajectory: the
    global model moves every ten updates, as in a run."""
    rng = np.random.default_rng([seed, 0xC1F])
    global_w = init_weights(n_features, training.hidden, seed)
    rule = rng.normal(size=n_features)
    updates: list[np.ndarray] = []
    for i in range(count):
        x = rng.normal(size=(ROWS_PER_UPDATE, n_features)).astype(np.float32)
        y = (x @ rule + rng.normal(size=ROWS_PER_UPDATE) > 1.0).astype(np.int64)
        local = train_local(global_w, x, y, training, seed * 100_003 + i).weights
        updates.append(flatten(delta(global_w, local)))
        if i % 10 == 9:
            global_w = local
    return updates


def blocks_of(updates: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([nc.to_blocks(u)[0] for u in updates])


def enrol_cipher(
    cfg: NeuralCipherConfig, n_features: int, training: TrainingConfig, seed: int
) -> EnrolledCipher:
    """Train the run's cipher (the key authority's job at enrolment)."""
    updates = synthetic_updates(n_features, training, cfg.train_updates, seed)
    nets, history = nc.train_cipher(cfg, blocks_of(updates), seed)
    return EnrolledCipher(nets, history)


def real_updates(
    global_w: Weights, parts: list[tuple[np.ndarray, np.ndarray]], training: TrainingConfig,
    seed: int,
) -> list[np.ndarray]:  # fmt: skip
    """One local update per share of real data, from ``global_w`` (the accounting side's
    ground truth: the launcher holds every share)."""
    return [
        flatten(delta(global_w, train_local(global_w, x, y, training, seed + i).weights))
        for i, (x, y) in enumerate(parts)
    ]


def leakage_report(
    enrolled: EnrolledCipher, insider: list[np.ndarray], victims: list[np.ndarray], seed: int
) -> dict[str, float | int]:
    """Leakage % of the victims' real updates to the co-trained adversary and to a fresh
    attacker trained on pairs the insider makes from its own updates with the encoder;
    and how much of them the server's decoder recovers."""
    nets, cfg = enrolled.nets, enrolled.nets.cfg
    rng = np.random.default_rng([seed, 0x1EA])
    own = blocks_of(insider)
    own_keys = nc.random_keys(len(own), cfg.key_bits, rng) if cfg.keyed else None
    attacker = nc.train_attacker(cfg, nets.encode(own, own_keys), own, seed)
    truth = blocks_of(victims)
    # each victim's update under a key of its own, which the insider does not hold
    keys = None
    if cfg.keyed:
        per_victim = nc.random_keys(len(victims), cfg.key_bits, rng)
        keys = np.repeat(per_victim, len(truth) // len(victims), axis=0)
    cipher = nets.encode(truth, keys)
    return {
        "keyed": cfg.keyed,
        "fresh_attacker": round(nc.leakage(nc.attack(attacker, cipher), truth), 2),
        "co_trained_adversary": round(nc.leakage(nc.attack(nets.adversary, cipher), truth), 2),
        "decoder_recovers": round(nc.leakage(nets.decode(cipher, keys), truth), 2),
        "insider_blocks": len(own),
        "victim_blocks": len(truth),
        "cipher_epochs": enrolled.training.epochs,
    }
