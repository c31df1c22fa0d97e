"""Which simulator runs a link: the exact numpy sampler, or qiskit-aer circuits on demand.

Kept apart from ``iomt.qkd_channel.channel`` (which the qiskit backend itself builds
on) so the dispatch can load qiskit only when it is asked for.
"""

from __future__ import annotations

import numpy as np

from iomt.errors import QkdError
from iomt.qkd_channel.channel import Backend, Detections, measure, transmit
from iomt.qkd_channel.eve.base import Eavesdropper
from iomt.qkd_channel.link import LinkParams


def run_link(
    bits: np.ndarray,
    link: LinkParams,
    eve: Eavesdropper | None,
    channel_rng: np.random.Generator,
    bob_rng: np.random.Generator,
    backend: Backend = "numpy",
) -> Detections:
    """Channel plus Bob's measurement on the chosen backend ('numpy' or 'qiskit')."""
    if backend == "numpy":
        return measure(transmit(bits, link, eve, channel_rng), link, bob_rng)
    if backend == "qiskit":
        from iomt.qkd_channel.qiskit_backend import run_qiskit  # heavy import, only on demand

        return run_qiskit(bits, link, eve, channel_rng, bob_rng)
    raise QkdError(f"unknown QKD backend {backend!r}; choose 'numpy' or 'qiskit'")
