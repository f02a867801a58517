//! An arbitrary sequence of peer actions — raw stream bytes (so arbitrary HTTP/3 frames),
//! unidirectional streams of any type, resets, stop-sending, datagrams — against the HTTP/3
//! server driver over an in-memory pair. The server must not panic.

use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::QuicheConnection;
use quicksand_core::{quiche, Application, ApplicationError};
use quicksand_h3::{Body, Http3Settings, ServerDriver};

use super::h3_client::headers_frame;
use crate::pair::Pair;

#[derive(Arbitrary, Debug, Clone)]
enum Action {
    Bidi {
        bytes: Vec<u8>,
        fin: bool,
    },
    Uni {
        kind: u8,
        bytes: Vec<u8>,
    },
    Reset {
        stream: u8,
        code: u16,
    },
    StopSending {
        stream: u8,
        code: u16,
    },
    Datagram(Vec<u8>),
    /// A well-formed request, so the server also has real work in flight.
    Request {
        path: u16,
    },
}

/// A client that performs its actions once the connection can carry data.
struct RawPeer {
    actions: Vec<Action>,
    done: bool,
}

impl Application for RawPeer {
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let mut buf = [0u8; 4096];
        let readable: Vec<u64> = conn.readable().collect();
        for s in readable {
            while conn.stream_recv(s, &mut buf).is_ok() {}
        }
        while conn.dgram_recv(&mut buf).is_ok() {}
        Ok(())
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        let (mut bidi, mut uni) = (0u64, 0u64);
        for action in self.actions.iter().take(64) {
            match action {
                Action::Bidi { bytes, fin } => {
                    let _ = conn.stream_send(bidi * 4, bytes, *fin);
                    bidi += 1;
                }
                Action::Uni { kind, bytes } => {
                    let mut data = vec![kind % 4];
                    data.extend(bytes);
                    let _ = conn.stream_send(2 + uni * 4, &data, false);
                    uni += 1;
                }
                Action::Reset { stream, code } => {
                    let _ = conn.stream_shutdown(
                        (*stream as u64 % (bidi + 1)) * 4,
                        quiche::Shutdown::Write,
                        *code as u64,
                    );
                }
                Action::StopSending { stream, code } => {
                    let _ = conn.stream_shutdown(
                        (*stream as u64 % (bidi + 1)) * 4,
                        quiche::Shutdown::Read,
                        *code as u64,
                    );
                }
                Action::Datagram(bytes) => {
                    let _ = conn.dgram_send(bytes);
                }
                Action::Request { path } => {
                    let path = format!("/{path}");
                    let frame = headers_frame(&[
                        (":method", "GET"),
                        (":scheme", "https"),
                        (":authority", "localhost"),
                        (":path", &path),
                    ]);
                    let _ = conn.stream_send(bidi * 4, &frame, true);
                    bidi += 1;
                }
            }
        }
        Ok(())
    }
}

/// See the module docs.
pub fn h3_server(data: &[u8]) {
    let Ok(actions) = Vec::<Action>::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let mut settings = crate::h3::quic_settings();
    settings.enable_dgram = true;
    let (mut client_config, server_config) = crate::h3::configs(settings.clone(), settings);
    let server = ServerDriver::with_service(
        Http3Settings::default(),
        |req: http::Request<quicksand_h3::RecvBody>| async move {
            let n: usize = req
                .uri()
                .path()
                .trim_start_matches('/')
                .parse()
                .unwrap_or(0)
                % 10_000;
            http::Response::new(Body::from(vec![7u8; n]))
        },
    );
    let Ok(mut pair) = Pair::new(
        &mut client_config,
        server_config,
        RawPeer {
            actions,
            done: false,
        },
        server,
        std::time::Duration::ZERO,
    ) else {
        return;
    };
    for _ in 0..200 {
        if pair.step().is_err() || pair.client.is_closed() {
            break;
        }
    }
}
