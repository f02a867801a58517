//! Mapping between HTTP/3 field sections (quiche's header lists) and `http` types, with the
//! pseudo-header validation of RFC 9114 §4.3 and RFC 9220 §3.

use std::fmt;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use quiche::h3::{Header, NameValue};

/// The `:protocol` pseudo-header of an extended CONNECT request (RFC 9220), stored as a
/// request extension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Protocol(pub String);

/// Why a field section is not a valid HTTP/3 message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A required pseudo-header is absent.
    MissingPseudo(&'static str),
    /// A pseudo-header appears twice.
    DuplicatePseudo(&'static str),
    /// A pseudo-header unknown or not allowed in this message.
    UnexpectedPseudo(String),
    /// A pseudo-header after a regular field.
    PseudoAfterRegular,
    /// A field name with uppercase or invalid characters.
    InvalidName(String),
    /// A field value with forbidden characters.
    InvalidValue(String),
    /// A connection-specific field (RFC 9114 §4.2), such as `connection` or `te` other than
    /// `trailers`.
    ConnectionSpecific(String),
    /// The method is not a valid token.
    InvalidMethod,
    /// The status is not three digits in 100..=999.
    InvalidStatus,
    /// Scheme, authority and path do not form a valid URI.
    InvalidUri,
    /// A final response was expected but the status is 1xx, or the reverse.
    WrongStatusClass(u16),
    /// More fields than one header map holds (32,768); only a `max_header_list_size` far
    /// above the default lets such a list through.
    TooManyFields(usize),
    /// More 1xx responses before the final one than a client keeps (the limit).
    TooManyInformational(usize),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::MissingPseudo(p) => write!(f, "missing pseudo-header {p}"),
            HeaderError::DuplicatePseudo(p) => write!(f, "duplicate pseudo-header {p}"),
            HeaderError::UnexpectedPseudo(p) => write!(f, "unexpected pseudo-header {p}"),
            HeaderError::PseudoAfterRegular => f.write_str("pseudo-header after a regular field"),
            HeaderError::InvalidName(n) => write!(f, "invalid field name {n:?}"),
            HeaderError::InvalidValue(n) => write!(f, "invalid value of field {n:?}"),
            HeaderError::ConnectionSpecific(n) => {
                write!(
                    f,
                    "connection-specific field {n:?} is not allowed in HTTP/3"
                )
            }
            HeaderError::InvalidMethod => f.write_str("invalid method"),
            HeaderError::InvalidStatus => f.write_str("invalid status"),
            HeaderError::InvalidUri => f.write_str("invalid scheme, authority or path"),
            HeaderError::WrongStatusClass(s) => write!(f, "status {s} not allowed here"),
            HeaderError::TooManyFields(n) => write!(f, "{n} fields: more than a header map holds"),
            HeaderError::TooManyInformational(n) => {
                write!(f, "more than {n} informational (1xx) responses")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Size of a field section as RFC 9114 §4.2.2 counts it (name + value + 32 per field).
pub fn field_section_size<T: NameValue>(fields: &[T]) -> u64 {
    fields
        .iter()
        .map(|h| (h.name().len() + h.value().len() + 32) as u64)
        .sum()
}

fn is_connection_specific(name: &HeaderName, value: &[u8]) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    ) || (name.as_str() == "te" && value != b"trailers")
}

/// Pseudo-header values, in the order of the `allowed` list given to [`split`].
type Pseudo = Vec<Option<Vec<u8>>>;

/// Splits a field list into pseudo-headers (checked against `allowed`) and a `HeaderMap`.
fn split(list: &[Header], allowed: &[&'static str]) -> Result<(Pseudo, HeaderMap), HeaderError> {
    let mut pseudo: Pseudo = vec![None; allowed.len()];
    // `with_capacity` and `append` panic past the map's limit; the `try_` forms do not.
    let too_many = || HeaderError::TooManyFields(list.len());
    let mut map = HeaderMap::try_with_capacity(list.len()).map_err(|_| too_many())?;
    let mut regular_seen = false;
    for h in list {
        let name = h.name();
        if let Some(stripped) = name.strip_prefix(b":") {
            if regular_seen {
                return Err(HeaderError::PseudoAfterRegular);
            }
            let Some(i) = allowed.iter().position(|p| p.as_bytes()[1..] == *stripped) else {
                return Err(HeaderError::UnexpectedPseudo(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            };
            if pseudo[i].is_some() {
                return Err(HeaderError::DuplicatePseudo(allowed[i]));
            }
            pseudo[i] = Some(h.value().to_vec());
            continue;
        }
        regular_seen = true;
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err(HeaderError::InvalidName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        let hname = HeaderName::from_bytes(name)
            .map_err(|_| HeaderError::InvalidName(String::from_utf8_lossy(name).into_owned()))?;
        if is_connection_specific(&hname, h.value()) {
            return Err(HeaderError::ConnectionSpecific(hname.to_string()));
        }
        let value = HeaderValue::from_bytes(h.value())
            .map_err(|_| HeaderError::InvalidValue(hname.to_string()))?;
        map.try_append(hname, value).map_err(|_| too_many())?;
    }
    Ok((pseudo, map))
}

const REQUEST_PSEUDO: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":protocol"];

/// Parses and validates a request head. `extended_connect` says whether we enabled RFC 9220
/// (else `:protocol` is malformed).
pub fn parse_request(list: &[Header], extended_connect: bool) -> Result<Request<()>, HeaderError> {
    let (mut p, headers) = split(list, &REQUEST_PSEUDO)?;
    let protocol = p[4].take();
    let method_raw = p[0].take().ok_or(HeaderError::MissingPseudo(":method"))?;
    let method = Method::from_bytes(&method_raw).map_err(|_| HeaderError::InvalidMethod)?;
    let (scheme, authority, path) = (p[1].take(), p[2].take(), p[3].take());
    let mut builder = Request::builder().method(method.clone());
    let uri = if method == Method::CONNECT && protocol.is_none() {
        // Plain CONNECT (RFC 9114 §4.4): only :method and :authority.
        if scheme.is_some() {
            return Err(HeaderError::UnexpectedPseudo(":scheme".into()));
        }
        if path.is_some() {
            return Err(HeaderError::UnexpectedPseudo(":path".into()));
        }
        let authority = authority.ok_or(HeaderError::MissingPseudo(":authority"))?;
        Uri::builder()
            .authority(authority)
            .build()
            .map_err(|_| HeaderError::InvalidUri)?
    } else {
        if protocol.is_some() && (method != Method::CONNECT || !extended_connect) {
            return Err(HeaderError::UnexpectedPseudo(":protocol".into()));
        }
        let scheme = scheme.ok_or(HeaderError::MissingPseudo(":scheme"))?;
        let path = path.ok_or(HeaderError::MissingPseudo(":path"))?;
        if path.is_empty() {
            return Err(HeaderError::InvalidUri);
        }
        let authority = match authority {
            Some(a) => a,
            None => headers
                .get(http::header::HOST)
                .map(|h| h.as_bytes().to_vec())
                .ok_or(HeaderError::MissingPseudo(":authority"))?,
        };
        if protocol.is_some() && authority.is_empty() {
            return Err(HeaderError::MissingPseudo(":authority"));
        }
        let mut b = Uri::builder()
            .scheme(scheme.as_slice())
            .path_and_query(path);
        if !authority.is_empty() {
            b = b.authority(authority);
        }
        b.build().map_err(|_| HeaderError::InvalidUri)?
    };
    builder = builder.uri(uri).version(http::Version::HTTP_3);
    let mut req = builder.body(()).map_err(|_| HeaderError::InvalidUri)?;
    *req.headers_mut() = headers;
    if let Some(proto) = protocol {
        let proto =
            String::from_utf8(proto).map_err(|_| HeaderError::InvalidValue(":protocol".into()))?;
        req.extensions_mut().insert(Protocol(proto));
    }
    Ok(req)
}

/// Parses a response head (any status; the caller checks 1xx versus final).
pub fn parse_response(list: &[Header]) -> Result<Response<()>, HeaderError> {
    let (mut p, headers) = split(list, &[":status"])?;
    let status = p[0].take().ok_or(HeaderError::MissingPseudo(":status"))?;
    if status.len() != 3 {
        return Err(HeaderError::InvalidStatus);
    }
    let status = StatusCode::from_bytes(&status).map_err(|_| HeaderError::InvalidStatus)?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = http::Version::HTTP_3;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Parses a trailer section: no pseudo-headers allowed.
pub fn parse_trailers(list: &[Header]) -> Result<HeaderMap, HeaderError> {
    split(list, &[]).map(|(_, map)| map)
}

fn push_fields(out: &mut Vec<Header>, map: &HeaderMap) -> Result<(), HeaderError> {
    for (name, value) in map {
        if is_connection_specific(name, value.as_bytes()) {
            return Err(HeaderError::ConnectionSpecific(name.to_string()));
        }
        out.push(Header::new(name.as_str().as_bytes(), value.as_bytes()));
    }
    Ok(())
}

/// Builds the field list of a request. Relative URIs are refused: HTTP/3 needs a scheme and
/// an authority (except plain CONNECT, which needs only the authority).
pub fn request_fields<B>(req: &Request<B>) -> Result<Vec<Header>, HeaderError> {
    let uri = req.uri();
    let authority = uri
        .authority()
        .ok_or(HeaderError::MissingPseudo(":authority"))?;
    let protocol = req.extensions().get::<Protocol>();
    let mut out = Vec::with_capacity(req.headers().len() + 5);
    out.push(Header::new(b":method", req.method().as_str().as_bytes()));
    if req.method() == Method::CONNECT && protocol.is_none() {
        out.push(Header::new(b":authority", authority.as_str().as_bytes()));
    } else {
        let scheme = uri
            .scheme_str()
            .ok_or(HeaderError::MissingPseudo(":scheme"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        out.push(Header::new(b":scheme", scheme.as_bytes()));
        out.push(Header::new(b":authority", authority.as_str().as_bytes()));
        out.push(Header::new(b":path", path.as_bytes()));
        if let Some(Protocol(p)) = protocol {
            if req.method() != Method::CONNECT {
                return Err(HeaderError::UnexpectedPseudo(":protocol".into()));
            }
            out.push(Header::new(b":protocol", p.as_bytes()));
        }
    }
    push_fields(&mut out, req.headers())?;
    Ok(out)
}

/// Builds the field list of a response head.
pub fn response_fields<B>(resp: &Response<B>) -> Result<Vec<Header>, HeaderError> {
    let mut out = Vec::with_capacity(resp.headers().len() + 1);
    out.push(Header::new(b":status", resp.status().as_str().as_bytes()));
    push_fields(&mut out, resp.headers())?;
    Ok(out)
}

/// Builds the field list of a trailer section.
pub fn trailer_fields(map: &HeaderMap) -> Result<Vec<Header>, HeaderError> {
    let mut out = Vec::with_capacity(map.len());
    push_fields(&mut out, map)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_too_long_for_a_header_map_is_an_error_not_a_panic() {
        let mut list = vec![
            Header::new(b":method", b"GET"),
            Header::new(b":scheme", b"https"),
            Header::new(b":authority", b"localhost"),
            Header::new(b":path", b"/"),
        ];
        // 40,000 fields of 33 bytes each by RFC 9114's count: about 1.3 MB, accepted by a
        // `max_header_list_size` raised that far.
        let names: Vec<String> = (0..40_000).map(|i| format!("x{i}")).collect();
        list.extend(names.iter().map(|n| Header::new(n.as_bytes(), b"")));
        assert!(matches!(
            parse_request(&list, false),
            Err(HeaderError::TooManyFields(40_004))
        ));
        // One field under the limit still parses.
        list.truncate(4 + 20_000);
        assert_eq!(parse_request(&list, false).unwrap().headers().len(), 20_000);
    }
}
