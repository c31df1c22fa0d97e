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


class DetectConfig(Strict):
    """Live detection on a field HMU: score the flows seen on an interface as they end.

    The HMU sniffs ``iface`` (default ``traffic.iface``) with ``filter``, assembles flows
    and scores each with the latest global model it was sent (the weights of its last
    invitation); a flow whose attack probability is at least ``threshold`` is an
    alert.  Flows that end before the first model arrives are counted as unscored.
    Counts and detection latency go to the metrics (measurement ``detection``) every
    ``report_s``; alerts are appended to ``alerts_file`` (JSON lines) when it is set.
    """

    enabled: bool = False
    iface: str | None = Field(None, description="default: traffic.iface")
    filter: str = Field("tcp port 1111", description="BPF filter of the packets watched")
    threshold: float = Field(0.5, gt=0, lt=1, description="attack probability of an alert")
    idle_timeout_s: float = Field(
        5.0, gt=0, le=3600, description="a flow without FIN/RST ends after this idle time"
    )
    report_s: float = Field(1.0, gt=0, le=3600, description="metrics window (seconds)")
    alerts_file: str | None = Field(None, description="JSON lines, one per alert")


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
    are those of ``replay``.  ``detect`` (any source, standalone ``iomt hmu`` only)
    scores live flows with the current global model while the HMU trains on its share.
    """

    source: Literal["csv", "replay", "pcap", "live"] = "csv"
    cache_dir: str | None = Field(None, description="default: $XDG_CACHE_HOME/iomt-testbed")
    pcap_dir: str | None = None
    iface: str | None = Field(None, description="live: the interface the HMU captures on")
    capture_s: float = Field(
        60.0, gt=0, le=86_400, description="live: seconds of traffic to capture"
    )
    truth: str | None = Field(None, description="live: sidecar (.flows.jsonl) of the replay")
    detect: DetectConfig = Field(default_factory=DetectConfig)
