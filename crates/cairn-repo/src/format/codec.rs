//! Primitive encodings shared by the binary formats: LEB128 varints,
//! zig-zag signed varints, length-prefixed byte strings, and a reader that
//! never panics on truncated or hostile input.

use cairn_chunk::Id;

/// Appends primitives to a byte buffer.
#[derive(Default)]
pub struct Writer {
    /// The encoded bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn svarint(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn id(&mut self, id: &Id) {
        self.buf.extend_from_slice(&id.0);
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// Reads primitives; every method fails instead of reading past the end.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Why decoding stopped.
pub type DecodeError = String;

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.data.len()
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            // Only the shortest form: a tree is named by the hash of its
            // bytes, so one value must have one encoding. A zero byte after
            // the first, or a tenth byte with more than bit 63, is another.
            if (shift > 0 && b == 0) || (shift == 63 && b > 1) {
                return Err(format!("non-canonical varint at byte {}", self.pos - 1));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }
    pub fn svarint(&mut self) -> Result<i64, DecodeError> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    /// A count that is plausible for the remaining input (each item takes at
    /// least `min_item` bytes), so a corrupt count cannot make us allocate
    /// gigabytes.
    pub fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let left = (self.data.len() - self.pos) as u64;
        if n.saturating_mul(min_item.max(1) as u64) > left {
            return Err(format!("count {n} exceeds the remaining {left} bytes"));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| "length overflow".to_string())?;
        Ok(self.take(n)?.to_vec())
    }
    pub fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id::from_slice(self.take(32)?).expect("32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), s in any::<i64>(), b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut w = Writer::default();
            w.varint(u);
            w.svarint(s);
            w.bytes(&b);
            let mut r = Reader::new(&w.buf);
            prop_assert_eq!(r.varint().unwrap(), u);
            prop_assert_eq!(r.svarint().unwrap(), s);
            prop_assert_eq!(r.bytes().unwrap(), b);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.varint();
            let _ = r.bytes();
            let _ = r.count(8);
        }
    }
}
