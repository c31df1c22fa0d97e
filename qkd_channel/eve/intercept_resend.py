"""Intercept-resend in a random basis: Eve resends the eigenstate she observed.

Eve measures an attacked qubit in Z or X (each with probability 1/2) and resends
the eigenstate she saw (|0>, |1>, |+> or |->).

Signature on an ideal channel.  Alice sent |0> (Bloch +z):

* Eve in Z always sees 0 and resends |0>;
* Eve in X sees + or - with probability 1/2 each and resends |+> or |->.

What reaches Bob is ``1/2 |0><0| + 1/4 |+><+| + 1/4 |-><-|``, Bloch vector
``(0, 0, 1/2)``.  Bob's conclusive outcomes (basis chosen with probability 1/2):

* Z, outcome 1 (bit 1, an error):   1/2 * (1 - 1/2)/2 = 1/8
* X, outcome - (bit 0, correct):    1/2 * (1 - 0)/2   = 1/4

By symmetry the same holds for |+>.  Untouched qubits give 1/4 conclusive and no
error.  With a fraction ``f`` attacked::

    conclusive_rate(f) = (1 - f)/4 + 3f/8 = (2 + f)/8
    qber(f)            = (f/8) / ((2 + f)/8) = f / (2 + f)        (1/3 at f = 1)

The conclusive rate *rises*, so the rate band catches this attack as well as the
QBER bound does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iomt.qkd_channel.eve.base import Eavesdropper, Resend, Signature


@dataclass(frozen=True)
class InterceptResend(Eavesdropper):
    """Measure in a random basis, resend what was seen."""

    name: ClassVar[str] = "intercept-resend"

    def resends(self, bit: int) -> tuple[Resend, ...]:
        if bit == 0:  # |0>: Z gives |0>; X gives |+> or |->
            return (
                Resend(0.5, (0.0, 0.0, 1.0)),
                Resend(0.25, (1.0, 0.0, 0.0)),
                Resend(0.25, (-1.0, 0.0, 0.0)),
            )
        return (  # |+>: X gives |+>; Z gives |0> or |1>
            Resend(0.5, (1.0, 0.0, 0.0)),
            Resend(0.25, (0.0, 0.0, 1.0)),
            Resend(0.25, (0.0, 0.0, -1.0)),
        )

    def signature(self) -> Signature:
        f = self.fraction
        return Signature(conclusive_rate=(2.0 + f) / 8.0, qber=f / (2.0 + f))
