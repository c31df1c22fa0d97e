"""One strictly validated model per wire message, told apart by its ``type`` field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from iomt.strict import Strict
from iomt.wire.codec import TensorSpec


class Status(Strict):
    """An agent's presence; retained, and sent as the last will with ``offline``."""

    type: Literal["status"] = "status"
    role: Literal["hmu", "server", "channel"]
    state: Literal["online", "offline"]
    samples: int = Field(0, ge=0)


class TrainRequest(Strict):
    """Server -> HMU: train on your data from the attached global weights."""

    type: Literal["train"] = "train"
    deadline_s: float = Field(gt=0)
    tensors: list[TensorSpec]


class ModelUpdate(Strict):
    """HMU -> server: locally trained weights for the round in the envelope."""

    type: Literal["update"] = "update"
    num_samples: int = Field(ge=1)
    loss: float
    train_seconds: float = Field(ge=0)
    encoding: Literal["dense", "topk", "quant8", "topk-quant8"] = "dense"
    """``dense``: the weights; otherwise a compressed update (``iomt.fedlearn.compression``)."""
    tensors: list[TensorSpec]


class GlobalModel(Strict):
    """Server -> everyone: the aggregated model after a round.

    With QKD the weights travel only inside each HMU's sealed invitation, so this
    broadcast carries the round's accuracy and no tensors.
    """

    type: Literal["global"] = "global"
    accuracy: float = Field(ge=0, le=1)
    tensors: list[TensorSpec]


class KeyRequest(Strict):
    """Server -> HMU: start B92 session ``session_id`` by sending ``qubits`` qubits."""

    type: Literal["key-request"] = "key-request"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=2**30)


class QubitBatch(Strict):
    """HMU -> channel: the prepared B92 states (bit 0 -> |0>, bit 1 -> |+>), bit-packed."""

    type: Literal["qubits"] = "qubits"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=2**30)
    tensors: list[TensorSpec]


class DetectionRecord(Strict):
    """Channel -> server: what the server's detector reported per slot, bit-packed.

    ``basis`` (0 = Z, 1 = X), ``clicked`` and ``conclusive`` per qubit slot.
    """

    type: Literal["detections"] = "detections"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=2**30)
    tensors: list[TensorSpec]


class RunComplete(Strict):
    """Server -> everyone: the run is over; agents may disconnect."""

    type: Literal["complete"] = "complete"
    reason: str = Field(max_length=200)


Message = Annotated[
    Status
    | TrainRequest
    | ModelUpdate
    | GlobalModel
    | RunComplete
    | KeyRequest
    | QubitBatch
    | DetectionRecord,
    Field(discriminator="type"),
]
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
