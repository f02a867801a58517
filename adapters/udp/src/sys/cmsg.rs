//! Control messages (`cmsg`): writing them for `sendmsg`, reading them after `recvmsg`.

use std::mem::size_of;
use std::ptr;

/// Room for the control messages of one datagram. The largest set on receive is an
/// `in6_pktinfo`, a TOS byte, a traffic class, a GRO size and a drop counter (about 140 bytes with
/// headers and padding); on send a pktinfo, a TOS, a segment size and a transmit time.
pub(crate) const CMSG_BUF_LEN: usize = 256;

/// A control message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
pub(crate) struct CmsgBuf(pub(crate) [u8; CMSG_BUF_LEN]);

impl CmsgBuf {
    pub(crate) const fn new() -> Self {
        Self([0; CMSG_BUF_LEN])
    }
}

/// Writes control messages back to back into a [`CmsgBuf`].
pub(crate) struct Encoder<'a> {
    buf: &'a mut CmsgBuf,
    len: usize,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(buf: &'a mut CmsgBuf) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends one control message carrying `value`.
    ///
    /// Panics if the buffer is full, which would be a sizing bug in this crate: the set of
    /// messages per datagram is fixed and fits in [`CMSG_BUF_LEN`].
    pub(crate) fn push<T: Copy>(&mut self, level: libc::c_int, ty: libc::c_int, value: T) {
        let data_len = u32::try_from(size_of::<T>()).unwrap_or(u32::MAX);
        // SAFETY: CMSG_SPACE / CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        let cmsg_len = unsafe { libc::CMSG_LEN(data_len) } as usize;
        assert!(
            self.len + space <= CMSG_BUF_LEN,
            "control message buffer too small"
        );
        // SAFETY: `self.len` is a multiple of the cmsghdr alignment (each step adds CMSG_SPACE,
        // which is aligned) within an 8-aligned buffer, and `space` bytes from there are inside
        // the buffer, which holds the header and the data (CMSG_DATA points within CMSG_SPACE).
        unsafe {
            let hdr = self
                .buf
                .0
                .as_mut_ptr()
                .add(self.len)
                .cast::<libc::cmsghdr>();
            ptr::write_bytes(hdr.cast::<u8>(), 0, space);
            (*hdr).cmsg_len = cmsg_len as _;
            (*hdr).cmsg_level = level;
            (*hdr).cmsg_type = ty;
            ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<T>(), value);
        }
        self.len += space;
    }

    /// Bytes written so far, the value for `msg_controllen`.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// One received control message.
pub(crate) struct Cmsg<'a> {
    pub(crate) level: libc::c_int,
    pub(crate) ty: libc::c_int,
    pub(crate) data: &'a [u8],
}

impl Cmsg<'_> {
    /// Reads the payload as a `T` if it is at least that long.
    pub(crate) fn read<T: Copy>(&self) -> Option<T> {
        if self.data.len() < size_of::<T>() {
            return None;
        }
        // SAFETY: the slice holds at least size_of::<T>() bytes; T is plain old data (only
        // integers and C structs of integers are read).
        Some(unsafe { ptr::read_unaligned(self.data.as_ptr().cast::<T>()) })
    }

    /// Reads an integer payload that the kernel may send as 1, 2 or 4 bytes.
    pub(crate) fn read_uint(&self) -> Option<u32> {
        match self.data.len() {
            1 => Some(u32::from(self.data[0])),
            2 | 3 => self.read::<u16>().map(u32::from),
            _ => self.read::<u32>(),
        }
    }
}

/// Calls `f` for each control message in the first `len` bytes of `buf` (`msg_controllen`
/// after `recvmsg`). Stops at the first message whose length runs past the end.
///
/// Safe for any bytes, not only what a kernel writes (fuzz target `udp_recv`): headers and
/// data are read only within `buf`, whatever the lengths say.
// `msg_controllen` and `cmsg_len` are `usize` with glibc but `socklen_t` with musl.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn for_each(buf: &CmsgBuf, len: usize, mut f: impl FnMut(Cmsg<'_>)) {
    // SAFETY: an all-zero msghdr is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    // Only read through: the CMSG macros take the header by `*const`.
    hdr.msg_control = buf.0.as_ptr().cast_mut().cast();
    hdr.msg_controllen = len.min(CMSG_BUF_LEN) as _;
    if (hdr.msg_controllen as usize) < size_of::<libc::cmsghdr>() {
        return;
    }
    let end = hdr.msg_control as usize + hdr.msg_controllen as usize;
    // SAFETY: `hdr` describes `buf`, 8-aligned as `cmsghdr` needs; CMSG_FIRSTHDR / CMSG_NXTHDR
    // only return headers that lie entirely within it.
    let mut cur = unsafe { libc::CMSG_FIRSTHDR(&hdr) };
    while !cur.is_null() {
        // SAFETY: `cur` is a header within the buffer (see above).
        let (level, ty, len) = unsafe { ((*cur).cmsg_level, (*cur).cmsg_type, (*cur).cmsg_len) };
        // SAFETY: pure pointer arithmetic within the buffer.
        let data = unsafe { libc::CMSG_DATA(cur) };
        let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
        let data_len = (len as usize).saturating_sub(header_len);
        // Compared as a difference: `data + data_len` wraps for lengths near `usize::MAX`,
        // which would pass a sum check and make a slice past the buffer.
        if data_len > end.saturating_sub(data as usize) {
            return;
        }
        // SAFETY: `data .. data + data_len` lies within the control buffer (checked above).
        let data = unsafe { std::slice::from_raw_parts(data.cast_const(), data_len) };
        f(Cmsg { level, ty, data });
        // SAFETY: as for CMSG_FIRSTHDR. `cur`'s length was checked to stay within the buffer,
        // so the macro's arithmetic on it cannot overflow.
        cur = unsafe { libc::CMSG_NXTHDR(&hdr, cur) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode() {
        let mut buf = CmsgBuf::new();
        let mut enc = Encoder::new(&mut buf);
        enc.push(libc::IPPROTO_UDP, libc::UDP_SEGMENT, 1200u16);
        enc.push(libc::IPPROTO_IP, libc::IP_TOS, 0x02 as libc::c_int);
        enc.push(libc::SOL_SOCKET, libc::SCM_TXTIME, 123_456_789u64);
        let len = enc.len();
        let mut seen = Vec::new();
        for_each(&buf, len, |c| {
            seen.push((c.level, c.ty, c.read_uint(), c.read::<u64>()))
        });
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, libc::IPPROTO_UDP);
        assert_eq!(seen[0].2, Some(1200));
        assert_eq!(seen[1].1, libc::IP_TOS);
        assert_eq!(seen[1].2, Some(2));
        assert_eq!(seen[2].3, Some(123_456_789));
    }
}
