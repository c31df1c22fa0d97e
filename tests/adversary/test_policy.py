"""Eve's policy on real frames: plaintext updates read and altered, sealed ones only broken."""

import os

import numpy as np
import pytest

from iomt.adversary.config import MitmConfig
from iomt.adversary.policy import (
    DROP,
    PASS,
    EvePolicy,
    alter_tensors,
    flip_ciphertext_bit,
    is_update_topic,
)
from iomt.errors import AuthenticationError, PeerError
from iomt.wire import topics
from iomt.wire.envelope import new_envelope
from iomt.wire.frame import decode_frame, encode_frame, peek_envelope
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import ModelUpdate, Status
from iomt.wire.stamp import stamp

RUN = "run-1"
TOPIC = topics.update(RUN, "hmu-01")
KEY = os.urandom(64)


def weights(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "0.weight": rng.normal(size=(64, 34)).astype(np.float32),
        "0.bias": rng.normal(size=64).astype(np.float32),
        "codes": rng.integers(0, 255, size=10).astype(np.uint8),
    }


def update_frame(tensors, *, link=None, num_samples=321):
    env = new_envelope(
        RUN,
        3,
        "hmu-01",
        topics.SERVER_ID,
        "update",
        cipher=link.cipher if link else "none",
        key_id=link.key_id if link else "",
        **stamp(),
    )
    msg = ModelUpdate(num_samples=num_samples, loss=0.25, train_seconds=1.5, tensors=[])
    return encode_frame(env, msg, tensors, seal=link.seal if link else None)


def env_bytes(frame: bytes) -> bytes:
    return frame[: 6 + int.from_bytes(frame[4:6], "big")]


def test_update_topics_are_recognised_for_any_run():
    assert is_update_topic(TOPIC)
    assert is_update_topic(topics.update("other", "hmu-20"))
    for topic in (
        topics.inbox(RUN, "hmu-01"),
        topics.status(RUN, "hmu-01"),
        topics.global_model(RUN),
        "iomt/run-1/hmu/hmu-01/update/x",
        "x/r/hmu/h/update",
    ):
        assert not is_update_topic(topic)


def test_plaintext_update_is_read_and_scaled_with_the_envelope_untouched():
    original = weights()
    data = update_frame(original)
    eve = EvePolicy(action="scale", scale=-10.0)
    decision = eve.decide(TOPIC, data)
    assert decision.verdict == "replace" and decision.payload is not None
    assert env_bytes(decision.payload) == env_bytes(data)
    before, after = decode_frame(data), decode_frame(decision.payload)
    assert after.envelope == before.envelope
    assert after.message.num_samples == 321 and after.message.loss == 0.25
    np.testing.assert_array_equal(after.tensors["0.weight"], -10 * original["0.weight"])
    np.testing.assert_array_equal(after.tensors["0.bias"], -10 * original["0.bias"])
    np.testing.assert_array_equal(after.tensors["codes"], original["codes"])
    # what she read
    (seen,) = eve.observations
    flat = np.concatenate([original["0.weight"].ravel(), original["0.bias"]]).astype(np.float64)
    assert seen.num_samples == 321 and seen.round == 3 and seen.sender == "hmu-01"
    assert seen.norm == pytest.approx(np.linalg.norm(flat), rel=1e-9)
    assert seen.first_values == pytest.approx(tuple(flat[:4]))
    assert seen.cipher == "none" and seen.size == len(data)
    c = eve.counters
    assert (c.seen, c.read, c.altered, c.tampered_sealed, c.dropped) == (1, 1, 1, 0, 0)


def test_noise_and_zero_actions():
    original = weights()
    data = update_frame(original)
    noisy = EvePolicy(action="noise", noise_std=0.5, rng=np.random.default_rng(7))
    received = decode_frame(noisy.decide(TOPIC, data).payload).tensors
    diff = received["0.weight"] - original["0.weight"]
    # 2176 draws of N(0, 0.25): the sample std is within 5 % of 0.5 with overwhelming odds
    assert diff.std() == pytest.approx(0.5, rel=0.05) and abs(diff.mean()) < 0.05
    zero = EvePolicy(action="zero")
    zeroed = decode_frame(zero.decide(TOPIC, data).payload).tensors
    assert not zeroed["0.weight"].any() and not zeroed["0.bias"].any()
    np.testing.assert_array_equal(zeroed["codes"], original["codes"])


