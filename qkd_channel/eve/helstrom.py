"""Minimum-error (Helstrom) measurement: Eve resends the B92 state she guesses.

For two pure states with equal priors and overlap ``s = |<0|+>| = 1/sqrt(2)`` the
least error probability of any measurement is the Helstrom bound (Helstrom,
*Quantum Detection and Estimation Theory*, 1976)::

    P_err = (1 - sqrt(1 - s^2)) / 2 = (1 - 1/sqrt(2)) / 2 ~ 0.1464

reached by the projective measurement along the axis orthogonal to the bisector of
the two Bloch vectors, ``m = (-1, 0, 1)/sqrt(2)`` (outcome "0" along ``+m``):
``P(guess 0 | |0>) = (1 + m.z)/2 = cos^2(pi/8) = 1 - P_err``, and likewise for |+>.
Eve resends the B92 state of her guess (resending the Helstrom eigenstate instead
would raise the conclusive rate to 1/2 and the QBER to 1/4: easier to detect).

Signature on an ideal channel.  With ``c = cos^2(pi/8)``, Alice's |0> reaches Bob
as ``c |0><0| + (1 - c) |+><+|``, Bloch ``(1 - c, 0, c)``:

* Z, outcome 1 (error):    1/2 * (1 - c)/2 = (1 - c)/4
* X, outcome - (correct):  1/2 * c/2       = c/4

so the conclusive rate stays 1/4 and the error fraction is ``1 - c = P_err``::

    conclusive_rate(f) = 1/4
    qber(f)            = f (1 - 1/sqrt(2)) / 2 ~ 0.1464 f
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from iomt.qkd_channel.eve.base import Eavesdropper, Resend, Signature
from iomt.qkd_channel.states import OVERLAP

#: Helstrom error probability for the two B92 states.
HELSTROM_ERROR = (1.0 - math.sqrt(1.0 - OVERLAP**2)) / 2.0


@dataclass(frozen=True)
class Helstrom(Eavesdropper):
    """Minimum-error measurement, resend the guessed B92 state."""

    name: ClassVar[str] = "helstrom"

    def resends(self, bit: int) -> tuple[Resend, ...]:
        zero, plus = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)
        right, wrong = (zero, plus) if bit == 0 else (plus, zero)
        return (Resend(1.0 - HELSTROM_ERROR, right), Resend(HELSTROM_ERROR, wrong))

    def signature(self) -> Signature:
        return Signature(conclusive_rate=0.25, qber=self.fraction * HELSTROM_ERROR)
