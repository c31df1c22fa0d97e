"""The same B92 link as quantum circuits run on qiskit-aer: a slow, independent check.

Each slot is one qubit of a wide circuit (200 slots per experiment, one shot each,
many experiments bound to one parameterised template, so Aer does the batching).
The steps mirror :mod:`iomt.qkd_channel.channel` but share none of its probabilities:

1. *Eve* (attacked slots only): Alice's state ``Ry(bit * pi/2)|0>`` followed by
   Eve's measurement as a circuit: a basis rotation and ``measure`` (intercept-
   resend variants), the Helstrom projective measurement (``Ry(pi/4)`` then
   ``measure``), or unambiguous discrimination as a Naimark dilation on a qubit
   plus an ancilla (a 2-qubit unitary, then ``measure`` both).  Her outcomes are
   read back and her resend is chosen from them classically, exactly as a real
   intercept-resend device does (measure, decide, prepare a fresh photon).
2. *Channel and Bob*: the photon actually sent (Alice's, or Eve's resend) is
   prepared with ``Ry``, an ``id`` gate carries qiskit-aer's
   ``depolarizing_error(p, 1)``, Bob rotates to his basis and measures.
3. *Loss and detectors* are state-independent classical processes, sampled per
   slot (fibre loss, Eve's blocks, detector efficiency, two dark counts and a
   coin for double clicks) and combined by :func:`iomt.qkd_channel.states.combine_clicks`.

Aer's ``matrix_product_state`` method handles the non-Clifford rotations with
bond dimension 1 or 2, so throughput is roughly 10-50 k qubits/s on two cores.
"""

from __future__ import annotations

import logging
import math
from functools import cache

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error

from iomt.errors import QkdError
from iomt.qkd_channel.channel import Detections, bernoulli, random_bits
from iomt.qkd_channel.eve.base import Eavesdropper
from iomt.qkd_channel.link import LinkParams
from iomt.qkd_channel.states import OVERLAP, combine_clicks

log = logging.getLogger(__name__)

SLOTS = 200  # slots per experiment (qubits per circuit, 2x for USD)
HALF_PI = math.pi / 2


def _usd_unitary() -> np.ndarray:
    """A unitary on (system, ancilla) that unambiguously discriminates |0> and |+>.

    Index ``system + 2 * ancilla`` (qiskit's little-endian order).  It maps
    ``|psi_j>|0>`` to ``sqrt(1 - s)|j>|0> + sqrt(s)|0>|1>``: ancilla 1 is the
    inconclusive branch (the same state for both inputs, so it carries nothing),
    ancilla 0 leaves the system in ``|j>``.  Success probability ``1 - s``.
    """
    s = OVERLAP
    col0 = np.array([math.sqrt(1 - s), 0.0, math.sqrt(s), 0.0])  # image of |0>|0>
    img_plus = np.array([0.0, math.sqrt(1 - s), math.sqrt(s), 0.0])  # image of |+>|0>
    col1 = math.sqrt(2.0) * img_plus - col0  # |1> = sqrt(2)|+> - |0>
    first = np.stack([col0, col1], axis=1)
    # complete to a unitary: orthonormal basis of the complement of the first two columns
    q, _ = np.linalg.qr(np.concatenate([first, np.eye(4)], axis=1))
    rest = q[:, 2:4]
    unitary = np.concatenate([first, rest], axis=1)
    if not np.allclose(unitary.conj().T @ unitary, np.eye(4), atol=1e-12):
        raise QkdError("USD dilation is not unitary")  # pragma: no cover - maths guard
    # columns 2, 3 are images of |0>|1>, |1>|1>: any completion works since the
    # ancilla starts in |0>
    return unitary


@cache
def _eve_template(model: str) -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Alice's preparation then Eve's measurement for ``SLOTS`` slots."""
    alice = ParameterVector("alice", SLOTS)
    eve = ParameterVector("eve", SLOTS)
    if model == "usd":
        qc = QuantumCircuit(2 * SLOTS, 2 * SLOTS)
        gate = _usd_unitary()
        for i in range(SLOTS):
            qc.ry(alice[i], 2 * i)
            qc.unitary(gate, [2 * i, 2 * i + 1])
            qc.measure(2 * i, 2 * i)
            qc.measure(2 * i + 1, 2 * i + 1)
        return qc, alice, eve
    qc = QuantumCircuit(SLOTS, SLOTS)
    for i in range(SLOTS):
        qc.ry(alice[i], i)
        qc.ry(eve[i], i)  # rotation that maps Eve's measurement basis onto Z
        qc.measure(i, i)
    return qc, alice, eve


@cache
def _bob_template(noisy: bool) -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Photon preparation, the depolarising fibre (``id``), Bob's basis and measurement."""
    sent = ParameterVector("sent", SLOTS)
    bob = ParameterVector("bob", SLOTS)
    qc = QuantumCircuit(SLOTS, SLOTS)
    for i in range(SLOTS):
        qc.ry(sent[i], i)
        if noisy:
            qc.id(i)
        qc.ry(bob[i], i)
        qc.measure(i, i)
    return qc, sent, bob


