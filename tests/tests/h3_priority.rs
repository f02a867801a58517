//! RFC 9218 priorities over the in-memory pair: the `priority` field reaches the handler and
//! decides which response gets the connection first; a client's PRIORITY_UPDATE reorders a
//! response that is already queued.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use quicksand_h3::{
    ClientApplication, H3Client, Http3Settings, IncomingRequest, IncomingRequests, Priority,
    ResponseFuture, ServerApplication,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{accept, block_on, configs, pattern, quic_settings};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

type H3Pair = Pair<ClientApplication, ServerApplication>;

/// Large enough to need many congestion windows: ordering shows in completion order.
const LEN: usize = 1 << 20;

fn pair() -> (H3Pair, H3Client, IncomingRequests) {
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, handle) = ClientApplication::new(Http3Settings::default());
    let (server, incoming) = ServerApplication::new(Http3Settings::default());
    let pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    (pair, handle, incoming)
}

fn get(client: &H3Client, path: &str, priority: Option<&str>) -> ResponseFuture {
    let mut req = Request::get(format!("https://localhost{path}"));
    if let Some(p) = priority {
        req = req.header("priority", p);
    }
    client.request(req.body(Bytes::new()).unwrap()).unwrap()
}

/// Answers every request with LEN bytes, all queued before the driver runs again, in the
/// order given.
fn answer_all(requests: Vec<IncomingRequest>) {
    for (i, r) in requests.into_iter().enumerate() {
        let mut body = r.responder.send_response(Response::new(())).unwrap();
        body.start_send(pattern(i as u64, LEN)).unwrap();
        body.finish().unwrap();
    }
}

/// Reads the responses concurrently; returns their names in the order they completed.
fn completion_order(
    pair: &mut H3Pair,
    clock: &VirtualTime,
    responses: Vec<(&'static str, ResponseFuture)>,
) -> Vec<&'static str> {
    let order = Rc::new(RefCell::new(Vec::new()));
    let reads = responses.into_iter().map(|(name, f)| {
        let order = order.clone();
        async move {
            let body = f.await.unwrap().into_body().collect(LEN).await.unwrap();
            assert_eq!(body.len(), LEN, "{name}");
            order.borrow_mut().push(name);
        }
    });
    block_on(
        pair,
        clock,
        Duration::from_secs(30),
        futures::future::join_all(reads),
    )
    .expect("responses in time");
    let order = order.borrow().clone();
    order
}

#[test]
fn priority_field_reaches_the_handler_and_urgent_responses_go_first() {
    let clock = VirtualTime::enter();
    let (mut pair, client, mut incoming) = pair();
    let background = get(&client, "/background", Some("u=7"));
    let default = get(&client, "/default", None);
    let urgent = get(&client, "/urgent", Some("u=0, i"));
    let requests = accept(&mut pair, &clock, &mut incoming, 3);
    let seen: Vec<(String, Priority)> = requests
        .iter()
        .map(|r| {
            (
                r.request.uri().path().to_string(),
                *r.request.extensions().get::<Priority>().unwrap(),
            )
        })
        .collect();
    let expect = |path: &str| seen.iter().find(|(p, _)| p == path).unwrap().1;
    assert_eq!(
        expect("/background"),
        Priority {
            urgency: 7,
            incremental: false
        }
    );
    assert_eq!(
        expect("/default"),
        Priority {
            urgency: 3,
            incremental: false
        }
    );
    assert_eq!(
        expect("/urgent"),
        Priority {
            urgency: 0,
            incremental: true
        }
    );
    // The least urgent response is queued first, the most urgent last.
    let mut requests = requests;
    requests.sort_by_key(|r| r.request.extensions().get::<Priority>().unwrap().urgency);
    requests.reverse();
    answer_all(requests);
    let order = completion_order(
        &mut pair,
        &clock,
        vec![
            ("background", background),
            ("default", default),
            ("urgent", urgent),
        ],
    );
    assert_eq!(order, ["urgent", "default", "background"]);
}

#[test]
fn priority_update_moves_a_queued_response_ahead() {
    let clock = VirtualTime::enter();
    let (mut pair, client, mut incoming) = pair();
    let first = get(&client, "/first", None);
    let second = get(&client, "/second", None);
    let mut requests = accept(&mut pair, &clock, &mut incoming, 2);
    requests.sort_by_key(|r| r.request.uri().path().to_string());
    // Before the server answers, the client raises the second request's urgency.
    second.set_priority(Priority {
        urgency: 0,
        incremental: false,
    });
    pair.run_until(&clock, Duration::from_millis(50), |_| false)
        .unwrap();
    let stats = pair.server().application().stats();
    assert!(stats.priority_updates >= 1, "{stats:?}");
    answer_all(requests);
    let order = completion_order(
        &mut pair,
        &clock,
        vec![("first", first), ("second", second)],
    );
    assert_eq!(order, ["second", "first"]);
}

#[test]
fn without_priorities_responses_complete_in_stream_order() {
    // The control for the two tests above: equal urgency keeps stream order, so the order
    // they see comes from the priorities.
    let clock = VirtualTime::enter();
    let (mut pair, client, mut incoming) = pair();
    let first = get(&client, "/first", None);
    let second = get(&client, "/second", None);
    let mut requests = accept(&mut pair, &clock, &mut incoming, 2);
    requests.sort_by_key(|r| r.request.uri().path().to_string());
    requests.reverse();
    answer_all(requests);
    let order = completion_order(
        &mut pair,
        &clock,
        vec![("first", first), ("second", second)],
    );
    assert_eq!(order, ["first", "second"]);
}
