"""The two post-processing state machines: honest keys agree, attacks abort, bad frames fail."""

import hashlib
import hmac

import numpy as np
import pytest

from iomt.errors import AuthenticationError, DecodeError, ProtocolViolation
from iomt.qkd_channel.alice import AliceSession
from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.bob import BobSession
from iomt.qkd_channel.channel import prepare
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.driver import exchange, run_session
from iomt.qkd_channel.eve import make_eavesdropper
from iomt.qkd_channel.messages import Abort, mac_key, open_frame, seal
from iomt.qkd_channel.session import SessionState, session_seed

SECRET = b"enrolment secret of hmu-01 (test)"
CFG = QkdConfig(qubits=2**17)


def sessions(cfg=CFG, seed=0, eve=None, secret_alice=SECRET, secret_bob=SECRET):
    alice_rng, channel_rng, bob_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    bits = prepare(cfg.planned_qubits(), alice_rng)
    det = run_link(bits, cfg.link(), eve, channel_rng, bob_rng)
    alice = AliceSession(cfg, secret_alice, "s-1", bits, alice_rng)
    bob = BobSession(cfg, secret_bob, "s-1", det, bob_rng)
    return alice, bob


@pytest.mark.parametrize("seed", [1, 2])
def test_honest_session_yields_identical_keys(seed):
    result = run_session(CFG, secret=SECRET, session_id=f"honest-{seed}", seed=seed)
    alice, bob = result.alice, result.bob
    assert not alice.aborted and not bob.aborted, bob.reason
    assert alice.key == bob.key and alice.key is not None
    assert len(bob.key) * 8 == bob.stats.final_key_bits >= CFG.min_key_bits
    assert bob.stats.qber_upper < CFG.qber_threshold
    assert alice.stats.leaked_bits == bob.stats.leaked_bits > 0
    assert alice.stats.qber_upper == bob.stats.qber_upper


def test_high_qber_aborts_both_sides():
    eve = make_eavesdropper("intercept-resend-b92", 1.0)  # QBER ~ 25 %, rate unchanged
    result = run_session(CFG, secret=SECRET, session_id="irb92", seed=3, eve=eve)
    assert result.bob.aborted and result.alice.aborted
    assert result.bob.key is None and result.alice.key is None
    assert "QBER upper bound" in result.bob.reason
    assert "conclusive rate" not in result.bob.reason
    assert result.alice.reason.startswith("peer aborted: QBER upper bound")


def test_usd_aborts_on_low_conclusive_rate_without_errors():
    eve = make_eavesdropper("usd", 0.5)
    result = run_session(CFG, secret=SECRET, session_id="usd", seed=4, eve=eve)
    reason = result.bob.reason
    assert result.bob.aborted and "conclusive rate" in reason and "detection rate" in reason
    assert "QBER" not in reason  # USD causes loss, not errors
    assert result.bob.stats.qber_upper < CFG.qber_threshold


def test_tampered_frame_is_rejected_and_state_kept():
    alice, bob = sessions(seed=5)
    sift = bob.start()[0]
    tampered = bytearray(sift)
    tampered[-3] ^= 0x01
    with pytest.raises(AuthenticationError):
        alice.receive(bytes(tampered))
    assert alice.state is SessionState.WAIT_SIFT
    assert len(alice.receive(sift)) == 1  # the genuine frame still works


def test_wrong_enrolment_secret_fails_authentication():
    alice, bob = sessions(seed=6, secret_alice=b"some other enrolment secret!!")
    with pytest.raises(AuthenticationError):
        alice.receive(bob.start()[0])


def test_replayed_and_reflected_frames_are_refused():
    alice, bob = sessions(seed=7)
    sift = bob.start()[0]
    sample = alice.receive(sift)[0]
    with pytest.raises(ProtocolViolation, match="sequence number"):
        alice.receive(sift)  # replay
    with pytest.raises(AuthenticationError):
        alice.receive(sample)  # Alice's own frame reflected back: other direction key
    bob.receive(sample)
    assert bob.state is SessionState.RECONCILING


def test_message_in_the_wrong_state_is_a_protocol_violation():
    alice, bob = sessions(seed=8)
    bob.start()
    # an authentic abort is allowed before the sift; a second message after it is not
    early = seal(Abort(session_id="s-1", seq=0, reason="x"), mac_key(SECRET, "server"))
    alice.receive(early)  # abort is allowed in WAIT_SIFT
    assert alice.state is SessionState.ABORTED
    late = seal(Abort(session_id="s-1", seq=1, reason="y"), mac_key(SECRET, "server"))
    with pytest.raises(ProtocolViolation, match="ABORTED"):
        alice.receive(late)


def test_frame_for_another_session_is_refused():
    alice, _ = sessions(seed=9)
    other = seal(Abort(session_id="s-2", seq=0, reason="x"), mac_key(SECRET, "server"))
    with pytest.raises(ProtocolViolation, match="session"):
        alice.receive(other)


def test_garbage_frames_are_decode_errors():
    key = mac_key(SECRET, "server")
    with pytest.raises(DecodeError):
        open_frame(b"short", key)
    body = b'{"type": "nonsense"}'
    with pytest.raises(DecodeError):
        open_frame(hmac.new(key, body, hashlib.sha256).digest() + body, key)


def test_exchange_counts_frames_of_a_session():
    alice, bob = sessions(seed=10)
    frames, size = exchange(alice, bob)
    assert alice.state is bob.state is SessionState.DONE
    assert frames >= 7 and size > CFG.qubits // 8
    assert alice.outcome.key == bob.outcome.key


def test_a_session_draws_from_its_link_and_number_not_from_the_order_sessions_run_in():
    def draw(*args) -> tuple[int, ...]:
        return tuple(np.random.default_rng(session_seed(*args)).integers(0, 2**32, 4).tolist())

    first = draw(7, 0xB0B, "hmu-01", 1)
    assert draw(7, 0xB0B, "hmu-01", 1) == first  # whatever ran before it
    others = [draw(7, 0xB0B, "hmu-02", 1), draw(7, 0xB0B, "hmu-01", 2),
              draw(7, 0x0C4A, "hmu-01", 1), draw(8, 0xB0B, "hmu-01", 1)]  # fmt: skip
    assert len({first, *others}) == 5
