"""``simulate``: one B92 session as a dict of figures (an abort is a result)."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.driver import SessionResult, run_session
from iomt.qkd_channel.eve import make_eavesdropper

RESULT_KEYS = (
    "qubits",
    "conclusive_rate",
    "qber",
    "qber_upper",
    "sifted_bits",
    "leaked_bits",
    "final_key_bits",
    "aborted",
    "reason",
)


def simulated_session(
    qubits: int,
    eve_model: str | None = None,
    eve_fraction: float = 1.0,
    length_km: float = 10.0,
    backend: Literal["numpy", "qiskit"] = "numpy",
    seed: int = 0,
    config: QkdConfig | None = None,
) -> SessionResult:
    """One session of ``qubits`` qubits over ``length_km`` of fibre, in process.

    ``config`` supplies every other link and post-processing setting (defaults of
    :class:`QkdConfig` otherwise)."""
    base = (config or QkdConfig()).model_dump()
    base.update(qubits=qubits, target_key_bits=None, fibre_km=length_km, backend=backend)
    cfg = QkdConfig.model_validate(base)
    eve = make_eavesdropper(eve_model, eve_fraction) if eve_model else None
    secret = hashlib.sha256(b"iomt qkd simulate|%d" % seed).digest()
    return run_session(cfg, secret=secret, session_id=f"sim-{seed}", seed=seed, eve=eve)


def figures(result: SessionResult) -> dict[str, Any]:
    """A session's figures (``RESULT_KEYS``).  ``qber`` and ``qber_upper`` are the
    server's estimate from the disclosed sample and its Clopper-Pearson bound (None if
    no sample was taken)."""
    bob = result.bob
    st = bob.stats
    return {
        "qubits": st.qubits,
        "conclusive_rate": st.conclusive / st.qubits if st.qubits else 0.0,
        "qber": st.qber,
        "qber_upper": st.qber_upper,
        "sifted_bits": st.sifted_bits,
        "leaked_bits": st.leaked_bits,
        "final_key_bits": st.final_key_bits if not bob.aborted else 0,
        "aborted": bob.aborted,
        "reason": bob.reason,
    }


def simulate(
    qubits: int,
    eve_model: str | None = None,
    eve_fraction: float = 1.0,
    length_km: float = 10.0,
    backend: Literal["numpy", "qiskit"] = "numpy",
    seed: int = 0,
    config: QkdConfig | None = None,
) -> dict[str, Any]:
    """``figures`` of one ``simulated_session``."""
    session = simulated_session(qubits, eve_model, eve_fraction, length_km, backend, seed, config)
    return figures(session)
