//! RFC 9218 extensible priorities: the `priority` field and PRIORITY_UPDATE values.

/// A request's priority (RFC 9218 §4), stored as a request extension by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// Urgency 0 (highest) ..= 7 (lowest). Default 3.
    pub urgency: u8,
    /// Incremental delivery. Default false.
    pub incremental: bool,
}

impl Default for Priority {
    fn default() -> Self {
        Priority {
            urgency: 3,
            incremental: false,
        }
    }
}

impl Priority {
    /// Parses a Structured Fields dictionary such as `u=1, i` or `i=?0,u=5`. Unknown members
    /// are ignored and bad values keep the default, as RFC 9218 §4 asks; out-of-range
    /// urgencies are clamped to 7.
    pub fn parse(value: &[u8]) -> Priority {
        let mut p = Priority::default();
        let Ok(text) = std::str::from_utf8(value) else {
            return p;
        };
        for member in text.split(',') {
            let member = member.split(';').next().unwrap_or("").trim();
            let (key, val) = match member.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (member, None),
            };
            match (key, val) {
                ("u", Some(v)) => {
                    if let Ok(u) = v.parse::<i64>() {
                        p.urgency = u.clamp(0, 7) as u8;
                    }
                }
                ("i", None) | ("i", Some("?1")) => p.incremental = true,
                ("i", Some("?0")) => p.incremental = false,
                _ => {}
            }
        }
        p
    }

    /// The field value, e.g. `u=1, i`.
    pub fn to_field_value(&self) -> String {
        if self.incremental {
            format!("u={}, i", self.urgency)
        } else {
            format!("u={}", self.urgency)
        }
    }

    /// The same priority in quiche's type.
    pub(crate) fn to_quiche(self) -> quiche::h3::Priority {
        quiche::h3::Priority::new(self.urgency.min(7), self.incremental)
    }

    /// Reads the `priority` field of a field list, if present.
    pub(crate) fn from_fields<T: quiche::h3::NameValue>(fields: &[T]) -> Option<Priority> {
        fields
            .iter()
            .find(|h| h.name() == b"priority")
            .map(|h| Priority::parse(h.value()))
    }

    /// quiche's stream priority (urgency offset by 124 as quiche::h3 does for requests).
    pub(crate) fn apply(&self, conn: &mut quicksand_core::QuicheConnection, stream: u64) {
        // An error means the stream is already gone: nothing to prioritise.
        let _ = conn.stream_priority(stream, self.urgency.min(7) + 124, self.incremental);
    }
}

#[cfg(test)]
mod tests {
    use super::Priority;

    fn p(urgency: u8, incremental: bool) -> Priority {
        Priority {
            urgency,
            incremental,
        }
    }

    #[test]
    fn parses_the_dictionary_members_in_any_order() {
        assert_eq!(Priority::parse(b"u=1, i"), p(1, true));
        assert_eq!(Priority::parse(b"i=?0,u=5"), p(5, false));
        assert_eq!(Priority::parse(b"i=?1"), p(3, true));
        assert_eq!(Priority::parse(b""), p(3, false));
    }

    #[test]
    fn bad_or_unknown_members_keep_the_defaults() {
        assert_eq!(Priority::parse(b"u=high, x=3, i=maybe"), p(3, false));
        assert_eq!(Priority::parse(b"u=9"), p(7, false));
        assert_eq!(Priority::parse(b"u=-1"), p(0, false));
        assert_eq!(Priority::parse(b"u=2;param=1"), p(2, false));
        assert_eq!(Priority::parse(&[0xff, 0xfe]), p(3, false));
    }

    #[test]
    fn field_value_round_trips() {
        for urgency in 0..=7 {
            for incremental in [false, true] {
                let v = p(urgency, incremental);
                assert_eq!(Priority::parse(v.to_field_value().as_bytes()), v);
            }
        }
    }
}
