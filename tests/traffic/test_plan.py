"""Packet trains from Argus totals: counts, sizes and retransmissions, on real rows."""

from __future__ import annotations

import numpy as np

from iomt.traffic.dataset import RawTable
from iomt.traffic.plan import Kind, loss_count, packet_counts, side_plan, side_sizes


def test_every_row_splits_into_sides_that_add_up(raw: RawTable):
    names = ("SrcBytes", "DstBytes", "TotPkts", "sMaxPktSz", "sMinPktSz", "dMaxPktSz", "dMinPktSz")
    c = {k: np.rint(raw.column(k)).astype(int) for k in names}
    for i in range(0, len(raw), 7):
        n_s, n_d = packet_counts(*(int(c[k][i]) for k in c))
        src = side_sizes(int(c["SrcBytes"][i]), n_s, int(c["sMaxPktSz"][i]), int(c["sMinPktSz"][i]))
        dst = side_sizes(int(c["DstBytes"][i]), n_d, int(c["dMaxPktSz"][i]), int(c["dMinPktSz"][i]))
        assert n_s + n_d == c["TotPkts"][i]
        assert sum(src) == c["SrcBytes"][i] and sum(dst) == c["DstBytes"][i]
        assert (max(src), min(src)) == (c["sMaxPktSz"][i], c["sMinPktSz"][i])
        assert (max(dst), min(dst)) == (c["dMaxPktSz"][i], c["dMinPktSz"][i])


def test_the_common_flow_is_a_tcp_mqtt_exchange():
    # 7 packets: 496 = 66 + 60 + 310 + 60 from the sensor, 186 = 66 + 60 + 60 back
    assert packet_counts(496, 186, 7, 310, 60, 66, 60) == (4, 3)
    src, placed = side_plan(tuple(side_sizes(496, 4, 310, 60)), 0, client=True)
    assert [(s.size, s.kind) for s in src] == [
        (66, Kind.SYN), (60, Kind.ACK), (310, Kind.DATA), (60, Kind.FIN)]  # fmt: skip
    dst, _ = side_plan(tuple(side_sizes(186, 3, 66, 60)), 0, client=False)
    assert [s.kind for s in dst] == [Kind.SYN, Kind.CONNACK, Kind.FIN]
    assert placed == 0


def test_losses_become_retransmissions_of_equal_size():
    # a row with Loss 4: pSrcLoss 16.67 % of 5 packets, pDstLoss 33.33 % of 6
    assert loss_count(16.666667, 5) == 1 and loss_count(33.333333, 6) == 3
    src, placed_s = side_plan((310, 66, 66, 60, 60), 1, client=True)
    dst, placed_d = side_plan((66, 66, 66, 66, 60, 60), 3, client=False)
    assert (placed_s, placed_d) == (1, 3)
    assert [s.kind for s in src[:2]] == [Kind.SYN, Kind.SYN] and src[1].retransmits == 0
    assert sum(s.retransmits >= 0 for s in dst) == 3
    for side in (src, dst):
        for s in side:
            if s.retransmits >= 0:
                assert side[s.retransmits].size == s.size and s.kind == side[s.retransmits].kind
    data, _ = side_plan((310, 310, 66, 60, 60), 1, client=True)
    assert [s.retransmits for s in data if s.kind == Kind.DATA] == [-1, 2]


def test_a_side_of_data_only_has_no_handshake():
    src, _ = side_plan((310,), 0, client=True)
    assert [s.kind for s in src] == [Kind.DATA]
