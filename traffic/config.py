"""Typed settings of the data section of a scenario."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from iomt.strict import Strict


class DataConfig(Strict):
    """Where each HMU's flow features come from.

    ``dataset`` is a path to WUSTL-EHMS-2020 (the CSV with attack categories); when it
    is unset the ``IOMT_DATASET`` environment variable is used.  Identifier columns
    (addresses, ports, MACs, ``Packet_num``, ``Dir``, ``Flgs``) give the label away and
    are left out unless ``keep_identifiers`` is set.
    """

    dataset: str | None = None
    keep_identifiers: bool = False
    limit: int | None = Field(None, ge=100, description="use only the first N rows")
    fallback: Literal["none", "synthetic"] = Field(
        "none", description="with no dataset found: fail (none) or generate synthetic traffic"
    )


class TrafficConfig(Strict):
    """How each HMU obtains flow features.

    ``csv``: read the dataset's flow features directly. ``replay``: rebuild every flow's
    packets (scapy templates), write one pcap per HMU and one for the server's test
    split (cached under ``cache_dir`` by dataset hash and parameters), and measure the
    features back from the packets. ``pcap``: read ``hmu-NN.pcap`` and ``test.pcap``
    (each with its ``.flows.jsonl`` ground truth) from ``pcap_dir``. ``live`` (a
    standalone ``iomt hmu`` in a field trial): the HMU captures ``capture_s`` seconds
    of traffic on ``iface`` and trains on the flows it measured, labelled by
    ``truth``, the ground-truth sidecar of the capture being replayed to it
    (``iomt traffic replay``); the server's test split and the scaling statistics
    are those of ``replay``.
    """

    source: Literal["csv", "replay", "pcap", "live"] = "csv"
    cache_dir: str | None = Field(None, description="default: $XDG_CACHE_HOME/iomt-testbed")
    pcap_dir: str | None = None
    iface: str | None = Field(None, description="live: the interface the HMU captures on")
    capture_s: float = Field(
        60.0, gt=0, le=86_400, description="live: seconds of traffic to capture"
    )
    truth: str | None = Field(None, description="live: sidecar (.flows.jsonl) of the replay")