def test_noise_needs_a_generator():
    with pytest.raises(ValueError):
        alter_tensors(weights(), "noise")


@pytest.mark.parametrize("cipher", ["aes-gcm", "otp"])
def test_sealed_update_is_tampered_and_the_server_detects_it(cipher):
    key = os.urandom(2 * 16384)
    hmu = LinkCipher(key, "s1", "hmu", cipher)
    original = weights()
    data = update_frame(original, link=hmu)
    eve = EvePolicy(on_sealed="tamper")
    decision = eve.decide(TOPIC, data)
    assert decision.verdict == "replace"
    tampered = decision.payload
    assert len(tampered) == len(data)
    assert sum(a != b for a, b in zip(tampered, data, strict=True)) == 1
    assert peek_envelope(tampered) == peek_envelope(data)
    with pytest.raises(AuthenticationError):
        decode_frame(tampered, open_=LinkCipher(key, "s1", "server", cipher).open)
    # control: the untouched frame opens under the same key
    opened = decode_frame(data, open_=LinkCipher(key, "s1", "server", cipher).open)
    np.testing.assert_array_equal(opened.tensors["0.weight"], original["0.weight"])
    # she learnt the envelope and the size, nothing of the content
    (seen,) = eve.observations
    assert seen.num_samples is None and seen.norm is None and seen.first_values == ()
    c = eve.counters
    assert (c.seen, c.read, c.altered, c.tampered_sealed, c.dropped) == (1, 0, 0, 1, 0)


def test_sealed_update_is_dropped_when_configured():
    data = update_frame(weights(), link=LinkCipher(KEY, "s1", "hmu"))
    eve = EvePolicy.from_config(
        MitmConfig(enabled=True, hmus=["hmu-01"], on_sealed="drop"), np.random.default_rng(0)
    )
    assert eve.decide(TOPIC, data) == DROP
    assert (eve.counters.seen, eve.counters.dropped, eve.counters.tampered_sealed) == (1, 1, 0)
    assert eve.report()["dropped"] == 1


def test_every_single_byte_change_of_a_sealed_frame_is_detected():
    """Whatever byte Eve changes, envelope or payload, the server refuses the frame."""
    data = update_frame({"w": np.ones(8, np.float32)}, link=LinkCipher(KEY, "s1", "hmu"))
    rng = np.random.default_rng(3)
    positions = rng.choice(len(data), size=min(len(data), 120), replace=False)
    for at in positions:
        changed = data[:at] + bytes([data[at] ^ int(rng.integers(1, 256))]) + data[at + 1 :]
        with pytest.raises(PeerError):
            decode_frame(changed, open_=LinkCipher(KEY, "s1", "server").open)


def test_flip_ciphertext_bit_spares_the_counter():
    data = update_frame({"w": np.ones(8, np.float32)}, link=LinkCipher(KEY, "s1", "hmu"))
    start = len(env_bytes(data))
    flipped = flip_ciphertext_bit(data)
    assert flipped[: start + 8] == data[: start + 8]
    assert flipped[start + 8] == data[start + 8] ^ 1


def test_other_topics_and_other_messages_pass_untouched():
    eve = EvePolicy()
    data = update_frame(weights())
    assert eve.decide(topics.status(RUN, "hmu-01"), data) == PASS
    assert eve.counters.seen == 0
    status = encode_frame(
        new_envelope(RUN, 0, "hmu-01", "*", "status", **stamp()), Status(role="hmu", state="online")
    )
    assert eve.decide(TOPIC, status) == PASS
    assert (eve.counters.seen, eve.counters.read, eve.counters.unreadable) == (1, 0, 0)


def test_garbage_and_truncated_frames_never_raise():
    eve = EvePolicy()
    data = update_frame(weights())
    rng = np.random.default_rng(11)
    samples = [b"", b"IOMT", b"not a frame at all"]
    samples += [data[: int(n)] for n in rng.integers(0, len(data), size=40)]
    samples += [rng.bytes(int(n)) for n in rng.integers(0, 400, size=40)]
    for sample in samples:
        assert eve.decide(TOPIC, sample) == PASS
    assert eve.counters.unreadable == len(samples)
    assert eve.counters.altered == 0
