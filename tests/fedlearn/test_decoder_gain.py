"""The neural decoder's gain: measured, divided out of an update, and when that helps.

A known-answer code stands in for a trained cipher (the maths is the test, not the
training): under each key it keeps ``KEPT`` of a block's 128 coordinates, chosen and
signed by the key, and the decoder puts them back and answers zero elsewhere: the
best guess for what it lost, so its gain is ``KEPT / 128``. Keyless, every HMU's block
loses the same coordinates.
"""

import numpy as np
import pytest

from iomt.fedlearn import neural_cipher as nc
from iomt.fedlearn.decoder_gain import decoder_gain, unbiased_reader, without_gain
from iomt.fedlearn.defence_config import NeuralCipherConfig
from iomt.fedlearn.model import init_weights

KEPT = 48


class CoordinateCode:
    """Keep ``KEPT`` coordinates of each block, chosen and signed by its key."""

    def __init__(self, keyed: bool) -> None:
        self.cfg = NeuralCipherConfig(keyed=keyed, unbiased=keyed)

    def _map(self, key: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        seed = 0 if key is None else int.from_bytes(np.packbits(key > 0).tobytes(), "big")
        rng = np.random.default_rng(seed)
        return rng.permutation(nc.BLOCK)[:KEPT], rng.choice([-1.0, 1.0], KEPT)

    def encode(self, blocks: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        rows = [
            self._map(None if keys is None else k)
            for k in (keys if keys is not None else [None] * len(blocks))
        ]
        return np.stack([b[i] * s for b, (i, s) in zip(blocks, rows, strict=True)])

    def decode(self, cipher: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((len(cipher), nc.BLOCK))
        for row, c in enumerate(cipher):
            i, s = self._map(None if keys is None else keys[row])
            out[row, i] = c * s
        return out


def mean_errors(code: CoordinateCode, gain: float) -> tuple[float, float]:
    """Squared error of the average of 20 HMUs' blocks as read and as read without the
    gain, against their true average; the blocks are mostly common (iid HMUs descend
    the same loss), 40 seeded rounds, a key per HMU and round when keyed."""
    rng = np.random.default_rng(5)
    raw, unbiased = [], []
    for _ in range(40):
        blocks = 0.9 * nc.random_blocks(1, rng) + 0.44 * nc.random_blocks(20, rng)
        keys = nc.random_keys(20, 64, rng) if code.cfg.keyed else None
        read, truth = code.decode(code.encode(blocks, keys), keys).mean(axis=0), blocks.mean(axis=0)
        raw.append(np.mean((read - truth) ** 2))
        unbiased.append(np.mean((read / gain - truth) ** 2))
    return float(np.mean(raw)), float(np.mean(unbiased))


def test_the_gain_is_the_share_of_a_block_the_code_keeps():
    for keyed in (True, False):
        gain = decoder_gain(CoordinateCode(keyed), seed=1)
        assert gain == pytest.approx(KEPT / nc.BLOCK, abs=0.01)


def test_under_a_key_per_hmu_the_average_read_without_the_gain_is_nearer_the_truth():
    code = CoordinateCode(keyed=True)
    raw, unbiased = mean_errors(code, decoder_gain(code, seed=1))
    assert unbiased < 0.5 * raw  # each key loses other coordinates: the losses average out


def test_without_a_key_dividing_out_the_gain_only_amplifies_what_every_hmu_loses():
    code = CoordinateCode(keyed=False)
    raw, unbiased = mean_errors(code, decoder_gain(code, seed=1))
    assert unbiased > 1.5 * raw


def test_unbiased_reading_needs_a_keyed_cipher():
    with pytest.raises(ValueError, match="unbiased needs keyed"):
        NeuralCipherConfig(unbiased=True)


def test_the_delta_from_the_global_model_is_what_is_divided():
    global_w = init_weights(4, (3,), 0)
    decoded = {k: v + 0.2 for k, v in global_w.items()}
    for k, v in without_gain(decoded, global_w, 0.4).items():
        np.testing.assert_allclose(v, global_w[k] + 0.5, atol=1e-6)
    read = lambda tensors, g: decoded  # noqa: E731 (a decoder that ignores its input)
    assert unbiased_reader(read, 1.0) is read
    for k, v in unbiased_reader(read, 0.5)({}, global_w).items():
        np.testing.assert_allclose(v, global_w[k] + 0.4, atol=1e-6)
