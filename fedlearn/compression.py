"""Update compression before encryption: top-k sparsification with error feedback, 8-bit codes.

SAFE-MED compresses client updates by top-k sparsification (k = 0.1) and quantisation.

* **Top-k** (Aji and Heafield, 2017; Stich et al., 2018): of the update flattened over
  all tensors, keep the ``k d`` (rounded half up) entries of largest magnitude.  Positions travel as
  int32 indices or as a bitmap of ``d`` bits, whichever is smaller (a bitmap wins once
  ``k > 1/32``).
* **8-bit quantisation** (asymmetric affine, Jacob et al., 2018): per tensor,
  ``x ~ scale * (q - zero_point)`` with ``q`` uint8, the range ``[min(x, 0), max(x, 0)]``
  mapped onto 0..255 so that 0 stays exact; every entry is off by at most ``scale / 2``.
* **Error feedback** (Seide et al., 2014; Karimireddy et al., 2019): what compression
  dropped or rounded this round (``sent - decoded``) is kept at the HMU and added to
  the next round's update, so nothing is lost for good, only delayed.

The payload is a ``dict`` of named arrays in the dtypes ``iomt.wire.codec`` carries (float32,
uint8, int32).  Names: ``<key>`` (dense float32), ``<key>.q`` / ``.scale`` /
``.zero_point`` (quantised), and for top-k ``topk.index`` or ``topk.mask`` with
``topk.value`` (or its ``.q`` / ``.scale`` / ``.zero_point``).  The server decodes with
the global weights as the shape reference; a payload that does not fit them raises
``DecodeError`` (it came from a peer).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from iomt.errors import DecodeError
from iomt.fedlearn.defence_config import CompressionConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.updates import apply_delta, delta, flatten, parameter_count, unflatten

Payload = dict[str, np.ndarray]
_TOPK = "topk."


def topk_count(d: int, fraction: float) -> int:
    """How many of ``d`` entries top-k keeps: ``fraction * d`` rounded half up, at least 1."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the top-k fraction must lie in (0, 1], got {fraction}")
    return max(1, min(d, int(np.floor(fraction * d + 0.5))))


