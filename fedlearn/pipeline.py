"""The update pipeline: what happens to a model update between local training and aggregation.

An HMU's round ends with a list of steps, chosen from the scenario in one place
(``build_pipeline``) and run in order at the HMU::

    train -> attack (if scheduled) -> clip + DP noise -> compression or CKKS
          -> (AEAD seal, wire.frame)

Every step may act on the local data before training (``prepare``: label flipping) and
on the update after it (``encode``).  Steps that change how the update travels
(compression now; a neural cipher or CKKS later) are *wire steps*: their kind is
listed, in order, in the message's ``encoding``, and the receiver undoes them in
reverse order with the decoder registered for that kind (``decode_update``).  An
empty ``encoding`` means the tensors are the dense local weights.  The AEAD seal is
not a step here: it protects every frame of a QKD link (invitations too) and lives
in ``iomt.wire.frame``.

A wire step may leave tensors the receiver cannot turn back into weights (a
ciphertext only an aggregator of its kind can add up); such tensors travel as opaque
``bytes`` (``iomt.wire.codec``), and ``decode_update`` refuses a kind it has no
decoder for.

Steps are plain objects that hold their own state (compression's error-feedback
residual) and pickle, so a pipeline can run in a worker process and come back moved on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from iomt.errors import DecodeError
from iomt.fedlearn import ckks
from iomt.fedlearn.attacks import apply_update_attack, assign_attacks, flip_labels
from iomt.fedlearn.compression import Compressor, decompress
from iomt.fedlearn.defence_config import (
    AttackConfig,
    AttackEntry,
    CompressionConfig,
    PrivacyConfig,
)
from iomt.fedlearn.model import Weights
from iomt.fedlearn.privacy import privatize

Tensor = np.ndarray | bytes
"""A named value on the wire: an array, or opaque bytes (a ciphertext)."""


@dataclass(frozen=True)
class RoundContext:
    """What every step may read: who trains which round from which global weights.

    ``rng`` is the HMU's generator for this round; steps draw from it in pipeline
    order, so a run is reproducible from its seed.
    """

    hmu: str
    round: int
    global_w: Weights
    rng: np.random.Generator
    cipher_key: bytes | None = None
    """This round's key material for a keyed neural cipher (derived from the QKD key)."""


@dataclass(frozen=True)
class Update:
    """An update on its way out: its tensors and the wire steps applied so far."""

    tensors: Mapping[str, Tensor]
    encoding: tuple[str, ...] = ()
    poisoned: bool = False
    """Set by the attack step: an attacker wants its poison to arrive intact."""


