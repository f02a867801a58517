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

/// Pseudo-header values borrowed from a field list, in the order of the `allowed` list given
/// to [`split`].
type Pseudo<'a, const N: usize> = [Option<&'a [u8]>; N];

/// Splits a field list into pseudo-header values (checked against `allowed`, in its order,
/// borrowed from `list`) and a `HeaderMap` of the regular fields.
fn split<'a, const N: usize>(
    list: &'a [Header],
    allowed: &[&'static str; N],
) -> Result<(Pseudo<'a, N>, HeaderMap), HeaderError> {
    let mut pseudo = [None; N];
    // `with_capacity` and `append` panic past the map's limit; the `try_` forms do not. Sized
    // for the regular fields only: a head of pseudo-headers alone allocates no map.
    let too_many = || HeaderError::TooManyFields(list.len());
    let regular = list.iter().filter(|h| !h.name().starts_with(b":")).count();
    let mut map = HeaderMap::try_with_capacity(regular).map_err(|_| too_many())?;
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
            pseudo[i] = Some(h.value());
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
    let ([method_raw, scheme, authority, path, protocol], headers) = split(list, &REQUEST_PSEUDO)?;
    let method_raw = method_raw.ok_or(HeaderError::MissingPseudo(":method"))?;
    let method = Method::from_bytes(method_raw).map_err(|_| HeaderError::InvalidMethod)?;
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
                .map(|h| h.as_bytes())
                .ok_or(HeaderError::MissingPseudo(":authority"))?,
        };
        if protocol.is_some() && authority.is_empty() {
            return Err(HeaderError::MissingPseudo(":authority"));
        }
        let mut b = Uri::builder().scheme(scheme).path_and_query(path);
        if !authority.is_empty() {
            b = b.authority(authority);
        }
        b.build().map_err(|_| HeaderError::InvalidUri)?
    };
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_3;
    *req.headers_mut() = headers;
    if let Some(proto) = protocol {
        let proto = String::from_utf8(proto.to_vec())
            .map_err(|_| HeaderError::InvalidValue(":protocol".into()))?;
        req.extensions_mut().insert(Protocol(proto));
    }
    Ok(req)
}

