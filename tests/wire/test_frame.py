"""Frames: strict validation of envelope and message, and sealing hooks for AEAD."""

import numpy as np
import pytest

from iomt.errors import DecodeError
from iomt.wire.envelope import new_envelope
from iomt.wire.frame import decode_frame, encode_frame, peek_envelope
from iomt.wire.messages import ModelUpdate, RunComplete, Status
from iomt.wire.stamp import stamp


def _update_frame(**env_kw):
    env = new_envelope("run-1", 3, "hmu-01", "server", "update", **env_kw, **stamp())
    msg = ModelUpdate(num_samples=10, loss=0.5, train_seconds=0.1, tensors=[])
    return env, msg


def test_update_round_trip():
    env, msg = _update_frame()
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    frame = decode_frame(encode_frame(env, msg, weights))
    assert frame.envelope == env
    assert frame.message.num_samples == 10
    np.testing.assert_array_equal(frame.tensors["w"], weights["w"])


def test_message_without_tensors():
    env = new_envelope("run-1", 0, "server", "*", "complete", **stamp())
    frame = decode_frame(encode_frame(env, RunComplete(reason="done")))
    assert frame.message.reason == "done" and frame.tensors == {}


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "too short"),
        (b"NOPE\x00\x01{", "magic"),
        (b"IOMT\xff\xff{}", "out of range"),
        (b"IOMT\x00\x02{}", "invalid envelope"),
    ],
)
def test_garbage_is_a_decode_error(data, match):
    with pytest.raises(DecodeError, match=match):
        decode_frame(data)


def test_unknown_message_field_is_refused():
    env, msg = _update_frame()
    data = encode_frame(env, msg, {"w": np.zeros(2, np.float32)})
    tampered = data.replace(b'"loss":0.5', b'"lost":0.5')
    with pytest.raises(DecodeError, match="update"):
        decode_frame(tampered)


def test_envelope_type_must_match_message():
    env = new_envelope("run-1", 0, "hmu-01", "*", "update", **stamp())
    with pytest.raises(ValueError):
        encode_frame(env, Status(role="hmu", state="online"))


def test_sealed_frame_needs_its_opener_and_binds_the_envelope():
    env, msg = _update_frame(cipher="aes-256-gcm")
    seen = {}

    def seal(payload, aad):
        seen["aad"] = aad
        return bytes(b ^ 0x5A for b in payload)

    def open_(envelope, sealed, aad):
        assert aad == seen["aad"]
        return bytes(b ^ 0x5A for b in sealed)

    data = encode_frame(env, msg, {"w": np.ones(3, np.float32)}, seal=seal)
    assert peek_envelope(data) == env
    with pytest.raises(DecodeError, match="no key"):
        decode_frame(data)
    assert decode_frame(data, open_=open_).message.loss == 0.5
