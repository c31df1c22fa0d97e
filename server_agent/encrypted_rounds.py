"""The server's side of FL + HE: encrypted updates in, their weighted sum out to a key
holder, the decrypted aggregate back (``iomt.fedlearn.ckks`` says who holds which key).

The server holds the public CKKS context only.  When a round closes it adds the
round's encrypted deltas, each times ``n_i / n``, and asks one HMU of the round (the
first by id) to decrypt the sum.  If that HMU does not answer within the deadline,
the next one is asked; when none is left the run cannot go on.  The answer must come
from the HMU asked, for that round, with one finite array per weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from iomt.errors import DecodeError, ProtocolViolation
from iomt.fedlearn import ckks
from iomt.fedlearn.model import Weights, check_weights
from iomt.server_agent.events import Aggregate
from iomt.wire.codec import Tensor
from iomt.wire.messages import ModelUpdate


@dataclass
class Pending:
    """A round's encrypted aggregate, waiting for a key holder to decrypt it."""

    agg: Aggregate
    parts: list[bytes]
    holders: list[str]
    """Who may still be asked, in order; ``holders[0]`` is being asked now."""
    deadline: float


class EncryptedRounds:
    """Aggregation of encrypted updates for one server."""

    def __init__(self, public_context: bytes, answer_s: float) -> None:
        self._context = public_context
        self.answer_s = answer_s
        self.pending: Pending | None = None

    def encrypted_update(
        self, sender: str, message: ModelUpdate, tensors: Mapping[str, Tensor], size: int
    ) -> list[bytes]:
        """An HMU's ciphertexts for a model of ``size`` values, each parsed under the run's
        context as it arrives, so a bad one is refused now and never fails a round later;
        ``DecodeError`` for anything else."""
        if message.encoding[-1:] != ["ckks"]:
            raise DecodeError(f"update from {sender} is not CKKS-encrypted, and this run is")
        parts = ckks.ciphertexts(dict(tensors))
        if len(parts) != -(-size // ckks.SLOTS):
            raise DecodeError(f"update from {sender} holds {len(parts)} ciphertexts, not a model's")
        ckks.check_ciphertexts(ckks.load_context(self._context), parts)
        return parts

    def start(self, agg: Aggregate, now: float) -> Pending:
        """Add up ``agg``'s encrypted updates (``HMU -> (parts, ModelUpdate)``)."""
        total = sum(m.num_samples for _, m in agg.updates.values())
        context = ckks.load_context(self._context)
        weighted = [(parts, m.num_samples / total) for parts, m in agg.updates.values()]
        self.pending = Pending(
            agg, ckks.weighted_sum(context, weighted), sorted(agg.updates), now + self.answer_s
        )
        return self.pending

    def expired(self, now: float) -> Pending | None:
        """After the deadline: the pending round with its next holder asked (None: none left)."""
        pending = self.pending
        assert pending is not None and now >= pending.deadline
        pending.holders.pop(0)
        if not pending.holders:
            return None
        pending.deadline = now + self.answer_s
        return pending

    def answer(
        self, sender: str, version: int, tensors: Mapping[str, Tensor], global_w: Weights
    ) -> tuple[Aggregate, Weights]:
        """The new global weights from a key holder's decrypted delta."""
        pending = self.pending
        if pending is None or sender != pending.holders[0]:
            raise ProtocolViolation(f"decrypted aggregate from {sender}, which was not asked")
        if version != pending.agg.version:
            raise ProtocolViolation(
                f"decrypted aggregate for version {version}, not {pending.agg.version}"
            )
        arrays = {k: v for k, v in tensors.items() if isinstance(v, np.ndarray)}
        try:
            check_weights(arrays, global_w)
        except ValueError as exc:
            raise DecodeError(f"decrypted aggregate from {sender} does not fit: {exc}") from None
        if len(arrays) != len(tensors) or not all(np.isfinite(a).all() for a in arrays.values()):
            raise DecodeError(f"decrypted aggregate from {sender} holds non-finite values")
        self.pending = None
        return pending.agg, {k: global_w[k] + arrays[k] for k in global_w}
