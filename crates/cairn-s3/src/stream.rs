//! A range of an object read as it arrives: the body of one GET handed to
//! a blocking reader a chunk at a time, so that a long range (a whole pack)
//! never sits in memory. object_store resumes a body cut off mid-way with
//! a range request for the rest, within its retry budget.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::backend::S3Backend;

/// The body of a range GET, as a blocking reader.
pub(crate) struct RangeStream<'a> {
    backend: &'a S3Backend,
    key: String,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    /// What the body has delivered and the reader not yet taken.
    chunk: Bytes,
    /// Bytes of the range not yet taken.
    left: u64,
}

impl<'a> RangeStream<'a> {
    pub(crate) fn new(
        backend: &'a S3Backend,
        key: &str,
        body: BoxStream<'static, object_store::Result<Bytes>>,
        len: u64,
    ) -> RangeStream<'a> {
        RangeStream {
            backend,
            key: key.to_string(),
            body,
            chunk: Bytes::new(),
            left: len,
        }
    }
}

impl Read for RangeStream<'_> {
    /// A body that ends before the range does ends the reader early: the
    /// caller, which knows how much it needs, reports the short read.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.left == 0 {
                return Ok(0);
            }
            match self.backend.block_on(self.body.next()) {
                Some(Ok(bytes)) => self.chunk = bytes,
                Some(Err(e)) => return Err(io::Error::other(self.backend.err(&self.key, e))),
                None => return Ok(0),
            }
        }
        let n = buf
            .len()
            .min(self.chunk.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        self.left -= n as u64;
        Ok(n)
    }
}
