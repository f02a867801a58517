//! Just enough HTTP/3 encoding to write well-formed requests: QUIC variable-length integers,
//! frames, and QPACK field sections of literals (no dynamic table).

/// Appends `v` as a QUIC variable-length integer (RFC 9000 §16); values past 2^62 - 1 are
/// cut to 62 bits.
pub fn varint(v: u64, out: &mut Vec<u8>) {
    match v {
        0..=0x3f => out.push(v as u8),
        0x40..=0x3fff => out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&((v & ((1 << 62) - 1)) | (0b11 << 62)).to_be_bytes()),
    }
}

/// An HTTP/3 frame: type, length, payload.
pub fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    varint(ty, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A QPACK/HPACK integer with an `n`-bit prefix whose other bits are `flags` (RFC 7541 §5.1).
fn prefixed(mut v: usize, n: u32, flags: u8, out: &mut Vec<u8>) {
    let limit = (1usize << n) - 1;
    if v < limit {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | limit as u8);
    v -= limit;
    while v > 0x7f {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A HEADERS frame carrying `fields` as literals with literal names (RFC 9204 §4.5.6), after
/// a field-section prefix that references no dynamic table.
pub fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut section = vec![0, 0];
    for (name, value) in fields {
        prefixed(name.len(), 3, 0b0010_0000, &mut section);
        section.extend_from_slice(name.as_bytes());
        prefixed(value.len(), 7, 0, &mut section);
        section.extend_from_slice(value.as_bytes());
    }
    frame(0x01, &section)
}
