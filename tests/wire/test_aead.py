"""AES-256-GCM and one-time-pad sealing under QKD keys: tampering, wrong keys, replays."""

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from iomt.errors import AuthenticationError, DecodeError, ProtocolViolation, QkdError
from iomt.wire.aead import (
    LABEL_HMU_TO_SERVER,
    Opener,
    OtpOpener,
    OtpPool,
    OtpSealer,
    ReplayError,
    Sealer,
    derive_keys,
    otp_pools,
)

QKD_KEY = bytes(range(64))
ENVELOPE = b'{"run":"r1","round":3,"sender":"hmu-01","type":"update"}'
UPDATE = np.random.default_rng(0).standard_normal(6_600).astype(np.float32).tobytes()


@pytest.fixture
def pair():
    keys = derive_keys(QKD_KEY, "qkd-session-1")
    return Sealer(keys.hmu_to_server), Opener(keys.hmu_to_server)


def test_keys_per_direction_follow_hkdf():
    keys = derive_keys(QKD_KEY, "qkd-session-1")
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"qkd-session-1", info=LABEL_HMU_TO_SERVER
    ).derive(QKD_KEY)
    assert keys.hmu_to_server == expected
    assert keys.hmu_to_server != keys.server_to_hmu
    assert derive_keys(QKD_KEY, "qkd-session-2").hmu_to_server != expected
    with pytest.raises(QkdError):
        derive_keys(b"short", "s")


def test_round_trip_and_distinct_nonces(pair):
    sealer, opener = pair
    first, second = sealer.seal(UPDATE, ENVELOPE), sealer.seal(UPDATE, ENVELOPE)
    assert first[:8] != second[:8] and first[8:] != second[8:]  # fresh counter, fresh ciphertext
    assert opener.open(first, ENVELOPE) == UPDATE
    assert opener.open(second, ENVELOPE) == UPDATE
    assert len(first) == len(UPDATE) + 8 + 16


def test_tampered_ciphertext_or_envelope_is_rejected(pair):
    sealer, opener = pair
    sealed = bytearray(sealer.seal(UPDATE, ENVELOPE))
    sealed[100] ^= 0x80
    with pytest.raises(AuthenticationError):
        opener.open(bytes(sealed), ENVELOPE)
    genuine = sealer.seal(UPDATE, ENVELOPE)
    with pytest.raises(AuthenticationError):
        opener.open(genuine, ENVELOPE.replace(b'"round":3', b'"round":4'))
    assert opener.open(genuine, ENVELOPE) == UPDATE  # failures did not burn the counter


def test_wrong_key_is_rejected():
    keys = derive_keys(QKD_KEY, "qkd-session-1")
    sealed = Sealer(keys.hmu_to_server).seal(UPDATE, ENVELOPE)
    with pytest.raises(AuthenticationError):
        Opener(keys.server_to_hmu).open(sealed, ENVELOPE)
    with pytest.raises(AuthenticationError):
        Opener(derive_keys(bytes(64), "qkd-session-1").hmu_to_server).open(sealed, ENVELOPE)


def test_replayed_message_is_rejected(pair):
    sealer, opener = pair
    sealed = sealer.seal(UPDATE, ENVELOPE)
    opener.open(sealed, ENVELOPE)
    with pytest.raises(ReplayError) as info:
        opener.open(sealed, ENVELOPE)
    assert isinstance(info.value, ProtocolViolation)


def test_window_accepts_reordering_once_and_drops_stale(pair):
    sealer, opener = pair
    frames = [sealer.seal(bytes([i]), ENVELOPE) for i in range(70)]
    assert opener.open(frames[5], ENVELOPE) == b"\x05"
    assert opener.open(frames[2], ENVELOPE) == b"\x02"  # late but inside the window
    with pytest.raises(ReplayError):
        opener.open(frames[2], ENVELOPE)
    opener.open(frames[69], ENVELOPE)
    with pytest.raises(ReplayError, match="older"):
        opener.open(frames[3], ENVELOPE)  # 66 behind the newest: outside the 64 window


def test_nonce_counter_exhaustion_raises():
    sealer = Sealer(bytes(32), limit=3)
    for _ in range(3):
        sealer.seal(b"x", b"")
    with pytest.raises(QkdError, match="exhausted"):
        sealer.seal(b"x", b"")


def test_short_payload_is_a_decode_error(pair):
    with pytest.raises(DecodeError):
        pair[1].open(b"\x00" * 10, ENVELOPE)


def test_otp_round_trip_tamper_replay_and_exhaustion():
    send_pool, _ = otp_pools(bytes(np.random.default_rng(1).integers(0, 256, 20_000, np.uint8)))
    recv_pool, _ = otp_pools(bytes(np.random.default_rng(1).integers(0, 256, 20_000, np.uint8)))
    sealer, opener = OtpSealer(send_pool), OtpOpener(recv_pool)
    message = b"a model update" * 100
    sealed = sealer.seal(message, ENVELOPE)
    assert send_pool.position == 32 + len(message)
    tampered = bytearray(sealed)
    tampered[20] ^= 1
    with pytest.raises(AuthenticationError):
        opener.open(bytes(tampered), ENVELOPE)
    with pytest.raises(AuthenticationError):
        opener.open(sealed, ENVELOPE + b" ")
    assert opener.open(sealed, ENVELOPE) == message
    with pytest.raises(ReplayError):
        opener.open(sealed, ENVELOPE)
    lost = sealer.seal(b"lost on the way", ENVELOPE)
    assert lost  # never delivered: the receiver skips its pad material
    assert opener.open(sealer.seal(b"next", ENVELOPE), ENVELOPE) == b"next"
    with pytest.raises(QkdError, match="exhausted"):
        sealer.seal(bytes(10_000), ENVELOPE)
    assert sealer.seal(b"still fits", ENVELOPE)  # a refused message spends nothing


def test_otp_wrong_pad_is_rejected():
    sealed = OtpSealer(OtpPool(bytes(range(200)))).seal(b"secret", b"ad")
    with pytest.raises(AuthenticationError):
        OtpOpener(OtpPool(bytes(200))).open(sealed, b"ad")
