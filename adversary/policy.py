"""What Eve does with each PUBLISH she intercepts: pass it, rewrite its payload, or drop it.

Pure: bytes in, a decision out, no sockets.  The default :class:`EvePolicy` targets
model updates (``iomt/{run}/tier/{agg}/{member}/update``).  A frame whose envelope says
``cipher: none`` she decodes, records (she *reads* the update) and alters, keeping the
envelope bytes exactly as they were, so nothing on the server's side can tell.  A
sealed frame (AES-256-GCM or one-time pad with Poly1305) she cannot read beyond its
clear envelope: flipping any ciphertext bit, which in an unauthenticated stream cipher
would flip exactly that plaintext bit, makes the tag fail (NIST SP 800-38D; for the
pad, Poly1305 as a one-time MAC), so her only undetected move is to drop it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import numpy as np

from iomt.adversary.config import Alteration, MitmConfig, OnSealed
from iomt.errors import DecodeError
from iomt.wire import topics
from iomt.wire.frame import MAGIC, decode_frame, encode_frame, peek_envelope
from iomt.wire.messages import ModelUpdate

_HEAD = len(MAGIC) + 2  # magic + u16 envelope length
_SEAL_PREFIX = 8  # nonce counter (AES-GCM) or pad offset (OTP) before the ciphertext
_SEAL_TAG = 16
MAX_OBSERVATIONS = 10_000
FIRST_VALUES = 4


@dataclass(frozen=True)
class Decision:
    """``pass``: forward as it came; ``replace``: forward ``payload``; ``drop``: forward nothing."""

    verdict: Literal["pass", "replace", "drop"]
    payload: bytes | None = None


PASS = Decision("pass")
DROP = Decision("drop")


class Policy(Protocol):
    """Decides the fate of one intercepted PUBLISH from its topic and payload."""

    def decide(self, topic: str, payload: bytes) -> Decision: ...


class PassThrough:
    """An observer that changes nothing (a baseline for the proxy's own cost)."""

    def decide(self, topic: str, payload: bytes) -> Decision:
        return PASS


@dataclass(frozen=True)
class Observation:
    """What Eve learnt from one update: everything when plaintext, the envelope when sealed."""

    sender: str
    round: int
    message_id: str
    cipher: str
    size: int
    num_samples: int | None = None
    loss: float | None = None
    norm: float | None = None
    first_values: tuple[float, ...] = ()


@dataclass
class EveCounters:
    """``seen`` update frames; of those ``read`` in clear, ``altered``, ``tampered_sealed``,
    ``dropped``, and ``unreadable`` (not a frame, or a plaintext one that does not decode)."""

    seen: int = 0
    read: int = 0
    altered: int = 0
    tampered_sealed: int = 0
    dropped: int = 0
    unreadable: int = 0


def is_update_topic(topic: str) -> bool:
    """A member's update topic (``iomt.wire.topics.is_update``), for any run and tier."""
    return topics.is_update(topic)


def alter_tensors(
    tensors: Mapping[str, np.ndarray],
    action: Alteration,
    *,
    scale: float = -10.0,
    noise_std: float = 1.0,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Floating-point tensors altered by ``action``; integer tensors (indices, codes) kept.

    ``scale``: ``w -> scale * w``; ``noise``: ``w -> w + N(0, noise_std^2)``; ``zero``:
    ``w -> 0``.  Dtypes and shapes are kept, so the frame still decodes.
    """
    if action == "noise" and rng is None:
        raise ValueError("the noise action needs a numpy Generator")
    out: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        if not np.issubdtype(array.dtype, np.floating):
            out[name] = array
        elif action == "scale":
            out[name] = (array * scale).astype(array.dtype)
        elif action == "noise":
            assert rng is not None
            out[name] = (array + rng.normal(0.0, noise_std, array.shape)).astype(array.dtype)
        elif action == "zero":
            out[name] = np.zeros_like(array)
        else:
            raise ValueError(f"unknown action {action!r}")
    return out


def flip_ciphertext_bit(frame: bytes) -> bytes:
    """``frame`` with the lowest bit of its first ciphertext byte flipped.

    The sealed payload is ``counter or offset (8) || ciphertext || tag (16)``; the
    counter is left alone so the receiver's replay check passes and only the tag can
    catch the change.  A payload with no ciphertext gets its last tag byte flipped.
    """
    env_len = int.from_bytes(frame[len(MAGIC) : _HEAD], "big")
    start = _HEAD + env_len
    at = start + _SEAL_PREFIX if len(frame) - start > _SEAL_PREFIX + _SEAL_TAG else len(frame) - 1
    if at < start:
        raise DecodeError("sealed frame has no payload to tamper with")
    return frame[:at] + bytes([frame[at] ^ 0x01]) + frame[at + 1 :]


def _norm(tensors: Mapping[str, np.ndarray]) -> tuple[float, tuple[float, ...]]:
    floats = [a for a in tensors.values() if np.issubdtype(a.dtype, np.floating)]
    if not floats:
        return 0.0, ()
    flat = np.concatenate([a.ravel().astype(np.float64) for a in floats])
    return float(math.sqrt(float(flat @ flat))), tuple(float(v) for v in flat[:FIRST_VALUES])


@dataclass
class EvePolicy:
    """Read and alter plaintext updates; tamper with or drop sealed ones."""

    action: Alteration = "scale"
    scale: float = -10.0
    noise_std: float = 1.0
    on_sealed: OnSealed = "tamper"
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    counters: EveCounters = field(default_factory=EveCounters)
    observations: list[Observation] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: MitmConfig, rng: np.random.Generator) -> EvePolicy:
        return cls(
            action=config.action,
            scale=config.scale,
            noise_std=config.noise_std,
            on_sealed=config.on_sealed,
            rng=rng,
        )

    def decide(self, topic: str, payload: bytes) -> Decision:
        if not is_update_topic(topic):
            return PASS
        self.counters.seen += 1
        try:
            envelope = peek_envelope(payload)
        except DecodeError:
            self.counters.unreadable += 1
            return PASS
        if envelope.cipher != "none":
            self._observe(
                Observation(
                    sender=envelope.sender,
                    round=envelope.round,
                    message_id=envelope.message_id,
                    cipher=envelope.cipher,
                    size=len(payload),
                )
            )
            if self.on_sealed == "drop":
                self.counters.dropped += 1
                return DROP
            try:
                tampered = flip_ciphertext_bit(payload)
            except DecodeError:
                self.counters.unreadable += 1
                return PASS
            self.counters.tampered_sealed += 1
            return Decision("replace", tampered)
        try:
            frame = decode_frame(payload)
        except DecodeError:
            self.counters.unreadable += 1
            return PASS
        if not isinstance(frame.message, ModelUpdate):
            return PASS
        self.counters.read += 1
        norm, first = _norm(frame.tensors)
        self._observe(
            Observation(
                sender=envelope.sender,
                round=envelope.round,
                message_id=envelope.message_id,
                cipher=envelope.cipher,
                size=len(payload),
                num_samples=frame.message.num_samples,
                loss=frame.message.loss,
                norm=norm,
                first_values=first,
            )
        )
        altered = alter_tensors(
            frame.tensors, self.action, scale=self.scale, noise_std=self.noise_std, rng=self.rng
        )
        rebuilt = encode_frame(frame.envelope, frame.message, altered)
        # keep her hands off the envelope: splice the original envelope bytes back in
        env_len = int.from_bytes(payload[len(MAGIC) : _HEAD], "big")
        new_env_len = int.from_bytes(rebuilt[len(MAGIC) : _HEAD], "big")
        self.counters.altered += 1
        return Decision("replace", payload[: _HEAD + env_len] + rebuilt[_HEAD + new_env_len :])

    def _observe(self, observation: Observation) -> None:
        if len(self.observations) < MAX_OBSERVATIONS:
            self.observations.append(observation)

    def report(self) -> dict[str, object]:
        """Counters and what she read, as plain data for ``results.json``."""
        return {
            "action": self.action,
            "on_sealed": self.on_sealed,
            **asdict(self.counters),
            "observations": [asdict(o) for o in self.observations],
        }
