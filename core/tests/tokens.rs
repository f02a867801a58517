//! Address-validation tokens: round trips, and every way a token can be bad.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use quicksand_core::endpoint::{
    AddressToken, TokenError, TokenKey, TokenKeys, TokenKind, TokenLifetimes,
};
use quicksand_core::ConnectionId;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn client() -> SocketAddr {
    "198.51.100.4:5555".parse().unwrap()
}

fn retry_token() -> AddressToken {
    AddressToken {
        kind: TokenKind::Retry,
        issued: t0(),
        address: client(),
        original_dcid: ConnectionId::from_vec(vec![1; 8]),
        retry_scid: ConnectionId::from_vec(vec![2; 16]),
    }
}

fn keys(id: u8, fill: u8) -> TokenKeys {
    TokenKeys::with_seed(TokenKey::new(id, [fill; 32]), 1)
}

const LIFETIMES: TokenLifetimes = TokenLifetimes {
    retry: Duration::from_secs(10),
    new_token: Duration::from_secs(3600),
};

#[test]
fn sealed_tokens_open_to_what_was_sealed() {
    let mut k = keys(1, 7);
    let sealed = k.seal(&retry_token());
    assert_eq!(TokenKeys::claimed_kind(&sealed), Some(TokenKind::Retry));
    let opened = k
        .open(&sealed, client(), t0() + Duration::from_secs(3), LIFETIMES)
        .unwrap();
    assert_eq!(opened, retry_token());
    // Nonces differ: the same contents never seal to the same bytes.
    assert_ne!(k.seal(&retry_token()), sealed);
}

