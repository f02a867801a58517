//! An HTTP/3 client on quicksand over tokio: `client [--insecure] [--out DIR] URL...`.
//!
//! All URLs share one UDP socket; each server gets one connection.

mod common;

#[tokio::main]
async fn main() {
    common::run_client(quicksand_tokio::Tokio::default()).await;
}
