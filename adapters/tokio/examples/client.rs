//! An HTTP/3 client on quicksand over tokio: `client [--insecure] [--out DIR] URL...`.
//!
//! All URLs share one UDP socket; each server gets one connection.

mod common;

#[tokio::main]
async fn main() {
    // On a worker thread, not on `block_on`'s: a body chunk's wake-up then lands on the
    // thread that runs the endpoint task (tokio's LIFO slot) instead of crossing threads.
    let client = tokio::spawn(common::run_client(quicksand_tokio::Tokio::default()));
    client.await.expect("the client task");
}
