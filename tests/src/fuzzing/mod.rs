//! The bodies of the fuzz targets that need no state across inputs, shared by the cargo-fuzz
//! targets in `fuzz/` and by the stable-Rust replay of their corpora
//! (`tests/tests/fuzz_corpus.rs`, through `fuzz/src/lib.rs`, which holds the persistent
//! targets). Each function takes the fuzzer's bytes and panics only on a real bug.

mod gso;
mod h3_client;
mod reader;
mod tokens;
mod udp;

pub use gso::gso_gro;
pub use h3_client::h3_client;
pub use tokens::tokens;
pub use udp::udp_recv;
