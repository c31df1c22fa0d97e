"""The ``qkd`` scenario section: defaults, strictness, eavesdropper assignment."""

import numpy as np
import pytest
from pydantic import ValidationError

from iomt.errors import QkdError, ScenarioError
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.eve import InterceptResend, Usd
from iomt.qkd_channel.link import honest_rates

HMUS = [f"hmu-{i:02d}" for i in range(1, 21)]


def test_defaults_are_off_and_sane():
    cfg = QkdConfig()
    assert not cfg.enabled and cfg.backend == "numpy" and cfg.cipher == "aes-gcm"
    assert cfg.qber_threshold == 0.03 and cfg.eavesdroppers == []
    rates = honest_rates(cfg.link())
    assert rates.qber < cfg.qber_threshold / 2  # honest links pass with room to spare


def test_unknown_keys_and_bad_values_fail():
    with pytest.raises(ValidationError):
        QkdConfig(qubit=100)
    with pytest.raises(ValidationError):
        QkdConfig(eavesdroppers=[{"hmus": ["hmu-01"], "model": "pns"}])
    with pytest.raises(ValidationError):
        QkdConfig(eavesdroppers=[{"hmus": 1.5}])
    with pytest.raises(ValidationError):
        QkdConfig(eavesdroppers=[{"hmus": ["HMU 1"]}])


def test_eavesdroppers_by_id_and_by_fraction():
    cfg = QkdConfig.model_validate(
        {
            "eavesdroppers": [
                {"hmus": ["hmu-03"], "model": "usd", "fraction": 0.5},
                {"hmus": 0.1, "model": "intercept-resend"},
            ]
        }
    )
    assigned = cfg.eavesdroppers_for(HMUS, np.random.default_rng(0))
    assert assigned["hmu-03"] == Usd(fraction=0.5)
    drawn = [h for h, eve in assigned.items() if isinstance(eve, InterceptResend)]
    assert len(drawn) == 2 and "hmu-03" not in drawn
    again = cfg.eavesdroppers_for(HMUS, np.random.default_rng(0))
    assert again == assigned  # seeded


def test_eavesdroppers_on_unknown_or_doubled_hmus_fail():
    cfg = QkdConfig(eavesdroppers=[{"hmus": ["hmu-99"]}])
    with pytest.raises(ScenarioError, match="unknown"):
        cfg.eavesdroppers_for(HMUS, np.random.default_rng(0))
    cfg = QkdConfig(eavesdroppers=[{"hmus": ["hmu-01"]}, {"hmus": ["hmu-01"], "model": "usd"}])
    with pytest.raises(ScenarioError, match="twice"):
        cfg.eavesdroppers_for(HMUS, np.random.default_rng(0))


def test_target_key_bits_plans_enough_qubits():
    cfg = QkdConfig(target_key_bits=4096)
    qubits = cfg.planned_qubits()
    assert qubits >= 4096 and QkdConfig(qubits=12345).planned_qubits() == 12345
    with pytest.raises(QkdError, match="no number of qubits"):
        QkdConfig(target_key_bits=4096, depolarising=0.2).planned_qubits()
