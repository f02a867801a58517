//! Pooled send buffers.
//!
//! Packets are written into buffers taken from a [`BufferPool`] only while a [`Transmit`] is
//! being built; the buffer returns to the pool when the driver drops the transmit. So an idle
//! connection holds no send buffer, and a busy endpoint reuses a handful of allocations.
//!
//! The free list is a bounded lock-free queue: one pool may serve the workers of a process
//! (each connection context is a clone), and a transmit may be dropped on another thread than
//! the one that took its buffer; neither waits for a lock.
//!
//! [`Transmit`]: crate::Transmit

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// A shared pool of byte buffers of one capacity. Cloning shares the pool.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// Free buffers; `None` when the pool keeps none.
    free: Option<ArrayQueue<Vec<u8>>>,
    buffer_capacity: usize,
}

impl BufferPool {
    /// A pool handing out buffers of `buffer_capacity` bytes and keeping at most `max_pooled`
    /// free ones (the rest are freed).
    pub fn new(buffer_capacity: usize, max_pooled: usize) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                free: (max_pooled > 0).then(|| ArrayQueue::new(max_pooled)),
                buffer_capacity,
            }),
        }
    }

    /// Takes an empty buffer with at least the pool's capacity.
    pub fn take(&self) -> PooledBuf {
        let reused = self.inner.free.as_ref().and_then(ArrayQueue::pop);
        let buf = reused.unwrap_or_else(|| Vec::with_capacity(self.inner.buffer_capacity));
        PooledBuf {
            buf,
            pool: Some(self.clone()),
        }
    }

    /// The capacity of the buffers this pool hands out.
    pub fn buffer_capacity(&self) -> usize {
        self.inner.buffer_capacity
    }

    /// Free buffers currently held by the pool.
    pub fn pooled(&self) -> usize {
        self.inner.free.as_ref().map_or(0, ArrayQueue::len)
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() < self.inner.buffer_capacity {
            return;
        }
        buf.clear();
        if let Some(free) = &self.inner.free {
            // A full pool frees the buffer.
            let _ = free.push(buf);
        }
    }
}

impl Default for BufferPool {
    /// 64 KiB buffers (a full GSO batch), up to 256 kept.
    fn default() -> Self {
        BufferPool::new(crate::gso::MAX_TRANSMIT_BYTES, 256)
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffer_capacity", &self.inner.buffer_capacity)
            .field("pooled", &self.pooled())
            .finish()
    }
}

/// A byte buffer that returns to its [`BufferPool`] when dropped. Derefs to the filled bytes.
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Option<BufferPool>,
}

impl PooledBuf {
    /// A buffer that belongs to no pool (freed on drop), e.g. for tests or copies.
    pub fn unpooled(bytes: Vec<u8>) -> Self {
        PooledBuf {
            buf: bytes,
            pool: None,
        }
    }

    /// The underlying vector, for writing.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Detaches the bytes from the pool.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.pool = None;
        std::mem::take(&mut self.buf)
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PooledBuf({} bytes)", self.buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_to_pool_and_are_reused() {
        let pool = BufferPool::new(1024, 2);
        let mut a = pool.take();
        a.as_mut_vec().extend_from_slice(b"hello");
        assert_eq!(&a[..], b"hello");
        let ptr = a.as_ptr();
        drop(a);
        assert_eq!(pool.pooled(), 1);
        let b = pool.take();
        assert!(b.is_empty(), "a reused buffer comes back empty");
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn pool_keeps_at_most_max_pooled() {
        let pool = BufferPool::new(16, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.take()).collect();
        drop(bufs);
        assert_eq!(pool.pooled(), 2);
    }

    #[test]
    fn a_pool_that_keeps_nothing_frees_every_buffer() {
        let pool = BufferPool::new(16, 0);
        drop(pool.take());
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn detached_buffer_does_not_return() {
        let pool = BufferPool::new(16, 2);
        let v = pool.take().into_vec();
        assert_eq!(pool.pooled(), 0);
        drop(v);
        assert_eq!(pool.pooled(), 0);
    }
}
