"""One strictly validated model per wire message, told apart by its ``type`` field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from iomt.strict import Strict
from iomt.wire.codec import TensorSpec


class Status(Strict):
    """An agent's presence; retained, and sent as the last will with ``offline``."""

    type: Literal["status"] = "status"
    role: Literal["hmu", "fog", "server", "channel"]
    state: Literal["online", "offline"]
    samples: int = Field(0, ge=0)


MAX_QUBITS = 2**26
"""Most qubits one B92 session may use: its arrays stay within a few hundred MB."""

StepKind = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
"""The kind of one wire step of the update pipeline (``iomt.fedlearn.pipeline``)."""


class TrainRequest(Strict):
    """Server -> HMU: train on your data from the attached global weights."""

    type: Literal["train"] = "train"
    deadline_s: float = Field(gt=0)
    model_version: int = Field(0, ge=0)
    """Version of the attached global model; the update names it back."""
    tensors: list[TensorSpec]


class ModelUpdate(Strict):
    """HMU -> server: locally trained weights for the round in the envelope."""

    type: Literal["update"] = "update"
    num_samples: int = Field(ge=1)
    loss: float
    train_seconds: float = Field(ge=0)
    base_version: int = Field(0, ge=0)
    """The global model version this update was trained from."""
    encoding: list[StepKind] = Field(default_factory=list, max_length=8)
    """Wire steps applied, in order (``iomt.fedlearn.pipeline``); empty: the dense weights."""
    tensors: list[TensorSpec]


class GlobalModel(Strict):
    """Server -> everyone: a round closed, with the new model's version and accuracy.

    The weights themselves travel only inside the invitations of the HMUs that train
    next (sealed under QKD), so this broadcast carries no tensors.
    """

    type: Literal["global"] = "global"
    version: int = Field(ge=0)
    accuracy: float = Field(ge=0, le=1)


class KeyRequest(Strict):
    """Server -> HMU: start B92 session ``session_id`` by sending ``qubits`` qubits."""

    type: Literal["key-request"] = "key-request"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=MAX_QUBITS)


class QubitBatch(Strict):
    """HMU -> channel: the prepared B92 states (bit 0 -> |0>, bit 1 -> |+>), bit-packed."""

    type: Literal["qubits"] = "qubits"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=MAX_QUBITS)
    tensors: list[TensorSpec]


class DetectionRecord(Strict):
    """Channel -> server: what the server's detector reported per slot, bit-packed.

    ``basis`` (0 = Z, 1 = X), ``clicked`` and ``conclusive`` per qubit slot.
    """

    type: Literal["detections"] = "detections"
    session_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    qubits: int = Field(ge=64, le=MAX_QUBITS)
    tensors: list[TensorSpec]


class RunComplete(Strict):
    """Server -> everyone: the run is over; agents may disconnect."""

    type: Literal["complete"] = "complete"
    reason: str = Field(max_length=200)


class DecryptRequest(Strict):
    """Server -> one HMU of the round (FL + HE): decrypt this aggregate of the encrypted
    updates, the delta that makes version ``model_version + 1``."""

    type: Literal["decrypt"] = "decrypt"
    model_version: int = Field(ge=0)
    size: int = Field(ge=1, le=2**28)
    """How many values the ciphertexts hold (the model's parameter count)."""
    tensors: list[TensorSpec]


class DecryptedAggregate(Strict):
    """HMU -> server (FL + HE): the decrypted aggregate delta, one array per weight."""

    type: Literal["decrypted"] = "decrypted"
    model_version: int = Field(ge=0)
    tensors: list[TensorSpec]


Message = Annotated[
    Status
    | TrainRequest
    | ModelUpdate
    | DecryptRequest
    | DecryptedAggregate
    | GlobalModel
    | RunComplete
    | KeyRequest
    | QubitBatch
    | DetectionRecord,
    Field(discriminator="type"),
]
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
