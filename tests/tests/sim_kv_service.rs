//! An example to copy: testing your own HTTP/3 service deterministically, in `cargo test`.
//!
//! The service is a small key-value store (`PUT /k` stores the body, `GET /k` returns it or
//! 404, `DELETE /k`), written as any `quicksand_h3` `Service` is: the same closure runs under
//! `quicksand_tokio::serve` or `quicksand_smol::serve`. Here it runs on the simulator: virtual
//! time (quiche's timers included), a seeded network with faults, one seed per run, so a
//! failure reproduces exactly (`QUICKSAND_SEED=N cargo test --test sim_kv_service`).
//!
//! Each test drives a client through a fault and asserts what a user of the store sees:
//! requests under 5% loss, a server restart mid-run with the client retrying, a partition
//! that heals, and a GOAWAY drain. The store's operations are idempotent, so the client
//! retries a failed request on a new connection, as a production client would.
//!
//! What the test binary needs: `quicksand-sim` as a dev-dependency, and
//! `quicksand_sim::virtual_clock!()` (below), which makes every clock read in the binary —
//! std's, quiche's, BoringSSL's — answer from the simulation on its thread. x86-64 Linux only
//! (see the crate's docs for the limits).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use quicksand_h3::{
    Body, ClientApplication, H3Client, Http3Settings, RecvBody, RequestError, ServerApplication,
    ServerHandle,
};
use quicksand_sim::{self as sim, LinkConfig, LossModel, Sim, SimConfig, SimEvent};

quicksand_sim::virtual_clock!();

// ---- the service under test ----------------------------------------------------------------

/// The store's data: shared by every connection, and kept across a server restart when the
/// test says the server restarts with its state.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<HashMap<String, Bytes>>>);

impl Store {
    /// The HTTP/3 service. `GET /slow/k` waits 5 s (of virtual time) before answering, to
    /// have a request in flight when the server drains.
    fn service(
        &self,
    ) -> impl Fn(Request<RecvBody>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
           + Send
           + Sync
           + 'static {
        let store = self.clone();
        move |req: Request<RecvBody>| {
            let store = store.clone();
            Box::pin(async move {
                let (parts, mut body) = req.into_parts();
                let mut key = parts.uri.path().trim_start_matches('/').to_string();
                if let Some(slow) = key.strip_prefix("slow/") {
                    key = slow.to_string();
                    sim::sleep(Duration::from_secs(5)).await;
                }
                let status = match parts.method {
                    Method::PUT => match body.collect(1 << 20).await {
                        Ok(value) => {
                            store.0.lock().unwrap().insert(key, value);
                            StatusCode::NO_CONTENT
                        }
                        Err(_) => StatusCode::BAD_REQUEST,
                    },
                    Method::GET => match store.0.lock().unwrap().get(&key) {
                        Some(v) => return Response::new(Body::from(v.clone())),
                        None => StatusCode::NOT_FOUND,
                    },
                    Method::DELETE => {
                        store.0.lock().unwrap().remove(&key);
                        StatusCode::NO_CONTENT
                    }
                    _ => StatusCode::METHOD_NOT_ALLOWED,
                };
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = status;
                resp
            })
        }
    }
}

/// A simulation serving `store`; the handles of the server's connections go to `handles`
/// (for the GOAWAY test).
fn simulation(
    config: SimConfig,
    store: &Store,
    handles: &Arc<Mutex<Vec<ServerHandle>>>,
) -> Sim<ClientApplication, ServerApplication> {
    Sim::new(config, accept(store, handles))
}

fn accept(
    store: &Store,
    handles: &Arc<Mutex<Vec<ServerHandle>>>,
) -> impl FnMut(&quicksand_core::Incoming) -> Option<ServerApplication> + Send + 'static {
    let (service, handles) = (store.service(), handles.clone());
    let service = Arc::new(service);
    move |_| {
        let service = service.clone();
        let app =
            ServerApplication::with_service(Http3Settings::default(), move |req| service(req));
        handles.lock().unwrap().push(app.handle());
        Some(app)
    }
}

// ---- the client: one request at a time, retried on a new connection -------------------------

/// A client of the store over the simulation.
struct Kv {
    client: H3Client,
    /// Connections opened (the first one included).
    connections: usize,
    /// Requests that failed and were retried.
    retries: usize,
}

impl Kv {
    fn connect(s: &mut Sim<ClientApplication, ServerApplication>) -> Kv {
        let (app, client) = ClientApplication::new(Http3Settings::default());
        s.connect(app).expect("connect");
        Kv {
            client,
            connections: 1,
            retries: 0,
        }
    }

