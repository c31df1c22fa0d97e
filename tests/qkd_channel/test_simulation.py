"""``simulate`` returns exactly the documented figures; an abort is a result."""

import pytest

from iomt.qkd_channel.simulation import RESULT_KEYS, simulate


def test_honest_simulation_keys_and_values():
    result = simulate(2**17, seed=1)
    assert tuple(result) == RESULT_KEYS
    assert set(result) == {
        "qubits",
        "conclusive_rate",
        "qber",
        "qber_upper",
        "sifted_bits",
        "leaked_bits",
        "final_key_bits",
        "aborted",
        "reason",
    }
    assert result["qubits"] == 2**17 and not result["aborted"] and result["reason"] is None
    assert 0 < result["qber"] <= result["qber_upper"] < 0.03
    assert result["final_key_bits"] > 256 and result["leaked_bits"] > 0


def test_eavesdropper_abort_is_a_result():
    result = simulate(2**17, eve_model="intercept-resend", eve_fraction=1.0, seed=2)
    assert result["aborted"] and result["final_key_bits"] == 0
    assert result["qber"] == pytest.approx(1 / 3, abs=0.05)
    assert "QBER upper bound" in result["reason"] and "conclusive rate" in result["reason"]


def test_longer_fibre_lowers_the_conclusive_rate():
    near = simulate(2**16, length_km=1.0, seed=3)
    far = simulate(2**16, length_km=40.0, seed=3)
    assert far["conclusive_rate"] < near["conclusive_rate"] / 3


def test_qiskit_backend_runs_the_same_pipeline():
    result = simulate(3_000, backend="qiskit", seed=4)
    assert tuple(result) == RESULT_KEYS and result["qubits"] == 3_000
    assert result["aborted"]  # too few qubits for a tight QBER bound: a result, not an error
