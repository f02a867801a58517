//! The buffers quiche keeps stream data in: [`Bytes`], so that a body the application already
//! holds as `Bytes` is queued on a stream without a copy (quiche's `send_body_zc` and
//! `stream_send_zc`). quiche copies it once, into the packet, when it is sent.

use bytes::Bytes;
use quiche::{BufFactory, BufSplit};

/// The quiche connection type every part of quicksand uses: quiche over [`StreamBufs`].
pub type QuicheConnection = quiche::Connection<StreamBufs>;

/// quiche's buffer factory for stream data: [`StreamBuf`]s, i.e. [`Bytes`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamBufs;

/// One chunk of stream data: a [`Bytes`], cloned and split without copying.
#[derive(Clone, Debug, Default)]
pub struct StreamBuf(pub Bytes);

impl From<Bytes> for StreamBuf {
    fn from(bytes: Bytes) -> Self {
        StreamBuf(bytes)
    }
}

impl AsRef<[u8]> for StreamBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl BufFactory for StreamBufs {
    type Buf = StreamBuf;
    type DgramBuf = Vec<u8>;

    fn buf_from_slice(buf: &[u8]) -> StreamBuf {
        StreamBuf(Bytes::copy_from_slice(buf))
    }

    fn dgram_buf_from_slice(buf: &[u8]) -> Vec<u8> {
        buf.to_vec()
    }
}

impl BufSplit for StreamBuf {
    fn split_at(&mut self, at: usize) -> Self {
        StreamBuf(self.0.split_off(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_head_and_returns_the_tail_without_copying() {
        let whole = Bytes::from_static(b"headtail");
        let mut buf = StreamBuf(whole.clone());
        let tail = buf.split_at(4);
        assert_eq!((buf.as_ref(), tail.as_ref()), (&b"head"[..], &b"tail"[..]));
        // Both halves point into the original allocation.
        assert_eq!(buf.0.as_ptr(), whole.as_ptr());
        assert_eq!(tail.0.as_ptr(), whole[4..].as_ptr());
    }
}