    /// Sends one request, running the simulation until its answer; a request that fails (the
    /// connection closed or went away) is retried on a new connection, up to 5 times.
    fn call(
        &mut self,
        s: &mut Sim<ClientApplication, ServerApplication>,
        method: Method,
        key: &str,
        value: &[u8],
    ) -> Response<Bytes> {
        for _ in 0..5 {
            match self.try_call(s, method.clone(), key, value) {
                Ok(resp) => return resp,
                Err(e) => {
                    // Idempotent: safe to send again, on a new connection.
                    assert!(!matches!(e, RequestError::Invalid(_)), "bad request: {e}");
                    self.retries += 1;
                    let (app, client) = ClientApplication::new(Http3Settings::default());
                    s.connect(app).expect("connect");
                    self.client = client;
                    self.connections += 1;
                }
            }
        }
        panic!("{method} /{key}: still failing after 5 attempts");
    }

    fn try_call(
        &mut self,
        s: &mut Sim<ClientApplication, ServerApplication>,
        method: Method,
        key: &str,
        value: &[u8],
    ) -> Result<Response<Bytes>, RequestError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("https://localhost/{key}"))
            .body(Bytes::copy_from_slice(value))
            .expect("a valid request");
        let client = self.client.clone();
        let call = async move {
            let resp = client.request(req)?.await?;
            let (parts, mut body) = resp.into_parts();
            let body = body.collect(1 << 20).await.map_err(RequestError::Stream)?;
            Ok(Response::from_parts(parts, body))
        };
        // 60 s of virtual time covers the longest fault below; the idle timeout (30 s) ends a
        // connection that cannot recover.
        s.block_on(Duration::from_secs(60), call)
            .expect("an answer or an error within 60 s of virtual time")
    }

    fn put(&mut self, s: &mut Sim<ClientApplication, ServerApplication>, key: &str, value: &str) {
        let resp = self.call(s, Method::PUT, key, value.as_bytes());
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "PUT /{key}");
    }

    fn get(
        &mut self,
        s: &mut Sim<ClientApplication, ServerApplication>,
        key: &str,
    ) -> Option<String> {
        let resp = self.call(s, Method::GET, key, b"");
        match resp.status() {
            StatusCode::OK => Some(String::from_utf8(resp.into_body().to_vec()).unwrap()),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET /{key}: {other}"),
        }
    }
}

/// Starts a drain (GOAWAY) on every server connection.
fn drain(handles: &Mutex<Vec<ServerHandle>>) {
    for h in handles.lock().unwrap().iter() {
        h.goaway();
    }
}

/// Polls a request future once, which queues the request (it goes out in the next step).
fn send<F: Future + Unpin>(request: &mut F) {
    let polled = Pin::new(request).poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending(), "no answer before the simulation runs");
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn every_write_is_read_back_under_five_percent_loss() {
    sim::for_each_seed("kv_under_loss", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            loss: LossModel::Random(0.05),
            jitter: Duration::from_millis(3),
            ..Default::default()
        });
        let store = Store::default();
        let mut s = simulation(config, &store, &Arc::default());
        let mut kv = Kv::connect(&mut s);
        for i in 0..30 {
            kv.put(&mut s, &format!("k{i}"), &format!("value {i}"));
        }
        for i in 0..30 {
            assert_eq!(kv.get(&mut s, &format!("k{i}")), Some(format!("value {i}")));
        }
        assert_eq!(kv.get(&mut s, "absent"), None);
        // Loss is recovered by QUIC: one connection did it all.
        assert_eq!(kv.connections, 1, "no request needed a new connection");
    });
}

#[test]
fn a_server_restart_mid_run_costs_the_client_one_retry() {
    sim::for_each_seed("kv_server_restart", 3, |seed| {
        let store = Store::default();
        let handles = Arc::default();
        let mut s = simulation(SimConfig::new(seed), &store, &handles);
        let mut kv = Kv::connect(&mut s);
        kv.put(&mut s, "before", "restart");
        // The process restarts with its data (and its keys, so its stateless reset tells the
        // client at once that the old connection is gone).
        s.restart_server(accept(&store, &handles));
        assert_eq!(kv.get(&mut s, "before").as_deref(), Some("restart"));
        kv.put(&mut s, "after", "restart");
        assert_eq!(kv.get(&mut s, "after").as_deref(), Some("restart"));
        assert_eq!(kv.retries, 1, "one request failed with the old connection");
        assert_eq!(kv.connections, 2);

        // A restart that loses the data: what was written is gone, and the client says so.
        s.restart_server(accept(&Store::default(), &handles));
        assert_eq!(kv.get(&mut s, "before"), None);
    });
}

