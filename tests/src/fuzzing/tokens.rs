//! Address-validation tokens: arbitrary bytes to the validator, and minted tokens with
//! mutated bytes.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::endpoint::{AddressToken, TokenKey, TokenKeys, TokenKind, TokenLifetimes};
use quicksand_core::ConnectionId;

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<u8>,
    kind_is_retry: bool,
    issued_secs: u32,
    now_secs: u32,
    ip: [u8; 4],
    port: u16,
    odcid: Vec<u8>,
    rscid: Vec<u8>,
    flips: Vec<(u16, u8)>,
    truncate: Option<u16>,
}

/// See the module docs.
pub fn tokens(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let peer = SocketAddr::from((input.ip, input.port));
    let mut keys = TokenKeys::with_seed(TokenKey::new(1, [7; 32]), 1);
    let lifetimes = TokenLifetimes::default();
    let now = base + Duration::from_secs(input.now_secs as u64 % 100_000);
    // Arbitrary bytes: refused or, with vanishing probability, a valid token; never a panic.
    let _ = keys.open(&input.raw, peer, now, lifetimes);

    let cid = |v: &[u8]| ConnectionId::from_vec(v[..v.len().min(20)].to_vec());
    let token = AddressToken {
        kind: if input.kind_is_retry {
            TokenKind::Retry
        } else {
            TokenKind::NewToken
        },
        issued: base + Duration::from_secs(input.issued_secs as u64 % 100_000),
        address: peer,
        original_dcid: cid(&input.odcid),
        retry_scid: cid(&input.rscid),
    };
    let sealed = keys.seal(&token);
    let opened = keys.open(&sealed, peer, token.issued, lifetimes);
    assert_eq!(
        opened.as_ref().map(|t| t.kind),
        Ok(token.kind),
        "a fresh token opens"
    );
    let opened = opened.unwrap_or_else(|_| unreachable!());
    assert_eq!(opened.original_dcid, token.original_dcid);
    assert_eq!(opened.retry_scid, token.retry_scid);

    let mut mutated = sealed.clone();
    for (at, xor) in &input.flips {
        if !mutated.is_empty() && *xor != 0 {
            let i = *at as usize % mutated.len();
            mutated[i] ^= xor;
        }
    }
    if let Some(len) = input.truncate {
        mutated.truncate(len as usize % (sealed.len() + 1));
    }
    if mutated != sealed {
        assert!(
            keys.open(&mutated, peer, token.issued, lifetimes).is_err(),
            "an altered token must not open"
        );
    }
}
