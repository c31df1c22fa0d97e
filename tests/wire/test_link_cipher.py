"""Both ends of a link: each opens what the other seals, never its own, never another key's."""

import os

import numpy as np
import pytest

from iomt.errors import AuthenticationError, QkdError
from iomt.wire.aead import ReplayError, derive_keys
from iomt.wire.envelope import new_envelope
from iomt.wire.frame import decode_frame, encode_frame
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import ModelUpdate
from iomt.wire.stamp import stamp

KEY = os.urandom(64)


def sealed_update(link: LinkCipher, sender="hmu-01", size=100):
    env = new_envelope(
        "run", 1, sender, "server", "update", cipher=link.cipher, key_id=link.key_id, **stamp()
    )
    msg = ModelUpdate(num_samples=3, loss=0.1, train_seconds=0.0, tensors=[])
    return encode_frame(env, msg, {"w": np.ones(size, np.float32)}, seal=link.seal)


@pytest.mark.parametrize("cipher", ["aes-gcm", "otp"])
def test_each_side_opens_the_other_and_not_itself(cipher):
    key = os.urandom(4096)
    hmu = LinkCipher(key, "s1", "hmu", cipher)
    server = LinkCipher(key, "s1", "server", cipher)
    data = sealed_update(hmu)
    assert decode_frame(data, open_=server.open).tensors["w"].sum() == 100
    with pytest.raises(AuthenticationError):
        decode_frame(sealed_update(LinkCipher(key, "s1", "hmu", cipher)), open_=hmu.open)


def test_replay_and_other_session_keys_are_refused():
    hmu = LinkCipher(KEY, "s1", "hmu")
    server = LinkCipher(KEY, "s1", "server")
    data = sealed_update(hmu)
    decode_frame(data, open_=server.open)
    with pytest.raises(ReplayError):
        decode_frame(data, open_=server.open)
    stranger = LinkCipher(KEY, "s2", "server")
    with pytest.raises(AuthenticationError, match="key"):
        decode_frame(sealed_update(hmu), open_=stranger.open)


def test_envelope_is_bound_to_the_payload():
    hmu = LinkCipher(KEY, "s1", "hmu")
    server = LinkCipher(KEY, "s1", "server")
    data = sealed_update(hmu)
    forged = data.replace(b'"round":1', b'"round":7')
    assert forged != data
    with pytest.raises(AuthenticationError):
        decode_frame(forged, open_=server.open)


def test_one_time_pad_refuses_to_send_when_used_up():
    key = os.urandom(2 * 600)  # 600 bytes each way
    hmu = LinkCipher(key, "s1", "hmu", "otp")
    sealed_update(hmu, size=100)  # 400 bytes of tensors plus framing: fits once
    with pytest.raises(QkdError, match="exhausted"):
        sealed_update(hmu, size=100)


def test_both_ends_derive_the_same_neural_cipher_key_per_round():
    hmu, server = LinkCipher(KEY, "s1", "hmu"), LinkCipher(KEY, "s1", "server")
    assert hmu.neural_key(3, 64) == server.neural_key(3, 64) and len(hmu.neural_key(3, 64)) == 8
    assert hmu.neural_key(3, 64) != hmu.neural_key(4, 64)
    assert LinkCipher(os.urandom(64), "s1", "hmu").neural_key(3, 64) != hmu.neural_key(3, 64)
    # the session id salts the AEAD keys only: the same QKD key gives the same neural keys
    # (a seeded run repeats itself), never the same AEAD keys (no nonce reuse across runs)
    again = LinkCipher(KEY, "s2", "hmu")
    assert again.neural_key(3, 64) == hmu.neural_key(3, 64)
    assert derive_keys(KEY, "s2") != derive_keys(KEY, "s1")
