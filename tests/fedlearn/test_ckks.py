"""CKKS on model updates (TenSEAL): sums decrypt to the plaintext sums; the server's
context cannot decrypt; garbage is refused as a peer's error."""

import numpy as np
import pytest

from iomt.errors import DecodeError, PeerError
from iomt.fedlearn import ckks
from iomt.fedlearn.model import init_weights
from iomt.scenarios.schema import validate_scenario
from iomt.scenarios.setups import make_he_keys


@pytest.fixture(scope="module")
def keys():
    context = ckks.new_context()
    return ckks.load_context(ckks.secret_bytes(context)), ckks.load_context(
        ckks.public_bytes(context)
    )


def test_a_weighted_sum_of_encrypted_updates_decrypts_to_the_plaintext_sum(keys):
    hmu, server = keys
    rng = np.random.default_rng(5)
    global_w = init_weights(43, (64, 64), 0)
    locals_ = [{k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in global_w.items()}
               for _ in range(3)]  # fmt: skip
    weights = [0.5, 0.3, 0.2]
    encrypted = [list(ckks.encrypt_update(hmu, global_w, w).values()) for w in locals_]
    assert len(encrypted[0]) == 2  # 7,041 parameters in vectors of 4,096 slots
    total = ckks.weighted_sum(server, list(zip(encrypted, weights, strict=True)))
    got = ckks.decrypt_delta(hmu, total, global_w)
    for name, ref in global_w.items():
        want = sum(wt * (loc[name] - ref) for wt, loc in zip(weights, locals_, strict=True))
        np.testing.assert_allclose(got[name], want, atol=1e-5)
        assert got[name].dtype == np.float32


def test_the_server_never_holds_the_secret_key(keys):
    hmu, server = keys
    assert hmu.has_secret_key() and not server.has_secret_key()
    parts = ckks.encrypt(hmu, np.ones(10))
    with pytest.raises(ValueError, match="no secret key"):
        ckks.decrypt(server, parts, 10)
    run_keys = make_he_keys(
        validate_scenario({"name": "he", "update_encryption": {"kind": "ckks"}})
    )
    assert not ckks.load_context(run_keys.public).has_secret_key()
    assert ckks.load_context(run_keys.secret).has_secret_key()
    assert make_he_keys(validate_scenario({"name": "plain"})) is None


def test_garbage_is_a_peer_error(keys):
    hmu, server = keys
    with pytest.raises(DecodeError, match="not a CKKS ciphertext"):
        ckks.weighted_sum(server, [([b"\x00" * 64], 1.0)])
    with pytest.raises(DecodeError, match="not a CKKS ciphertext"):
        ckks.check_ciphertexts(server, [b"\x00" * 64])
    fresh = ckks.encrypt(hmu, np.ones(10))
    ckks.check_ciphertexts(server, fresh)
    weighted = ckks.weighted_sum(server, [(fresh, 0.5)])  # one level down: not an update
    with pytest.raises(DecodeError, match="not a fresh CKKS ciphertext"):
        ckks.check_ciphertexts(server, weighted)
    with pytest.raises(PeerError):
        ckks.ciphertexts({"ckks.0": b"x", "weights": b"y"})
    with pytest.raises(DecodeError):
        ckks.ciphertexts({"ckks.0": np.zeros(3)})
    short = ckks.encrypt(hmu, np.ones(10))
    with pytest.raises(DecodeError, match="holds 10 values, not 5000"):
        ckks.decrypt(hmu, short, 5000)
    other = ckks.load_context(ckks.secret_bytes(ckks.new_context()))
    foreign = ckks.encrypt(other, np.ones(10))  # another run's key: decrypts to noise
    assert not np.allclose(ckks.decrypt(hmu, foreign, 10), 1.0, atol=1e-3)
