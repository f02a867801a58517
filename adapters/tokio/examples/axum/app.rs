//! The `axum` example's application and how it is served, shared with the end-to-end tests:
//! one axum `Router` over HTTP/3 (quicksand, through `quicksand_h3::TowerService`) and over
//! HTTP/1.1 and HTTP/2 with TLS on TCP (hyper), every TCP response advertising HTTP/3 with
//! `Alt-Svc`, so browsers move to HTTP/3.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::header::{HeaderValue, ALT_SVC};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use quicksand_core::boring::pkey::PKey;
use quicksand_core::boring::ssl::{self, AlpnError, SslAcceptor, SslMethod};
use quicksand_core::boring::x509::X509;
use quicksand_core::CertificateSource;
use quicksand_h3::{ConnectionInfo, TowerService};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The application: the same router on every transport.
/// - `GET /hello/{name}`: a path parameter; says which transport carried the request.
/// - `POST /json`: a JSON body in, a JSON body out.
/// - `GET /stream/{n}`: a streamed response of `n` lines.
///
/// Responses are gzip-compressed for clients that accept it (tower-http).
pub fn router() -> Router {
    Router::new()
        .route("/hello/{name}", get(hello))
        .route("/json", post(echo_json))
        .route("/stream/{n}", get(stream))
        .layer(CompressionLayer::new())
}

async fn hello(Path(name): Path<String>, info: Option<Extension<ConnectionInfo>>) -> String {
    match info {
        // Set by quicksand on every HTTP/3 request.
        Some(Extension(info)) => format!("hello {name}, over HTTP/3 from {}\n", info.peer_addr()),
        None => format!("hello {name}, over TCP\n"),
    }
}

async fn echo_json(Json(value): Json<Value>) -> Json<Value> {
    Json(json!({ "received": value }))
}

async fn stream(Path(n): Path<u32>) -> Body {
    let lines = (0..n).map(|i| Ok::<_, Infallible>(Bytes::from(format!("line {i}\n"))));
    Body::from_stream(futures::stream::iter(lines))
}

/// A running example: HTTP/3 on UDP and HTTP/1.1 + HTTP/2 on TCP, at the same address.
pub struct Served {
    /// The HTTP/3 server.
    pub h3: quicksand_tokio::Server,
    /// The TCP listener's address (the same as the UDP one).
    pub tcp_addr: SocketAddr,
    tcp: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Stops both: HTTP/3 gracefully within `grace`, TCP at once.
    pub async fn shutdown(self, grace: Duration) {
        self.tcp.abort();
        self.h3.shutdown(grace).await;
    }
}

/// Serves `app` on `listen` (port 0 picks one, the same for UDP and TCP) with `certificate`.
pub async fn serve(
    listen: SocketAddr,
    certificate: CertificateSource,
    app: Router,
) -> Result<Served, Box<dyn std::error::Error + Send + Sync>> {
    let mut config = quicksand_tokio::ServerConfig::default();
    config.tls.certificate = Some(certificate.clone());
    // UDP first; TCP on the port it got. With port 0 that TCP port may be taken: try again.
    let mut attempts = 0;
    let (h3, tcp) = loop {
        let h3 = quicksand_tokio::serve(listen, config.clone(), TowerService::new(app.clone()))?;
        let port = h3.local_addr().port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => break (h3, tcp),
            Err(e) if listen.port() == 0 && attempts < 8 => {
                attempts += 1;
                tracing::debug!(error = %e, port, "TCP port taken; another pair");
                h3.shutdown(Duration::ZERO).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let port = h3.local_addr().port();

    let tcp_addr = tcp.local_addr()?;
    let alt_svc = HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))?;
    let app = app.layer(SetResponseHeaderLayer::overriding(ALT_SVC, alt_svc));
    let acceptor = Arc::new(tls_acceptor(&certificate)?);
    let tcp = tokio::spawn(async move {
        loop {
            let stream = match tcp.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let handshake = tokio_boring::accept(&acceptor, stream);
                let tls = match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
                let service = TowerToHyperService::new(app);
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(error = %e, "TCP connection ended with an error");
                }
            });
        }
    });
    Ok(Served { h3, tcp_addr, tcp })
}

/// TLS for the TCP side from the same certificate, offering HTTP/2 and HTTP/1.1.
fn tls_acceptor(
    certificate: &CertificateSource,
) -> Result<SslAcceptor, Box<dyn std::error::Error + Send + Sync>> {
    let CertificateSource::Pem { chain, key } = certificate else {
        return Err("only PEM certificates are supported for the TCP side".into());
    };
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    let mut certs = X509::stack_from_pem(chain)?.into_iter();
    let leaf = certs.next().ok_or("the certificate chain is empty")?;
    acceptor.set_certificate(&leaf)?;
    for intermediate in certs {
        acceptor.add_extra_chain_cert(intermediate)?;
    }
    let key = PKey::private_key_from_pem(key)?;
    acceptor.set_private_key(&key)?;
    acceptor.check_private_key()?;
    acceptor.set_alpn_select_callback(|_, offered| {
        ssl::select_next_proto(b"\x02h2\x08http/1.1", offered).ok_or(AlpnError::NOACK)
    });
    Ok(acceptor.build())
}
