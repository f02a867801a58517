//! Client code as simulation tasks against a user's HTTP/3 service: per-request results with
//! their virtual finish times.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use quicksand_h3::{
    Body, ClientApplication, H3Client, Http3Settings, RecvBody, RequestError, ServerApplication,
};
use quicksand_sim::{LinkConfig, Sim, SimConfig, SimEvent, Task};

quicksand_sim::virtual_clock!();

type H3Sim = Sim<ClientApplication, ServerApplication>;

/// `GET /wait/N` answers "N" after N seconds of (virtual) time.
async fn service(req: Request<RecvBody>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(secs) = path
        .strip_prefix("/wait/")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    quicksand_sim::sleep(Duration::from_secs(secs)).await;
    Response::new(Body::from(secs.to_string()))
}

/// A simulation over a 20 ms RTT link with one established HTTP/3 connection.
fn h3_sim(seed: u64) -> (H3Sim, H3Client) {
    let config =
        SimConfig::new(seed).with_link(LinkConfig::with_latency(Duration::from_millis(10)));
    let mut sim: H3Sim = Sim::new(config, |_| {
        Some(ServerApplication::with_service(
            Http3Settings::default(),
            |req| Box::pin(service(req)),
        ))
    });
    let (app, client) = ClientApplication::new(Http3Settings::default());
    let key = sim.connect(app).unwrap();
    assert!(sim.run_until(Duration::from_secs(1), |s| s.client.is_established(key)));
    (sim, client)
}

/// A GET whose result is the status and body, or the error.
fn get(
    client: &H3Client,
    path: &str,
) -> impl std::future::Future<Output = Result<(StatusCode, Bytes), RequestError>> {
    let req = Request::get(format!("https://localhost{path}"))
        .body(Bytes::new())
        .unwrap();
    let client = client.clone();
    async move {
        let resp = client.request(req)?.await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect(1 << 16)
            .await
            .map_err(RequestError::Stream)?;
        Ok((status, body))
    }
}

#[test]
fn concurrent_requests_finish_in_the_order_of_their_handlers_waits() {
    let (mut sim, client) = h3_sim(21);
    let start = Instant::now() - sim.start;
    let waits = [7u64, 2, 5, 0, 3];
    let tasks: Vec<Task<_>> = waits
        .iter()
        .map(|w| sim.spawn(get(&client, &format!("/wait/{w}"))))
        .collect();
    let missing = sim.spawn(get(&client, "/nowhere"));
    assert!(sim.run_until(Duration::from_secs(20), |_| tasks
        .iter()
        .all(Task::is_finished)));
    assert_eq!(sim.running_tasks(), 0, "the 404 finished too");
    assert_eq!(missing.take().unwrap().unwrap().0, StatusCode::NOT_FOUND);
    for (wait, task) in waits.iter().zip(&tasks) {
        let took = task.finished_at().unwrap() - start;
        let (status, body) = task.take().unwrap().expect("an answer");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, wait.to_string());
        // The handler's wait plus one round trip (20 ms) and a little.
        let expected = Duration::from_secs(*wait);
        assert!(
            took >= expected && took < expected + Duration::from_millis(60),
            "GET /wait/{wait} took {took:?}"
        );
    }
}

#[test]
fn a_request_goes_out_at_once_from_a_task_or_from_block_on() {
    let (mut sim, client) = h3_sim(22);
    // Let the connection idle first: nothing is due for a long while. A spawned task is
    // polled before the hosts run, so its request goes out in that step; the `block_on` half
    // below is the one that needs a woken connection to count as due.
    sim.run_for(Duration::from_secs(5));
    let spawned = Instant::now() - sim.start;
    let task = sim.spawn(get(&client, "/wait/0"));
    assert!(sim.run_until(Duration::from_secs(5), |_| task.is_finished()));
    let took = task.finished_at().unwrap() - spawned;
    assert!(
        took < Duration::from_millis(60),
        "one round trip, not the next timer: {took:?}"
    );
    assert_eq!(task.take().unwrap().unwrap().0, StatusCode::OK);
    // `block_on` polls its future after each step: the connection it woke runs at that
    // instant too, not at the connection's next timer.
    sim.run_for(Duration::from_secs(5));
    let sent = Instant::now();
    let answer = sim.block_on(Duration::from_secs(5), get(&client, "/wait/0"));
    assert_eq!(answer.unwrap().unwrap().0, StatusCode::OK);
    let took = Instant::now() - sent;
    assert!(took < Duration::from_millis(60), "block_on: {took:?}");
}

#[test]
fn requests_sent_into_a_partition_finish_after_it_heals() {
    let (mut sim, client) = h3_sim(23);
    let now = Instant::now() - sim.start;
    sim.schedule(now, SimEvent::Partition);
    sim.schedule(now + Duration::from_secs(8), SimEvent::Heal);
    let tasks: Vec<_> = (0..3).map(|_| sim.spawn(get(&client, "/wait/1"))).collect();
    assert!(sim.run_until(Duration::from_secs(30), |_| tasks
        .iter()
        .all(Task::is_finished)));
    for task in &tasks {
        assert!(task.finished_at().unwrap() >= now + Duration::from_secs(8));
        assert_eq!(task.take().unwrap().unwrap().1, "1");
    }
}
