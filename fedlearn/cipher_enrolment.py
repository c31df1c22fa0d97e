"""Where SAFE-MED's neural cipher is trained, on what data, who holds which network, and
how much it leaks.

The threat model of ``update_encryption: {kind: neural}``:

* the *key authority* (the launcher, at enrolment) trains encoder, decoder and
  adversary (``iomt.fedlearn.neural_cipher``) on random Gaussian blocks
  (``neural_cipher.random_blocks``): no HMU's data, no model, nothing of the run;
* every HMU gets the encoder, the same one (SAFE-MED's cipher has no key);
* the server gets the decoder: it reads every update, so screening and trust work;
* the link, the broker and a fog node see ciphertexts, and in clear the RMS of each
  128-value block of each update;
* another HMU (an insider) holds the encoder: it can encode blocks of its own, as many
  as it likes, and train a decoder on the pairs.  That is the *fresh attacker* whose leakage counts
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
from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.updates import leakage


@dataclass
class EnrolledCipher:
    """The trained networks and how training went."""

    nets: nc.CipherNets
    training: nc.Training


def enrol_cipher(cfg: NeuralCipherConfig, seed: int) -> EnrolledCipher:
    """Train the run's cipher (the key authority's job at enrolment)."""
    blocks = nc.random_blocks(cfg.train_blocks, np.random.default_rng([seed, 0xC1F]))
    return EnrolledCipher(*nc.train_cipher(cfg, blocks, seed))


def saved_state(enrolled: EnrolledCipher) -> dict[str, object]:
    """What ``from_state`` rebuilds the cipher from (``torch.save``-able)."""
    nets, history = enrolled.nets, enrolled.training
    return {
        **{name: getattr(nets, name).state_dict() for name in ("encoder", "decoder", "adversary")},
        "reconstruction": history.reconstruction,
        "adversary_loss": history.adversary,
    }


def from_state(cfg: NeuralCipherConfig, seed: int, state: dict) -> EnrolledCipher:
    nets = nc.CipherNets.build(cfg, seed)
    for name in ("encoder", "decoder", "adversary"):
        getattr(nets, name).load_state_dict(state[name])
    return EnrolledCipher(nets, nc.Training(state["reconstruction"], state["adversary_loss"]))


def blocks_of(updates: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The normalised blocks of ``updates``, one after another, and their scales."""
    cut = [nc.to_blocks(u) for u in updates]
    return np.concatenate([b for b, _ in cut]), np.concatenate([s for _, s in cut])


def leakage_report(
    enrolled: EnrolledCipher,
    insider: list[np.ndarray],
    victims: list[np.ndarray],
    seed: int,
    sent: list[np.ndarray] | None = None,
) -> dict[str, float | int]:
    """Leakage % of the victims' real updates to the co-trained adversary and to a fresh
    attacker the insider trains on pairs it makes with the encoder (as many random
    blocks as the cipher was trained on, and its own real updates); and how much of them
    the server's decoder recovers.  ``sent`` is what the victims encoded (their updates
    after DP; by default the updates themselves).  Scored on whole updates against
    ``victims``: each reconstructed block is scaled back by the RMS sent beside it."""
    nets, cfg = enrolled.nets, enrolled.nets.cfg
    rng = np.random.default_rng([seed, 0x1EA])
    own = np.concatenate([nc.random_blocks(cfg.train_blocks, rng), blocks_of(insider)[0]])
    own_keys = nc.random_keys(len(own), cfg.key_bits, rng) if cfg.keyed else None
    attacker = nc.train_attacker(cfg, nets.encode(own, own_keys), own, seed)
    blocks, scales = blocks_of(sent if sent is not None else victims)
    truth = np.concatenate([b * r[:, None] for b, r in map(nc.to_blocks, victims)]) / nc.BLOCK_RMS
    # each victim's update under a key of its own, which the insider does not hold
    keys = None
    if cfg.keyed:
        per_victim = nc.random_keys(len(victims), cfg.key_bits, rng)
        keys = np.repeat(per_victim, len(blocks) // len(victims), axis=0)
    cipher = nets.encode(blocks, keys)

    def recovered(rebuilt: np.ndarray) -> float:
        return round(leakage(rebuilt * scales[:, None] / nc.BLOCK_RMS, truth), 2)

    return {
        "keyed": cfg.keyed,
        "fresh_attacker": recovered(nc.attack(attacker, cipher)),
        "co_trained_adversary": recovered(nc.attack(nets.adversary, cipher)),
        "decoder_recovers": recovered(nets.decode(cipher, keys)),
        "insider_blocks": len(own),
        "victim_blocks": len(blocks),
        "cipher_epochs": enrolled.training.epochs,
    }
