#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets with a byte format of their own: `h3_client`
and `udp_recv` (formats in the module docs of fuzz/src/h3_client/mod.rs and tests/src/fuzzing/udp.rs).

    python3 fuzz/make_seeds.py    # rewrites fuzz/corpus/{h3_client,udp_recv}/seed-*

Each seed is a scenario worth starting from; the fuzzer mutates from there. Regression seeds
(fuzz/corpus/REGRESSIONS.md) are kept as found and not written here.
"""

import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def u16(v):
    return struct.pack("<H", v)


# ---- h3_client -------------------------------------------------------------------------------

# How an input ends: the connection closes (0xfc to 0xff) or stays for the next input (any
# other value).
CONTINUE = 0
APP_CLOSE, TRANSPORT_CLOSE, SILENCE, DROP_HANDLE = range(0xFC, 0x100)
# Request kinds (`kind % 5`) and body reading modes (`read % 4`, bit 4: set a priority).
GET, POST, STREAMED, CONNECT, CANCEL = range(5)
READ_ALL, COLLECT_100, DROP_BODY, HOLD = range(4)
PRIORITY = 0x10


def h3_input(requests, actions, streams=100, end=CONTINUE, end_code=0x100):
    """requests: (kind, arg, read) tuples (1 to 6); actions: bytes from the helpers below."""
    assert 1 <= len(requests) <= 6
    out = bytes([min(streams, 255), end]) + u16(end_code) + bytes([len(requests) - 1])
    for kind, arg, read in requests:
        out += bytes([kind, arg, read])
    return out + b"".join(actions)


def raw(s, data, fin=False):
    return bytes([0, s, int(fin), len(data)]) + data


def head(s, status, fin=False, content_length=None):
    flags = int(fin) | (2 if content_length is not None else 0)
    return bytes([1, s, flags]) + u16(status) + bytes([content_length or 0])


def data(s, length, fin=False):
    return bytes([2, s, int(fin)]) + u16(length)


def trailers(s):
    return bytes([3, s])


def uni(kind, payload=b"", fin=False):
    """kind: index into UNI_TYPES (control, push, encoder, decoder, reserved, unknown)."""
    return bytes([4, kind, int(fin), len(payload)]) + payload


def uni_more(which, payload, fin=False):
    return bytes([5, which, int(fin), len(payload)]) + payload


# SETTING_IDS indexes.
QPACK_TABLE, MAX_FIELD_SECTION, QPACK_BLOCKED, CONNECT_PROTOCOL, H3_DATAGRAM, H2_ONLY = range(6)


def settings(*pairs):
    return bytes([6, len(pairs)]) + b"".join(bytes([i]) + u16(v) for i, v in pairs)


def goaway(stream_id):
    return bytes([7, stream_id])


# CONTROL_FRAMES indexes.
CANCEL_PUSH, GOAWAY, MAX_PUSH_ID, PRIORITY_UPDATE, PRIORITY_UPDATE_PUSH, DATA_FRAME = range(6)
# A frame of type 0xff that opens the control stream itself (no SETTINGS before it).
RAW_FIRST = 0xFF


def control_frame(ty, payload):
    return bytes([8, ty, len(payload)]) + payload


def reset(s, code):
    return bytes([9, s]) + u16(code)


def stop_sending(s, code):
    return bytes([10, s]) + u16(code)


def datagram(s, payload):
    return bytes([11, s, len(payload)]) + payload


def wait(ms):
    return bytes([12, ms])


H3_SEEDS = {
    # One GET answered properly: SETTINGS, 200, a body, FIN; the connection stays (a replay
    # closes it with H3_NO_ERROR).
    "seed-get": h3_input(
        [(GET, 0, READ_ALL)],
        [settings(), wait(5), head(0, 200), data(0, 100, fin=True), wait(20)],
    ),
    # Every kind of request at once, answered with 1xx, content-length, trailers, a datagram
    # on the CONNECT stream and a GOAWAY; the client then drops its handle.
    "seed-mixed": h3_input(
        [
            (GET, 0, READ_ALL),
            (POST, 4, COLLECT_100 | PRIORITY),
            (STREAMED, 3 | 1 << 3, READ_ALL),
            (CONNECT, 0, READ_ALL),
            (CANCEL, 5, READ_ALL),
            (GET, 1, HOLD),
        ],
        [
            settings((CONNECT_PROTOCOL, 1), (H3_DATAGRAM, 1), (QPACK_TABLE, 0)),
            wait(10),
            head(0, 103),
            head(0, 200, content_length=50),
            data(0, 50),
            trailers(0),
            head(1, 200),
            data(1, 300, fin=True),
            head(2, 201, fin=True),
            head(3, 200),
            datagram(3, b"hello"),
            head(5, 200),
            data(5, 9000, fin=True),
            wait(10),
            goaway(8),
            wait(30),
        ],
        end=DROP_HANDLE,
    ),
    # Requests the server refuses in different ways: a reset, STOP_SENDING, an invalid status,
    # a response cut mid-frame; then a transport close.
    "seed-resets": h3_input(
        [(GET, 0, READ_ALL), (POST, 2, READ_ALL), (GET, 0, READ_ALL), (GET, 0, READ_ALL)],
        [
            settings(),
            wait(5),
            reset(0, 0x0C),
            stop_sending(1, 0x02),
            head(2, 99, fin=True),
            head(3, 200),
            raw(3, b"\x00\x40\xff\x01\x02"),
            wait(10),
        ],
        end=TRANSPORT_CLOSE,
        end_code=0x0A,
    ),
    # A server that limits field sections to 10 bytes (requests not yet sent fail), opens
    # QPACK and unknown streams, then goes silent: the idle timeout ends the connection.
    "seed-silence": h3_input(
        [(GET, 0, READ_ALL), (STREAMED, 7, READ_ALL), (CONNECT, 0, HOLD)],
        [
            settings((MAX_FIELD_SECTION, 10), (H3_DATAGRAM, 1)),
            uni(2),
            uni(3),
            uni(5, b"ignored"),
            uni(4, b"reserved"),
            wait(5),
            head(0, 200),
        ],
        end=SILENCE,
    ),
    # Frames a server must not send on its control stream, and a push stream.
    "seed-control": h3_input(
        [(GET, 0, READ_ALL), (POST, 1, READ_ALL)],
        [
            settings((QPACK_TABLE, 4096), (QPACK_BLOCKED, 16)),
            wait(5),
            control_frame(CANCEL_PUSH, b"\x00"),
            wait(5),
            control_frame(PRIORITY_UPDATE, b"\x00u=1"),
            wait(5),
            control_frame(MAX_PUSH_ID, b"\x04"),
            wait(5),
            control_frame(DATA_FRAME, b"xx"),
            uni(1, b"\x00"),
        ],
    ),
    # A control stream whose first frame is not SETTINGS: H3_MISSING_SETTINGS.
    "seed-missing-settings": h3_input(
        [(GET, 0, READ_ALL)],
        [control_frame(RAW_FIRST, b""), wait(5)],
    ),
    # More 1xx responses than the client keeps (MAX_INFORMATIONAL is 16).
    "seed-informational": h3_input(
        [(GET, 0, READ_ALL), (GET, 0, DROP_BODY)],
        [settings(), wait(5)]
        + [head(0, 103) for _ in range(17)]
        + [head(1, 100), head(1, 204, fin=True), wait(10)],
    ),
    # A stream limit of one: each request waits for the previous to finish.
    "seed-stream-limit": h3_input(
        [(GET, 0, READ_ALL)] * 4,
        [settings()]
        + [x for i in range(4) for x in (wait(10), head(i, 200), data(i, 10, fin=True))]
        + [wait(10)],
        streams=1,
    ),
    # Malformed request streams: DATA before HEADERS, an unknown frame before a response,
    # GOAWAYs with ids going down, a HEADERS frame that refers to a dynamic table the client
    # never allowed, a GOAWAY whose id goes up (an error).
    "seed-malformed": h3_input(
        [(GET, 0, READ_ALL), (GET, 0, READ_ALL), (GET, 0, READ_ALL), (GET, 0, READ_ALL)],
        [
            settings(),
            wait(5),
            raw(0, b"\x00\x03abc"),
            wait(5),
            raw(1, b"\x21\x02zz"),
            head(1, 200),
            data(1, 5, fin=True),
            wait(5),
            datagram(0xFF, b"\x7f\xff"),
            goaway(12),
            wait(5),
            goaway(8),
            wait(5),
            raw(2, b"\x01\x03\x02\x00\x80", fin=True),
            wait(5),
            goaway(12),
            wait(10),
        ],
    ),
}

# ---- udp_recv --------------------------------------------------------------------------------

AF_INET, AF_INET6 = 2, 10
MSG_TRUNC, MSG_CTRUNC = 1, 2
# KINDS indexes.
PKTINFO, PKTINFO6, TOS, TCLASS, GRO, RXQ_OVFL, TIMESTAMPNS, TIMESTAMP, RECVERR, TTL = range(10)


def sockaddr_in(ip, port):
    return struct.pack("<H", AF_INET) + struct.pack(">H", port) + bytes(ip) + bytes(8)


def sockaddr_in6(ip, port):
    return struct.pack("<H", AF_INET6) + struct.pack(">H", port) + bytes(4) + bytes(ip) + bytes(4)


def udp_input(length, name, records=None, control=b"", flags=0):
    """records: (kind, data) or (kind, data, adjust) for the structured mode; else `control`
    is the raw control buffer."""
    out = u16(length) + bytes([flags, len(name)]) + name
    if records is None:
        return out + b"\x00" + control
    out += b"\x01"
    for r in records:
        kind, payload, adjust = r if len(r) == 3 else (*r, 0)
        out += bytes([kind, adjust, len(payload)]) + payload
    return out


def int32(v):
    return struct.pack("<i", v)


def u32(v):
    return struct.pack("<I", v)


def cmsg(level, ty, payload):
    """One x86-64 Linux control message: cmsg_len (8 bytes), level, type, data, padding."""
    hdr = struct.pack("<Qii", 16 + len(payload), level, ty)
    return hdr + payload + bytes(-len(payload) % 8)


V4 = [192, 0, 2, 7]
V6 = [0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1]
MAPPED = [0] * 10 + [0xFF, 0xFF] + V4

UDP_SEEDS = {
    # What a Linux socket with every option reports for a GRO batch over IPv4: pktinfo, TOS
    # with ECT(0), 1,200-byte segments, the drop counter, a timestamp.
    "seed-v4-gro": udp_input(
        3000,
        sockaddr_in([198, 51, 100, 1], 4433),
        [
            (PKTINFO, int32(2) + bytes(V4) + bytes(V4)),
            (TOS, int32(0x02)),
            (GRO, u16(1200)),
            (RXQ_OVFL, u32(17)),
            (TIMESTAMPNS, bytes(16)),
        ],
    ),
    # IPv6 with a v4-mapped sender and destination, a traffic class of CE, GRO as 4 bytes.
    "seed-v6-mapped": udp_input(
        2400,
        sockaddr_in6(MAPPED, 443),
        [
            (PKTINFO6, bytes(MAPPED) + int32(3)),
            (TCLASS, int32(0x03)),
            (GRO, u32(1350)),
        ],
    ),
    # Native IPv6, GRO larger than the payload (one datagram), TOS as one byte, unknown ones.
    "seed-v6-single": udp_input(
        900,
        sockaddr_in6(V6, 8443),
        [(TTL, int32(64)), (PKTINFO6, bytes(V6) + int32(1)), (TOS, b"\x01"), (GRO, u16(9000)), (40, b"?")],
    ),
    # Malformed: a pktinfo too short to read, a header claiming more than the buffer, a GRO
    # of zero, then messages the walk must not reach.
    "seed-bad-lengths": udp_input(
        1500,
        sockaddr_in(V4, 1),
        [(PKTINFO, b"\x01\x02"), (GRO, u16(0)), (TOS, int32(1), 40), (GRO, u16(100))],
        flags=MSG_CTRUNC,
    ),
    # Nothing received (an empty datagram), cut by the kernel, no control data, no sender.
    "seed-empty": udp_input(0, b"", control=b"", flags=MSG_TRUNC),
    # A truncated header: fewer bytes than a cmsghdr.
    "seed-raw-short": udp_input(1200, sockaddr_in(V4, 2), control=b"\x14\x00\x00\x00\x00\x00"),
}


def write(target, seeds):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith("seed-"):
            os.remove(os.path.join(directory, name))
    for name, content in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(content)


if __name__ == "__main__":
    write("h3_client", H3_SEEDS)
    write("udp_recv", UDP_SEEDS)