def _run(
    qc: QuantumCircuit,
    params: list[tuple[ParameterVector, np.ndarray]],
    experiments: int,
    seed: int,
    noise: NoiseModel | None = None,
) -> np.ndarray:
    """Run ``experiments`` bindings of ``qc``; the measured bits as (experiments, clbits)."""
    binds = {}
    for vector, values in params:
        for i, parameter in enumerate(vector):
            binds[parameter] = values[:, i].tolist()
    sim = AerSimulator(method="matrix_product_state", noise_model=noise)
    result = sim.run(
        qc, parameter_binds=[binds], shots=1, memory=True, seed_simulator=seed
    ).result()
    rows = [result.get_memory(k)[0].replace(" ", "") for k in range(experiments)]
    bits = np.frombuffer("".join(rows).encode(), dtype=np.uint8) - ord("0")
    return bits.reshape(experiments, -1)[:, ::-1]  # clbit 0 is the rightmost character


def _padded(values: np.ndarray, fill: float = 0.0) -> tuple[np.ndarray, int]:
    """``values`` padded to whole experiments and shaped (experiments, SLOTS)."""
    experiments = max(1, -(-values.size // SLOTS))
    out = np.full(experiments * SLOTS, fill, dtype=float)
    out[: values.size] = values
    return out.reshape(experiments, SLOTS), experiments


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _eve_resends(
    model: str, bits: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Run Eve's measurement on the attacked qubits ``bits``: (resend angle, blocked)."""
    n = bits.size
    alice, experiments = _padded(bits * HALF_PI)
    eve_basis = random_bits(n, rng)  # used by the intercept-resend variants
    if model in ("intercept-resend", "intercept-resend-b92"):
        rotation = -HALF_PI * eve_basis.astype(float)  # X basis: Ry(-pi/2) maps |+> to |0>
    elif model == "helstrom":
        rotation = np.full(n, math.pi / 4)  # maps the Helstrom axis (-1,0,1)/sqrt2 onto +z
    elif model == "usd":
        rotation = np.zeros(n)
    else:
        raise QkdError(f"qiskit backend has no circuit for eavesdropper {model!r}")
    qc, p_alice, p_eve = _eve_template(model)
    params = [(p_alice, alice)]
    if model != "usd":
        params.append((p_eve, _padded(rotation)[0]))
    measured = _run(qc, params, experiments, _seed(rng))
    blocked = np.zeros(n, dtype=bool)
    if model == "usd":
        system = measured[:, 0::2].ravel()[:n]
        blocked = measured[:, 1::2].ravel()[:n].astype(bool)
        guess = system
    else:
        outcome = measured.ravel()[:n]
        if model == "intercept-resend":
            # resend the eigenstate seen: Z -> |0>, |1> (0, pi); X -> |+>, |-> (pi/2, -pi/2)
            z_angle = np.where(outcome == 1, math.pi, 0.0)
            x_angle = np.where(outcome == 1, -HALF_PI, HALF_PI)
            return np.where(eve_basis == 1, x_angle, z_angle), blocked
        if model == "intercept-resend-b92":
            # Z: 1 -> bit 1, 0 -> guess 0;  X: '-' (1) -> bit 0, '+' (0) -> guess 1
            guess = outcome ^ eve_basis
        else:  # helstrom: outcome 0 is the axis closer to |0>
            guess = outcome
    return guess.astype(float) * HALF_PI, blocked


def run_qiskit(
    bits: np.ndarray,
    link: LinkParams,
    eve: Eavesdropper | None,
    channel_rng: np.random.Generator,
    bob_rng: np.random.Generator,
) -> Detections:
    """Simulate the link for Alice's ``bits`` on qiskit-aer; same record as the numpy core."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.size
    sent = bits.astype(float) * HALF_PI
    blocked = np.zeros(n, dtype=bool)
    if eve is not None:
        attacked = bernoulli(n, eve.fraction, channel_rng)
        if attacked.any():
            angle, eve_blocked = _eve_resends(eve.name, bits[attacked], channel_rng)
            sent[attacked] = angle
            blocked[attacked] = eve_blocked
    fibre = bernoulli(n, link.transmittance, channel_rng)

    basis = random_bits(n, bob_rng)
    noise = None
    if link.depolarising > 0:
        noise = NoiseModel()
        noise.add_all_qubit_quantum_error(depolarizing_error(link.depolarising, 1), ["id"])
    qc, p_sent, p_bob = _bob_template(noise is not None)
    sent_grid, experiments = _padded(sent)
    bob_grid = _padded(-HALF_PI * basis.astype(float))[0]
    outcome = _run(
        qc, [(p_sent, sent_grid), (p_bob, bob_grid)], experiments, _seed(bob_rng), noise
    ).ravel()[:n]

    arrived = fibre & ~blocked & bernoulli(n, link.detector_efficiency, bob_rng)
    dark_c = bernoulli(n, link.dark_count_prob, bob_rng)
    dark_o = bernoulli(n, link.dark_count_prob, bob_rng)
    coin = random_bits(n, bob_rng).astype(bool)
    conclusive, clicked = combine_clicks(arrived, outcome == 1, dark_c, dark_o, coin)
    log.debug("qiskit link: %d qubits, %d conclusive", n, int(conclusive.sum()))
    return Detections(basis=basis, clicked=clicked, conclusive=conclusive)
