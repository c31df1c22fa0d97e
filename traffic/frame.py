"""Ethernet/IPv4/TCP frames and MQTT pieces: scapy templates, then a fast byte path.

Scapy builds each header variant once (no options; MSS; MSS + window scale + SACK
permitted, the 12 option bytes of a 66-byte SYN) and the MQTT pieces
(``scapy.contrib.mqtt``: CONNECT, CONNACK, DISCONNECT, a PUBLISH header).  The fast
path then packs every header with one ``struct`` call and computes the IPv4 and TCP
checksums arithmetically (RFC 1071 ones' complement sum; a 16-bit word sum is the
big-endian integer modulo 0xFFFF because 2**16 = 1 mod 0xFFFF).  On construction the
fast path is checked byte for byte against scapy for every header variant, so a
layout slip cannot go unnoticed.  Scapy objects manage ~1.6 k packets/s; this path
does over 100 k.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from scapy.contrib.mqtt import MQTT, MQTTConnack, MQTTConnect, MQTTDisconnect, MQTTPublish
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from iomt.traffic.readings import TOPIC, publish_header

ETHERTYPE_IPV4 = 0x0800
IP_DF = 0x4000
TTL = 64
PROTO_TCP = 6
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_HEADER = struct.Struct("!6s6sHBBHHHBBH4s4sHHIIBBHHH")
"""Ethernet + IPv4 (no options) + fixed TCP header, 54 bytes."""

OPTION_SETS: dict[int, list[tuple[str, object]]] = {
    0: [],
    4: [("MSS", 1460)],
    12: [
        ("MSS", 1460),
        ("NOP", None),
        ("WScale", 7),
        ("NOP", None),
        ("NOP", None),
        ("SAckOK", b""),
    ],
}
"""TCP options by length: a SYN of 66 bytes carries the 12-byte set."""


def mac_bytes(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` as 6 bytes."""
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def _fold(value: int) -> int:
    """Ones' complement checksum of a word sum given modulo 0xFFFF (RFC 1071)."""
    return (-value) % 0xFFFF


