"""Bob's post-processing state machine, run by the server that measured the qubits.

Transitions (event -> what Bob does)::

    START         start()       announce the conclusive slots       -> WAIT_SAMPLE
    WAIT_SAMPLE   sample        estimate the QBER, check its bound and
                                the rate bands; abort, or send the
                                Cascade plan with the first query   -> RECONCILING
    RECONCILING   parity_reply  correct; next query, or verify hash,
                                final length and PA seed            -> WAIT_CONFIRM
    WAIT_CONFIRM  confirm       check Alice's confirmation, send his -> DONE
    DONE          abort         a late abort revokes the key         -> ABORTED
    other states  abort                                              -> ABORTED

Bob decides the abort: the QBER upper bound above ``qber_threshold``, or the
conclusive or detection count outside the binomial band expected for the
configured link (USD-style attacks show up as loss, not errors).
"""

from __future__ import annotations

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.amplification import amplify, pa_seed_bits, secure_length
from iomt.qkd_channel.cascade import CascadeCorrector, make_plan
from iomt.qkd_channel.channel import Detections
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.confirmation import confirm, confirmation_tag
from iomt.qkd_channel.estimation import QberEstimate, rate_violation
from iomt.qkd_channel.link import honest_rates
from iomt.qkd_channel.messages import (
    Abort,
    CascadeStart,
    Confirm,
    ParityQuery,
    ParityReply,
    QkdMessage,
    Sample,
    Sift,
    Verify,
    _Message,
    pack_bits,
    pack_u32,
    unpack_bits,
)
from iomt.qkd_channel.session import Handler, Session, SessionState
from iomt.qkd_channel.sifting import pack_mask, unpack_mask
from iomt.qkd_channel.verification import VERIFY_BITS, verification_seed, verification_tag

S = SessionState
MIN_RECONCILED_BITS = 64


class BobSession(Session):
    """The server's side: holds Bob's detection record; decides, corrects, amplifies."""

    role = "server"
    peer = "hmu"

    def __init__(
        self,
        config: QkdConfig,
        secret: bytes,
        session_id: str,
        detections: Detections,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(config, secret, session_id)
        self._det = detections
        self._rng = rng
        self._sifted = detections.sifted_bits()
        self._corrector: CascadeCorrector | None = None
        self._final: bytes | None = None

    def _table(self) -> dict[tuple[SessionState, str], Handler]:
        table: dict[tuple[SessionState, str], Handler] = {
            (S.WAIT_SAMPLE, "sample"): self._on_sample,
            (S.RECONCILING, "parity_reply"): self._on_reply,
            (S.WAIT_CONFIRM, "confirm"): self._on_confirm,
        }
        for state in (S.WAIT_SAMPLE, S.RECONCILING, S.WAIT_CONFIRM, S.DONE):
            table[(state, "abort")] = self._on_abort
        return table

    def start(self) -> list[bytes]:
        """Open the session: the sifting announcement for Alice."""
        if self.state is not S.START:
            raise ProtocolViolation(f"server session already started (state {self.state.name})")
        det = self._det
        st = self.stats
        st.qubits, st.detections = det.qubits, int(det.clicked.sum())
        st.conclusive = st.sifted_bits = int(det.conclusive.sum())
        self.state = S.WAIT_SAMPLE
        announcement = self._new(
            Sift,
            qubits=det.qubits,
            detections=st.detections,
            conclusive=pack_mask(det.conclusive),
        )
        return self._emit([announcement])

    def _on_sample(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, Sample)
        mask = unpack_mask(message.positions, self._sifted.size)
        size = int(mask.sum())
        alice = unpack_bits(message.bits, size)
        cfg = self.config
        estimate = QberEstimate(size, int((alice != self._sifted[mask]).sum()), cfg.confidence)
        st = self.stats
        st.sample_size, st.sample_errors = size, estimate.errors
        st.qber, st.qber_upper = estimate.qber, estimate.upper
        rest = self._sifted[~mask]
        reasons = self._rate_checks()
        if estimate.upper > cfg.qber_threshold:
            reasons.append(
                f"QBER upper bound {estimate.upper:.4f} (estimate {estimate.qber:.4f} from "
                f"{size} bits) exceeds the threshold {cfg.qber_threshold}"
            )
        if rest.size < MIN_RECONCILED_BITS and not reasons:
            reasons.append(f"only {rest.size} sifted bits left after sampling")
        if reasons:
            self._abort("; ".join(reasons))
            return [self._new(Abort, reason=self.reason[:1000])]
        plan = make_plan(rest.size, estimate.qber, self._rng)
        self._corrector = CascadeCorrector(rest, plan)
        self.state = S.RECONCILING
        start = CascadeStart(
            sample_errors=estimate.errors,
            block_sizes=list(plan.block_sizes),
            seeds=list(plan.seeds),
        )
        return [self._query(start)]

    def _rate_checks(self) -> list[str]:
        expected = honest_rates(self.config.link())
        st, conf = self.stats, self.config.confidence
        checks = [
            rate_violation("conclusive", st.conclusive, st.qubits, expected.conclusive, conf),
            rate_violation("detection", st.detections, st.qubits, expected.click, conf),
        ]
        return [reason for reason in checks if reason is not None]

    def _query(self, start: CascadeStart | None = None) -> _Message:
        assert self._corrector is not None
        query = self._corrector.next_query()
        assert query is not None
        return self._new(
            ParityQuery,
            start=start,
            passes=query.passes.tobytes(),
            starts=pack_u32(query.starts),
            ends=pack_u32(query.ends),
        )

    def _on_reply(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, ParityReply)
        corrector = self._corrector
        assert corrector is not None
        corrector.apply(unpack_bits(message.parities, message.count))  # validates first
        if corrector.next_query() is not None:
            return [self._query()]
        return [self._finish_reconciliation(corrector)]

    def _finish_reconciliation(self, corrector: CascadeCorrector) -> _Message:
        st = self.stats
        key = corrector.key
        n = int(key.size)
        st.corrected_bits = corrector.corrected
        st.leaked_bits = corrector.leaked_bits + VERIFY_BITS
        assert st.qber_upper is not None
        length = secure_length(n, st.qber_upper, st.leaked_bits)
        length -= length % 8
        if length < self.config.min_key_bits:
            self._abort(
                f"secure key length {length} bits is below the minimum "
                f"{self.config.min_key_bits} (n={n}, leaked={st.leaked_bits})"
            )
            return self._new(Abort, reason=self.reason[:1000])
        hash_seed = verification_seed(n, self._rng)
        pa_seed = pa_seed_bits(n, length, self._rng)
        self._final = np.packbits(amplify(key, pa_seed, length)).tobytes()
        st.final_key_bits = length
        self.state = S.WAIT_CONFIRM
        return self._new(
            Verify,
            hash_seed=pack_bits(hash_seed),
            tag=verification_tag(key, hash_seed),
            key_bits=length,
            pa_seed=pack_bits(pa_seed),
        )

    def _on_confirm(self, message: QkdMessage) -> list[_Message]:
        assert isinstance(message, Confirm) and self._final is not None
        if not confirm(self._final, "hmu", self.session_id, message.tag):
            self._abort("key confirmation from the HMU failed")
            return [self._new(Abort, reason=self.reason[:1000])]
        self._key = self._final
        self.state = S.DONE
        return [self._new(Confirm, tag=confirmation_tag(self._final, "server", self.session_id))]
