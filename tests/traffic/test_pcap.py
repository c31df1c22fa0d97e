"""Captures on disk: scapy and tshark read the builder's pcaps; damage is a one-line DataError."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from iomt.errors import DataError
from iomt.traffic.batch import PacketColumns
from iomt.traffic.captures import BuildReport
from iomt.traffic.pcap import read_columns, read_packets

TSHARK = shutil.which("tshark")
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _one_line_error(path: Path, reader) -> str:
    with pytest.raises(DataError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_scapy_reads_every_packet_with_valid_checksums(small_capture: BuildReport):
    packets = rdpcap(str(small_capture.pcap))
    assert len(packets) == small_capture.packets
    for pkt in packets[:400]:
        ip, tcp = pkt[IP], pkt[TCP]
        fresh = Ether(bytes(pkt))
        del fresh[IP].chksum, fresh[TCP].chksum
        rebuilt = Ether(bytes(fresh))
        assert (ip.chksum, tcp.chksum) == (rebuilt[IP].chksum, rebuilt[TCP].chksum)
        assert len(pkt) >= 60 and ip.flags == "DF"
    assert packets[0][TCP].flags == "S" and packets[0][TCP].dport == 1111


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_reads_the_capture_without_errors_or_warnings(small_capture: BuildReport):
    run = subprocess.run(
        [TSHARK, "-r", str(small_capture.pcap), "-n", "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-d", "tcp.port==1111,mqtt", "-T", "fields",
         "-e", "frame.number", "-e", "mqtt.msgtype", "-e", "_ws.expert.severity",
         "-e", "_ws.malformed", "-e", "tcp.analysis.retransmission"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # running as root, tshark warns about it on stderr; nothing else may appear there
    noise = [
        ln
        for ln in run.stderr.splitlines()
        if ln.strip() and "root" not in ln and "dangerous" not in ln
    ]
    assert noise == []
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert len(rows) == small_capture.packets
    assert not any(r[3] for r in rows)  # no malformed packet
    # expert infos: retransmissions are notes (4194304) and chats; no warning or error
    severities = {int(s) for r in rows for s in r[2].split(",") if s}
    assert all(s < 6291456 for s in severities), severities
    publishes = sum("3" in r[1].split(",") for r in rows)
    assert publishes >= small_capture.flows


def test_truncated_capture_is_a_one_line_error(small_capture: BuildReport, tmp_path: Path):
    data = small_capture.pcap.read_bytes()
    for cut, name in ((len(data) - 7, "cut-record"), (24 + 9, "cut-header"), (10, "cut-global")):
        broken = tmp_path / f"{name}.pcap"
        broken.write_bytes(data[:cut])
        for reader in (read_columns, lambda p: list(read_packets(p))):
            _one_line_error(broken, reader)


def test_garbage_and_missing_files_are_one_line_errors(tmp_path: Path):
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all" * 10)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    for path in (garbage, empty, tmp_path / "missing.pcap"):
        for reader in (read_columns, lambda p: list(read_packets(p))):
            _one_line_error(path, reader)


def test_an_absurd_record_length_is_refused(small_capture: BuildReport, tmp_path: Path):
    data = bytearray(small_capture.pcap.read_bytes())
    struct.pack_into("<I", data, 24 + 8, 1 << 30)  # first record's caplen
    bad = tmp_path / "huge.pcap"
    bad.write_bytes(bytes(data))
    assert "corrupt" in _one_line_error(bad, read_columns)


def test_both_readers_see_the_same_packets(small_capture: BuildReport):
    packets = list(read_packets(small_capture.pcap))
    cols = read_columns(small_capture.pcap)
    ref = PacketColumns.from_packets(packets)
    for name in ("ts", "src", "dst", "sport", "dport", "proto", "size", "flags", "seq", "pay_len"):
        assert np.array_equal(getattr(cols, name), getattr(ref, name)), name
    for i in np.flatnonzero(cols.pay_len)[:50]:
        a = cols.data[cols.pay_off[i] : cols.pay_off[i] + cols.pay_len[i]]
        b = ref.data[ref.pay_off[i] : ref.pay_off[i] + ref.pay_len[i]]
        assert a == b


def test_foreign_captures_microsecond_vlan_udp_ipv6_and_non_ip(tmp_path: Path):
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1Q

    frames = [
        ETH
        / IP(src="10.9.0.1", dst="10.9.0.2", ihl=6, options=b"\x01\x01\x01\x00")
        / TCP(sport=1, dport=2, flags="S", seq=7),
        ETH / Dot1Q(vlan=5) / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=3, dport=4) / b"hey",
        ETH / IPv6(src="fe80::1", dst="fe80::2") / TCP(sport=5, dport=6, flags="S"),
        ETH / ARP(pdst="10.9.0.9", hwdst="02:00:00:00:00:09"),
    ]
    frames = [Ether(bytes(f)) for f in frames]
    for i, f in enumerate(frames):
        f.time = 1_600_000_000 + i * 0.25
    path = tmp_path / "foreign.pcap"
    wrpcap(str(path), frames)  # microsecond pcap
    got = list(read_packets(path))
    assert [(p.sport, p.dport, p.proto) for p in got] == [(1, 2, 6), (3, 4, 17), (5, 6, 6)]
    assert got[1].payload == b"hey" and got[0].seq == 7
    assert got[1].ts_ns == 1_600_000_000_250_000_000
    cols = read_columns(path)
    assert cols.sport.tolist() == [1, 3, 5] and cols.ts.tolist() == [p.ts_ns for p in got]
    assert cols.address(int(cols.src[2])) == got[2].src and len(got[2].src) == 16


def test_pcapng_is_read_too(tmp_path: Path):
    from scapy.utils import wrpcapng

    frames = [
        Ether(bytes(ETH / IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=9, dport=1111, flags="S")))
        for _ in range(3)
    ]
    for i, f in enumerate(frames):
        f.time = 1_600_000_000 + i
    path = tmp_path / "x.pcapng"
    wrpcapng(str(path), frames)
    got = list(read_packets(path))
    assert [p.ts_ns for p in got] == [1_600_000_000_000_000_000 + i * 10**9 for i in range(3)]
    assert read_columns(path).dport.tolist() == [1111] * 3
