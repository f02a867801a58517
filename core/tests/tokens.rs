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
