"""The frames the server sends: to one HMU (sealed under its QKD link when it has one),
and its own status and run-complete broadcasts."""

from __future__ import annotations

from collections.abc import Mapping

from iomt.server_agent.keying import ServerKeying
from iomt.server_agent.setup import ServerSetup
from iomt.wire.codec import Tensor
from iomt.wire.envelope import BROADCAST, new_envelope
from iomt.wire.frame import encode_frame
from iomt.wire.messages import RunComplete, Status
from iomt.wire.stamp import stamp


def to_hmu(
    setup: ServerSetup,
    keying: ServerKeying | None,
    hmu: str,
    round_: int,
    type_: str,
    message: object,
    tensors: Mapping[str, Tensor] | None = None,
) -> bytes:
    """A frame for ``hmu``; ``QkdError`` if its one-time pad is used up."""
    link = keying.links.get(hmu) if keying else None
    env = new_envelope(
        setup.run_id, round_, setup.aggregator_id, hmu, type_,
        cipher=link.cipher if link else "none", key_id=link.key_id if link else "",
        **stamp(),
    )  # fmt: skip
    return encode_frame(env, message, tensors, seal=link.seal if link else None)  # type: ignore[arg-type]


def status(setup: ServerSetup, state: str) -> bytes:
    env = new_envelope(setup.run_id, 0, setup.aggregator_id, BROADCAST, "status", **stamp())
    return encode_frame(env, Status(role="server", state=state))  # type: ignore[arg-type]


def complete(setup: ServerSetup, round_: int, reason: str) -> bytes:
    env = new_envelope(setup.run_id, round_, setup.aggregator_id, BROADCAST, "complete", **stamp())
    return encode_frame(env, RunComplete(reason=reason[:200]))
