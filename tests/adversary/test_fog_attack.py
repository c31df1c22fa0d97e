"""The compromised fog's tampering: pure arithmetic on its partial."""

import numpy as np
import pytest

from iomt.adversary.fog_attack import tamper
from iomt.fedlearn.defence_config import MaliciousFog

PREVIOUS = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([0.5], np.float32)}
PARTIAL = {"w": np.array([1.5, 1.0], np.float32), "b": np.array([0.25], np.float32)}


@pytest.mark.parametrize(
    ("action", "w", "b"),
    [
        ("flip", [1.0 - 10 * 0.5, 2.0 + 10 * 1.0], [0.5 + 10 * 0.25]),
        ("scale", [1.0 + 10 * 0.5, 2.0 - 10 * 1.0], [0.5 - 10 * 0.25]),
        ("drop", [1.0, 2.0], [0.5]),
    ],
)
def test_each_action_moves_the_partial_as_documented(action, w, b):
    sent = tamper(PARTIAL, PREVIOUS, MaliciousFog(fog="fog-01", action=action), None)
    np.testing.assert_allclose(sent["w"], w, rtol=1e-6)
    np.testing.assert_allclose(sent["b"], b, rtol=1e-6)
    assert sent["w"].dtype == np.float32 and sent["w"] is not PREVIOUS["w"]


def test_replace_is_seeded_noise_around_the_previous_model():
    attack = MaliciousFog(fog="fog-01", action="replace", scale=2.0)
    big = {"w": np.zeros(20_000, np.float32)}
    a = tamper(big, big, attack, np.random.default_rng(1))
    b = tamper(big, big, attack, np.random.default_rng(1))
    np.testing.assert_array_equal(a["w"], b["w"])
    assert float(np.std(a["w"])) == pytest.approx(2.0, rel=0.03)  # 20k draws: ~0.5 % sd


def test_the_fog_must_be_named_as_fogs_are():
    with pytest.raises(ValueError):
        MaliciousFog(fog="hmu-01")
