//! `Endpoint::handle_wall_clock`: the endpoint follows steps of the system clock, not jitter.

use std::time::{Duration, Instant, SystemTime};

use quicksand_core::{ConnectionContext, Endpoint, EndpointConfig, WALL_CLOCK_TOLERANCE};

#[test]
fn steps_beyond_the_tolerance_re_anchor_and_jitter_does_not() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let config = EndpointConfig {
        seed: Some(1),
        ..Default::default()
    };
    let mut endpoint = Endpoint::new(config, None, ConnectionContext::default(), now, wall)
        .expect("client endpoint");
    let later = now + Duration::from_secs(30);
    // The system clock agrees with the endpoint's (30 s later) within the tolerance.
    assert!(!endpoint.handle_wall_clock(later, wall + Duration::from_secs(30)));
    assert!(
        !endpoint.handle_wall_clock(later, wall + Duration::from_secs(30) + WALL_CLOCK_TOLERANCE)
    );
    assert!(
        !endpoint.handle_wall_clock(later, wall + Duration::from_secs(30) - WALL_CLOCK_TOLERANCE)
    );
    // An NTP step of an hour forward: re-anchored once; the same reading again is no step.
    let stepped = wall + Duration::from_secs(30 + 3600);
    assert_eq!(endpoint.wall_time(later), wall + Duration::from_secs(30));
    assert!(endpoint.handle_wall_clock(later, stepped));
    assert_eq!(
        endpoint.wall_time(later),
        stepped,
        "tokens are stamped by the new clock"
    );
    assert_eq!(
        endpoint.wall_time(later + Duration::from_secs(5)),
        stepped + Duration::from_secs(5)
    );
    assert!(!endpoint.handle_wall_clock(later, stepped));
    assert!(!endpoint.handle_wall_clock(
        later + Duration::from_secs(5),
        stepped + Duration::from_secs(5)
    ));
    // And back.
    assert!(endpoint.handle_wall_clock(later, wall));
    assert_eq!(endpoint.wall_time(later), wall);
}
