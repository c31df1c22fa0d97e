"""The tensor codec round-trips exactly and refuses bodies that do not match their index."""

import numpy as np
import pytest

from iomt.errors import DecodeError
from iomt.wire.codec import TensorSpec, decode_tensors, encode_tensors


def test_round_trip_keeps_names_dtypes_shapes_and_values():
    rng = np.random.default_rng(0)
    tensors = {
        "w0": rng.standard_normal((34, 64)).astype(np.float32),
        "b0": rng.standard_normal(64).astype(np.float32),
        "q": rng.integers(-128, 127, size=(3, 5), dtype=np.int8),
        "scalar": np.array(2.5, dtype=np.float32),
    }
    specs, body = encode_tensors(tensors)
    out = decode_tensors(specs, body)
    assert list(out) == list(tensors)
    for name, array in tensors.items():
        assert out[name].dtype == array.dtype
        assert out[name].shape == array.shape
        np.testing.assert_array_equal(out[name], array)


def test_body_is_raw_bytes_not_text():
    specs, body = encode_tensors({"w": np.zeros(1000, np.float32)})
    assert len(body) == 4000


def test_short_and_long_bodies_are_refused():
    specs, body = encode_tensors({"w": np.ones(10, np.float32)})
    with pytest.raises(DecodeError, match="40"):
        decode_tensors(specs, body[:-1])
    with pytest.raises(DecodeError):
        decode_tensors(specs, body + b"\0")


def test_repeated_names_and_huge_shapes_are_refused():
    spec = TensorSpec(name="w", dtype="float32", shape=(1,))
    with pytest.raises(DecodeError, match="repeat"):
        decode_tensors([spec, spec], b"\0" * 8)
    huge = TensorSpec(name="h", dtype="float32", shape=(1 << 20, 1 << 20))
    with pytest.raises(DecodeError, match="limit"):
        decode_tensors([huge], b"")


def test_decoded_arrays_are_writable_copies():
    specs, body = encode_tensors({"w": np.ones(4, np.float32)})
    out = decode_tensors(specs, body)
    out["w"][0] = 7.0
    assert out["w"][0] == 7.0


def test_opaque_bytes_travel_beside_arrays_unread() -> None:
    from iomt.wire.codec import decode_tensors, encode_tensors

    blob = bytes(range(256)) * 3
    specs, body = encode_tensors({"w": np.arange(6, dtype=np.float32), "ct": blob, "empty": b""})
    assert [s.dtype for s in specs] == ["float32", "bytes", "bytes"]
    out = decode_tensors(specs, body)
    assert out["ct"] == blob and out["empty"] == b""
    np.testing.assert_array_equal(out["w"], np.arange(6, dtype=np.float32))


def test_opaque_bytes_must_be_one_dimensional() -> None:
    from iomt.errors import DecodeError
    from iomt.wire.codec import TensorSpec, decode_tensors

    with pytest.raises(DecodeError, match="one dimension"):
        decode_tensors([TensorSpec(name="ct", dtype="bytes", shape=(2, 2))], b"abcd")