/// Parses a response head (any status; the caller checks 1xx versus final).
pub fn parse_response(list: &[Header]) -> Result<Response<()>, HeaderError> {
    let ([status], headers) = split(list, &[":status"])?;
    let status = status.ok_or(HeaderError::MissingPseudo(":status"))?;
    if status.len() != 3 {
        return Err(HeaderError::InvalidStatus);
    }
    let status = StatusCode::from_bytes(status).map_err(|_| HeaderError::InvalidStatus)?;
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

/// One field of a head we send, kept as `http`'s own values (reference-counted, moved out of
/// the message), so building a head allocates nothing per field; quiche reads it through
/// [`NameValue`].
#[derive(Clone, Debug)]
pub(crate) enum Field {
    Method(Method),
    Scheme(http::uri::Scheme),
    Authority(http::uri::Authority),
    /// `None`: `/`.
    Path(Option<http::uri::PathAndQuery>),
    Protocol(String),
    Status(StatusCode),
    Regular(HeaderName, HeaderValue),
}

impl NameValue for Field {
    fn name(&self) -> &[u8] {
        match self {
            Field::Method(_) => b":method",
            Field::Scheme(_) => b":scheme",
            Field::Authority(_) => b":authority",
            Field::Path(_) => b":path",
            Field::Protocol(_) => b":protocol",
            Field::Status(_) => b":status",
            Field::Regular(name, _) => name.as_str().as_bytes(),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Field::Method(m) => m.as_str().as_bytes(),
            Field::Scheme(s) => s.as_str().as_bytes(),
            Field::Authority(a) => a.as_str().as_bytes(),
            Field::Path(p) => p.as_ref().map_or("/", |p| p.as_str()).as_bytes(),
            Field::Protocol(p) => p.as_bytes(),
            Field::Status(s) => s.as_str().as_bytes(),
            Field::Regular(_, v) => v.as_bytes(),
        }
    }
}

/// The status of a response head we send (none in a request head or trailers).
pub(crate) fn status(fields: &[Field]) -> Option<u16> {
    fields.iter().find_map(|f| match f {
        Field::Status(s) => Some(s.as_u16()),
        _ => None,
    })
}

/// Moves the regular fields of `map` into `out`, refusing connection-specific ones.
fn push_fields(out: &mut Vec<Field>, map: HeaderMap) -> Result<(), HeaderError> {
    let mut last: Option<HeaderName> = None;
    for (name, value) in map {
        // `None`: another value of the previous name (never first).
        if name.is_some() {
            last = name;
        }
        let Some(name) = last.clone() else {
            continue;
        };
        if is_connection_specific(&name, value.as_bytes()) {
            return Err(HeaderError::ConnectionSpecific(name.to_string()));
        }
        out.push(Field::Regular(name, value));
    }
    Ok(())
}

/// Builds the field list of a request. Relative URIs are refused: HTTP/3 needs a scheme and
/// an authority (except plain CONNECT, which needs only the authority).
pub(crate) fn request_fields(req: http::request::Parts) -> Result<Vec<Field>, HeaderError> {
    let http::request::Parts {
        method,
        uri,
        headers,
        extensions,
        ..
    } = req;
    let uri = uri.into_parts();
    let authority = uri
        .authority
        .ok_or(HeaderError::MissingPseudo(":authority"))?;
    let protocol = extensions.get::<Protocol>();
    let mut out = Vec::with_capacity(headers.len() + 5);
    let connect = method == Method::CONNECT;
    out.push(Field::Method(method));
    if connect && protocol.is_none() {
        out.push(Field::Authority(authority));
    } else {
        let scheme = uri.scheme.ok_or(HeaderError::MissingPseudo(":scheme"))?;
        out.push(Field::Scheme(scheme));
        out.push(Field::Authority(authority));
        out.push(Field::Path(uri.path_and_query));
        if let Some(Protocol(p)) = protocol {
            if !connect {
                return Err(HeaderError::UnexpectedPseudo(":protocol".into()));
            }
            out.push(Field::Protocol(p.clone()));
        }
    }
    push_fields(&mut out, headers)?;
    Ok(out)
}

/// Builds the field list of a response head.
pub(crate) fn response_fields(resp: http::response::Parts) -> Result<Vec<Field>, HeaderError> {
    let mut out = Vec::with_capacity(resp.headers.len() + 1);
    out.push(Field::Status(resp.status));
    push_fields(&mut out, resp.headers)?;
    Ok(out)
}

/// Builds the field list of a trailer section.
pub(crate) fn trailer_fields(map: HeaderMap) -> Result<Vec<Field>, HeaderError> {
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

    fn pairs(fields: &[Field]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name()).into_owned(),
                    String::from_utf8_lossy(f.value()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_value_of_a_repeated_field_is_sent_under_its_name() {
        let resp = Response::builder()
            .status(404)
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("content-length", "0")
            .body(())
            .unwrap();
        let fields = response_fields(resp.into_parts().0).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                (":status", "404"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("content-length", "0")
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn request_fields_round_trip_through_parse_request() {
        let req = Request::get("https://example.com:8443/a/b?c=d")
            .header("accept", "*/*")
            .body(())
            .unwrap();
        let fields = request_fields(req.into_parts().0).unwrap();
        let list: Vec<Header> = fields
            .iter()
            .map(|f| Header::new(f.name(), f.value()))
            .collect();
        let parsed = parse_request(&list, false).unwrap();
        assert_eq!(parsed.method(), Method::GET);
        assert_eq!(parsed.uri(), "https://example.com:8443/a/b?c=d");
        assert_eq!(parsed.headers()["accept"], "*/*");
        // Plain CONNECT carries only :method and :authority.
        let connect = Request::connect("example.com:443").body(()).unwrap();
        let fields = request_fields(connect.into_parts().0).unwrap();
        assert_eq!(
            pairs(&fields),
            [(":method", "CONNECT"), (":authority", "example.com:443")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        // Hop-by-hop fields are refused.
        let bad = Request::get("https://example.com/")
            .header("connection", "close")
            .body(())
            .unwrap();
        assert!(matches!(
            request_fields(bad.into_parts().0),
            Err(HeaderError::ConnectionSpecific(_))
        ));
    }
}
