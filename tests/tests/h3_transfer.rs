//! HTTP/3 over the in-memory pair on virtual time: GET and POST byte-exact from 0 bytes to
//! tens of megabytes, many requests in parallel, trailers, informational responses.

use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use http::{HeaderMap, Request, Response, StatusCode};
use quicksand_h3::{
    Body, ClientApplication, ConnectionInfo, H3Client, Http3Settings, Informational,
    InformationalResponses, RecvBody, ServerApplication,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, pattern, quic_settings};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

type H3Pair = Pair<ClientApplication, ServerApplication>;

/// `/echo` echoes the request body (streamed, with backpressure) and its trailers;
/// `/bytes/N` answers N pattern bytes; `/hints` sends 103 then 200; `/trailers` answers with
/// trailers; `/whoami` describes the connection from the request's `ConnectionInfo`.
async fn handler(req: Request<RecvBody>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/whoami" {
        let info = req
            .extensions()
            .get::<ConnectionInfo>()
            .expect("connection info on every request");
        let text = format!(
            "{} {} {:?} {} {} {}",
            info.peer_addr(),
            info.local_addr(),
            info.server_name(),
            String::from_utf8_lossy(info.alpn()),
            info.stats().recv > 0,
            info.path_stats().is_some_and(|p| p.rtt > Duration::ZERO),
        );
        return Response::new(Body::from(text));
    }
    if path == "/echo" {
        let (_, body) = req.into_parts();
        return Response::new(Body::from_stream(body));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        return Response::new(Body::from(pattern(7, n)));
    }
    if path == "/hints" {
        let info = req
            .extensions()
            .get::<Informational>()
            .expect("informational sender");
        let hint = Response::builder()
            .status(StatusCode::EARLY_HINTS)
            .header("link", "</style.css>; rel=preload")
            .body(())
            .unwrap();
        info.send(hint).expect("103 queued");
        return Response::new(Body::from("final"));
    }
    if path == "/trailers" {
        let (_, mut body) = req.into_parts();
        let data = body.collect(1 << 20).await.expect("request body");
        let got = body.trailers().await.expect("request trailers");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-len", data.len().to_string().parse().unwrap());
        if let Some(t) = got.and_then(|t| t.get("x-checksum").cloned()) {
            trailers.insert("x-echo-checksum", t);
        }
        return Response::new(Body::from(data).with_trailers(trailers));
    }
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(Body::empty())
        .unwrap()
}

fn pair_with(client: Http3Settings, server: Http3Settings) -> (H3Pair, H3Client) {
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, handle) = ClientApplication::new(client);
    let server = ServerApplication::with_service(server, handler);
    let pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    (pair, handle)
}

fn post(client: &H3Client, path: &str, body: Bytes) -> quicksand_h3::ResponseFuture {
    let req = Request::post(format!("https://localhost{path}"))
        .body(body)
        .unwrap();
    client.request(req).unwrap()
}

async fn read_all(resp: Response<RecvBody>) -> (StatusCode, Bytes) {
    let status = resp.status();
    let mut body = resp.into_body();
    (
        status,
        body.collect(usize::MAX).await.expect("response body"),
    )
}

fn transfer_sizes(sizes: &[usize]) {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair_with(Http3Settings::default(), Http3Settings::default());
    for &len in sizes {
        let sent = pattern(len as u64, len);
        let started = clock.elapsed();
        let (status, echoed) = block_on(&mut pair, &clock, Duration::from_secs(600), async {
            read_all(post(&client, "/echo", sent.clone()).await.unwrap()).await
        })
        .expect("POST completes");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed.len(), len, "POST echo length");
        assert!(echoed == sent, "POST echo of {len} bytes differs");
        let resp = block_on(&mut pair, &clock, Duration::from_secs(600), async {
            client.get(&format!("https://localhost/bytes/{len}")).await
        })
        .expect("GET completes")
        .unwrap_or_else(|e| {
            panic!(
                "GET failed: {e}; client {:?} {:?}, server {:?} {:?}",
                pair.client.application().close_reason(),
                pair.client.application().stats(),
                pair.server().application().close_reason(),
                pair.server().application().stats(),
            )
        });
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            *resp.body() == pattern(7, len),
            "GET of {len} bytes differs"
        );
        eprintln!(
            "{len} bytes both ways in {:?} virtual",
            clock.elapsed() - started
        );
    }
    // Memory stayed bounded on both sides although whole bodies went through.
    let server = pair.server().application().stats();
    let cap = Http3Settings::default().connection_buffer_size;
    assert!(server.recv_buffer_high_water <= cap, "{server:?}");
    assert!(pair.client.application().stats().recv_buffer_high_water <= cap);
}

