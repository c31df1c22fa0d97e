"""The round protocol's vocabulary: the events the coordinator takes and the actions it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    from_peer: ClassVar[bool] = False
    """True when a peer's message caused it: refusing it is the peer's error."""


@dataclass(frozen=True)
class HmuStatus(Event):
    """An HMU came online or went offline (retained status or last will)."""

    from_peer: ClassVar[bool] = True
    hmu: str
    online: bool


@dataclass(frozen=True)
class KeyAccepted(Event):
    """``hmu`` and the server now share a confirmed key."""

    hmu: str


@dataclass(frozen=True)
class Excluded(Event):
    """Never select ``hmu`` again (it was isolated); its pending update is dropped."""

    hmu: str


@dataclass(frozen=True)
class UpdateArrived(Event):
    """A model update from ``hmu`` for ``round``, trained from global ``version``."""

    from_peer: ClassVar[bool] = True
    hmu: str
    round: int
    version: int
    payload: Any


@dataclass(frozen=True)
class Tick(Event):
    """The clock moved: enforce the online timeout, key deadline and round deadline."""


@dataclass(frozen=True)
class RoundDone(Event):
    """The runner finished aggregating ``round``: the global model has a new version."""

    round: int


@dataclass(frozen=True)
class BrokerBack(Event):
    """The connection to the broker dropped and is back: messages may have been lost."""


@dataclass(frozen=True)
class MessagesDropped(Event):
    """The broker says it dropped messages (its ``$SYS`` counter rose): an update may be
    among them."""


@dataclass(frozen=True)
class Abort(Event):
    """Stop the run now."""

    reason: str


# -- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Invite:
    """Send global model ``version`` to ``hmus`` for ``round``."""

    round: int
    hmus: tuple[str, ...]
    deadline_s: float
    version: int = 0
    again: bool = False
    """The same round again, to HMUs whose update may have been lost with the broker."""


@dataclass(frozen=True)
class Rekey:
    """Run a fresh key session with each of ``hmus`` before the next round."""

    hmus: tuple[str, ...]
    deadline_s: float


@dataclass(frozen=True)
class Aggregate:
    """Close ``round``: aggregate ``updates`` (HMU id -> update payload)."""

    round: int
    selected: tuple[str, ...]
    updates: dict[str, Any]
    timed_out: bool
    version: int = 0
    """The current version; the result will be ``version + 1``."""
    bases: dict[str, int] = field(default_factory=dict)
    """Asynchronous aggregation: the version each update was trained from (else ``version``)."""
    scale: dict[str, float] = field(default_factory=dict)
    """Asynchronous aggregation: each update's staleness weight (else 1)."""


@dataclass(frozen=True)
class Finish:
    """The run is over, normally (``completed``) or not."""

    completed: bool
    reason: str


Action = Invite | Rekey | Aggregate | Finish