class Step:
    """One stage of the pipeline; the base does nothing."""

    kind: ClassVar[str] = "step"

    def prepare(
        self, ctx: RoundContext, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The local rows to train on (before training)."""
        return x, y

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        """The update after this step (after training)."""
        return update

    def state(self) -> dict[str, np.ndarray]:
        """What this step carries from round to round (for checkpoints); none by default."""
        return {}

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Set what ``state`` returned; a missing entry means a fresh start."""


@dataclass
class AttackStep(Step):
    """A Byzantine HMU, as the scenario's attack schedule makes it (``fedlearn.attacks``)."""

    kind: ClassVar[str] = "attack"
    attacks: AttackConfig
    hmus: tuple[str, ...]
    seed: int

    def entry(self, ctx: RoundContext) -> AttackEntry | None:
        return assign_attacks(self.attacks, self.hmus, ctx.round, self.seed).get(ctx.hmu)

    def prepare(
        self, ctx: RoundContext, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        entry = self.entry(ctx)
        if entry is not None and entry.kind == "label-flip":
            return x, flip_labels(y, ctx.rng, entry.flip_fraction)
        return x, y

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        entry = self.entry(ctx)
        if entry is None:
            return update
        tensors = update.tensors
        if entry.kind != "label-flip":
            local = _dense(update, self.kind)
            tensors = apply_update_attack(ctx.global_w, local, entry.kind, entry.scale, ctx.rng)
        return replace(update, tensors=tensors, poisoned=True)


@dataclass
class PrivacyStep(Step):
    """Clipping and local DP noise on ``local - global`` (``fedlearn.privacy``)."""

    kind: ClassVar[str] = "dp"
    privacy: PrivacyConfig

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        if update.poisoned:
            return update  # an attacker adds no noise to its poison
        local = _dense(update, self.kind)
        return replace(update, tensors=privatize(ctx.global_w, local, self.privacy, ctx.rng))


@dataclass
class CompressionStep(Step):
    """Top-k and/or 8-bit codes with error feedback (``fedlearn.compression``); a wire step."""

    kind: ClassVar[str] = "compression"

    compression: CompressionConfig
    compressor: Compressor = field(init=False)

    def __post_init__(self) -> None:
        self.compressor = Compressor(self.compression)

    @property
    def wire_kind(self) -> str:
        return self.compression.kind

    def state(self) -> dict[str, np.ndarray]:
        residual = self.compressor.residual
        return {} if residual is None else {"residual": residual.copy()}

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        residual = state.get("residual")
        self.compressor.residual = None if residual is None else residual.copy()

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        local = _dense(update, self.wire_kind)
        payload = self.compressor.compress(ctx.global_w, local)
        return replace(update, tensors=payload, encoding=(*update.encoding, self.wire_kind))


@dataclass
class CkksStep(Step):
    """FL + HE: the update's delta from the global model under the run's CKKS key
    (``fedlearn.ckks``); a wire step the server adds up without decoding."""

    kind: ClassVar[str] = "ckks"
    context: bytes
    """This HMU's CKKS context, secret key included."""

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        local = _dense(update, self.kind)
        tensors = ckks.encrypt_update(ckks.load_context(self.context), ctx.global_w, local)
        return replace(update, tensors=tensors, encoding=(*update.encoding, self.kind))


@dataclass
class NeuralStep(Step):
    """SAFE-MED's neural cipher: the update's delta, cut into blocks and encoded with the
    run's encoder (``fedlearn.neural_cipher``); the server holds the decoder."""

    kind: ClassVar[str] = "neural"
    encoder: object
    """The encoder network (a torch module); never the decoder."""
    key_bits: int = 0
    """Key bits the encoder takes (a keyed cipher); 0: keyless, as SAFE-MED."""

    _saved: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """The encoder as ``torch.save`` wrote it, made once: it never changes."""

    def __getstate__(self) -> dict[str, object]:
        # To a worker process torch would hand each tensor over as a file descriptor, a
        # socket round trip per tensor and HMU and round; one saved buffer is one copy.
        if self._saved is None:
            import io

            import torch

            buffer = io.BytesIO()
            torch.save(self.encoder, buffer)
            self._saved = buffer.getvalue()
        return {"encoder": self._saved, "key_bits": self.key_bits}

    def __setstate__(self, state: dict[str, object]) -> None:
        saved = state["encoder"]
        assert isinstance(saved, bytes)
        self.encoder = _load_encoder(saved)
        self.key_bits = int(state["key_bits"])  # type: ignore[call-overload]
        self._saved = saved

    def encode(self, ctx: RoundContext, update: Update) -> Update:
        from iomt.fedlearn import neural_cipher  # torch: only where a cipher runs

        local = _dense(update, self.kind)
        key = None
        if self.key_bits:
            if ctx.cipher_key is None:
                raise ValueError("the keyed neural cipher has no key for this round")
            key = neural_cipher.key_from_bytes(ctx.cipher_key, self.key_bits)
        tensors = neural_cipher.encrypt_update(self.encoder, ctx.global_w, local, key)  # type: ignore[arg-type]
        return replace(update, tensors=tensors, encoding=(*update.encoding, self.kind))


@functools.lru_cache(maxsize=4)
def _load_encoder(saved: bytes) -> object:
    """The encoder a worker receives, loaded once per worker rather than once per task
    (the same bytes come with every HMU's every round; only ``encode`` reads it)."""
    import io

    import torch

    # our own pickle from the launcher, like the rest of the pipeline it travels with
    return torch.load(io.BytesIO(saved), weights_only=False)


def _dense(update: Update, step: str) -> Weights:
    """The update's tensors as dense weights; a step that needs them must come first."""
    if update.encoding:
        raise ValueError(f"step {step!r} needs dense weights, got {'+'.join(update.encoding)}")
    return {k: v for k, v in update.tensors.items() if isinstance(v, np.ndarray)}


@dataclass
class UpdatePipeline:
    """The HMU's steps, in order."""

    steps: tuple[Step, ...] = ()

    def prepare(
        self, ctx: RoundContext, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        for step in self.steps:
            x, y = step.prepare(ctx, x, y)
        return x, y

    def encode(self, ctx: RoundContext, local_w: Weights) -> Update:
        update = Update(tensors=local_w)
        for step in self.steps:
            update = step.encode(ctx, update)
        return update

    def state(self) -> dict[str, np.ndarray]:
        """Every step's carried state, as ``{"<step index>.<name>": array}``."""
        return {f"{i}.{k}": v for i, step in enumerate(self.steps) for k, v in step.state().items()}

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        for i, step in enumerate(self.steps):
            prefix = f"{i}."
            step.restore({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


def build_pipeline(
    *,
    attacks: AttackConfig,
    privacy: PrivacyConfig,
    compression: CompressionConfig,
    hmus: Sequence[str],
    seed: int,
    he_context: bytes | None = None,
    encoder: object | None = None,
    key_bits: int = 0,
) -> UpdatePipeline:
    """The steps a scenario's ``attacks``, ``privacy`` and ``compression`` sections describe,
    and last the update's encryption: CKKS when the run gives the HMU a ``he_context``,
    the neural cipher when it gives it an ``encoder``."""
    steps: list[Step] = []
    if attacks.entries:
        steps.append(AttackStep(attacks, tuple(hmus), seed))
    if privacy.mechanism != "none":
        steps.append(PrivacyStep(privacy))
    if compression.kind != "none":
        steps.append(CompressionStep(compression))
    if he_context is not None:
        steps.append(CkksStep(he_context))
    if encoder is not None:
        steps.append(NeuralStep(encoder, key_bits))
    return UpdatePipeline(tuple(steps))


Decoder = Callable[[Mapping[str, Tensor], Weights], Mapping[str, Tensor]]
"""Undo one wire step: ``(tensors, global weights) -> tensors before that step``."""


def _decompress(tensors: Mapping[str, Tensor], global_w: Weights) -> Mapping[str, Tensor]:
    arrays = {k: v for k, v in tensors.items() if isinstance(v, np.ndarray)}
    if len(arrays) != len(tensors):
        raise ValueError("a compressed update holds no opaque bytes")
    return decompress(arrays, global_w)


DECODERS: dict[str, Decoder] = {
    "topk": _decompress,
    "quant8": _decompress,
    "topk-quant8": _decompress,
}
"""Wire step kind -> its receiving side.  New wire steps register here."""


def decode_update(
    encoding: Sequence[str],
    tensors: Mapping[str, Tensor],
    global_w: Weights,
    decoders: Mapping[str, Decoder] | None = None,
) -> Mapping[str, Tensor]:
    """Undo ``encoding`` (last step first) with ``DECODERS`` and the receiver's own
    ``decoders`` (those that need its keys or networks); ``DecodeError`` on what does not
    decode."""
    known = {**DECODERS, **(decoders or {})}
    for kind in reversed(encoding):
        decoder = known.get(kind)
        if decoder is None:
            raise DecodeError(f"no decoder for the update encoding step {kind!r}")
        try:
            tensors = decoder(tensors, global_w)
        except (ValueError, KeyError, IndexError) as exc:
            raise DecodeError(f"{kind} update does not decode: {exc}") from None
    return tensors
