"""Pcap files: writing synthesised frames and reading packets back fast.

Writing goes through scapy's ``RawPcapWriter`` (nanosecond pcap, Ethernet link type),
``write_header(None)`` first, then ``write_packet`` with explicit times and lengths.
Reading opens the file with scapy's ``RawPcapReader`` (which checks the magic number
and global header, and dispatches pcapng to ``RawPcapNgReader``), then walks the
records with ``struct`` and decodes Ethernet (optionally 802.1Q), Linux cooked (SLL,
SLL2) or raw-IP frames, IPv4/IPv6, TCP and UDP into ``iomt.traffic.flow.Packet`` tuples.
Any structural damage (bad magic, short header, a record running past the end of the
file, an absurd record length) is a one-line ``DataError`` naming the file; frames
that are not IP are skipped and counted.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader, RawPcapWriter

from iomt.errors import DataError
from iomt.traffic.batch import PacketColumns, address_code
from iomt.traffic.flow import PROTO_TCP, PROTO_UDP, Packet

log = logging.getLogger(__name__)

DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL, DLT_IPV4, DLT_IPV6, DLT_LINUX_SLL2 = 1, 101, 113, 228, 229, 276
_RAW_LINKS = {DLT_RAW, 12, 14, DLT_IPV4, DLT_IPV6}
MAX_RECORD = 262_144
"""Largest record length accepted (libpcap's maximum snapshot length)."""
_CHUNK = 1 << 22

_FAST = struct.Struct("!12xHBxH2xHxB2x4s4sHHI4xBB")
"""Ethernet + IPv4 without options + TCP, up to the TCP flags (48 bytes)."""
_TCP = struct.Struct("!HHI4xBB")
_UDP = struct.Struct("!HH")


def write_pcap(path: str | os.PathLike[str], times_ns: np.ndarray, frames: list[bytes]) -> None:
    """Write Ethernet ``frames`` stamped ``times_ns`` (ns since the epoch) as a pcap.

    The file is written beside its final name and renamed into place, so a reader
    never sees half a capture.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    writer = RawPcapWriter(str(tmp), linktype=DLT_EN10MB, nano=True, bufsz=1 << 20)
    try:
        writer.write_header(None)
        write = writer.write_packet
        for t, frame in zip(np.asarray(times_ns, dtype=np.int64).tolist(), frames, strict=False):
            sec, ns = divmod(t, 1_000_000_000)
            n = len(frame)
            write(frame, sec, ns, n, n)
    finally:
        writer.close()
    os.replace(tmp, path)


@dataclass
class ReadStats:
    """What a read skipped: frames that are not IP, and IP fragments after the first."""

    records: int = 0
    skipped: int = 0


def _open(path: Path) -> RawPcapReader:
    if not path.is_file():
        raise DataError(f"capture not found: {path}")
    try:
        f = open(path, "rb")  # opened here so it is closed on every failure
    except OSError as exc:
        raise DataError(f"{path}: cannot read capture ({exc.strerror or exc})") from None
    try:
        return RawPcapReader(f)
    except Scapy_Exception as exc:
        f.close()
        raise DataError(f"{path}: not a readable pcap/pcapng capture ({exc})") from None
    except (OSError, EOFError, struct.error) as exc:
        f.close()
        raise DataError(f"{path}: cannot read capture ({exc})") from None


def read_packets(path: str | os.PathLike[str], stats: ReadStats | None = None) -> Iterator[Packet]:
    """Every IP packet of the capture at ``path``, in file order.

    Yields plain tuples laid out as ``Packet`` (the fast path builds no named tuple).
    """
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    reader = _open(path)
    try:
        if isinstance(reader, RawPcapNgReader):
            yield from _read_pcapng(path, reader, stats)
        else:
            yield from _read_pcap(path, reader, stats)
    finally:
        reader.close()
    if stats.skipped:
        log.info("%s: skipped %d of %d records (not IP)", path, stats.skipped, stats.records)


def _read_pcap(path: Path, reader: RawPcapReader, stats: ReadStats) -> Iterator[Packet]:
    record = struct.Struct(reader.endian + "IIII")
    scale = 1 if reader.nano else 1000
    link = reader.linktype
    f = reader.f
    data = f.read(_CHUNK)
    off = 0
    fast = link == DLT_EN10MB
    unpack_fast = _FAST.unpack_from
    while True:
        if len(data) - off < 16:
            more = f.read(_CHUNK)
            if not more:
                if len(data) - off:
                    raise DataError(
                        f"{path}: truncated record header after {stats.records} packets"
                    )
                return
            data = data[off:] + more
            off = 0
            continue
        sec, frac, caplen, wirelen = record.unpack_from(data, off)
        if caplen > MAX_RECORD:
            raise DataError(
                f"{path}: record {stats.records + 1} claims {caplen} bytes; the file is corrupt"
            )
        end = off + 16 + caplen
        if end > len(data):
            more = f.read(max(_CHUNK, caplen))
            if not more:
                raise DataError(
                    f"{path}: truncated capture, record {stats.records + 1} is cut short"
                )
            data = data[off:] + more
            off = 0
            continue
        frame = data[off + 16 : end]
        off = end
        stats.records += 1
        ts = sec * 1_000_000_000 + frac * scale
        if fast and caplen >= 48:
            etype, verihl, total, frag, proto, src, dst, sport, dport, seq, doff, flags = (
                unpack_fast(frame)
            )
            if etype == 0x0800 and verihl == 0x45 and proto == PROTO_TCP and not frag & 0x1FFF:
                start = 34 + ((doff >> 4) << 2)
                stop = 14 + total
                payload = frame[start:stop] if stop > start else b""
                yield (ts, src, dst, sport, dport, proto, wirelen, flags, seq, payload)
                continue
        pkt = decode_packet(frame, link, ts, wirelen)
        if pkt is None:
            stats.skipped += 1
        else:
            yield pkt


def _read_pcapng(path: Path, reader: RawPcapNgReader, stats: ReadStats) -> Iterator[Packet]:
    try:
        for frame, meta in reader:
            stats.records += 1
            ticks = (meta.tshigh << 32) | meta.tslow
            ts = ticks * 1_000_000_000 // meta.tsresol
            pkt = decode_packet(frame, meta.linktype, ts, meta.wirelen or len(frame))
            if pkt is None:
                stats.skipped += 1
            else:
                yield pkt
    except Scapy_Exception as exc:
        raise DataError(f"{path}: corrupt pcapng capture ({exc})") from None


def decode_packet(frame: bytes, link: int, ts: int, wirelen: int) -> Packet | None:
    """Generic decoder: link layer, IPv4/IPv6, then TCP/UDP ports; ``None`` if not IP."""
    try:
        if link == DLT_EN10MB:
            etype, l3 = int.from_bytes(frame[12:14], "big"), 14
            while etype in (0x8100, 0x88A8):
                etype, l3 = int.from_bytes(frame[l3 + 2 : l3 + 4], "big"), l3 + 4
        elif link == DLT_LINUX_SLL:
            etype, l3 = int.from_bytes(frame[14:16], "big"), 16
        elif link == DLT_LINUX_SLL2:
            etype, l3 = int.from_bytes(frame[0:2], "big"), 20
        elif link in _RAW_LINKS:
            etype, l3 = {4: 0x0800, 6: 0x86DD}.get(frame[0] >> 4, 0), 0
        else:
            return None
        if etype == 0x0800:
            ihl = (frame[l3] & 0x0F) * 4
            ip_end = l3 + int.from_bytes(frame[l3 + 2 : l3 + 4], "big")
            if int.from_bytes(frame[l3 + 6 : l3 + 8], "big") & 0x1FFF:
                return None  # a later fragment: no transport header
            proto = frame[l3 + 9]
            src, dst = frame[l3 + 12 : l3 + 16], frame[l3 + 16 : l3 + 20]
            l4 = l3 + ihl
        elif etype == 0x86DD:
            ip_end = l3 + 40 + int.from_bytes(frame[l3 + 4 : l3 + 6], "big")
            proto = frame[l3 + 6]
            src, dst = frame[l3 + 8 : l3 + 24], frame[l3 + 24 : l3 + 40]
            l4 = l3 + 40
        else:
            return None
        ip_end = min(ip_end, len(frame))
        if proto == PROTO_TCP and len(frame) >= l4 + 14:
            sport, dport, seq, doff, flags = _TCP.unpack_from(frame, l4)
            start = l4 + ((doff >> 4) << 2)
            payload = frame[start:ip_end] if ip_end > start else b""
            return Packet(ts, src, dst, sport, dport, proto, wirelen, flags, seq, payload)
        if proto == PROTO_UDP and len(frame) >= l4 + 8:
            sport, dport = _UDP.unpack_from(frame, l4)
            payload = frame[l4 + 8 : ip_end] if ip_end > l4 + 8 else b""
            return Packet(ts, src, dst, sport, dport, proto, wirelen, 0, 0, payload)
        return Packet(ts, src, dst, 0, 0, proto, wirelen, 0, 0, b"")
    except (IndexError, struct.error):
        return None


def read_columns(path: str | os.PathLike[str], stats: ReadStats | None = None) -> PacketColumns:
    """The whole capture at ``path`` as ``PacketColumns`` (for ``iomt.traffic.batch``).

    Ethernet/IPv4/TCP frames without IP options, the bulk of any capture here, are
    decoded with numpy straight from the file's bytes; every other frame goes through
    the per-packet decoder.  Same packets and fields as ``read_packets``.
    """
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    reader = _open(path)
    try:
        if isinstance(reader, RawPcapNgReader):
            return PacketColumns.from_packets(list(_read_pcapng(path, reader, stats)))
        try:
            data = reader.f.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read capture ({exc})") from None
        link, nano, endian = reader.linktype, reader.nano, reader.endian
    finally:
        reader.close()
    offsets = _record_offsets(path, data, endian)
    stats.records = len(offsets)
    buf = np.frombuffer(data, dtype=np.uint8)
    ts, caplen, wirelen = _record_headers(buf, offsets, endian, nano)
    frame = offsets + 16
    n = len(offsets)
    fast = np.zeros(n, dtype=bool)
    if link == DLT_EN10MB and n:
        probe = np.minimum(frame[:, None] + np.arange(48)[None, :], len(buf) - 1)
        h = buf[probe]

        def byte(j: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
            return h[rows, j].astype(np.int64)

        etype = byte(12) << 8 | byte(13)
        frag = (byte(20) << 8 | byte(21)) & 0x1FFF
        fast = (caplen >= 48) & (etype == 0x0800) & (h[:, 14] == 0x45) & (h[:, 23] == PROTO_TCP)
        fast &= frag == 0
    cols = {
        "ts": ts, "src": np.zeros(n, np.int64), "dst": np.zeros(n, np.int64),
        "sport": np.zeros(n, np.int64), "dport": np.zeros(n, np.int64),
        "proto": np.zeros(n, np.int64), "size": wirelen, "flags": np.zeros(n, np.int64),
        "seq": np.zeros(n, np.int64), "pay_off": np.zeros(n, np.int64),
        "pay_len": np.zeros(n, np.int64),
    }  # fmt: skip
    if fast.any():
        f = np.flatnonzero(fast)

        def word(j: int, width: int) -> np.ndarray:
            out = byte(j, f)
            for k in range(1, width):
                out = out << 8 | byte(j + k, f)
            return out

        cols["src"][f], cols["dst"][f] = word(26, 4), word(30, 4)
        cols["sport"][f], cols["dport"][f] = word(34, 2), word(36, 2)
        cols["proto"][f] = PROTO_TCP
        cols["seq"][f] = word(38, 4)
        cols["flags"][f] = byte(47, f)
        start = 34 + ((byte(46, f) >> 4) << 2)
        stop = np.minimum(14 + word(16, 2), caplen[f])
        cols["pay_off"][f] = frame[f] + start
        cols["pay_len"][f] = np.maximum(stop - start, 0)
    keep = fast.copy()
    addresses: dict[bytes, int] = {}
    data = _decode_slow(data, np.flatnonzero(~fast), frame, caplen, ts, wirelen, link, cols,
                        keep, addresses, stats)  # fmt: skip
    if stats.skipped:
        log.info("%s: skipped %d of %d records (not IP)", path, stats.skipped, stats.records)
    return PacketColumns(
        **{k: v[keep] for k, v in cols.items()}, data=data,
        addresses=sorted(addresses, key=addresses.__getitem__),
    )  # fmt: skip


def _record_headers(
    buf: np.ndarray, offsets: np.ndarray, endian: str, nano: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps (ns), captured and wire lengths of the records at ``offsets``."""
    head = offsets[:, None] + np.arange(16)[None, :]
    words = buf[head].reshape(-1, 4, 4).astype(np.int64)
    if endian == "<":
        words = words[:, :, ::-1]
    sec, frac, caplen, wirelen = (
        (words[:, :, 0] << 24) | (words[:, :, 1] << 16) | (words[:, :, 2] << 8) | words[:, :, 3]
    ).T
    return sec * 1_000_000_000 + frac * (1 if nano else 1000), caplen, wirelen


def _decode_slow(
    data: bytes,
    rows: np.ndarray,
    frame: np.ndarray,
    caplen: np.ndarray,
    ts: np.ndarray,
    wirelen: np.ndarray,
    link: int,
    cols: dict[str, np.ndarray],
    keep: np.ndarray,
    addresses: dict[bytes, int],
    stats: ReadStats,
) -> bytes:
    """Decode ``rows`` one by one into ``cols``; their payloads are appended to ``data``."""
    extra: list[bytes] = []
    extra_at = len(data)
    for i in rows.tolist():
        lo = int(frame[i])
        pkt = decode_packet(data[lo : lo + int(caplen[i])], link, int(ts[i]), int(wirelen[i]))
        if pkt is None:
            stats.skipped += 1
            continue
        keep[i] = True
        cols["src"][i] = address_code(pkt.src, addresses)
        cols["dst"][i] = address_code(pkt.dst, addresses)
        cols["sport"][i], cols["dport"][i], cols["proto"][i] = pkt.sport, pkt.dport, pkt.proto
        cols["flags"][i], cols["seq"][i] = pkt.flags, pkt.seq
        cols["pay_off"][i], cols["pay_len"][i] = extra_at, len(pkt.payload)
        extra.append(pkt.payload)
        extra_at += len(pkt.payload)
    return data + b"".join(extra) if extra else data


def _record_offsets(path: Path, data: bytes, endian: str) -> np.ndarray:
    """Start of every record after the global header; ``DataError`` on damage."""
    unpack = struct.Struct(endian + "I").unpack_from
    out: list[int] = []
    append = out.append
    off, end = 0, len(data)
    while off + 16 <= end:
        append(off)
        caplen = unpack(data, off + 8)[0]
        if caplen > MAX_RECORD:
            raise DataError(f"{path}: record {len(out)} claims {caplen} bytes; the file is corrupt")
        off += 16 + caplen
    if off != end:
        what = "record header" if off < end else f"record {len(out)}"
        raise DataError(f"{path}: truncated capture, {what} is cut short")
    return np.asarray(out, dtype=np.int64)
