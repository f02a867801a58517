//! The axum example end to end over loopback: one router reached over HTTP/3 (quicksand's
//! client), HTTP/1.1 and HTTP/2 (hyper over TLS on TCP), with `Alt-Svc` on the TCP side.

mod common;

#[path = "../../adapters/tokio/examples/axum/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use quicksand_core::boring::ssl::{SslConnector, SslMethod, SslVerifyMode};
use quicksand_core::CertificateSource;

async fn start() -> app::Served {
    let certificate = CertificateSource::self_signed(&["localhost"], SystemTime::now()).unwrap();
    app::serve("127.0.0.1:0".parse().unwrap(), certificate, app::router())
        .await
        .expect("the example serves")
}

/// A hyper request over TLS on TCP, speaking `alpn` (`h2` or `http/1.1`).
async fn over_tcp(
    addr: SocketAddr,
    alpn: &[u8],
    request: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let mut tls = SslConnector::builder(SslMethod::tls()).unwrap();
    tls.set_verify(SslVerifyMode::NONE);
    let mut wire = vec![alpn.len() as u8];
    wire.extend_from_slice(alpn);
    tls.set_alpn_protos(&wire).unwrap();
    let config = tls.build().configure().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_boring::connect(config, "localhost", tcp)
        .await
        .unwrap();
    assert_eq!(stream.ssl().selected_alpn_protocol(), Some(alpn));
    let io = TokioIo::new(stream);
    let response = if alpn == b"h2" {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        send.send_request(request).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(request).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    (
        parts,
        http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes(),
    )
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn one_router_over_http3_http2_and_http1_with_alt_svc() {
    common::run_tokio(LIMIT, async {
        let served = start().await;
        let addr = served.h3.local_addr();
        assert_eq!(served.tcp_addr, addr, "UDP and TCP on one address");
        let base = format!("https://localhost:{}", addr.port());

        // HTTP/3: path parameter, connection facts, JSON, streaming, compression.
        let config = quicksand_tokio::ClientConfig::default().insecure();
        let (_client, conn) = quicksand_tokio::connect(addr, "localhost", config)
            .await
            .unwrap();
        let hello = conn
            .client
            .get(&format!("{base}/hello/world"))
            .await
            .unwrap();
        assert_eq!(hello.status(), StatusCode::OK);
        let text = String::from_utf8_lossy(hello.body()).to_string();
        assert!(
            text.starts_with("hello world, over HTTP/3 from 127.0.0.1:"),
            "{text}"
        );

        let post = Request::post(format!("{base}/json"))
            .header("content-type", "application/json")
            .body(Bytes::from_static(br#"{"a":1}"#))
            .unwrap();
        let resp = conn.client.request(post).unwrap().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect(1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json, serde_json::json!({"received": {"a": 1}}));

        let lines = conn
            .client
            .get(&format!("{base}/stream/500"))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(lines.body()).to_string();
        assert_eq!(text.lines().count(), 500);
        assert_eq!(text.lines().last(), Some("line 499"));

        let gzip = Request::get(format!("{base}/stream/500"))
            .header("accept-encoding", "gzip")
            .body(Bytes::new())
            .unwrap();
        let resp = conn.client.request(gzip).unwrap().await.unwrap();
        assert_eq!(resp.headers().get("content-encoding").unwrap(), "gzip");
        let compressed = resp.into_body().collect(1 << 20).await.unwrap();
        assert!(
            compressed.len() < text.len() / 2,
            "{} bytes",
            compressed.len()
        );

        // HTTP/2 and HTTP/1.1 on TCP: the same router, plus Alt-Svc naming the HTTP/3 port.
        let alt_svc = format!("h3=\":{}\"; ma=86400", addr.port());
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let get = Request::get(format!("{base}/hello/world"))
                .header("host", format!("localhost:{}", addr.port()))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (parts, body) = over_tcp(served.tcp_addr, alpn, get).await;
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, "hello world, over TCP\n");
            assert_eq!(parts.headers.get("alt-svc").unwrap(), alt_svc.as_str());

            let post = Request::post(format!("{base}/json"))
                .header("host", format!("localhost:{}", addr.port()))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(br#"[1,2]"#)))
                .unwrap();
            let (parts, body) = over_tcp(served.tcp_addr, alpn, post).await;
            assert_eq!(parts.status, StatusCode::OK);
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json, serde_json::json!({"received": [1, 2]}));
        }
        served.shutdown(Duration::from_secs(2)).await;
    });
}

#[test]
fn the_router_serves_over_http3_on_smol_too() {
    // The bridge needs no tokio: the same axum router on quicksand's smol adapter.
    let test = async {
        let mut config = quicksand_smol::ServerConfig::default();
        config.tls.certificate =
            Some(CertificateSource::self_signed(&["localhost"], SystemTime::now()).unwrap());
        let server = quicksand_smol::serve(
            "127.0.0.1:0".parse().unwrap(),
            config,
            quicksand_h3::TowerService::new(app::router()),
        )
        .unwrap();
        let addr = server.local_addr();
        let client_config = quicksand_smol::ClientConfig::default().insecure();
        let (_client, conn) = quicksand_smol::connect(addr, "localhost", client_config)
            .await
            .unwrap();
        let url = format!("https://localhost:{}/hello/smol", addr.port());
        let hello = conn.client.get(&url).await.unwrap();
        let text = String::from_utf8_lossy(hello.body()).to_string();
        assert!(text.starts_with("hello smol, over HTTP/3 from"), "{text}");
        let url = format!("https://localhost:{}/stream/50", addr.port());
        let lines = conn.client.get(&url).await.unwrap();
        assert_eq!(String::from_utf8_lossy(lines.body()).lines().count(), 50);
        server.shutdown(Duration::from_secs(2)).await;
    };
    common::run_smol(LIMIT, test);
}
