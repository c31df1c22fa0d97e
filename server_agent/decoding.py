"""An HMU's update as the server receives it: undo its wire steps and check it fits the model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from iomt.errors import DecodeError
from iomt.fedlearn.model import Weights, check_weights
from iomt.fedlearn.pipeline import Decoder, decode_update
from iomt.wire.codec import Tensor
from iomt.wire.messages import ModelUpdate


def update_weights(
    sender: str,
    message: ModelUpdate,
    tensors: Mapping[str, Tensor],
    global_w: Weights,
    decoders: Mapping[str, Decoder] | None = None,
) -> Weights:
    """The local weights ``message`` stands for; ``DecodeError`` names what does not fit."""
    decoded = decode_update(message.encoding, tensors, global_w, decoders)
    weights = {k: v for k, v in decoded.items() if isinstance(v, np.ndarray)}
    if len(weights) != len(decoded):
        raise DecodeError(f"update from {sender} still holds opaque values after decoding")
    try:
        check_weights(weights, global_w)
    except ValueError as exc:
        raise DecodeError(f"update from {sender} does not fit the model: {exc}") from None
    if not all(np.isfinite(t).all() for t in weights.values()):
        raise DecodeError(f"update from {sender} holds NaN or infinite weights")
    return weights
