//! The hostile server's side of `h3_client`: its actions, as decoded from an input, and what
//! playing them writes on the server connection.

use quicksand_core::quiche::Shutdown;
use quicksand_core::QuicheConnection;
use quicksand_tests::fuzzing::Reader;

use super::super::wire::{frame, headers_frame, varint};

/// One server action. Stream selectors `s` pick one of the input's request streams the server
/// has seen (`s < 0xf0`), or the `s & 0xf`th client stream from the input's first one on,
/// opened or not.
#[derive(Debug)]
pub(super) enum Act {
    /// op 0 `s fin len bytes[len]`: raw bytes on a request stream.
    Stream { s: u8, fin: bool, bytes: Vec<u8> },
    /// op 1 `s flags status:u16le clen`: a HEADERS frame with `:status` (any number,
    /// printed as three digits) and, with flags bit 1, `content-length: clen`; flags bit 0: FIN.
    Head {
        s: u8,
        fin: bool,
        status: u16,
        content_length: Option<u8>,
    },
    /// op 2 `s fin len:u16le`: a DATA frame of `len` bytes.
    Data { s: u8, fin: bool, len: u16 },
    /// op 3 `s`: a trailer section (`x-trailer: 1`), then FIN.
    Trailers { s: u8 },
    /// op 4 `kind fin len bytes[len]`: a new unidirectional stream; type `UNI_TYPES[kind]`, or
    /// `kind` itself from 6 on.
    Uni { kind: u8, fin: bool, bytes: Vec<u8> },
    /// op 5 `which fin len bytes[len]`: more bytes on a unidirectional stream opened before.
    UniMore {
        which: u8,
        fin: bool,
        bytes: Vec<u8>,
    },
    /// op 6 `n (id value:u16le)*n`: the connection's SETTINGS frame, opening the control
    /// stream with it; ids from `SETTING_IDS`, or the id itself from 8 on. Dropped once the
    /// connection has its SETTINGS (a second one is a `ControlFrame` of type 0x04).
    Settings(Vec<(u8, u16)>),
    /// op 7 `id`: GOAWAY with stream id `id` on the control stream.
    Goaway(u8),
    /// op 8 `ty len bytes[len]`: a frame of type `CONTROL_FRAMES[ty]` (or `ty` itself from 10
    /// on) on the control stream. A control stream not open yet opens with an empty SETTINGS
    /// first, except for `ty == 0xff`: that frame then opens the stream, which closes the
    /// connection with H3_MISSING_SETTINGS.
    ControlFrame { ty: u8, payload: Vec<u8> },
    /// op 9 `s code:u16le`: RESET_STREAM on a request stream.
    Reset { s: u8, code: u16 },
    /// op 10 `s code:u16le`: STOP_SENDING on a request stream.
    StopSending { s: u8, code: u16 },
    /// op 11 `s len bytes[len]`: a QUIC datagram; with `s != 0xff`, prefixed with the quarter
    /// stream id of the selected request stream (an HTTP/3 datagram).
    Datagram { s: u8, bytes: Vec<u8> },
    /// op 12 `ms`: let `ms + 1` milliseconds pass before the next action.
    Wait(u8),
}

/// Unidirectional stream types: control, push, QPACK encoder, QPACK decoder, reserved, unknown.
const UNI_TYPES: [u64; 6] = [0x00, 0x01, 0x02, 0x03, 0x21, 0x54];
/// SETTINGS ids: QPACK table capacity, max field section size, QPACK blocked streams, extended
/// CONNECT, H3 datagrams, an HTTP/2-only id (an error), reserved, unknown.
const SETTING_IDS: [u64; 8] = [0x01, 0x06, 0x07, 0x08, 0x33, 0x02, 0x21, 0x0d];
/// Control stream frame types: CANCEL_PUSH, GOAWAY, MAX_PUSH_ID, PRIORITY_UPDATE (request,
/// push), and types not allowed there: DATA, HEADERS, PUSH_PROMISE, reserved, SETTINGS.
const CONTROL_FRAMES: [u64; 10] = [
    0x03, 0x07, 0x0d, 0xf0700, 0xf0701, 0x00, 0x01, 0x05, 0x21, 0x04,
];

impl Act {
    pub(super) fn parse(r: &mut Reader<'_>) -> Act {
        let op = r.u8() % 13;
        let s = r.u8();
        match op {
            0 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                Act::Stream { s, fin, bytes }
            }
            1 => {
                let flags = r.u8();
                let status = r.u16();
                let clen = r.u8();
                Act::Head {
                    s,
                    fin: flags & 1 == 1,
                    status,
                    content_length: (flags & 2 == 2).then_some(clen),
                }
            }
            2 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u16();
                Act::Data { s, fin, len }
            }
            3 => Act::Trailers { s },
            4 | 5 => {
                let fin = r.u8() & 1 == 1;
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                if op == 4 {
                    Act::Uni {
                        kind: s,
                        fin,
                        bytes,
                    }
                } else {
                    Act::UniMore {
                        which: s,
                        fin,
                        bytes,
                    }
                }
            }
            6 => Act::Settings((0..s % 8).map(|_| (r.u8(), r.u16())).collect()),
            7 => Act::Goaway(s),
            8 => {
                let len = r.u8() as usize;
                let payload = r.bytes(len).to_vec();
                Act::ControlFrame { ty: s, payload }
            }
            9 => Act::Reset { s, code: r.u16() },
            10 => Act::StopSending { s, code: r.u16() },
            11 => {
                let len = r.u8() as usize;
                let bytes = r.bytes(len).to_vec();
                Act::Datagram { s, bytes }
            }
            _ => Act::Wait(s),
        }
    }
}

