//! An HTTP/3 client on quicksand over smol / async-io: `client [--insecure] [--out DIR] URL...`.
//!
//! All URLs share one UDP socket; each server gets one connection.

#[path = "../../tokio/examples/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_executor::Executor;
use common::{ClientArgs, Download};
use quicksand_h3::bytes::Bytes;
use quicksand_h3::http::{header, Request};
use quicksand_smol::{any_addr, resolve, Client, ClientConfig, H3Connection, Smol};

fn main() {
    // One thread runs everything: the endpoint task (spawned on this executor) and the
    // downloads. The global executor would put the endpoint task on threads of its own,
    // with a cross-thread wake-up for every body chunk and async-io's reactor on yet another.
    let ex = Arc::new(Executor::new());
    async_io::block_on(ex.run(run(ex.clone())));
}

async fn run(ex: Arc<Executor<'static>>) {
    common::init_logging();
    let args = ClientArgs::parse();
    let mut config = ClientConfig::default();
    args.apply(&mut config);
    let mut failed = 0;
    let mut client: Option<Client> = None;
    let mut conns: HashMap<(String, SocketAddr), H3Connection> = HashMap::new();
    for url in &args.urls {
        if let Err(e) = fetch(&ex, url, &args, &config, &mut client, &mut conns).await {
            eprintln!("FAILED {url}: {e}");
            failed += 1;
        }
    }
    if args.stats {
        for ((host, peer), conn) in &conns {
            if let Ok(stats) = conn.connection.stats().await {
                eprintln!("{}", common::stats_line(&format!("{host} {peer}"), &stats));
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

async fn fetch(
    ex: &Arc<Executor<'static>>,
    url: &str,
    args: &ClientArgs,
    config: &ClientConfig,
    client: &mut Option<Client>,
    conns: &mut HashMap<(String, SocketAddr), H3Connection>,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (host, peer) = resolve(url).await?;
    if client.is_none() {
        *client = Some(Client::bind_on(
            Smol::on(ex.clone()),
            any_addr(peer),
            config.clone(),
        )?);
    }
    let key = (host.clone(), peer);
    if !conns.contains_key(&key) {
        let c = client.as_ref().expect("bound").connect(peer, &host).await?;
        conns.insert(key.clone(), c);
    }
    let conn = &conns[&key];
    let mut download = Download::start(url, args.out.as_deref(), started)?;
    let req = Request::get(url).body(Bytes::new())?;
    let resp = conn.client.request(req)?.await?;
    let len = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    download.head(len);
    let status = resp.status();
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        download.chunk(&chunk?)?;
    }
    download.finish(status.as_u16());
    if !status.is_success() {
        return Err(format!("status {status}").into());
    }
    Ok(())
}
