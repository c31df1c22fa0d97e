"""Intercept-resend with Bob's own B92 measurement: Eve resends her best-guess B92 state.

Eve measures like Bob (random Z or X).  A conclusive outcome tells her the bit; an
inconclusive one leaves the Bayesian guess with posterior 2/3 (equal priors,
``P(0_Z | |0>) = 1``, ``P(0_Z | |+>) = 1/2``).  She always resends a B92 state:

* Z, outcome 1 -> bit 1 -> |+>;    Z, outcome 0 -> guess 0 -> |0>
* X, outcome - -> bit 0 -> |0>;    X, outcome + -> guess 1 -> |+>

Signature on an ideal channel.  Alice sent |0>: Eve in Z resends |0>; Eve in X
resends |0> or |+> with probability 1/2 each.  So Bob gets |0> with probability
3/4 and |+> with 1/4, Bloch vector ``(1/4, 0, 3/4)``:

* Z, outcome 1 (bit 1, an error):   1/2 * (1 - 3/4)/2 = 1/16
* X, outcome - (bit 0, correct):    1/2 * (1 - 1/4)/2 = 3/16

The conclusive rate stays 1/4 (3/16 + 1/16), only errors appear::

    conclusive_rate(f) = 1/4
    qber(f)            = f/4

This is the attack the rate band cannot see; the QBER bound must catch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iomt.qkd_channel.eve.base import Eavesdropper, Resend, Signature


@dataclass(frozen=True)
class InterceptResendB92(Eavesdropper):
    """Measure like Bob, resend the B92 state of the best guess."""

    name: ClassVar[str] = "intercept-resend-b92"

    def resends(self, bit: int) -> tuple[Resend, ...]:
        zero, plus = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)
        if bit == 0:
            return (Resend(0.75, zero), Resend(0.25, plus))
        return (Resend(0.75, plus), Resend(0.25, zero))

    def signature(self) -> Signature:
        return Signature(conclusive_rate=0.25, qber=self.fraction / 4.0)
