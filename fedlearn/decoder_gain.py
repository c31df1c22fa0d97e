"""The gain of a neural cipher's decoder, and an update read without it.

The decoder is trained to minimise the squared error of each block it rebuilds, so it
returns the expected block given the ciphertext: where the ciphertext carries little
of a block, it answers near zero. Its output is the true block shrunk by a gain ``g``
(the least-squares slope of rebuilt on true values, about the share of a block's
variance it recovers: 0.30-0.44 for the keyed cipher, 0.11-0.16 for SAFE-MED's at
compression 0.25) plus an error. That is the best reading of one update, but the
server averages twenty: the averaged step is ``g`` times the true one, as if the
server moved only ``g`` of the way to the aggregate each round.

Dividing the decoded delta by ``g`` makes each reading unbiased, and its error ``1 / g``
times larger. The errors cancel in the average only where the HMUs' readings err
differently: under a key per HMU and round, each key loses another part of a block. A
keyless cipher loses the same part of every update, which dividing would amplify, so
``unbiased`` needs ``keyed``. The key authority measures ``g`` at enrolment, on random
blocks of the distribution the cipher was trained on, and gives it to the server with
the decoder. Nothing about the cipher's secrecy changes: what an attacker recovers is
measured on the decoder's own output (``cipher_enrolment.leakage_report``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.model import Weights

GAIN_BLOCKS = 4096
"""Random blocks the gain is measured on (its standard error is then below 0.005)."""


def decoder_gain(nets: nc.CipherNets, seed: int) -> float:
    """The least-squares slope of decoded on true values over ``GAIN_BLOCKS`` random
    blocks, each keyed cipher block under a key of its own; in ``(0, 1]``."""
    rng = np.random.default_rng([seed, 0x6A1])
    blocks = nc.random_blocks(GAIN_BLOCKS, rng)
    keys = nc.random_keys(len(blocks), nets.cfg.key_bits, rng) if nets.cfg.keyed else None
    rebuilt = nets.decode(nets.encode(blocks, keys), keys).astype(np.float64)
    truth = blocks.astype(np.float64)
    slope = float(np.sum(rebuilt * truth) / np.sum(truth * truth))
    return min(1.0, max(slope, 1e-3))


def without_gain(decoded: Weights, global_w: Weights, gain: float) -> Weights:
    """``decoded`` (local weights as the decoder read them) with its delta from
    ``global_w`` divided by ``gain``."""
    return {k: global_w[k] + (decoded[k] - global_w[k]) / gain for k in global_w}


def unbiased_reader(
    read: Callable[[Mapping[str, Any], Weights], Weights], gain: float
) -> Callable[[Mapping[str, Any], Weights], Weights]:
    """``read`` (ciphertext tensors and global weights to local weights), its delta
    divided by ``gain``; ``read`` itself at a gain of 1."""
    if gain == 1.0:
        return read
    return lambda tensors, global_w: without_gain(read(tensors, global_w), global_w, gain)
