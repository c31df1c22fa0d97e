"""Flow assembly on crafted packets: direction, timeouts, reuse, retransmissions, gaps.

Every case runs through both the streaming ``FlowAssembler`` and the vectorised
``iomt.traffic.batch.assemble``, which must agree feature for feature.
"""

from __future__ import annotations

import numpy as np
import pytest

from iomt.traffic.batch import PacketColumns, assemble
from iomt.traffic.features import NETWORK_COLUMNS as NET
from iomt.traffic.features import FlowRecords, feature_matrix, network_matrix
from iomt.traffic.flow import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, FlowAssembler, Packet

A, B, C = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 3])
V6 = bytes(range(16))
MS = 1_000_000


def tcp(t_ms, src, dst, sport, dport, flags, seq, size=60, payload=b""):
    return Packet(int(t_ms * MS), src, dst, sport, dport, 6, size, flags, seq, payload)


def handshake(t0, src, dst, sport, dport, isn_c=1000, isn_s=5000):
    """SYN, SYN-ACK, ACK, data (10 bytes), FIN/ACK both ways: 6 packets."""
    return [
        tcp(t0, src, dst, sport, dport, TCP_SYN, isn_c, 66),
        tcp(t0 + 1, dst, src, dport, sport, TCP_SYN | TCP_ACK, isn_s, 66),
        tcp(t0 + 2, src, dst, sport, dport, TCP_ACK, isn_c + 1),
        tcp(t0 + 3, src, dst, sport, dport, TCP_ACK, isn_c + 1, 64, b"0123456789"),
        tcp(t0 + 4, dst, src, dport, sport, TCP_FIN | TCP_ACK, isn_s + 1),
        tcp(t0 + 9, src, dst, sport, dport, TCP_FIN | TCP_ACK, isn_c + 11),
    ]


def both(packets, **kw):
    """Flows by the streaming and the batch assembler, as FlowRecords, by start time."""
    asm = FlowAssembler(**kw)
    flows = asm.feed_many(packets) + asm.flush()
    flows.sort(key=lambda f: f.start_ns)
    streamed = FlowRecords.from_flows(flows)
    batched = assemble(PacketColumns.from_packets(packets), **kw)
    assert len(streamed) == len(batched)
    assert streamed.src == batched.src and streamed.dst == batched.dst
    assert (streamed.sport == batched.sport).all() and (streamed.start_ns == batched.start_ns).all()
    np.testing.assert_allclose(
        feature_matrix(streamed), feature_matrix(batched), rtol=1e-9, atol=1e-9
    )
    return streamed


def net(records, name):
    return network_matrix(records)[:, NET.index(name)]


def test_one_connection_is_one_flow_with_argus_counters():
    r = both(handshake(0, A, B, 40000, 1111))
    assert len(r) == 1 and r.src == [A] and r.sport.tolist() == [40000]
    assert net(r, "TotPkts").tolist() == [6.0]
    assert net(r, "SrcBytes").tolist() == [66 + 60 + 64 + 60] and net(r, "DstBytes").tolist() == [
        126
    ]
    assert net(r, "Dur").tolist() == [0.009]
    assert net(r, "SIntPkt")[0] == pytest.approx(3.0)  # 0, 2, 3, 9 ms
    assert net(r, "SrcJitter")[0] == pytest.approx(np.std([2, 1, 6]))
    assert net(r, "Rate")[0] == pytest.approx(5 / 0.009)
    assert net(r, "Loss").tolist() == [0.0] and net(r, "SrcGap").tolist() == [0.0]


def test_direction_comes_from_syn_ack_when_the_syn_was_missed():
    packets = handshake(0, A, B, 40000, 1111)[1:]  # capture starts at the SYN-ACK
    r = both(packets)
    assert r.src == [A] and r.dst == [B] and r.dport.tolist() == [1111]
    plain = both([tcp(0, B, A, 1111, 40000, TCP_ACK, 7)])  # no SYN at all: first sender
    assert plain.src == [B]


def test_idle_timeout_splits_and_interleaved_flows_stay_apart():
    first = handshake(0, A, B, 40000, 1111)
    other = handshake(2, C, B, 40001, 1111)
    late = [tcp(5_000, A, B, 40000, 1111, TCP_ACK, 1011)]  # same tuple, 5 s later
    packets = sorted(first + other + late, key=lambda p: p.ts_ns)
    assert len(both(packets, idle_timeout_s=60.0)) == 2
    r = both(packets, idle_timeout_s=1.0)
    assert len(r) == 3 and net(r, "TotPkts").tolist() == [6.0, 6.0, 1.0]


def test_active_timeout_cuts_long_flows():
    packets = [tcp(t, A, B, 40000, 1111, TCP_ACK, 1000) for t in range(0, 10_000, 500)]
    r = both(packets, active_timeout_s=2.0)
    assert net(r, "TotPkts").tolist() == [4.0] * 5