#[test]
fn get_and_post_small_bodies_byte_exact() {
    transfer_sizes(&[0, 1, 17, 1200, 65_536, 100_000, 1 << 20]);
}

#[test]
fn get_and_post_ten_megabytes_byte_exact() {
    transfer_sizes(&[10 << 20]);
}

/// 50 MB each way (a few seconds in a debug build).
#[test]
fn get_and_post_fifty_megabytes_byte_exact() {
    transfer_sizes(&[50 << 20]);
}

#[test]
fn thousand_concurrent_requests_on_one_connection() {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair_with(Http3Settings::default(), Http3Settings::default());
    let futures: Vec<_> = (0..1000)
        .map(|i| {
            let f = post(&client, "/echo", pattern(i, (i as usize % 7) * 100));
            async move { (i, read_all(f.await.unwrap()).await) }
        })
        .collect();
    let results = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(120),
        join_all(futures),
    )
    .expect("all 1000 complete");
    for (i, (status, body)) in results {
        assert_eq!(status, StatusCode::OK);
        assert!(body == pattern(i, (i as usize % 7) * 100), "request {i}");
    }
    // The server's QUIC stream limit (100) made requests wait for credit.
    assert_eq!(pair.server().application().stats().requests, 1000);
}

#[test]
fn trailers_both_ways() {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair_with(Http3Settings::default(), Http3Settings::default());
    let req = Request::post("https://localhost/trailers")
        .body(())
        .unwrap();
    let (mut sender, response) = client.send_request(req).unwrap();
    let out = block_on(&mut pair, &clock, Duration::from_secs(10), async move {
        sender
            .send_data(Bytes::from_static(b"hello "))
            .await
            .unwrap();
        sender
            .send_data(Bytes::from_static(b"world"))
            .await
            .unwrap();
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "abc123".parse().unwrap());
        sender.send_trailers(t).unwrap();
        let resp = response.await.unwrap();
        let mut body = resp.into_body();
        let data = body.collect(1 << 20).await.unwrap();
        let trailers = body.trailers().await.unwrap().expect("response trailers");
        (data, trailers)
    })
    .expect("completes");
    assert_eq!(&out.0[..], b"hello world");
    assert_eq!(out.1.get("x-len").unwrap(), "11");
    assert_eq!(out.1.get("x-echo-checksum").unwrap(), "abc123");
}

#[test]
fn early_hints_then_final_response() {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair_with(Http3Settings::default(), Http3Settings::default());
    let resp = block_on(&mut pair, &clock, Duration::from_secs(10), async {
        client
            .request(
                Request::get("https://localhost/hints")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .unwrap()
            .await
    })
    .expect("completes")
    .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let info = resp.extensions().get::<InformationalResponses>().unwrap();
    assert_eq!(info.0.len(), 1);
    assert_eq!(info.0[0].status(), StatusCode::EARLY_HINTS);
    assert_eq!(
        info.0[0].headers().get("link").unwrap(),
        "</style.css>; rel=preload"
    );
    let body = block_on(&mut pair, &clock, Duration::from_secs(10), read_all(resp)).unwrap();
    assert_eq!(&body.1[..], b"final");
}

#[test]
fn handlers_see_the_connection_a_request_came_on() {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair_with(Http3Settings::default(), Http3Settings::default());
    let req = Request::get("https://localhost/whoami")
        .body(Bytes::new())
        .unwrap();
    let (status, body) = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        read_all(client.request(req).unwrap().await.unwrap()).await
    })
    .expect("GET completes");
    assert_eq!(status, StatusCode::OK);
    let expected = format!(
        "{} {} Some(\"localhost\") h3 true true",
        quicksand_tests::pair::CLIENT_ADDR,
        quicksand_tests::pair::SERVER_ADDR
    );
    assert_eq!(String::from_utf8_lossy(&body), expected);
}