#[test]
fn forged_truncated_and_garbage_tokens_are_refused() {
    let mut k = keys(1, 7);
    let sealed = k.seal(&retry_token());
    let open = |bytes: &[u8]| k.open(bytes, client(), t0(), LIFETIMES);
    for i in 0..sealed.len() {
        let mut forged = sealed.clone();
        forged[i] ^= 0x01;
        let e = open(&forged).unwrap_err();
        assert!(
            matches!(
                e,
                TokenError::Forged | TokenError::UnknownKey | TokenError::Malformed
            ),
            "byte {i}: {e:?}"
        );
    }
    for len in 0..sealed.len() {
        assert!(open(&sealed[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(open(&longer), Err(TokenError::Forged));
    assert_eq!(open(&[0u8; 64]), Err(TokenError::Malformed));
    assert_eq!(open(&[0x52; 64]), Err(TokenError::UnknownKey));
}

#[test]
fn expired_tokens_and_tokens_from_the_future_are_refused() {
    let mut k = keys(1, 7);
    let sealed = k.seal(&retry_token());
    assert!(k
        .open(&sealed, client(), t0() + Duration::from_secs(10), LIFETIMES)
        .is_ok());
    assert_eq!(
        k.open(&sealed, client(), t0() + Duration::from_secs(11), LIFETIMES),
        Err(TokenError::Expired)
    );
    // A little skew between hosts is tolerated, more is not.
    assert!(k
        .open(&sealed, client(), t0() - Duration::from_secs(4), LIFETIMES)
        .is_ok());
    assert_eq!(
        k.open(&sealed, client(), t0() - Duration::from_secs(60), LIFETIMES),
        Err(TokenError::Expired)
    );
}

#[test]
fn retry_tokens_bind_ip_and_port_new_tokens_bind_ip() {
    let mut k = keys(1, 7);
    let sealed = k.seal(&retry_token());
    let other_port: SocketAddr = "198.51.100.4:5556".parse().unwrap();
    let other_ip: SocketAddr = "198.51.100.5:5555".parse().unwrap();
    assert_eq!(
        k.open(&sealed, other_port, t0(), LIFETIMES),
        Err(TokenError::WrongAddress)
    );
    assert_eq!(
        k.open(&sealed, other_ip, t0(), LIFETIMES),
        Err(TokenError::WrongAddress)
    );

    let new_token = AddressToken {
        kind: TokenKind::NewToken,
        address: SocketAddr::new(client().ip(), 0),
        original_dcid: ConnectionId::default(),
        retry_scid: ConnectionId::default(),
        ..retry_token()
    };
    let sealed = k.seal(&new_token);
    assert_eq!(TokenKeys::claimed_kind(&sealed), Some(TokenKind::NewToken));
    assert!(k
        .open(
            &sealed,
            other_port,
            t0() + Duration::from_secs(3000),
            LIFETIMES
        )
        .is_ok());
    assert_eq!(
        k.open(&sealed, other_ip, t0(), LIFETIMES),
        Err(TokenError::WrongAddress)
    );
    // A v4-mapped v6 address is the same client.
    let mapped: SocketAddr = "[::ffff:198.51.100.4]:9".parse().unwrap();
    assert!(k.open(&sealed, mapped, t0(), LIFETIMES).is_ok());
}

#[test]
fn rotation_keeps_the_previous_key_and_drops_older_ones() {
    let mut k = keys(1, 7);
    let old = k.seal(&retry_token());
    k.rotate(TokenKey::new(2, [8; 32]));
    let current = k.seal(&retry_token());
    assert!(
        k.open(&old, client(), t0(), LIFETIMES).is_ok(),
        "previous key still opens"
    );
    assert!(k.open(&current, client(), t0(), LIFETIMES).is_ok());
    k.rotate(TokenKey::new(3, [9; 32]));
    assert_eq!(
        k.open(&old, client(), t0(), LIFETIMES),
        Err(TokenError::UnknownKey)
    );
    // Another host's keys with the same id but another secret: forged.
    let stranger = keys(3, 1).seal(&retry_token());
    assert_eq!(
        k.open(&stranger, client(), t0(), LIFETIMES),
        Err(TokenError::Forged)
    );
    // Shared keys: another process with the same (id, secret) opens our tokens.
    let shared = keys(3, 9);
    let ours = k.seal(&retry_token());
    assert!(shared.open(&ours, client(), t0(), LIFETIMES).is_ok());
}

fn new_token(issued: SystemTime) -> AddressToken {
    AddressToken {
        kind: TokenKind::NewToken,
        issued,
        address: SocketAddr::new(client().ip(), 0),
        original_dcid: ConnectionId::default(),
        retry_scid: ConnectionId::default(),
    }
}

#[test]
fn derived_keys_change_every_period_and_hosts_sharing_the_master_agree() {
    let period = Duration::from_secs(600);
    let mut host_a = TokenKeys::derived_with_seed([5; 32], period, Some(1));
    let host_b = TokenKeys::derived_with_seed([5; 32], period, Some(2));
    let stranger = TokenKeys::derived_with_seed([6; 32], period, Some(1));

    // Tokens of consecutive periods are sealed with different keys.
    let ids: Vec<u8> = (0..4)
        .map(|i| host_a.seal(&new_token(t0() + period * i))[1])
        .collect();
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "key ids {ids:?}");

    // A token stays valid across key changes for its lifetime, on every host with the master.
    let token = host_a.seal(&new_token(t0()));
    for age in [
        Duration::ZERO,
        period / 2,
        period * 3,
        Duration::from_secs(3599),
    ] {
        let now = t0() + age;
        assert!(
            host_a.open(&token, client(), now, LIFETIMES).is_ok(),
            "{age:?}"
        );
        assert!(
            host_b.open(&token, client(), now, LIFETIMES).is_ok(),
            "{age:?}"
        );
        assert_eq!(
            stranger.open(&token, client(), now, LIFETIMES),
            Err(TokenError::Forged)
        );
    }
    assert_eq!(
        host_b.open(
            &token,
            client(),
            t0() + Duration::from_secs(3601),
            LIFETIMES
        ),
        Err(TokenError::Expired)
    );
    // A host whose clock runs a little ahead opens tokens minted in its next period.
    let early = host_a.seal(&new_token(t0() + period));
    assert!(host_b
        .open(
            &early,
            client(),
            t0() + period - Duration::from_secs(2),
            LIFETIMES
        )
        .is_ok());
    // Key ids wrap after 256 periods (one of them kept for clock skew): a lifetime longer than that is cut short there (the
    // documented limit), refused, never opened with the wrong key.
    let long = TokenLifetimes {
        new_token: period * 1000,
        ..LIFETIMES
    };
    assert!(host_b
        .open(&token, client(), t0() + period * 254, long)
        .is_ok());
    assert_eq!(
        host_b.open(&token, client(), t0() + period * 255, long),
        Err(TokenError::Forged)
    );
}

#[test]
fn rotating_a_derived_schedule_switches_to_fixed_keys() {
    let mut k = TokenKeys::derived_with_seed([5; 32], TokenKeys::DEFAULT_PERIOD, Some(1));
    let derived = k.seal(&retry_token());
    k.rotate(TokenKey::new(9, [1; 32]));
    let fixed = k.seal(&retry_token());
    assert_eq!(fixed[1], 9);
    assert!(k.open(&fixed, client(), t0(), LIFETIMES).is_ok());
    assert!(k.open(&derived, client(), t0(), LIFETIMES).is_err());
}