def word_sum(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of ``data`` modulo 0xFFFF (odd: zero-padded)."""
    if len(data) % 2:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


class FrameFactory:
    """Builds TCP frames fast; the header variants come from scapy and are self-checked."""

    def __init__(self) -> None:
        self.options: dict[int, bytes] = {}
        self.option_sums: dict[int, int] = {}
        for length, opts in OPTION_SETS.items():
            raw = bytes(TCP(options=opts))[20:]
            if len(raw) != length:
                raise RuntimeError(f"scapy encoded {opts} in {len(raw)} bytes, expected {length}")
            self.options[length] = raw
            self.option_sums[length] = word_sum(raw)
        self.connect = bytes(
            MQTT() / MQTTConnect(protoname=b"MQTT", protolevel=4, cleansess=1, klive=60,
                                 clientId=b"ehms-gateway")
        )  # fmt: skip
        self.connack = bytes(MQTT(type=2) / MQTTConnack(sessPresentFlag=0, retcode=0))
        self.disconnect = bytes(MQTT(type=14) / MQTTDisconnect())
        self._self_check()

    def _self_check(self) -> None:
        """Every header variant and the PUBLISH header equal scapy's encoding."""
        src_mac, dst_mac = "02:00:00:00:00:01", "02:00:00:00:00:02"
        for length in OPTION_SETS:
            ref = bytes(
                Ether(src=src_mac, dst=dst_mac)
                / IP(src="10.1.2.3", dst="10.4.5.6", id=4660, flags="DF", ttl=TTL)
                / TCP(sport=50000, dport=1111, seq=123456789, ack=987654321, flags="PA",
                      window=502, options=OPTION_SETS[length])
                / b"payload!x"
            )  # fmt: skip
            mine = self.frame(
                mac_bytes(dst_mac), mac_bytes(src_mac), bytes([10, 1, 2, 3]),
                bytes([10, 4, 5, 6]), 50000, 1111, 123456789, 987654321, PSH | ACK, 502,
                4660, length, b"payload!x", word_sum(b"payload!x"),
            )  # fmt: skip
            if mine != ref:
                raise RuntimeError(f"fast TCP frame differs from scapy's (options {length})")
        message = b"x" * 200
        ref_pub = bytes(MQTT(QOS=0) / MQTTPublish(topic=TOPIC, value=message))
        if publish_header(TOPIC, len(message)) + message != ref_pub:
            raise RuntimeError("MQTT PUBLISH header differs from scapy.contrib.mqtt's")

    def frame(
        self,
        dst_mac: bytes,
        src_mac: bytes,
        src_ip: bytes,
        dst_ip: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        ip_id: int,
        option_len: int,
        payload: bytes,
        payload_sum: int,
        size: int = 0,
    ) -> bytes:
        """One frame; ``payload_sum`` is ``word_sum(payload)``; padded up to ``size``."""
        tcp_len = 20 + option_len + len(payload)
        total = 20 + tcp_len
        addr_sum = _addr_sum(src_ip, dst_ip)
        ip_sum = (0x4500 + total + ip_id + IP_DF + (TTL << 8 | PROTO_TCP) + addr_sum) % 0xFFFF
        off = (5 + option_len // 4) << 4
        tcp_sum = (
            addr_sum + PROTO_TCP + tcp_len + sport + dport + (seq >> 16) + (seq & 0xFFFF)
            + (ack >> 16) + (ack & 0xFFFF) + (off << 8 | flags) + window
            + self.option_sums[option_len] + payload_sum
        ) % 0xFFFF  # fmt: skip
        head = _HEADER.pack(
            dst_mac, src_mac, ETHERTYPE_IPV4, 0x45, 0, total, ip_id, IP_DF, TTL, PROTO_TCP,
            _fold(ip_sum), src_ip, dst_ip, sport, dport, seq, ack, off, flags, window,
            _fold(tcp_sum), 0,
        )  # fmt: skip
        out = head + self.options[option_len] + payload
        if len(out) < size:
            out += b"\x00" * (size - len(out))
        return out

    def emit_flow(
        self,
        order: list[tuple[int, int, int]],
        statics: tuple[tuple[SegmentBits, ...], tuple[SegmentBits, ...]],
        payloads: tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]],
        macs: tuple[bytes, bytes],
        ips: tuple[bytes, bytes],
        ports: tuple[int, int],
        isn: tuple[int, int],
        ip_ids: tuple[int, int],
        times: list[int],
        frames: list[bytes],
    ) -> None:
        """Append the frames of one flow (``order``: time, side, index) to ``frames``.

        Side 0 is the client, side 1 the server.  Sequence numbers start at ``isn``
        and advance by what each new segment consumes; a retransmission reuses the
        number of the segment it repeats; every ACK acknowledges all the peer sent so
        far.  Same output as ``frame`` per packet, with the per-flow sums hoisted.
        """
        pack = _IP_TCP.pack
        options, option_sums = self.options, self.option_sums
        eth = (macs[1] + macs[0] + b"\x08\x00", macs[0] + macs[1] + b"\x08\x00")
        addrs = (ips[0] + ips[1], ips[1] + ips[0])
        addr_sum = _addr_sum(ips[0], ips[1])
        ip_base = 0x4500 + IP_DF + (TTL << 8 | PROTO_TCP) + addr_sum
        tcp_base = addr_sum + PROTO_TCP + ports[0] + ports[1]
        sport = (ports[0], ports[1])
        dport = (ports[1], ports[0])
        next_seq = [0, 0]
        sent: tuple[list[int], list[int]] = ([0] * len(statics[0]), [0] * len(statics[1]))
        ids = [ip_ids[0], ip_ids[1]]
        for t, side, k in order:
            flags, opt, window, extra, again, size = statics[side][k]
            payload, psum = payloads[side][k]
            if again >= 0:
                rel = sent[side][again]
            else:
                rel = next_seq[side]
                next_seq[side] = rel + len(payload) + extra
            sent[side][k] = rel
            seq = (isn[side] + rel) & 0xFFFFFFFF
            ack = 0 if flags == SYN else (isn[1 - side] + next_seq[1 - side]) & 0xFFFFFFFF
            tcp_len = 20 + opt + len(payload)
            ip_id = ids[side]
            ids[side] = (ip_id + 1) & 0xFFFF
            off_flags = (5 + opt // 4) << 12 | flags
            tcp_sum = (
                tcp_base + tcp_len + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
                + off_flags + window + option_sums[opt] + psum
            )  # fmt: skip
            head = pack(
                0x45, 0, tcp_len + 20, ip_id, IP_DF, TTL, PROTO_TCP,
                (-(ip_base + tcp_len + 20 + ip_id)) % 0xFFFF, addrs[side], sport[side],
                dport[side], seq, ack, off_flags, window, (-tcp_sum) % 0xFFFF, 0,
            )  # fmt: skip
            raw = eth[side] + head + options[opt] + payload
            if len(raw) < size:
                raw += bytes(size - len(raw))
            times.append(t)
            frames.append(raw)


SegmentBits = tuple[int, int, int, int, int, int]
"""Static part of a segment: TCP flags, option length, window, sequence space used
besides the payload (SYN/FIN), index of the segment it retransmits (-1: none), frame size."""

_IP_TCP = struct.Struct("!BBHHHBBH8sHHIIHHHH")
"""IPv4 header (no options) + fixed TCP header, 40 bytes."""


@lru_cache(maxsize=1024)
def _addr_sum(src_ip: bytes, dst_ip: bytes) -> int:
    return int.from_bytes(src_ip + dst_ip, "big") % 0xFFFF