def test_port_reuse_with_a_new_syn_starts_a_new_flow():
    packets = handshake(0, A, B, 40000, 1111) + handshake(20, A, B, 40000, 1111, 9000, 7000)
    r = both(packets)
    assert len(r) == 2 and r.start_ns.tolist() == [0, 20 * MS]
    # a retransmitted SYN (same sequence number) does not
    retry = [
        tcp(0, A, B, 40000, 1111, TCP_SYN, 1000, 66),
        tcp(3000, A, B, 40000, 1111, TCP_SYN, 1000, 66),
    ]
    r = both(retry + handshake(3001, A, B, 40000, 1111)[1:])
    assert len(r) == 1
    assert net(r, "Loss").tolist() == [1.0] and net(r, "SIntPktAct")[0] == pytest.approx(3000.0)
    # after a reset any SYN reopens
    reset = handshake(0, A, B, 40000, 1111)[:3] + [tcp(4, B, A, 1111, 40000, TCP_RST, 5001)]
    r = both(reset + [tcp(5, A, B, 40000, 1111, TCP_SYN, 1000, 66)])
    assert len(r) == 2


def test_retransmissions_and_gaps_are_counted_per_side():
    packets = handshake(0, A, B, 40000, 1111)
    data = packets[3]
    packets.insert(4, data._replace(ts_ns=data.ts_ns + MS // 2))  # the same data again
    packets.append(
        tcp(10, A, B, 40000, 1111, TCP_ACK, 1000 + 40, 70, b"x" * 16)
    )  # 28 bytes skipped
    r = both(packets)
    assert net(r, "Loss").tolist() == [1.0]
    assert net(r, "pSrcLoss")[0] == pytest.approx(100 / 7)  # 1 of 6 source packets + 1
    assert net(r, "SrcGap").tolist() == [28.0] and net(r, "DstGap").tolist() == [0.0]
    assert net(r, "SIntPktAct").tolist() == [0.0]  # a data retransmission, not a SYN retry


def test_sequence_numbers_wrap_around():
    isn = 2**32 - 5
    r = both(handshake(0, A, B, 40000, 1111, isn_c=isn))
    assert net(r, "Loss").tolist() == [0.0] and net(r, "SrcGap").tolist() == [0.0]


def test_udp_and_ipv6_flows():
    udp = [Packet(i * MS, A, B, 5353, 53, 17, 80, 0, 0, b"q") for i in range(3)]
    udp += [Packet(5 * MS, B, A, 53, 5353, 17, 120, 0, 0, b"r")]
    v6 = [tcp(1, V6, B[:0] + bytes(16), 40000, 1111, TCP_SYN, 1, 86)]
    r = both(udp + v6)
    assert len(r) == 2 and r.src[0] == A and r.src[1] == V6
    assert net(r, "TotPkts").tolist() == [4.0, 1.0] and net(r, "DstBytes").tolist() == [120.0, 0.0]


def test_feeding_one_packet_at_a_time_matches_feed_many():
    packets = sorted(
        handshake(0, A, B, 40000, 1111) + handshake(1, C, B, 40001, 1111), key=lambda p: p.ts_ns
    )
    asm = FlowAssembler()
    one = [f for p in packets for f in asm.feed(p)] + asm.flush()
    assert len(asm) == 0
    many = FlowAssembler()
    rest = many.feed_many(packets) + many.flush()
    assert [f.start_ns for f in one] == [f.start_ns for f in rest]
    assert feature_matrix(one).tolist() == feature_matrix(rest).tolist()


def test_bad_timeouts_are_refused():
    with pytest.raises(ValueError):
        FlowAssembler(idle_timeout_s=0)
    with pytest.raises(ValueError):
        FlowAssembler(active_timeout_s=-1)


# -- closing on FIN/RST (live detection) ------------------------------------------------


def test_close_on_fin_ends_a_flow_at_its_second_fin_and_drops_the_last_ack():
    packets = handshake(0, A, B, 40000, 1111)
    last_ack = tcp(10, B, A, 1111, 40000, TCP_ACK, 5002)
    asm = FlowAssembler(close_on_fin=True)
    assert asm.feed_many(packets[:-1]) == []  # one FIN: still open
    (flow,) = asm.feed(packets[-1])
    assert flow.packets == 6 and len(asm) == 0
    assert asm.feed(last_ack) == [] and asm.late == 1 and len(asm) == 0  # no phantom flow
    offline = FlowAssembler()
    offline.feed_many(packets)
    (same,) = offline.flush()
    assert np.array_equal(feature_matrix([flow]), feature_matrix([same]))
    # the same 5-tuple opens again with a SYN; a RST closes at once
    again = asm.feed_many([tcp(20, A, B, 40000, 1111, TCP_SYN, 9000, 66)])
    assert again == [] and len(asm) == 1
    (reset,) = asm.feed(tcp(21, B, A, 1111, 40000, TCP_RST | TCP_ACK, 1))
    assert reset.reset and reset.packets == 2
    # the default keeps a closed flow until it idles out, as Argus does
    assert FlowAssembler().feed_many(packets) == []


def test_expire_ends_idle_flows_on_a_clock_and_forgets_old_closes():
    asm = FlowAssembler(idle_timeout_s=1.0, close_on_fin=True)
    asm.feed_many(handshake(0, A, B, 40000, 1111))  # closed at 9 ms
    asm.feed_many([tcp(5, A, C, 40001, 1111, TCP_SYN, 1, 66)])  # never closes
    assert asm.expire(500 * MS) == []
    (idle,) = asm.expire(1_006 * MS)
    assert idle.dst == C and len(asm) == 0
    asm.expire(2_000 * MS)  # the close is older than the idle timeout: an ACK is a flow
    assert asm.feed(tcp(2_001, B, A, 1111, 40000, TCP_ACK, 5002)) == [] and len(asm) == 1
    assert asm.late == 0
