//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by the stable-Rust
//! replay of their corpora (`tests/tests/fuzz_corpus.rs`), so CI exercises every target even
//! without a fuzzer. Each function takes the fuzzer's bytes and panics only on a real bug.

mod endpoint;
mod gso;
mod h3;
mod h3_client;
mod reader;
mod scenario;
mod tokens;
mod udp;

pub use endpoint::endpoint_datagrams;
pub use gso::gso_gro;
pub use h3::h3_server;
pub use h3_client::h3_client;
pub use scenario::sim_scenario;
pub use tokens::tokens;
pub use udp::udp_recv;

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("endpoint_datagrams", endpoint_datagrams),
    ("gso_gro", gso_gro),
    ("h3_client", h3_client),
    ("h3_server", h3_server),
    ("sim_scenario", sim_scenario),
    ("tokens", tokens),
    ("udp_recv", udp_recv),
];
