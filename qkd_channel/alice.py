"""Alice's post-processing state machine, run by the HMU that sent the qubits.

Transitions (message received -> what Alice does)::

    WAIT_SIFT     sift          sift her bits, disclose a sample   -> WAIT_PLAN
    WAIT_PLAN     parity_query  check PE, answer parities          -> RECONCILING
    RECONCILING   parity_query  answer parities                    -> RECONCILING
    RECONCILING   verify        check hash and length, amplify,
                                send her confirmation              -> WAIT_CONFIRM
    WAIT_CONFIRM  confirm       check the server's confirmation    -> DONE
    any but end   abort                                            -> ABORTED

Alice recomputes every public decision herself (QBER bound, final length) and
aborts if the server asks for more key than her own bound allows.
"""

from __future__ import annotations

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.amplification import amplify, secure_length
from iomt.qkd_channel.cascade import CascadePlan, ParityOracle
from iomt.qkd_channel.cascade import ParityQuery as CascadeQuery
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.confirmation import confirm, confirmation_tag
from iomt.qkd_channel.estimation import QberEstimate, choose_sample
from iomt.qkd_channel.messages import (
    Abort,
    Confirm,
    ParityQuery,
    ParityReply,
    QkdMessage,
    Sample,
    Sift,
    Verify,
    _Message,
    pack_bits,
    unpack_bits,
    unpack_u32,
)
from iomt.qkd_channel.session import Handler, Session, SessionState
from iomt.qkd_channel.sifting import pack_mask, sift, unpack_mask
from iomt.qkd_channel.verification import VERIFY_BITS, tags_match, verification_tag

S = SessionState


class AliceSession(Session):
    """The HMU's side: holds the bits it sent; answers, checks and amplifies."""

    role = "hmu"
    peer = "server"

    def __init__(
        self,
        config: QkdConfig,
        secret: bytes,
        session_id: str,
        bits: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(config, secret, session_id)
        self._bits = np.asarray(bits, dtype=np.uint8)
        self._rng = rng
        self._rest = np.empty(0, dtype=np.uint8)
        self._oracle: ParityOracle | None = None
        self._final: bytes | None = None
        self.state = S.WAIT_SIFT

    def _table(self) -> dict[tuple[SessionState, str], Handler]:
        table: dict[tuple[SessionState, str], Handler] = {
            (S.WAIT_SIFT, "sift"): self._on_sift,
            (S.WAIT_PLAN, "parity_query"): self._on_query,
            (S.RECONCILING, "parity_query"): self._on_query,
            (S.RECONCILING, "verify"): self._on_verify,
            (S.WAIT_CONFIRM, "confirm"): self._on_confirm,
        }
        for state in (S.WAIT_SIFT, S.WAIT_PLAN, S.RECONCILING, S.WAIT_CONFIRM):
            table[(state, "abort")] = self._on_abort
        return table

    def _on_sift(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, Sift)
        n = self._bits.size
        if message.qubits != n:
            raise ProtocolViolation(f"sift covers {message.qubits} qubits, {n} were sent")
        conclusive = unpack_mask(message.conclusive, n)
        count = int(conclusive.sum())
        if not count <= message.detections <= n:
            raise ProtocolViolation(
                f"sift claims {message.detections} detections for {count} conclusive slots"
            )
        sifted = sift(self._bits, conclusive)
        sample = choose_sample(sifted.size, self.config.sample_fraction, self._rng)
        self._rest = sifted[~sample]
        st = self.stats
        st.qubits, st.detections, st.conclusive = n, message.detections, count
        st.sifted_bits, st.sample_size = int(sifted.size), int(sample.sum())
        self.state = S.WAIT_PLAN
        return [self._new(Sample, positions=pack_mask(sample), bits=pack_bits(sifted[sample]))]

    def _on_query(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, ParityQuery)
        oracle = self._oracle
        estimate = None
        if self.state is S.WAIT_PLAN:
            start = message.start
            if start is None:
                raise ProtocolViolation("first parity query carries no Cascade plan")
            if start.sample_errors > self.stats.sample_size:
                raise ProtocolViolation("more sample errors than sampled bits")
            if len(start.seeds) != len(start.block_sizes) or min(start.block_sizes) < 1:
                raise ProtocolViolation("malformed Cascade plan")
            plan = CascadePlan(
                n=int(self._rest.size),
                block_sizes=tuple(start.block_sizes),
                seeds=tuple(start.seeds),
            )
            if any(not 0 <= seed < 2**63 for seed in plan.seeds):
                raise ProtocolViolation("Cascade seed out of range")
            oracle = ParityOracle(self._rest, plan)
            estimate = QberEstimate(
                self.stats.sample_size, start.sample_errors, self.config.confidence
            )
        elif message.start is not None:
            raise ProtocolViolation("Cascade plan sent twice")
        assert oracle is not None
        passes = np.frombuffer(message.passes, dtype=np.uint8)
        query = CascadeQuery(
            passes=passes, starts=unpack_u32(message.starts), ends=unpack_u32(message.ends)
        )
        parities = oracle.answer(query)  # raises ProtocolViolation on a bad range
        if estimate is not None:
            self._oracle = oracle
            self.stats.sample_errors = estimate.errors
            self.stats.qber, self.stats.qber_upper = estimate.qber, estimate.upper
            self.state = S.RECONCILING
        self.stats.leaked_bits += int(parities.size)
        return [self._new(ParityReply, count=int(parities.size), parities=pack_bits(parities))]

    def _on_verify(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, Verify)
        n = int(self._rest.size)
        length = message.key_bits
        hash_seed = unpack_bits(message.hash_seed, n + VERIFY_BITS - 1)
        pa_seed = unpack_bits(message.pa_seed, n + length - 1) if length else None
        self.stats.leaked_bits += VERIFY_BITS
        upper = 1.0 if self.stats.qber_upper is None else self.stats.qber_upper
        allowed = secure_length(n, upper, self.stats.leaked_bits)
        allowed -= allowed % 8
        if not tags_match(verification_tag(self._rest, hash_seed), message.tag):
            self._abort("verification failed: keys still differ after Cascade")
            return [self._new(Abort, reason=self.reason[:1000])]
        if length % 8 or length > allowed or length < self.config.min_key_bits:
            self._abort(f"server asked for a {length}-bit key, the bound allows {allowed}")
            return [self._new(Abort, reason=self.reason[:1000])]
        assert pa_seed is not None
        self._final = np.packbits(amplify(self._rest, pa_seed, length)).tobytes()
        self.stats.final_key_bits = length
        self.state = S.WAIT_CONFIRM
        tag = confirmation_tag(self._final, "hmu", self.session_id)
        return [self._new(Confirm, tag=tag)]

    def _on_confirm(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, Confirm) and self._final is not None
        if not confirm(self._final, "server", self.session_id, message.tag):
            self._abort("key confirmation from the server failed")
            return [self._new(Abort, reason=self.reason[:1000])]
        self._key = self._final
        self.state = S.DONE
        return []
