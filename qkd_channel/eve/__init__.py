"""Eavesdropper models on the quantum link, selectable by their CLI names."""

from __future__ import annotations

from iomt.errors import QkdError
from iomt.qkd_channel.eve.base import Eavesdropper, Resend, Signature
from iomt.qkd_channel.eve.helstrom import Helstrom
from iomt.qkd_channel.eve.intercept_resend import InterceptResend
from iomt.qkd_channel.eve.intercept_resend_b92 import InterceptResendB92
from iomt.qkd_channel.eve.usd import Usd

EVE_MODELS: dict[str, type[Eavesdropper]] = {
    cls.name: cls for cls in (InterceptResend, InterceptResendB92, Helstrom, Usd)
}


def make_eavesdropper(model: str, fraction: float = 1.0) -> Eavesdropper:
    """The eavesdropper called ``model`` (a CLI name) attacking ``fraction`` of qubits."""
    try:
        cls = EVE_MODELS[model]
    except KeyError:
        names = ", ".join(sorted(EVE_MODELS))
        raise QkdError(f"unknown eavesdropper model {model!r}; choose one of {names}") from None
    return cls(fraction=fraction)


__all__ = [
    "EVE_MODELS",
    "Eavesdropper",
    "Helstrom",
    "InterceptResend",
    "InterceptResendB92",
    "Resend",
    "Signature",
    "Usd",
    "make_eavesdropper",
]
