"""``iomt hmu --ids``: which HMUs a spec names."""

import pytest

from iomt.errors import UsageError
from iomt.scenarios.agents import pick_hmus
from iomt.wire.topics import hmu_ids

KNOWN = hmu_ids(120)


def test_ranges_and_ids_in_order_without_repeats():
    assert pick_hmus("hmu-01..hmu-03", KNOWN) == ["hmu-01", "hmu-02", "hmu-03"]
    assert pick_hmus("hmu-99..hmu-101, hmu-05,hmu-100", KNOWN) == [
        "hmu-99", "hmu-100", "hmu-101", "hmu-05"]  # fmt: skip
    assert len(pick_hmus("hmu-01..hmu-120", KNOWN)) == 120


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("hmu-1..hmu-03", "hmu-1 is not an HMU"), ("hmu-05..hmu-02", "runs backwards"),
     ("hmu-01,", "(empty) is not an HMU"), ("hmu-121", "hmu-121 is not an HMU")],
)  # fmt: skip
def test_a_bad_spec_is_named(spec, needle):
    with pytest.raises(UsageError, match=__import__("re").escape(needle)):
        pick_hmus(spec, KNOWN)