#[test]
fn a_request_sent_into_a_partition_completes_once_it_heals() {
    sim::for_each_seed("kv_partition", 3, |seed| {
        let store = Store::default();
        let mut s = simulation(SimConfig::new(seed), &store, &Arc::default());
        let mut kv = Kv::connect(&mut s);
        kv.put(&mut s, "k", "v1");
        // The network partitions now and heals 10 s later: shorter than the idle timeout, so
        // the connection survives it.
        let now = Instant::now() - s.start;
        s.schedule(now, SimEvent::Partition);
        s.schedule(now + Duration::from_secs(10), SimEvent::Heal);
        let sent = Instant::now();
        kv.put(&mut s, "k", "v2");
        let took = sent.elapsed();
        assert!(
            took >= Duration::from_secs(10),
            "the PUT cannot complete while the network is partitioned ({took:?})"
        );
        assert_eq!(kv.get(&mut s, "k").as_deref(), Some("v2"));
        assert_eq!(kv.connections, 1, "the connection survived the partition");
    });
}

#[test]
fn a_goaway_drain_finishes_the_request_in_flight_and_the_client_moves_on() {
    sim::for_each_seed("kv_goaway", 3, |seed| {
        let store = Store::default();
        let handles: Arc<Mutex<Vec<ServerHandle>>> = Arc::default();
        let mut s = simulation(SimConfig::new(seed), &store, &handles);
        let mut kv = Kv::connect(&mut s);
        kv.put(&mut s, "k", "v");
        // A slow GET in flight (its handler waits 5 s), then the server drains: GOAWAY.
        let client = kv.client.clone();
        let mut slow = Box::pin(async move { client.get("https://localhost/slow/k").await });
        send(&mut slow);
        s.run_for(Duration::from_secs(1));
        assert!(
            slow.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending(),
            "still in its handler"
        );
        drain(&handles);
        let answer = s.block_on(Duration::from_secs(30), slow);
        let answer = answer.expect("the request in flight is answered");
        assert_eq!(answer.expect("answered, not refused").body().as_ref(), b"v");
        // The drained connection takes no new request; the client retries on a new one.
        assert_eq!(kv.get(&mut s, "k").as_deref(), Some("v"));
        assert_eq!(kv.connections, 2, "a new connection after the drain");
    });
}

/// A request the client sends at the moment the server starts draining crosses the GOAWAY:
/// the server refuses it and the client reports it as not processed (`RequestError::GoAway`,
/// safe to retry), rather than as a connection that died under it.
#[test]
fn a_request_crossing_the_goaway_is_reported_as_not_processed() {
    sim::for_each_seed("kv_goaway_race", 3, |seed| {
        let store = Store::default();
        let handles: Arc<Mutex<Vec<ServerHandle>>> = Arc::default();
        let mut s = simulation(SimConfig::new(seed), &store, &handles);
        let mut kv = Kv::connect(&mut s);
        kv.put(&mut s, "k", "v");
        // Quiet: everything acknowledged, so nothing holds the drained connection open.
        s.run_for(Duration::from_secs(1));
        let client = kv.client.clone();
        let mut late = Box::pin(async move { client.get("https://localhost/k").await });
        // Sent now, while the server decides to drain (no request in flight there).
        send(&mut late);
        drain(&handles);
        let answer = s.block_on(Duration::from_secs(30), late);
        match answer.expect("an answer within 30 s") {
            Err(RequestError::GoAway) => {}
            other => panic!("expected GoAway (not processed), got {other:?}"),
        }
        // And the retry on a new connection succeeds.
        assert_eq!(kv.get(&mut s, "k").as_deref(), Some("v"));
    });
}

/// A wake-up from a handle reaches the connection at once, even when nothing else happened
/// since the application started: a drain asked right after the first response sends its
/// GOAWAY in the same step, not when the next packet happens to arrive.
#[test]
fn a_drain_asked_right_after_the_first_response_starts_at_once() {
    sim::for_each_seed("kv_goaway_at_once", 3, |seed| {
        let store = Store::default();
        let handles: Arc<Mutex<Vec<ServerHandle>>> = Arc::default();
        let mut s = simulation(SimConfig::new(seed), &store, &handles);
        let mut kv = Kv::connect(&mut s);
        // Returns as soon as the client has the answer: the server has not run since.
        kv.put(&mut s, "k", "v");
        drain(&handles);
        s.step();
        let sent: Vec<bool> = s
            .server
            .conns()
            .map(|c| c.application().stats().goaway_sent)
            .collect();
        assert_eq!(
            sent,
            [true],
            "GOAWAY sent in the step after the drain was asked"
        );
    });
}
