//! An HTTP/3 client on quicksand over smol / async-io: `smol-client [--insecure] [--out DIR]
//! URL...`.
//!
//! All URLs share one UDP socket; each server gets one connection.

#[path = "../../tokio/examples/common/mod.rs"]
mod common;

use std::sync::Arc;

use async_executor::Executor;

fn main() {
    // One thread runs everything: the endpoint task (spawned on this executor) and the
    // downloads. The global executor would put the endpoint task on threads of its own,
    // with a cross-thread wake-up for every body chunk and async-io's reactor on yet another.
    let ex = Arc::new(Executor::new());
    let runtime = quicksand_smol::Smol::on(ex.clone());
    async_io::block_on(ex.run(common::run_client(runtime)));
}
