//! The version-independent packet header fields (RFC 8999), read without allocating: all the
//! endpoint needs to route a datagram.

/// The invariant fields of a QUIC packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader<'a> {
    /// Long header (handshake packets) or short header (1-RTT).
    pub form: HeaderForm,
    /// Destination connection ID.
    pub dcid: &'a [u8],
    /// Source connection ID (empty for short headers).
    pub scid: &'a [u8],
}

/// Header form with the long header's version and type bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderForm {
    /// A short-header packet.
    Short,
    /// A long-header packet.
    Long {
        /// The version field; 0 for version negotiation.
        version: u32,
        /// The two type bits (for QUIC v1: 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry).
        type_bits: u8,
    },
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedHeader;

impl<'a> PacketHeader<'a> {
    /// Reads the invariant fields; a short header's DCID is `short_dcid_len` bytes (the
    /// endpoint's own CID length).
    pub fn parse(buf: &'a [u8], short_dcid_len: usize) -> Result<Self, MalformedHeader> {
        let first = *buf.first().ok_or(MalformedHeader)?;
        if first & 0x80 == 0 {
            let dcid = buf.get(1..1 + short_dcid_len).ok_or(MalformedHeader)?;
            return Ok(PacketHeader {
                form: HeaderForm::Short,
                dcid,
                scid: &[],
            });
        }
        let version = u32::from_be_bytes(
            buf.get(1..5)
                .ok_or(MalformedHeader)?
                .try_into()
                .map_err(|_| MalformedHeader)?,
        );
        let dcid_len = *buf.get(5).ok_or(MalformedHeader)? as usize;
        let dcid = buf.get(6..6 + dcid_len).ok_or(MalformedHeader)?;
        let at = 6 + dcid_len;
        let scid_len = *buf.get(at).ok_or(MalformedHeader)? as usize;
        let scid = buf.get(at + 1..at + 1 + scid_len).ok_or(MalformedHeader)?;
        // Version 1 limits CIDs to 20 bytes; other versions may not (RFC 8999 §5.1).
        if quiche::version_is_supported(version) && (dcid_len > 20 || scid_len > 20) {
            return Err(MalformedHeader);
        }
        Ok(PacketHeader {
            form: HeaderForm::Long {
                version,
                type_bits: (first >> 4) & 0b11,
            },
            dcid,
            scid,
        })
    }

    /// True for a QUIC v1 Initial.
    pub fn is_initial(&self) -> bool {
        matches!(self.form, HeaderForm::Long { version, type_bits: 0 } if quiche::version_is_supported(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_headers() {
        let short = [0x40, 1, 2, 3, 4, 9, 9];
        let h = PacketHeader::parse(&short, 4).unwrap();
        assert_eq!((h.form, h.dcid), (HeaderForm::Short, &[1, 2, 3, 4][..]));
        assert_eq!(PacketHeader::parse(&short[..3], 4), Err(MalformedHeader));

        let long = [0xc0, 0, 0, 0, 1, 2, 0xaa, 0xbb, 1, 0xcc, 0, 0];
        let h = PacketHeader::parse(&long, 4).unwrap();
        assert!(h.is_initial());
        assert_eq!((h.dcid, h.scid), (&[0xaa, 0xbb][..], &[0xcc][..]));
        // Unknown version: CIDs may be long, still readable for version negotiation.
        let mut odd = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 30];
        odd.extend([7u8; 30]);
        odd.push(0);
        let h = PacketHeader::parse(&odd, 4).unwrap();
        assert!(!h.is_initial());
        assert_eq!(h.dcid.len(), 30);
        assert_eq!(PacketHeader::parse(&[], 4), Err(MalformedHeader));
        assert_eq!(
            PacketHeader::parse(&[0xc0, 0, 0, 0, 1, 21], 4),
            Err(MalformedHeader)
        );
    }
}
