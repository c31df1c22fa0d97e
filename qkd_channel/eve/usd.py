"""Unambiguous state discrimination: Eve resends what she identified, blocks the rest.

The optimal unambiguous discrimination of two pure states with equal priors
succeeds with probability ``1 - s`` where ``s = |<0|+>| = 1/sqrt(2)``
(Ivanovic 1987, Dieks 1988, Peres 1988: the IDP limit); on success Eve knows the
bit for certain, on failure she knows nothing.  She resends the identified B92
state perfectly and sends nothing after a failure, so her attack shows up as
*loss*, never as errors (Bennett 1992 already noted that loss lets this attack
through; Tamaki & Lütkenhaus, PRA 69, 032316, 2004).

Signature on an ideal channel::

    conclusive_rate(f) = (1 - f)/4 + f (1 - s)/4 = (1 - f/sqrt(2)) / 4
    qber(f)            = 0

Only the conclusive-rate (and detection-rate) band can catch it.  Note the limit
of that check: if the honest link's transmittance is below ``1 - s ~ 0.29``
(about 5.3 dB) an Eve who replaces the fibre by a lossless one hides completely;
this model leaves the fibre in place, as the scenarios assume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iomt.qkd_channel.eve.base import Eavesdropper, Resend, Signature
from iomt.qkd_channel.states import OVERLAP

#: Probability that Eve's optimal USD identifies the state.
USD_SUCCESS = 1.0 - OVERLAP


@dataclass(frozen=True)
class Usd(Eavesdropper):
    """IDP-optimal unambiguous discrimination; inconclusive results are blocked."""

    name: ClassVar[str] = "usd"

    def resends(self, bit: int) -> tuple[Resend, ...]:
        state = (0.0, 0.0, 1.0) if bit == 0 else (1.0, 0.0, 0.0)
        return (Resend(USD_SUCCESS, state), Resend(1.0 - USD_SUCCESS, None))

    def signature(self) -> Signature:
        f = self.fraction
        return Signature(conclusive_rate=(1.0 - f * OVERLAP) / 4.0, qber=0.0)
