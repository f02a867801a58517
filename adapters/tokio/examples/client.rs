//! An HTTP/3 client on quicksand over tokio: `client [--insecure] [--out DIR] URL...`.
//!
//! All URLs share one UDP socket; each server gets one connection.

mod common;

// One thread runs everything, as the smol client does: the downloads and the endpoint task
// wake each other for every body chunk, and on a multi-thread runtime those wake-ups cross
// threads (or go through block_on's thread). The fetches are sequential, so a second thread
// would only add the crossings.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    common::run_client(quicksand_tokio::Tokio::default()).await;
}
