"""Throughput of the QKD stack: numpy vs qiskit links, post-processing, AES-GCM seal+open.

Run: ``.venv/bin/python -m bench.qkd_throughput``.  Figures depend on the machine
(and on what else runs on it); the targets are those of the issue.
"""

from __future__ import annotations

import time

import numpy as np

from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.channel import measure, prepare, transmit
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.driver import postprocess
from iomt.qkd_channel.eve import make_eavesdropper
from iomt.wire.aead import Opener, Sealer, derive_keys

NUMPY_QUBITS = 10**7
CHUNK = 2**18
QISKIT_QUBITS = 20_000
SIFTED_TARGET = 10**5
UPDATE_FLOATS = 6_600  # ~26 KB of float32: one IDS model update


def bench_numpy(eve) -> float:
    cfg = QkdConfig()
    link = cfg.link()
    alice, channel, bob = (np.random.default_rng(s) for s in (1, 2, 3))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        conclusive = 0
        for offset in range(0, NUMPY_QUBITS, CHUNK):
            n = min(CHUNK, NUMPY_QUBITS - offset)
            det = measure(transmit(prepare(n, alice), link, eve, channel), link, bob)
            conclusive += int(np.count_nonzero(det.conclusive))
        best = min(best, time.perf_counter() - start)
    return NUMPY_QUBITS / best


def bench_qiskit(eve) -> float:
    link = QkdConfig().link()
    alice, channel, bob = (np.random.default_rng(s) for s in (1, 2, 3))
    bits = prepare(200, alice)
    run_link(bits, link, eve, channel, bob, "qiskit")  # warm up imports and templates
    bits = prepare(QISKIT_QUBITS, alice)
    start = time.perf_counter()
    run_link(bits, link, eve, channel, bob, "qiskit")
    return QISKIT_QUBITS / (time.perf_counter() - start)


def bench_postprocessing() -> tuple[float, int, int, int, int]:
    cfg = QkdConfig()
    rates_qubits = int(SIFTED_TARGET / 0.1434) + 1
    alice_rng, channel_rng, bob_rng = (np.random.default_rng(s) for s in (4, 5, 6))
    bits = prepare(rates_qubits, alice_rng)
    det = run_link(bits, cfg.link(), None, channel_rng, bob_rng)
    start = time.perf_counter()
    result = postprocess(cfg, bits, det, b"bench enrolment secret", "bench", alice_rng, bob_rng)
    elapsed = time.perf_counter() - start
    st = result.bob.stats
    if result.alice.key != result.bob.key or result.bob.aborted:
        raise SystemExit(f"post-processing failed: {result.bob.reason}")
    return elapsed, st.sifted_bits, st.leaked_bits, st.final_key_bits, result.frames


def bench_aead() -> float:
    keys = derive_keys(bytes(range(32)), "bench-session")
    sealer, opener = Sealer(keys.hmu_to_server), Opener(keys.hmu_to_server)
    update = np.random.default_rng(7).standard_normal(UPDATE_FLOATS).astype(np.float32).tobytes()
    envelope = b'{"run":"bench","round":1,"sender":"hmu-01"}'
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        opener.open(sealer.seal(update, envelope), envelope)
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    eve = make_eavesdropper("intercept-resend", 0.5)
    print("QKD throughput (shared 2-core machine: figures are indicative)")
    numpy_rate = bench_numpy(eve)
    print(
        f"  numpy core, {NUMPY_QUBITS:.0e} qubits, intercept-resend f=0.5: "
        f"{numpy_rate / 1e6:8.1f} M qubits/s   (target >= 20 M/s)"
    )
    qiskit_rate = bench_qiskit(eve)
    print(
        f"  qiskit-aer backend, {QISKIT_QUBITS} qubits, same link:        "
        f"{qiskit_rate / 1e3:8.1f} k qubits/s"
    )
    ratio = numpy_rate / qiskit_rate
    print(f"  numpy / qiskit ratio:                                   {ratio:8.0f} x")
    elapsed, sifted, leaked, final, frames = bench_postprocessing()
    print(
        f"  post-processing of {sifted} sifted bits (PE, Cascade, verify, PA, confirm; "
        f"{frames} HMAC frames): {elapsed:.3f} s   (target <= 1 s)"
    )
    print(f"      leaked {leaked} bits, final key {final} bits")
    micros = bench_aead()
    print(f"  AES-256-GCM seal + open of a {UPDATE_FLOATS * 4} B model update: {micros:8.1f} us")


if __name__ == "__main__":
    main()
