"""Typed settings of the data section of a scenario."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from iomt_testbed.strict import Strict


class DataConfig(Strict):
    """Where each HMU's flow features come from.

    ``dataset`` is a path to WUSTL-EHMS-2020 (the CSV with attack categories); when it
    is unset the ``IOMT_DATASET`` environment variable is used.  Identifier columns
    (addresses, ports, MACs, ``Packet_num``, ``Dir``, ``Flgs``) give the label away and
    are left out unless ``keep_identifiers`` is set.
    """

    source: Literal["csv"] = "csv"
    dataset: str | None = None
    keep_identifiers: bool = False
    limit: int | None = Field(None, ge=100, description="use only the first N rows")
