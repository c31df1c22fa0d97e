"""The update pipeline: steps in scenario order at the HMU, wire steps undone at the receiver."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from iomt.errors import DecodeError
from iomt.fedlearn.defence_config import AttackConfig, CompressionConfig, PrivacyConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.pipeline import (
    CompressionStep,
    PrivacyStep,
    RoundContext,
    UpdatePipeline,
    build_pipeline,
    decode_update,
)
from iomt.wire.messages import ModelUpdate

GLOBAL = init_weights(5, (8,), seed=0)


def local(delta: float = 0.01) -> dict[str, np.ndarray]:
    return {k: v + np.float32(delta) for k, v in GLOBAL.items()}


def ctx(round_: int = 1) -> RoundContext:
    return RoundContext("hmu-01", round_, GLOBAL, np.random.default_rng(0))


def test_the_scenario_sections_become_steps_in_order() -> None:
    pipeline = build_pipeline(
        attacks=AttackConfig(),
        privacy=PrivacyConfig(mechanism="gaussian", epsilon=5.0),
        compression=CompressionConfig(kind="topk"),
        hmus=["hmu-01"],
        seed=0,
    )
    assert [type(s) for s in pipeline.steps] == [PrivacyStep, CompressionStep]
    empty = build_pipeline(
        attacks=AttackConfig(),
        privacy=PrivacyConfig(),
        compression=CompressionConfig(),
        hmus=["hmu-01"],
        seed=0,
    )
    assert empty.steps == ()


@pytest.mark.parametrize("kind", ["topk", "quant8", "topk-quant8"])
def test_a_wire_step_is_named_in_the_encoding_and_undone_by_the_receiver(kind: str) -> None:
    pipeline = UpdatePipeline((CompressionStep(CompressionConfig(kind=kind, k=1.0)),))
    update = pipeline.encode(ctx(), local())
    assert update.encoding == (kind,)
    decoded = decode_update(update.encoding, update.tensors, GLOBAL)
    for key, value in local().items():
        np.testing.assert_allclose(decoded[key], value, atol=2e-3)


def test_an_unknown_encoding_step_is_the_senders_error() -> None:
    with pytest.raises(DecodeError, match="no decoder for the update encoding step 'rot13'"):
        decode_update(["rot13"], local(), GLOBAL)


def test_a_payload_that_does_not_decode_is_the_senders_error() -> None:
    with pytest.raises(DecodeError, match="lacks tensor 'topk.value'"):
        decode_update(["topk"], {"topk.index": np.array([1], np.int32)}, GLOBAL)


def test_a_step_that_needs_dense_weights_cannot_follow_a_wire_step() -> None:
    pipeline = UpdatePipeline(
        (
            CompressionStep(CompressionConfig(kind="quant8")),
            PrivacyStep(PrivacyConfig(mechanism="gaussian")),
        )
    )
    with pytest.raises(ValueError, match="needs dense weights"):
        pipeline.encode(ctx(), local())


def test_the_message_names_wire_steps_by_kind_only() -> None:
    fields = {"num_samples": 1, "loss": 0.0, "train_seconds": 0.0, "tensors": []}
    assert ModelUpdate(**fields, encoding=["topk", "neural-cipher"]).encoding[1] == "neural-cipher"
    with pytest.raises(ValidationError):
        ModelUpdate(**fields, encoding=["Not A Kind"])
    with pytest.raises(ValidationError):
        ModelUpdate(**fields, encoding=["topk"] * 9)


def test_the_neural_step_travels_to_a_worker_as_one_buffer_and_encodes_the_same() -> None:
    from multiprocessing.reduction import ForkingPickler

    from iomt.fedlearn.defence_config import NeuralCipherConfig
    from iomt.fedlearn.neural_cipher import CipherNets
    from iomt.fedlearn.pipeline import NeuralStep, Update

    encoder = CipherNets.build(NeuralCipherConfig(hidden=(32,)), seed=0).encoder
    step = NeuralStep(encoder)
    # what a process pool sends: torch's own reduction would pass each tensor as a file
    # descriptor (bytes of a handle); the step sends the weights themselves
    payload = bytes(ForkingPickler.dumps(step))
    assert len(payload) > 4 * sum(p.numel() for p in encoder.parameters())
    there = ForkingPickler.loads(payload)
    update = Update({k: v for k, v in local().items()})
    np.testing.assert_array_equal(there.encode(ctx(), update).tensors["cipher"],
                                  step.encode(ctx(), update).tensors["cipher"])  # fmt: skip
    # every HMU's every round carries the same encoder: a worker loads it once
    again = ForkingPickler.loads(bytes(ForkingPickler.dumps(step)))
    assert again.encoder is there.encoder
    other = CipherNets.build(NeuralCipherConfig(hidden=(32,)), seed=1).encoder
    elsewhere = ForkingPickler.loads(bytes(ForkingPickler.dumps(NeuralStep(other))))
    assert elsewhere.encoder is not there.encoder
