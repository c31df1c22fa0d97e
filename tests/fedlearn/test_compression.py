"""Tests of top-k sparsification with error feedback and 8-bit quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.errors import DecodeError
from iomt.fedlearn.compression import (
    Compressor,
    decode_update,
    decompress,
    dense_nbytes,
    dequantize8,
    encode_update,
    payload_nbytes,
    quantize8,
    topk_count,
    topk_indices,
)
from iomt.fedlearn.defence_config import CompressionConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.updates import apply_delta, delta, flatten, unflatten
from iomt.wire.codec import decode_tensors, encode_tensors

LIKE = init_weights(34, (64, 64), seed=0)  # the IDS MLP: 6.4k parameters
D = flatten(LIKE).size
CODEC_DTYPES = {"float32", "float16", "int8", "uint8", "int32", "int64"}


def update(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, size=D)


def test_topk_keeps_exactly_the_k_fraction_of_largest_entries() -> None:
    v = update(0)
    for k in (0.1, 0.01, 0.5, 1.0):
        index = topk_indices(v, k)
        assert len(index) == int(np.floor(k * D + 0.5)) == topk_count(D, k)  # half up
        assert np.all(np.diff(index) > 0)
        rest = np.delete(np.abs(v), index)
        if rest.size:
            assert np.abs(v[index]).min() >= rest.max()
    decoded = decode_update(encode_update(v, LIKE, CompressionConfig(kind="topk", k=0.1)), LIKE)
    assert np.count_nonzero(decoded) == topk_count(D, 0.1) == 647  # 0.1 * 6465 = 646.5
    kept = np.flatnonzero(decoded)
    np.testing.assert_allclose(decoded[kept], v[kept], rtol=1e-6)  # float32 values


def test_quantisation_error_is_at_most_half_a_step() -> None:
    rng = np.random.default_rng(1)
    for x in (rng.normal(size=1000), rng.uniform(0.5, 2.0, 300), -rng.uniform(size=50)):
        codes, scale, zero_point = quantize8(x)
        assert codes.dtype == np.uint8
        err = np.abs(dequantize8(codes, scale, zero_point) - x)
        assert err.max() <= float(scale) / 2 * (1 + 1e-6)
        assert float(scale) == pytest.approx((max(x.max(), 0) - min(x.min(), 0)) / 255, rel=1e-6)
    codes, scale, zero_point = quantize8(np.array([0.0, -1.0, 3.0]))
    assert dequantize8(codes, scale, zero_point)[0] == 0.0  # zero is exact
    codes, scale, zero_point = quantize8(np.zeros(5))
    np.testing.assert_array_equal(dequantize8(codes, scale, zero_point), np.zeros(5))


@pytest.mark.parametrize("kind", ["none", "quant8", "topk", "topk-quant8"])
def test_round_trip_through_the_wire_codec(kind: str) -> None:
    cfg = CompressionConfig(kind=kind, k=0.1)  # type: ignore[arg-type]
    v = update(2)
    payload = encode_update(v, LIKE, cfg)
    assert {str(a.dtype) for a in payload.values()} <= CODEC_DTYPES
    specs, body = encode_tensors(payload)
    decoded = decode_update(decode_tensors(specs, body), LIKE)
    direct = decode_update(payload, LIKE)
    np.testing.assert_array_equal(decoded, direct)
    kept = np.flatnonzero(direct) if kind.startswith("topk") else np.arange(D)
    step = (v.max() - v.min()) / 255
    bound = step / 2 * 1.001 if kind.endswith("quant8") else 1e-8
    assert np.abs(direct[kept] - v[kept]).max() <= bound
    assert len(body) == payload_nbytes(payload)


def test_compressed_sizes() -> None:
    v = update(3)
    sizes = {
        kind: payload_nbytes(encode_update(v, LIKE, CompressionConfig(kind=kind, k=0.1)))  # type: ignore[arg-type]
        for kind in ("none", "quant8", "topk", "topk-quant8")
    }
    assert sizes["none"] == dense_nbytes(LIKE) == 4 * D
    assert sizes["quant8"] < D + 64
    k = topk_count(D, 0.1)
    bitmap = (D + 7) // 8
    assert sizes["topk"] == bitmap + 4 * k  # a bitmap beats int32 indices at k = 0.1
    assert sizes["topk-quant8"] == bitmap + k + 5
    small = encode_update(v, LIKE, CompressionConfig(kind="topk", k=0.01))
    assert "topk.index" in small and small["topk.index"].dtype == np.int32


def test_error_feedback_carries_what_was_dropped() -> None:
    g = init_weights(34, (64, 64), seed=1)
    comp = Compressor(CompressionConfig(kind="topk-quant8", k=0.1))
    sent = np.zeros(D)
    total = np.zeros(D)
    for round_no in range(5):
        u = update(10 + round_no)
        total += u
        local = apply_delta(g, unflatten(u, g))
        before = np.zeros(D) if comp.residual is None else comp.residual.copy()
        payload = comp.compress(g, local)
        received = flatten(delta(g, decompress(payload, g)))
        decoded = decode_update(payload, g)
        # the residual is exactly what this round's (update + old residual) lost
        np.testing.assert_allclose(comp.residual, flatten(delta(g, local)) + before - decoded)
        np.testing.assert_allclose(received, decoded, atol=1e-6)  # float32 weights
        sent += decoded
    # nothing is lost, only delayed: sent + residual == sum of the true updates (up to
    # the float32 rounding of local weights)
    np.testing.assert_allclose(sent + comp.residual, total, atol=1e-5)
    assert np.linalg.norm(comp.residual) > 0
    plain = Compressor(CompressionConfig(kind="topk", k=0.1, error_feedback=False))
    plain.compress(g, apply_delta(g, unflatten(update(1), g)))
    assert plain.residual is None


def test_decoding_refuses_malformed_payloads() -> None:
    v = update(4)
    good = encode_update(v, LIKE, CompressionConfig(kind="topk", k=0.01))
    bad_index = dict(good, **{"topk.index": good["topk.index"][::-1].copy()})
    with pytest.raises(DecodeError, match="strictly increasing"):
        decode_update(bad_index, LIKE)
    with pytest.raises(DecodeError, match="unexpected"):
        decode_update(dict(good, extra=np.zeros(1, np.float32)), LIKE)
    dense = encode_update(v, LIKE, CompressionConfig())
    dense["0.bias"] = dense["0.bias"][:-1]
    with pytest.raises(DecodeError, match="expected float32"):
        decode_update(dense, LIKE)
    quant = encode_update(v, LIKE, CompressionConfig(kind="quant8"))
    quant["0.weight.scale"] = np.array([np.nan], np.float32)
    with pytest.raises(DecodeError, match="invalid scale"):
        decode_update(quant, LIKE)
