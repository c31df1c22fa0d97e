"""The server's side of FL + HE, with real ciphertexts and no broker."""

import numpy as np
import pytest

from iomt.errors import DecodeError, ProtocolViolation
from iomt.fedlearn import ckks
from iomt.fedlearn.model import init_weights
from iomt.server_agent.encrypted_rounds import EncryptedRounds
from iomt.server_agent.events import Aggregate
from iomt.wire.messages import ModelUpdate


@pytest.fixture(scope="module")
def contexts():
    context = ckks.new_context()
    return ckks.secret_bytes(context), ckks.public_bytes(context)


def update(n: int, encoding=("ckks",)) -> ModelUpdate:
    return ModelUpdate(
        num_samples=n, loss=0.1, train_seconds=0.0, encoding=list(encoding), tensors=[]
    )


def test_a_round_is_summed_weighted_by_samples_and_decrypted_by_the_first_holder(contexts):
    secret, public = contexts
    hmu = ckks.load_context(secret)
    global_w = init_weights(4, (3,), 0)
    deltas = {"hmu-02": 0.1, "hmu-01": 0.4}
    samples = {"hmu-02": 300, "hmu-01": 100}
    updates = {}
    rounds = EncryptedRounds(public, answer_s=5.0)
    size = sum(v.size for v in global_w.values())
    for h, d in deltas.items():
        tensors = ckks.encrypt_update(hmu, global_w, {k: v + d for k, v in global_w.items()})
        parts = rounds.encrypted_update(h, update(samples[h]), tensors, size)
        updates[h] = (parts, update(samples[h]))
    pending = rounds.start(Aggregate(1, ("hmu-01", "hmu-02"), updates, False, version=2), now=0.0)
    assert pending.holders == ["hmu-01", "hmu-02"] and pending.deadline == 5.0
    delta = ckks.decrypt_delta(hmu, pending.parts, global_w)  # what hmu-01 does when asked
    with pytest.raises(ProtocolViolation, match="not asked"):
        rounds.answer("hmu-02", 2, delta, global_w)
    with pytest.raises(ProtocolViolation, match="version 1"):
        rounds.answer("hmu-01", 1, delta, global_w)
    agg, new = rounds.answer("hmu-01", 2, delta, global_w)
    assert agg.round == 1 and rounds.pending is None
    for k, v in global_w.items():  # (300 * 0.1 + 100 * 0.4) / 400
        np.testing.assert_allclose(new[k], v + 0.175, atol=1e-5)


def test_a_silent_holder_is_replaced_then_the_round_gives_up(contexts):
    secret, public = contexts
    hmu = ckks.load_context(secret)
    global_w = init_weights(4, (3,), 0)
    tensors = ckks.encrypt_update(hmu, global_w, global_w)
    parts = ckks.ciphertexts(tensors)
    updates = {h: (parts, update(10)) for h in ("hmu-01", "hmu-03")}
    rounds = EncryptedRounds(public, answer_s=2.0)
    rounds.start(Aggregate(4, ("hmu-01", "hmu-03"), updates, False, version=3), now=10.0)
    again = rounds.expired(12.0)
    assert again is not None and again.holders == ["hmu-03"] and again.deadline == 14.0
    assert rounds.expired(14.0) is None


def test_what_is_not_a_ckks_update_or_answer_is_refused(contexts):
    secret, public = contexts
    rounds = EncryptedRounds(public, answer_s=2.0)
    with pytest.raises(DecodeError, match="not CKKS-encrypted"):
        rounds.encrypted_update("hmu-01", update(5, ()), {"w": np.zeros(2)}, 10)
    with pytest.raises(DecodeError):
        rounds.encrypted_update("hmu-01", update(5), {"ckks.0": np.zeros(2)}, 10)
    # well named but not a ciphertext, or too few: refused on arrival, not at aggregation
    with pytest.raises(DecodeError, match="not a CKKS ciphertext"):
        rounds.encrypted_update("hmu-01", update(5), {"ckks.0": b"\x00" * 64}, 10)
    one = ckks.encrypt_update(
        ckks.load_context(secret), {"w": np.zeros(5000)}, {"w": np.ones(5000)}
    )
    with pytest.raises(DecodeError, match="holds 2 ciphertexts"):
        rounds.encrypted_update("hmu-01", update(5), one, 10)
    with pytest.raises(ProtocolViolation, match="not asked"):
        rounds.answer("hmu-01", 0, {}, {})