def topk_indices(vector: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted indices of the ``topk_count`` entries of largest magnitude."""
    vector = np.asarray(vector)
    k = topk_count(vector.size, fraction)
    if k == vector.size:
        return np.arange(k)
    return np.sort(np.argpartition(np.abs(vector), vector.size - k)[vector.size - k :])


def quantize8(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    """``(codes, scale, zero_point)``: ``x ~ scale * (codes - zero_point)`` within ``scale / 2``."""
    x = np.asarray(x, np.float64)
    lo = min(float(x.min(initial=0.0)), 0.0)
    hi = max(float(x.max(initial=0.0)), 0.0)
    scale = np.float32((hi - lo) / 255.0)
    if not scale > 0:  # an all-zero tensor
        return np.zeros(x.shape, np.uint8), np.float32(1.0), np.uint8(0)
    step = float(scale)
    zero_point = int(np.clip(np.rint(-lo / step), 0, 255))
    codes = np.clip(np.rint(x / step) + zero_point, 0, 255).astype(np.uint8)
    return codes, scale, np.uint8(zero_point)


def dequantize8(codes: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``scale * (codes - zero_point)`` as float64."""
    return float(scale) * (np.asarray(codes, np.float64) - float(zero_point))


def _put_values(payload: Payload, name: str, values: np.ndarray, quantise: bool) -> None:
    if quantise:
        codes, scale, zero_point = quantize8(values)
        payload[f"{name}.q"] = codes
        payload[f"{name}.scale"] = np.array([scale], np.float32)
        payload[f"{name}.zero_point"] = np.array([zero_point], np.uint8)
    else:
        payload[name] = np.asarray(values, np.float32)


def encode_update(
    vector: np.ndarray, like: Mapping[str, np.ndarray], cfg: CompressionConfig
) -> Payload:
    """Payload of the flat update ``vector`` shaped as the weights ``like`` (see module doc)."""
    vector = np.asarray(vector, np.float64)
    d = parameter_count(like)
    if vector.shape != (d,):
        raise ValueError(f"update has shape {vector.shape}, the weights need ({d},)")
    quantise = cfg.kind in ("quant8", "topk-quant8")
    payload: Payload = {}
    if cfg.kind in ("topk", "topk-quant8"):
        index = topk_indices(vector, cfg.k)
        if len(index) * 4 <= (d + 7) // 8:
            payload[_TOPK + "index"] = index.astype(np.int32)
        else:
            mask = np.zeros(d, bool)
            mask[index] = True
            payload[_TOPK + "mask"] = np.packbits(mask)
        _put_values(payload, _TOPK + "value", vector[index], quantise)
        return payload
    for key, part in unflatten(vector, like).items():
        _put_values(payload, key, part, quantise)
    return payload


def _take(
    payload: Mapping[str, np.ndarray], name: str, dtype: str, shape: tuple[int, ...]
) -> np.ndarray:
    if name not in payload:
        raise DecodeError(f"compressed update lacks tensor {name!r}")
    array = np.asarray(payload[name])
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise DecodeError(f"tensor {name!r} is {array.dtype}{array.shape}, expected {dtype}{shape}")
    return array


def _get_values(
    payload: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, list[str]]:
    if f"{name}.q" in payload:
        codes = _take(payload, f"{name}.q", "uint8", shape)
        scale = _take(payload, f"{name}.scale", "float32", (1,))[0]
        zero_point = _take(payload, f"{name}.zero_point", "uint8", (1,))[0]
        if not np.isfinite(scale) or scale < 0:
            raise DecodeError(f"tensor {name!r} has an invalid scale {scale}")
        used = [f"{name}.q", f"{name}.scale", f"{name}.zero_point"]
        return dequantize8(codes, scale, zero_point), used
    values = _take(payload, name, "float32", shape).astype(np.float64)
    return values, [name]


def decode_update(payload: Mapping[str, np.ndarray], like: Mapping[str, np.ndarray]) -> np.ndarray:
    """The flat update (float64) a payload encodes; ``DecodeError`` if it does not fit ``like``."""
    d = parameter_count(like)
    used: list[str] = []
    if _TOPK + "index" in payload or _TOPK + "mask" in payload:
        if _TOPK + "index" in payload:
            index = np.asarray(payload[_TOPK + "index"])
            if index.dtype != np.int32 or index.ndim != 1:
                raise DecodeError("topk.index must be a 1-D int32 array")
            index = index.astype(np.int64)
            if len(index) and (index[0] < 0 or index[-1] >= d or np.any(np.diff(index) <= 0)):
                raise DecodeError(f"topk.index must be strictly increasing within 0..{d - 1}")
            used.append(_TOPK + "index")
        else:
            mask_bytes = _take(payload, _TOPK + "mask", "uint8", ((d + 7) // 8,))
            index = np.flatnonzero(np.unpackbits(mask_bytes, count=d))
            used.append(_TOPK + "mask")
        values, names = _get_values(payload, _TOPK + "value", (len(index),))
        used += names
        vector = np.zeros(d, np.float64)
        vector[index] = values
    else:
        parts = {}
        for key, ref in like.items():
            parts[key], names = _get_values(payload, key, tuple(np.shape(ref)))
            used += names
        vector = flatten(parts)
    extra = set(payload) - set(used)
    if extra:
        raise DecodeError(f"compressed update has unexpected tensors {sorted(extra)}")
    if not np.all(np.isfinite(vector)):
        raise DecodeError("compressed update holds non-finite values")
    return vector


def payload_nbytes(payload: Mapping[str, np.ndarray]) -> int:
    """Bytes of the arrays' data (the codec body; its small index comes on top)."""
    return sum(int(np.asarray(a).nbytes) for a in payload.values())


def dense_nbytes(like: Mapping[str, np.ndarray]) -> int:
    """Bytes of the same update sent dense as float32."""
    return 4 * parameter_count(like)


class Compressor:
    """The HMU side: compresses each round's update and keeps the error-feedback residual."""

    def __init__(self, cfg: CompressionConfig) -> None:
        self.cfg = cfg
        self.residual: np.ndarray | None = None

    def compress(self, global_w: Weights, local_w: Weights) -> Payload:
        """Payload for ``local_w - global_w`` plus the carried residual; updates the residual."""
        update = flatten(delta(global_w, local_w))
        if self.residual is not None and self.residual.shape == update.shape:
            update = update + self.residual
        payload = encode_update(update, global_w, self.cfg)
        if self.cfg.error_feedback and self.cfg.kind != "none":
            self.residual = update - decode_update(payload, global_w)
        return payload


def decompress(payload: Mapping[str, np.ndarray], global_w: Weights) -> Weights:
    """The server side: ``global + decoded update``, as float32 weights."""
    vector = decode_update(payload, global_w)
    return apply_delta(global_w, unflatten(vector, global_w))
