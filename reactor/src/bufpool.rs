//! The per-core buffer arena: recycled `BytesMut`s whose checkout returns on drop.
//!
//! Sessions hold buffers only while a request is in progress, so an idle keep-alive
//! connection costs no buffer memory; the pool keeps the working set warm so steady-state
//! requests never reach the allocator. The pool is per worker thread (`Rc`, not `Send`).

use bytes::BytesMut;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

struct Inner {
    free: Vec<BytesMut>,
    size: usize,
    max_free: usize,
}

/// A handle to the worker's pool; cheap to clone.
#[derive(Clone)]
pub struct BufPool {
    inner: Rc<RefCell<Inner>>,
}

/// A checked-out buffer; returns to its pool when dropped.
pub struct PooledBuf {
    buf: BytesMut,
    pool: Rc<RefCell<Inner>>,
}

impl BufPool {
    /// A pool of `size`-byte buffers that keeps at most `max_free` idle ones.
    pub fn new(size: usize, max_free: usize) -> BufPool {
        BufPool {
            inner: Rc::new(RefCell::new(Inner {
                free: Vec::with_capacity(max_free),
                size,
                max_free,
            })),
        }
    }

    pub fn checkout(&self) -> PooledBuf {
        let mut inner = self.inner.borrow_mut();
        let buf = match inner.free.pop() {
            Some(b) => b,
            None => BytesMut::with_capacity(inner.size),
        };
        PooledBuf {
            buf,
            pool: self.inner.clone(),
        }
    }

    /// Buffers waiting in the pool.
    pub fn free(&self) -> usize {
        self.inner.borrow().free.len()
    }

    /// The nominal size of one buffer.
    pub fn buf_size(&self) -> usize {
        self.inner.borrow().size
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut inner = self.pool.borrow_mut();
        if inner.free.len() >= inner.max_free {
            return;
        }
        let mut b = std::mem::take(&mut self.buf);
        b.clear();
        // Consumed bytes at the front (`advance`) shrink the visible capacity; reclaiming
        // moves the start back without allocating. A buffer that cannot be reclaimed (it
        // was split) or grew far past the nominal size (a huge header block) goes back to
        // the allocator rather than pinning memory in the pool.
        if b.try_reclaim(inner.size) && b.capacity() <= inner.size * 4 {
            inner.free.push(b);
        }
    }
}

impl Deref for PooledBuf {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_recycled() {
        let pool = BufPool::new(1024, 4);
        let ptr = {
            let mut b = pool.checkout();
            b.extend_from_slice(b"hello");
            b.as_ptr() as usize
        };
        assert_eq!(pool.free(), 1);
        let b = pool.checkout();
        assert_eq!(b.as_ptr() as usize, ptr, "the same allocation comes back");
        assert!(b.is_empty());
        assert!(b.capacity() >= 1024);
    }

    #[test]
    fn consumed_buffers_are_reclaimed() {
        let pool = BufPool::new(1024, 4);
        let ptr = {
            let mut b = pool.checkout();
            b.extend_from_slice(&[7u8; 100]);
            bytes::Buf::advance(&mut *b, 100);
            b.as_ptr() as usize - 100
        };
        assert_eq!(pool.free(), 1, "an advanced buffer still comes back");
        let b = pool.checkout();
        assert_eq!(b.as_ptr() as usize, ptr);
        assert!(b.capacity() >= 1024);
    }

    #[test]
    fn pool_is_bounded() {
        let pool = BufPool::new(64, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.checkout()).collect();
        drop(bufs);
        assert_eq!(pool.free(), 2);
    }
}
