"""The qiskit-aer circuits and the numpy core agree on the same link parameters."""

import math

import numpy as np
import pytest

from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.channel import expected_rates, prepare
from iomt.qkd_channel.eve import make_eavesdropper
from iomt.qkd_channel.link import LinkParams
from tests.qkd_channel.helpers import SIGMAS, observed, se

LINK = LinkParams(
    fibre_km=5.0, db_per_km=0.2, detector_efficiency=0.9, dark_count_prob=0.01, depolarising=0.1
)
QISKIT_N = 6_000
NUMPY_N = 600_000


def run(backend, n, eve, seed):
    alice, channel, bob = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    bits = prepare(n, alice)
    return bits, run_link(bits, LINK, eve, channel, bob, backend)


@pytest.mark.parametrize(
    "model", [None, "intercept-resend", "intercept-resend-b92", "helstrom", "usd"]
)
def test_numpy_and_qiskit_statistics_agree(model):
    eve = make_eavesdropper(model, 0.8) if model else None
    q_bits, q_det = run("qiskit", QISKIT_N, eve, seed=101)
    n_bits, n_det = run("numpy", NUMPY_N, eve, seed=102)
    q_rate, q_qber, q_click, q_conc = observed(q_bits, q_det)
    n_rate, n_qber, n_click, n_conc = observed(n_bits, n_det)
    exact = expected_rates(LINK, eve)
    for got_q, got_n, p, nq, nn in (
        (q_rate, n_rate, exact.conclusive, QISKIT_N, NUMPY_N),
        (q_click, n_click, exact.click, QISKIT_N, NUMPY_N),
        (q_qber, n_qber, exact.qber, q_conc, n_conc),
    ):
        tolerance = SIGMAS * math.hypot(se(p, nq), se(p, nn))
        assert abs(got_q - got_n) <= tolerance, (model, got_q, got_n, p)


def test_qiskit_usd_never_errs_on_a_noiseless_link():
    ideal = LinkParams(fibre_km=0, detector_efficiency=1, dark_count_prob=0, depolarising=0)
    alice, channel, bob = (np.random.default_rng(s) for s in (1, 2, 3))
    bits = prepare(2_000, alice)
    det = run_link(bits, ideal, make_eavesdropper("usd", 1.0), channel, bob, "qiskit")
    assert np.array_equal(det.sifted_bits(), bits[det.conclusive])
    # Eve passes 1 - 1/sqrt(2) of the qubits; the rest never click
    expected = 1 - 1 / math.sqrt(2)
    assert abs(det.clicked.mean() - expected) <= SIGMAS * se(expected, bits.size)


def test_usd_dilation_is_unitary_and_unambiguous():
    from iomt.qkd_channel.qiskit_backend import _usd_unitary

    u = _usd_unitary()
    assert np.allclose(u.conj().T @ u, np.eye(4))
    plus = np.array([1, 1, 0, 0]) / math.sqrt(2)  # |+>|0>, index system + 2 * ancilla
    zero = np.array([1, 0, 0, 0])
    out_zero, out_plus = u @ zero, u @ plus
    # ancilla 0 and system 1 never happens for |0>; ancilla 0 and system 0 never for |+>
    assert abs(out_zero[1]) < 1e-12 and abs(out_plus[0]) < 1e-12
    assert abs(out_zero[0]) ** 2 == pytest.approx(1 - 1 / math.sqrt(2))
