//! The bodies of the fuzz targets that need no state across inputs, shared by the cargo-fuzz
//! targets in `fuzz/` and by the stable-Rust replay of their corpora
//! (`tests/tests/fuzz_corpus.rs`, through `fuzz/src/lib.rs`, which holds the persistent
//! targets). Each function takes the fuzzer's bytes and panics only on a real bug.

mod gso;
mod reader;
mod tokens;
mod udp;

pub use gso::gso_gro;
pub use reader::Reader;
pub use tokens::tokens;
pub use udp::udp_recv;

use std::sync::Arc;

use quicksand_core::boring::ssl::SslContextBuilder;
use quicksand_core::{Hooks, QuicConfig, QuicSettings};

/// A client and a server config for the HTTP/3 fuzz targets: as [`crate::h3::configs`]
/// (self-signed certificate, no verification), with X25519 as the only key exchange on both
/// sides. BoringSSL's default offers X25519MLKEM768 first, whose key shares take a second
/// Initial packet and whose arithmetic was a quarter of a handshake's cost under
/// AddressSanitizer; the targets rebuild their connection whenever an input closes it, and
/// none of them is about the key exchange.
pub fn h3_configs(client: QuicSettings, server: QuicSettings) -> (QuicConfig, QuicConfig) {
    let hooks = Hooks {
        ssl_context: Some(Arc::new(|ctx: &mut SslContextBuilder| {
            ctx.set_curves_list("X25519")
        })),
    };
    crate::h3::configs_with_hooks(client, server, hooks)
}
