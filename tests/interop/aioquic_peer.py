#!/usr/bin/env python3
"""An independent HTTP/3 peer for quicksand's interop tests, on aioquic.

server: serves GET /bytes/N (N pattern bytes: byte i is i % 251) and POST /sha256 (answers
        the hex SHA-256 of the request body).
client: fetches URLs, prints one JSON line per response
        {"url", "status", "length", "sha256"} and exits non-zero on any failure.
"""
import argparse
import asyncio
import hashlib
import json
import os
import ssl
import sys
from urllib.parse import urlparse

from aioquic.asyncio import connect, serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, QuicEvent
from aioquic.tls import CipherSuite, SessionTicket

PATTERN = bytes(i % 251 for i in range(251 * 1024))


def pattern(n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        out += PATTERN[: n - len(out)]
    return bytes(out)


class ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._http = None
        self._requests = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and self._http is None:
            self._http = H3Connection(self._quic)
        if self._http is None:
            return
        for ev in self._http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                headers = dict(ev.headers)
                self._requests[ev.stream_id] = [headers, hashlib.sha256(), 0]
                if ev.stream_ended:
                    self._respond(ev.stream_id)
            elif isinstance(ev, DataReceived):
                req = self._requests.get(ev.stream_id)
                if req is not None:
                    req[1].update(ev.data)
                    req[2] += len(ev.data)
                    if ev.stream_ended:
                        self._respond(ev.stream_id)
        self.transmit()

    def _respond(self, stream_id: int) -> None:
        headers, digest, length = self._requests.pop(stream_id)
        method = headers.get(b":method", b"").decode()
        path = headers.get(b":path", b"/").decode()
        if method == "GET" and path.startswith("/bytes/"):
            try:
                n = int(path[len("/bytes/"):])
            except ValueError:
                n = -1
            if 0 <= n <= 1 << 30:
                self._send(stream_id, 200, pattern(n))
                return
        if method == "POST" and path == "/sha256":
            body = (digest.hexdigest() + f" {length}").encode()
            self._send(stream_id, 200, body)
            return
        self._send(stream_id, 404, b"not found")

    def _send(self, stream_id: int, status: int, body: bytes) -> None:
        self._http.send_headers(
            stream_id,
            [(b":status", str(status).encode()), (b"content-length", str(len(body)).encode())],
        )
        self._http.send_data(stream_id, body, end_stream=True)


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self._waiters = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.http.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)):
                state = self._waiters.get(ev.stream_id)
                if state is None:
                    continue
                if isinstance(ev, HeadersReceived):
                    state["status"] = int(dict(ev.headers).get(b":status", b"0"))
                else:
                    state["sha"].update(ev.data)
                    state["length"] += len(ev.data)
                if ev.stream_ended:
                    state["done"].set_result(None)

    async def request(self, method: str, url: str, body: bytes = b""):
        u = urlparse(url)
        stream_id = self._quic.get_next_available_stream_id()
        state = {"status": 0, "sha": hashlib.sha256(), "length": 0,
                 "done": asyncio.get_event_loop().create_future()}
        self._waiters[stream_id] = state
        headers = [(b":method", method.encode()), (b":scheme", b"https"),
                   (b":authority", u.netloc.encode()), (b":path", (u.path or "/").encode())]
        self.http.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()
        await state["done"]
        return {"url": url, "status": state["status"], "length": state["length"],
                "sha256": state["sha"].hexdigest()}


def configuration(args, is_client: bool) -> QuicConfiguration:
    config = QuicConfiguration(is_client=is_client, alpn_protocols=H3_ALPN,
                               max_datagram_frame_size=65536)
    if args.chacha:
        config.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
    if getattr(args, "cid_length", None):
        # Both our SCID and the first DCID we send have this length (RFC 9000 allows 8..=20).
        config.connection_id_length = args.cid_length
    return config


async def run_server(args) -> None:
    config = configuration(args, is_client=False)
    config.load_cert_chain(args.cert, args.key)
    tickets = {}
    await serve(args.host, args.port, configuration=config, create_protocol=ServerProtocol,
                retry=args.retry, session_ticket_fetcher=tickets.pop,
                session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t))
    print("ready", flush=True)
    await asyncio.Future()


async def run_client(args) -> int:
    config = configuration(args, is_client=True)
    if args.insecure:
        config.verify_mode = ssl.CERT_NONE
    if args.session and os.path.exists(args.session):
        import pickle
        with open(args.session, "rb") as f:
            config.session_ticket = pickle.load(f)

    def save_ticket(ticket: SessionTicket) -> None:
        if args.session:
            import pickle
            with open(args.session, "wb") as f:
                pickle.dump(ticket, f)

    u = urlparse(args.urls[0])
    failures = 0
    async with connect(u.hostname, u.port or 443, configuration=config,
                       create_protocol=ClientProtocol, session_ticket_handler=save_ticket,
                       wait_connected=not args.zero_rtt) as client:
        if args.key_update:
            client._quic.request_key_update()
        body = pattern(args.post_size) if args.post_size else b""
        method = "POST" if args.post_size else "GET"
        jobs = [client.request(method, url, body) for url in args.urls for _ in range(args.repeat)]
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, Exception):
                print(json.dumps({"error": repr(result)}), flush=True)
                failures += 1
            else:
                if args.zero_rtt:
                    result["early_data"] = bool(client._quic.tls.early_data_accepted)
                if args.key_update:
                    result["key_phase"] = client._quic._key_phase if hasattr(client._quic, "_key_phase") else None
                print(json.dumps(result), flush=True)
                failures += result["status"] != 200
        client.close()
        await client.wait_closed()
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true")
    s.add_argument("--chacha", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("urls", nargs="+")
    c.add_argument("--insecure", action="store_true")
    c.add_argument("--repeat", type=int, default=1, help="send each URL this many times in parallel")
    c.add_argument("--post-size", type=int, default=0, help="POST this many pattern bytes")
    c.add_argument("--session", help="file to load/store the session ticket")
    c.add_argument("--zero-rtt", action="store_true")
    c.add_argument("--key-update", action="store_true")
    c.add_argument("--chacha", action="store_true")
    c.add_argument("--cid-length", type=int, default=0, help="connection ID length (8..=20)")
    args = p.parse_args()
    if os.environ.get("AIOQUIC_DEBUG"):
        import logging
        logging.basicConfig(level=logging.DEBUG)
    if args.mode == "server":
        asyncio.run(run_server(args))
        return 0
    return asyncio.run(asyncio.wait_for(run_client(args), timeout=120))


if __name__ == "__main__":
    sys.exit(main())
