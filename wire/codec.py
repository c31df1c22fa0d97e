"""Compact binary codec for named tensors: a typed index plus one raw little-endian body.

A value is an array (float32, float16, int8, uint8, int32, int64) or opaque ``bytes``
(dtype ``bytes``, shape ``(length,)``): a ciphertext the codec carries but never reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import Field

from iomt.errors import DecodeError
from iomt.strict import Strict

DType = Literal["float32", "float16", "int8", "uint8", "int32", "int64", "bytes"]
Tensor = np.ndarray | bytes
MAX_ELEMENTS = 64 * 1024 * 1024  # refuse absurd shapes before allocating anything


class TensorSpec(Strict):
    """Name, dtype and shape of one tensor; its bytes follow the previous tensor's."""

    name: str = Field(min_length=1, max_length=128)
    dtype: DType
    shape: tuple[int, ...] = Field(max_length=8)

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            if dim < 0:
                raise DecodeError(f"tensor {self.name!r} has a negative dimension")
            count *= dim
        if count > MAX_ELEMENTS:
            raise DecodeError(f"tensor {self.name!r} has {count} elements, over the limit")
        if self.dtype == "bytes":
            if len(self.shape) != 1:
                raise DecodeError(f"opaque value {self.name!r} must have one dimension")
            return count
        return count * np.dtype(self.dtype).itemsize


def encode_tensors(tensors: Mapping[str, Tensor]) -> tuple[list[TensorSpec], bytes]:
    """Index and body for ``tensors``, in their iteration order."""
    specs: list[TensorSpec] = []
    chunks: list[bytes] = []
    for name, array in tensors.items():
        if isinstance(array, bytes | bytearray | memoryview):
            blob = bytes(array)
            specs.append(TensorSpec(name=name, dtype="bytes", shape=(len(blob),)))
            chunks.append(blob)
            continue
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<")
        specs.append(TensorSpec(name=name, dtype=str(np.dtype(dtype.name)), shape=array.shape))
        chunks.append(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return specs, b"".join(chunks)


def decode_tensors(specs: list[TensorSpec], body: bytes | memoryview) -> dict[str, Tensor]:
    """Tensors described by ``specs`` read from ``body``; the sizes must add up exactly."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise DecodeError("tensor names repeat")
    expected = sum(spec.nbytes for spec in specs)
    if expected != len(body):
        raise DecodeError(f"tensor body is {len(body)} bytes, index says {expected}")
    out: dict[str, Tensor] = {}
    offset = 0
    for spec in specs:
        if spec.dtype == "bytes":
            out[spec.name] = bytes(body[offset : offset + spec.nbytes])
            offset += spec.nbytes
            continue
        dtype = np.dtype(spec.dtype).newbyteorder("<")
        array = np.frombuffer(body, dtype=dtype, count=spec.nbytes // dtype.itemsize, offset=offset)
        out[spec.name] = array.reshape(spec.shape).astype(spec.dtype, copy=True)
        offset += spec.nbytes
    return out