/// H3 error codes for small values, so resets carry meaningful codes as often as not.
fn error_code(code: u16) -> u64 {
    if code < 0x20 {
        0x100 + u64::from(code)
    } else {
        u64::from(code)
    }
}

/// The hostile server's own streams, which live as long as the connection.
#[derive(Default)]
pub(super) struct Actor {
    /// Our unidirectional streams, in order.
    uni: Vec<u64>,
    control: Option<u64>,
    /// A GOAWAY was sent: the client takes no new request after it.
    pub(super) goaway: bool,
}

/// The request streams an input's actions select from: the ones the server saw since the
/// input began, and the client stream id the input's raw selectors count from.
pub(super) struct Selection {
    pub(super) seen: Vec<u64>,
    pub(super) base: u64,
}

impl Selection {
    fn stream(&self, s: u8) -> u64 {
        if s >= 0xf0 || self.seen.is_empty() {
            self.base + u64::from(s & 0x0f) * 4
        } else {
            self.seen[s as usize % self.seen.len()]
        }
    }
}

impl Actor {
    fn open_uni(&mut self, conn: &mut QuicheConnection, ty: u64, bytes: &[u8], fin: bool) -> u64 {
        let id = 3 + 4 * self.uni.len() as u64;
        self.uni.push(id);
        let mut data = Vec::with_capacity(bytes.len() + 8);
        varint(ty, &mut data);
        data.extend_from_slice(bytes);
        let _ = conn.stream_send(id, &data, fin);
        id
    }

    /// Sends `bytes` on the control stream, opening it (type byte only) if needed.
    /// Sends `bytes` on the control stream. A control stream not open yet opens with them if
    /// `first`, else with an empty SETTINGS frame before them: every input that writes a
    /// control frame before any SETTINGS would otherwise end the connection (and cost a new
    /// handshake), though only the exact `ControlFrame` selector is needed to test that.
    fn on_control(&mut self, conn: &mut QuicheConnection, bytes: &[u8], first: bool) {
        match self.control {
            Some(id) => {
                let _ = conn.stream_send(id, bytes, false);
            }
            None if first => self.control = Some(self.open_uni(conn, 0x00, bytes, false)),
            None => {
                let mut data = frame(0x04, &[]);
                data.extend_from_slice(bytes);
                self.control = Some(self.open_uni(conn, 0x00, &data, false));
            }
        }
    }

    pub(super) fn act(&mut self, conn: &mut QuicheConnection, streams: &Selection, act: Act) {
        match act {
            Act::Stream { s, fin, bytes } => {
                let _ = conn.stream_send(streams.stream(s), &bytes, fin);
            }
            Act::Head {
                s,
                fin,
                status,
                content_length,
            } => {
                let status = format!("{:03}", status % 1000);
                let clen = content_length.map(|n| n.to_string());
                let mut fields = vec![(":status", status.as_str())];
                if let Some(n) = &clen {
                    fields.push(("content-length", n.as_str()));
                }
                let _ = conn.stream_send(streams.stream(s), &headers_frame(&fields), fin);
            }
            Act::Data { s, fin, len } => {
                let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let _ = conn.stream_send(streams.stream(s), &frame(0x00, &body), fin);
            }
            Act::Trailers { s } => {
                let trailers = headers_frame(&[("x-trailer", "1")]);
                let _ = conn.stream_send(streams.stream(s), &trailers, true);
            }
            Act::Uni { kind, fin, bytes } => {
                let ty = UNI_TYPES.get(kind as usize).copied().unwrap_or(kind.into());
                self.open_uni(conn, ty, &bytes, fin);
            }
            Act::UniMore { which, fin, bytes } => {
                if !self.uni.is_empty() {
                    let id = self.uni[which as usize % self.uni.len()];
                    let _ = conn.stream_send(id, &bytes, fin);
                }
            }
            Act::Settings(_) if self.control.is_some() => {}
            Act::Settings(pairs) => {
                let mut payload = Vec::new();
                for (id, value) in pairs {
                    varint(
                        SETTING_IDS.get(id as usize).copied().unwrap_or(id.into()),
                        &mut payload,
                    );
                    varint(value.into(), &mut payload);
                }
                self.on_control(conn, &frame(0x04, &payload), true);
            }
            Act::Goaway(id) => {
                let mut payload = Vec::new();
                varint(id.into(), &mut payload);
                self.on_control(conn, &frame(0x07, &payload), false);
                self.goaway = true;
            }
            Act::ControlFrame { ty, payload } => {
                let raw = ty == 0xff;
                let ty = CONTROL_FRAMES
                    .get(ty as usize)
                    .copied()
                    .unwrap_or(ty.into());
                self.on_control(conn, &frame(ty, &payload), raw);
            }
            Act::Reset { s, code } => {
                let _ = conn.stream_shutdown(streams.stream(s), Shutdown::Write, error_code(code));
            }
            Act::StopSending { s, code } => {
                let _ = conn.stream_shutdown(streams.stream(s), Shutdown::Read, error_code(code));
            }
            Act::Datagram { s, bytes } => {
                let mut data = Vec::with_capacity(bytes.len() + 8);
                if s != 0xff {
                    varint(streams.stream(s) / 4, &mut data);
                }
                data.extend_from_slice(&bytes);
                let _ = conn.dgram_send(&data);
            }
            Act::Wait(_) => unreachable!("waits are played by the harness"),
        }
    }
}
